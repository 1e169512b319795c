"""Resolve 'package.module:function' and 'file.py:function' references from plans."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgecraft.errors import InputError, resolve_input_path
from edgecraft.safe_text import bounded_repr
from edgecraft.user_code import call_user_code, describe_exit


def load_callable(reference: str, base_dir: Path, *, field: str) -> Callable[..., Any]:
    """Import the callable named by ``reference``; ``field`` names the plan field for errors.

    A ``file.py:function`` reference is resolved relative to ``base_dir`` (the plan's folder) so
    a plan and its model code can live side by side without being an installed package.
    """
    module_ref, _, attr = reference.partition(":")
    if not module_ref or not attr:
        raise InputError(f"{field}: {bounded_repr(reference)} is not a 'package.module:function' or 'file.py:function' "
                         "reference")
    if module_ref.endswith(".py"):
        path = resolve_input_path(base_dir / module_ref, field=field)
        if not path.is_file():
            raise InputError(f"{field}: file {path} does not exist", hint="paths are relative to the plan file")
        module_name = "edgecraft_user_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
        module = sys.modules.get(module_name)
        if module is None:
            spec = importlib.util.spec_from_file_location(module_name, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            try:
                call_user_code(spec.loader.exec_module, module, what=f"{field}: importing {path}")
            except BaseException:
                del sys.modules[module_name]
                raise
    else:
        try:
            module = importlib.import_module(module_ref)
        except ImportError as exc:
            raise InputError(f"{field}: cannot import module {bounded_repr(module_ref)}: {exc}",
                             hint="is the package installed in this environment?") from exc
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # the module's own code raised or exited while importing
            raise InputError(f"{field}: importing module {bounded_repr(module_ref)} {describe_exit(exc)}") from exc
    try:
        fn = getattr(module, attr)
    except AttributeError:
        raise InputError(f"{field}: module {bounded_repr(module_ref)} has no attribute {bounded_repr(attr)}") from None
    if not callable(fn):
        raise InputError(f"{field}: {bounded_repr(reference)} is not callable")
    return fn


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
