"""Entry point of a job process (``python -m simbench.bench.child READ_FD WRITE_FD``).

Started by :class:`simbench.bench.worker.JobProcess`; not meant to be run by hand except to see
why a job process fails to start.
"""

from __future__ import annotations

import sys

from simbench.bench.worker import child_main

if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m simbench.bench.child READ_FD WRITE_FD "
                 "(started by simbench bench run for jobs with a timeout)")
    child_main(int(sys.argv[1]), int(sys.argv[2]))
