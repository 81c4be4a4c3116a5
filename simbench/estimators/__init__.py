"""The mathematics the measures share, one module per family, importable without the plugins.

``plugins/`` holds measure classes and their hook implementations only; what they compute with
lives here, so calibration (fast nulls, bias tables) and tests reach the same code the measures
run, and no ``simbench`` module imports ``simbench_plugins``.

- :mod:`simbench.estimators.cka`: HSIC, CKA (linear, rbf, cosine, debiased), chunked CKA.
- :mod:`simbench.estimators.resampling`: seeded streams, row subsamples, the bootstrap over
  stimuli, intervals.
- :mod:`simbench.estimators.correlative`: pairing parameters and score assembly shared by the
  correlative measures.
"""
