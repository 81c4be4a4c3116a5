"""The benchmark specs shipped with simbench (installed as ``simbench_specs``): ``demo.toml``
(the README's demo) and ``paper.toml`` (the paper's comparisons across the zoo). Commands take
them by name: ``simbench bench run paper``."""
