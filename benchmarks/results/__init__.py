"""The shipped results stores (``paper.sqlite``, ``lm_toxicity.sqlite``), installed as the
data-only package ``simbench_results``; see :func:`simbench.resources.shipped_stores`."""
