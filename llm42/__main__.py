"""`python -m llm42` runs the chat."""

import sys

try:
    from .cli import main

    sys.exit(main())
except KeyboardInterrupt:  # Ctrl+C while importing, before the CLI handles it
    print("\nllm42: interrupted", file=sys.stderr)
    sys.exit(130)
