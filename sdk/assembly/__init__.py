"""Stage 3, build (the package is not named ``build``: tools treat any ``build/`` folder as output, and
a checkout copied without it lost the stage): run the compiled steps on the model into an artifact
(``builder``), save and load artifacts on the target's runtime (``artifact_io``, used by building and
by measuring alike), atomically, into a cache whose entries are verified against their manifest
before use (``artifacts``, ``cache_verify``, ``cache_admin``).

Nothing here imports a later stage: evaluation lives in :mod:`edgecraft.verify.evaluator` and reaches
the builder as the :class:`edgecraft.context.Evaluator` it is handed."""
