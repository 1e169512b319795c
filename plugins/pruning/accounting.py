"""Honest numbers for the report: what pruning did to bytes and sparsity (parameters and MACs are
counted by :mod:`edgecraft.torchkit.counting`).

Zeros in a dense ONNX file take as many bytes as any other float, so unstructured sparsity does not
make the shipped model smaller; only a compressed container (zip) benefits. Both sizes are measured
on a real export of the model, never derived from the sparsity.
"""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from edgecraft.models import TorchModel


def zipped_size(path: Path) -> int:
    """Bytes of ``path`` in a deflate zip (level 9): what a compressed download/flash image costs."""
    with tempfile.TemporaryDirectory(prefix="edgecraft-zip-") as tmp:
        archive = Path(tmp) / "model.zip"
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
            zf.write(path, arcname=path.name)
        return archive.stat().st_size


def onnx_sizes(model: TorchModel, **export: Any) -> dict[str, int]:
    """Dense and zipped bytes of ``model`` exported the way the core exports it (``export``: its options)."""
    from edgecraft.model_source import export_onnx

    with tempfile.TemporaryDirectory(prefix="edgecraft-size-") as tmp:
        path = Path(tmp) / "model.onnx"
        export_onnx(model, path, **export)
        return {"dense_bytes": path.stat().st_size, "zipped_bytes": zipped_size(path)}


def weight_sparsity(module: torch.nn.Module, names: list[str]) -> dict[str, Any]:
    """Zero fraction of the weights of the named layers, overall and per layer."""
    zeros = total = 0
    per_layer: dict[str, float] = {}
    for name in names:
        weight = module.get_submodule(name).weight
        z, n = int((weight == 0).sum()), weight.numel()
        zeros, total = zeros + z, total + n
        per_layer[name] = round(z / n, 6)
    return {"zeros": zeros, "weights": total, "sparsity": zeros / total if total else 0.0, "per_layer": per_layer}
