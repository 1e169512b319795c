"""Stage 3, build: run the compiled steps on the model and write the artifact for a target
(``pipeline``), atomically, into a cache whose entries are verified against their manifest before
use (``artifacts``, ``cache_verify``)."""
