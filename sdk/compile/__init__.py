"""Stage 2, compile: bind every step of a plan to the implementation that suits one target, and
refuse what cannot work (``compiler``); run every compile-time check of a run before anything is
built (``checks``)."""
