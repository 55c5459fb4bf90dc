"""`python -m open_agentcore.cli`."""

import sys

from .main import main

sys.exit(main())
