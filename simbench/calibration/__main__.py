"""``python -m simbench.calibration validity [SPEC]``: the measure-validity board."""

import sys

from simbench.calibration.cli import main

sys.exit(main())
