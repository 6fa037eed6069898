"""`python -m llm42.bench`."""

import sys

from .run import main

sys.exit(main())
