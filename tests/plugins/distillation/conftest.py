"""One torch thread per test: these models are tiny, and on a shared 2-core machine intra-op threads
spin against other processes (a 3-4x slowdown measured), which says nothing about the code."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # 'distill_models:fn' references in plans


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
