"""Train the QAT example's MobileNet-style model and save its weights (1-4 minutes on two shared cores).

    python examples/qat/train.py

Deterministic (fixed seeds, one thread order); the shipped ``digits_mobilenet.pt`` came from this script.
It trains with the digits example's loop (``examples/digits/train.py``), loaded by path because the
examples are folders of a plan and its files, not an installed package.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from model import WEIGHTS, DigitsMobileNet  # the script's folder is first on sys.path


def _digits_trainer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("digits_train", Path(__file__).parents[1] / "digits" / "train.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    _digits_trainer().main(DigitsMobileNet, WEIGHTS, default_epochs=8)
