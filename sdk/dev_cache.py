"""Cache keys that follow a plugin's *code*, not only its version, while it is being developed.

The artifact cache is keyed by the compiled plan, which records each plugin as ``dist==version``.
That is right for released plugins (a new release bumps the version) and wrong while an author
edits an editable install: the version stays ``0.1.0`` and the cache served the artifact the old
code built. So for a plugin in development, the key also holds a hash of its source files.

"In development" means the distribution was installed editable (``pip install -e``: its
``direct_url.json`` says ``dir_info.editable``) or its module does not live under a
``site-packages``/``dist-packages`` folder (a source checkout on ``PYTHONPATH``, a test's temporary
site). Released installs are not hashed: their files do not change under the same version, and
hashing them would cost every run a walk over site-packages.
"""

from __future__ import annotations

import hashlib
import json
import sys
from importlib import metadata
from pathlib import Path

#: Files hashed under a plugin's package folder: its code and the data files it ships with it.
SOURCE_SUFFIXES = (".py", ".json", ".yaml", ".yml", ".toml", ".txt", ".cfg")
_INSTALLED_DIRS = ("site-packages", "dist-packages")


def is_editable(distribution: str) -> bool:
    """Whether ``distribution`` was installed with ``pip install -e`` (PEP 610 ``direct_url.json``)."""
    try:
        raw = metadata.distribution(distribution).read_text("direct_url.json")
    except (metadata.PackageNotFoundError, OSError):
        return False
    if not raw:
        return False
    try:
        return bool(json.loads(raw).get("dir_info", {}).get("editable", False))
    except (ValueError, AttributeError):
        return False


def _is_installed_copy(path: Path) -> bool:
    return any(part in _INSTALLED_DIRS for part in path.parts)


def plugin_source_root(module_name: str, distribution: str) -> Path | None:
    """The files that make up a plugin, from its entry-point module.

    A third-party plugin's whole top-level package (its entry module may import siblings); a built-in
    plugin's own subpackage (``edgecraft/plugins/quantization/``), not the whole of edgecraft. A plugin
    that is a single module is that file. None if the module is not loaded from a file.
    """
    module = sys.modules.get(module_name)
    if module is None:
        return None
    file = getattr(module, "__file__", None)
    if not file:
        return None
    path = Path(file).resolve()
    if distribution == "edgecraft" or "." not in module_name:
        return path.parent if path.name == "__init__.py" or "." in module_name else path
    top = sys.modules.get(module_name.split(".")[0])
    top_file = getattr(top, "__file__", None)
    return Path(top_file).resolve().parent if top_file else path.parent


def in_development(module_name: str, distribution: str) -> bool:
    """Editable install, or code that is not an installed copy under site-packages."""
    if is_editable(distribution):
        return True
    root = plugin_source_root(module_name, distribution)
    return root is not None and not _is_installed_copy(root)


def source_hash(root: Path) -> str:
    """sha256 over the relative paths and contents of the source files under ``root`` (or of one file)."""
    digest = hashlib.sha256()
    files = [root] if root.is_file() else sorted(
        p for p in root.rglob("*") if p.is_file() and p.suffix in SOURCE_SUFFIXES and "__pycache__" not in p.parts)
    for path in files:
        digest.update(str(path.relative_to(root) if root.is_dir() else path.name).encode())
        digest.update(b"\0")
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(b"<unreadable>")
        digest.update(b"\0")
    return digest.hexdigest()


def plugin_version_tag(plugin: str, distribution: str, version: str, module_name: str | None) -> str:
    """What the cache key records for a plugin: ``dist==version``, plus ``+src.<hash>`` in development."""
    tag = f"{distribution}=={version}"
    if module_name is None or not in_development(module_name, distribution):
        return tag
    root = plugin_source_root(module_name, distribution)
    return tag if root is None else f"{tag}+src.{source_hash(root)[:16]}"
