"""Chat with 42dot LLM-SFT in the terminal: `python example_cli.py --help`."""

import sys

from llm42.cli import main

if __name__ == "__main__":
    sys.exit(main())
