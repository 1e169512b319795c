"""TVM backend: compile ONNX with TVM Relax for aarch64 (cross-compiled) or the host CPU, run through TVM RPC.

Targets ``tvm-aarch64`` and ``tvm-llvm-host``. The aarch64 artifact runs on an emulated arm64 device
(QEMU user-mode + a Debian arm64 userland, prepared by :func:`edgecraft.backends.tvm.device.setup_emulated_device`)
or on real boards through a TVM RPC server or tracker. Nothing here imports TVM at module import time.
"""
