"""Chat with 42dot LLM-SFT in the terminal: `python example_cli.py --help`."""

import sys

if __name__ == "__main__":
    try:
        from llm42.cli import main

        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl+C before the CLI's own handling is in place (while importing)
        print("\nllm42: interrupted", file=sys.stderr)
        sys.exit(130)
    except ModuleNotFoundError as e:  # run outside llm42's virtual environment: one line, not a traceback
        from llm42.errors import missing_packages

        if (line := missing_packages(e)) is None:
            raise
        print(line, file=sys.stderr)
        sys.exit(1)
