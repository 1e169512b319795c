"""Test helpers for plugin authors: the conformance kit and the tiny models it runs on.

In a plugin's own test suite (what ``edgecraft plugin new`` generates)::

    from edgecraft.testing import assert_conforms

    def test_my_strategy_conforms():
        assert_conforms("my-strategy")

``edgecraft plugin check NAME`` runs the same checks from the command line. See docs/plugins.md.
"""

from __future__ import annotations

from edgecraft.testing.conformance import assert_conforms, check_plugin
from edgecraft.testing.findings import ConformanceError, ConformanceReport, Finding
from edgecraft.testing.models import CNN, KIT_MODELS, MULTI, cnn_onnx, multi_input_onnx, tiny_cnn, tiny_multi_input

__all__ = ["CNN", "KIT_MODELS", "MULTI", "ConformanceError", "ConformanceReport", "Finding", "assert_conforms",
           "check_plugin", "cnn_onnx", "multi_input_onnx", "tiny_cnn", "tiny_multi_input"]
