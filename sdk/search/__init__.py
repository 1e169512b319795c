"""``edgecraft search``: find the compression recipe that meets the contracts, per target, with Optuna.

* :mod:`~edgecraft.search.space` — the typed space (plan's ``search.space`` or each strategy's
  ``default_space()``), validated against the strategies' params models, applied to plans;
* :mod:`~edgecraft.search.setup` — the plan, its space per target and the state every trial shares;
* :mod:`~edgecraft.search.study` — drives the Optuna studies (one per target, resumable sqlite storage)
  (:mod:`~edgecraft.search.studies`: asking and telling), each trial run through an executor like any
  run (:mod:`~edgecraft.search.trials`; :mod:`~edgecraft.search.parallel` on a Ray cluster), what is
  kept of it in :mod:`~edgecraft.search.records`; early stopping after the torch stage;
* :mod:`~edgecraft.search.pareto` — the noise-aware Pareto front, the best candidate, hypervolume;
* :mod:`~edgecraft.search.report` — ``search.json``, the trials table, the HTML page, ``best.<target>.plan.yaml``.

Optuna is imported only by the study modules (extra ``edgecraft[search]``), inside functions.
"""
