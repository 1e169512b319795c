"""Stages 4 to 6, measure, judge, report: evaluate on the target's runtime (``evaluator``, ``measure``,
``stats``; memory and compute in ``resources``), judge every contract through its kind (``judging``, the
built-in kinds in ``contract_kinds``; verdicts with a confidence bound in ``contracts``, ``gate``), and
report (``report``, ``reports``). Imports the earlier stages (plan, compile, assembly), never the executors
or the runner that drive it."""
