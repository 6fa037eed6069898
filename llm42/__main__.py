"""`python -m llm42` runs the chat."""

import sys

from .cli import main

sys.exit(main())
