"""The mathematics the measures share, one module per family, importable without the plugins.

``plugins/`` holds measure classes and their hook implementations only; what they compute with
lives here, so calibration (fast nulls, bias tables) and tests reach the same code the measures
run, and no ``simbench`` module imports ``simbench_plugins``.
:mod:`~simbench.estimators.correlative` holds what the correlative measures share on the
simbench side (pairing, the ``Score``).
"""
