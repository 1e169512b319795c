"""Test helpers for plugin authors: the conformance kit and the tiny models it runs on.

In a plugin's own test suite (what ``edgecraft plugin new`` generates)::

    from edgecraft.testing import assert_conforms

    def test_my_strategy_conforms():
        assert_conforms("my-strategy")

Unit-test ``apply()`` itself with :func:`apply_inputs` (the step, model and RunContext a build passes).
``edgecraft plugin check NAME`` (or ``DISTRIBUTION``) runs the same checks from the command line, for every kind
of plugin (:data:`KINDS`: strategies, backends, model sources, dataset kinds, metrics, contract kinds, devices,
integrations, commands). See docs/plugins.md, section 7.
"""

from __future__ import annotations

from edgecraft.testing.conformance import assert_conforms, check_distribution, check_name, check_plugin, kinds_of
from edgecraft.testing.findings import KINDS, ConformanceError, ConformanceReport, Finding, Kind
from edgecraft.testing.harness import ApplyInputs, apply_inputs
from edgecraft.testing.models import CNN, KIT_MODELS, MULTI, cnn_onnx, multi_input_onnx, tiny_cnn, tiny_multi_input

__all__ = ["CNN", "KINDS", "KIT_MODELS", "MULTI", "ApplyInputs", "ConformanceError", "ConformanceReport", "Finding",
           "Kind", "apply_inputs", "assert_conforms", "check_distribution", "check_name", "check_plugin", "cnn_onnx",
           "kinds_of",
           "multi_input_onnx", "tiny_cnn", "tiny_multi_input"]
