"""`python -m benchmarks`: see benchmarks/runner.py and `python -m benchmarks --help`."""
import sys

from benchmarks.runner import main

sys.exit(main())
