"""`python -m benchmarks.scenarios`: run the suite; see run.py."""

import sys

from benchmarks.scenarios.run import main

sys.exit(main())
