"""ExecuTorch with the XNNPACK delegate: PyTorch's own edge runtime, built from ``torch.export``, never ONNX."""
