"""Stage 4, verify: measure on the target's runtime (``measure``, ``stats``), judge every contract
with a confidence bound (``contracts``, ``gate``), and report (``report``, ``reports``)."""
