"""One torch thread for these tests: the CI machine is small and shared, and OpenMP spin-waiting on an
oversubscribed machine makes tiny models many times slower than a single thread."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
