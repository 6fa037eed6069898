"""The errors llm42 explains to its user: one line each, turned into output once, at the CLI's edge."""

from __future__ import annotations


class Llm42Error(Exception):
    """A problem the message explains (what was wrong, what to do); `exit_code` is the CLI's status."""

    exit_code = 1


class UsageError(Llm42Error, ValueError):
    """A user mistake in a flag, a command or a message: exit code 2."""

    exit_code = 2
