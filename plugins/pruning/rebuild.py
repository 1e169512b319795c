"""Make a pruned architecture rebuildable from the original model class.

A channel-pruned model no longer matches its class's constructor, so ``Model()`` +
``load_state_dict(pruned)`` fails on every resized layer. The core keeps a ``torch.export`` program
(``lineage/torch_model.pt2``, no class needed) and the exported ONNX graph; this module adds the
class-based route, which keeps a model trainable and editable as Python code:

* :func:`architecture` records, for every layer whose shape changed, the constructor attributes that
  changed (conv channels and groups, linear features, norm features): a small JSON dict that goes
  into the step's details, the lineage and the artifact manifest.
* :func:`rebuild` instantiates the original class (any factory), applies that dict, resizes the
  parameters and loads the pruned weights with ``strict=True``, so a mismatch is an error, never a
  silently half-loaded model.

Hand-written because Torch-Pruning's own ``tp.state_dict``/``tp.load_state_dict`` pickle every
module's ``__dict__`` (not JSON, and tied to the pickled classes).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

#: Constructor attributes per layer kind that pruning changes.
_ATTRS = {
    "_ConvNd": ("in_channels", "out_channels", "groups"),
    "Linear": ("in_features", "out_features"),
    "_BatchNorm": ("num_features",),
    "GroupNorm": ("num_channels", "num_groups"),
    "LayerNorm": ("normalized_shape",),
    "PReLU": ("num_parameters",),
}


def _attrs_of(module: torch.nn.Module) -> tuple[str, ...]:
    for cls in type(module).__mro__:
        if cls.__name__ in _ATTRS:
            return _ATTRS[cls.__name__]
    return ()


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def layer_attrs(model: torch.nn.Module) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, module in model.named_modules():
        attrs = _attrs_of(module)
        if attrs:
            out[name] = {a: _jsonable(getattr(module, a)) for a in attrs}
    return out


def architecture(original: dict[str, dict[str, Any]], pruned: torch.nn.Module) -> dict[str, dict[str, Any]]:
    """Attributes of ``pruned``'s layers that differ from ``original`` (a :func:`layer_attrs` snapshot)."""
    changed: dict[str, dict[str, Any]] = {}
    for name, attrs in layer_attrs(pruned).items():
        before = original.get(name, {})
        diff = {k: v for k, v in attrs.items() if before.get(k) != v}
        if diff:
            changed[name] = diff
    return changed


def rebuild(model: torch.nn.Module, arch: dict[str, dict[str, Any]],
            state_dict: dict[str, torch.Tensor]) -> torch.nn.Module:
    """Turn a fresh instance of the original class into the pruned model (in place) and load its weights."""
    import torch

    for name, attrs in arch.items():
        module = model.get_submodule(name)
        for key, value in attrs.items():
            setattr(module, key, tuple(value) if isinstance(value, list) else value)
    # Resize every tensor to the pruned shape; load_state_dict(strict=True) then fills the values.
    for key, tensor in state_dict.items():
        owner_name, _, attr = key.rpartition(".")
        owner = model.get_submodule(owner_name) if owner_name else model
        current = getattr(owner, attr, None)
        if isinstance(current, torch.Tensor) and current.shape != tensor.shape:
            fresh = torch.empty(tensor.shape, dtype=current.dtype)
            if isinstance(current, torch.nn.Parameter):
                setattr(owner, attr, torch.nn.Parameter(fresh, requires_grad=current.requires_grad))
            else:
                owner.register_buffer(attr, fresh)
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


def save(directory: Path, model: torch.nn.Module, arch: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Write the pruned weights (``state_dict.pt``, tensors only: loads with weights_only=True) and the
    architecture (``architecture.json``); return their paths."""
    import json

    import torch

    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / "state_dict.pt"
    arch_file = directory / "architecture.json"
    torch.save(model.state_dict(), weights)
    arch_file.write_text(json.dumps(arch, indent=1, sort_keys=True))
    return {"state_dict": str(weights), "architecture": str(arch_file)}


def load(directory: Path, model: torch.nn.Module) -> torch.nn.Module:
    """Rebuild from a folder written by :func:`save`, given a fresh instance of the original class."""
    import json

    import torch

    arch = json.loads((directory / "architecture.json").read_text())
    state = torch.load(directory / "state_dict.pt", weights_only=True)
    return rebuild(model, arch, state)
