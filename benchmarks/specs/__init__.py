"""The benchmark specs shipped with simbench (installed as ``simbench_specs``): ``demo.toml``
(what ``simbench demo`` runs), ``paper.toml`` (the paper's comparisons across the zoo),
``lm_toxicity.toml`` (the language-model case study) and ``validity.toml`` (the measure-validity
suite). Commands take them by name: ``simbench bench run paper``."""
