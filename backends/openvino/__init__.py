"""OpenVINO CPU backend: target ``openvino-cpu`` (install with ``pip install 'edgecraft[openvino]'``).

Nothing here imports OpenVINO at module level: registration must stay fast and must work when the
extra is not installed (the compiler then reports how to install it).
"""
