"""Quantization-aware training (``quantization`` with ``mode: qat``): int8 simulated in torch while fine-tuning,
exported as a QuantizeLinear/DequantizeLinear graph that every int8-capable runtime runs on integer kernels.

Torch only (imported lazily by the strategy); nothing here imports a runtime.
"""
