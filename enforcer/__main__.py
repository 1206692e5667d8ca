"""Run the enforcer with ``python -m enforcer``."""

import sys

from enforcer.cli import main

sys.exit(main())
