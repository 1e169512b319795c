"""Low-rank factorization strategy (``factorization``): truncated SVD for Linear layers, spatial SVD or
Tucker-2 for Conv2d, ranks chosen by energy, ratio, fixed rank or a whole-model target.

The engine (:mod:`.engine`, :mod:`.decompose`) is usable on plain torch modules without a plan.
"""
