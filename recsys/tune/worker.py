"""Entry point of a tuning worker process (started by ``recsys tune --workers N``)."""

import sys

from recsys.tune.study import worker_main

if __name__ == "__main__":
    sys.exit(worker_main())
