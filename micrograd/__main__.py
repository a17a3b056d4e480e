"""`python -m micrograd` runs the moons demo (same options as `python -m micrograd.demo`)."""
import sys

from micrograd.demo import main

sys.exit(main())
