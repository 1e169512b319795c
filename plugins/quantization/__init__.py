"""The ``quantization`` strategy: INT8 post-training quantization compiled per target, accuracy-aware.

Nothing heavy is imported here: registration must stay fast.
"""
