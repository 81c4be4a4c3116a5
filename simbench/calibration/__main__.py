"""``python -m simbench.calibration validity [SPEC]``: the measure-validity board."""

import sys

from simbench.calibration.cli import main

if __name__ == "__main__":  # importing the module (e.g. walking the package) runs nothing
    sys.exit(main())
