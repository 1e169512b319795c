"""edgecraft-fp16-weights: an example third-party strategy package (float16 weight storage for ONNX graphs)."""

__version__ = "0.1.0"
