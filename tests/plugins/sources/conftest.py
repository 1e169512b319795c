"""Fixtures of the Hugging Face source and text dataset tests."""

from __future__ import annotations

import pytest
from hf_tiny import TinyModels, build_tiny_models


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    """Tiny BERT folders (base, sentence-transformers layout, 3-label classifier), built once per session."""
    return build_tiny_models(tmp_path_factory.mktemp("tiny-hf"))
