"""``edgecraft search``: find the compression recipe that meets the contracts, per target, with Optuna.

* :mod:`~edgecraft.search.space` — the typed space (plan's ``search.space`` or each strategy's
  ``default_space()``), validated against the strategies' params models, applied to plans;
* :mod:`~edgecraft.search.study` — the Optuna studies (one per target, resumable sqlite storage), trials
  run through the normal run path (:func:`edgecraft.runner.run_target`), early stopping after the torch stage;
* :mod:`~edgecraft.search.pareto` — the noise-aware Pareto front, the best candidate, hypervolume;
* :mod:`~edgecraft.search.report` — ``search.json``, the trials table, the HTML page, ``best.<target>.plan.yaml``.

Optuna is imported only by the study module (extra ``edgecraft[search]``).
"""
