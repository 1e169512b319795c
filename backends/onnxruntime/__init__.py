"""ONNX Runtime CPU backend (target ``ort-cpu``)."""
