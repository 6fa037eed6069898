"""`python -m llm42` runs the chat."""

import sys

try:
    from .cli import main

    sys.exit(main())
except KeyboardInterrupt:  # Ctrl+C while importing, before the CLI handles it
    print("\nllm42: interrupted", file=sys.stderr)
    sys.exit(130)
except ModuleNotFoundError as e:  # run outside llm42's virtual environment: one line, not a traceback
    from .errors import missing_packages

    if (line := missing_packages(e)) is None:
        raise
    print(line, file=sys.stderr)
    sys.exit(1)
