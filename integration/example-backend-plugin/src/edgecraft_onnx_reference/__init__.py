"""edgecraft-onnx-reference: an example third-party backend package (onnx's reference evaluator)."""

__version__ = "0.1.0"
