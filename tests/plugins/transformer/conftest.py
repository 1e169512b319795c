"""Tiny BERT folders for the transformer compression tests (the helpers of tests/plugins/sources/hf_tiny.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sources"))

from hf_tiny import TinyModels, build_tiny_models


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    """Tiny BERTs (2 layers, 2 heads, hidden 32, FFN 64), built once per session."""
    return build_tiny_models(tmp_path_factory.mktemp("tiny-hf-tp"))
