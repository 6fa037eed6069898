"""Chat with 42dot LLM-SFT in the terminal: `python example_cli.py --help`."""

import sys

if __name__ == "__main__":
    try:
        from llm42.cli import main

        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl+C before the CLI's own handling is in place (while importing)
        print("\nllm42: interrupted", file=sys.stderr)
        sys.exit(130)
