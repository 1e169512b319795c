"""The MLflow integration: lifecycle hooks that log every run to an MLflow tracking store.

Registered through the ``edgecraft`` entry-point group like any plugin (entry point ``mlflow``), inert
until ``EDGECRAFT_MLFLOW_TRACKING_URI`` is set, and importing MLflow lazily, so without the ``mlflow``
extra it costs nothing.
"""
