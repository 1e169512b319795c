"""Fixtures for the TVM backend tests: a small CNN exported to ONNX, and the emulated device."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def export_cnn(path: Path, *, dynamic_batch: bool = True) -> Path:
    """A small conv net (conv, relu, pool, linear) exported with the legacy exporter (fast, no dynamo)."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1, stride=2),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)).eval()
    axes = {"input": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None
    torch.onnx.export(model, (torch.randn(1, 1, 16, 16),), str(path), input_names=["input"],
                      output_names=["logits"], dynamo=False, opset_version=17, dynamic_axes=axes)
    return path


@pytest.fixture(scope="session")
def cnn_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_cnn(tmp_path_factory.mktemp("tvm-model") / "cnn.onnx")


@pytest.fixture(scope="session")
def digits_batch() -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.standard_normal((4, 1, 16, 16)).astype(np.float32)


@pytest.fixture(scope="session")
def emulated_device():
    """The emulated aarch64 device in the default cache (set up once: ~1 min, needs root and the
    Debian mirror; ./scripts/test runs `edgecraft device setup arm64-emulated` first). Tests using it are
    marked ``aarch64`` (tests/suite_requirements.py): skipped with the install command when the toolchain
    or the device is missing, failed instead under CI=true or EDGECRAFT_REQUIRE_ALL=1."""
    from edgecraft.backends.tvm.device import setup_emulated_device

    return setup_emulated_device()
