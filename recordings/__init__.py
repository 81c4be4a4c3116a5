"""Data shipped with simbench (installed as ``simbench_recordings``): the trained model zoo
(``zoo/``), alignments the tests re-score (``alignments/``) and a recorded population
(``population_gru_multi.nc``). Find it with :func:`simbench.resources.recordings_dir`."""
