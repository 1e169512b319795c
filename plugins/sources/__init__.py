"""Built-in model source kinds (onnx, torch, huggingface), registered through the entry point like a plugin's."""
