"""Run the real CLI as a user would: piped stdin or a pseudo-terminal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cli_env(**extra) -> dict:
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        PYTHONIOENCODING="utf-8",
        PROMPT_TOOLKIT_NO_CPR="1",
        LANG="C.UTF-8",
        TERM="xterm-256color",
        COLUMNS="120",
        LINES="40",
    )
    env.update(extra)
    return env


_zygote = None


def zygote():
    """The process that starts runs of the CLI from an imported torch (tests/support/zygote.py), started on first
    use; None with LLM42_TEST_FORK=0 (every run a fresh interpreter)."""
    global _zygote
    if _zygote is None and os.environ.get("LLM42_TEST_FORK", "1") != "0":
        import atexit
        import tempfile

        from .zygote import Zygote

        _zygote = Zygote(ROOT, cli_env(), Path(tempfile.mkdtemp(prefix="llm42-zygote-")))
        atexit.register(_zygote.close)
    return _zygote


def run_cli(
    *args: str, stdin: str | bytes = "", timeout: float = 180, preexec_fn=None, **env
) -> subprocess.CompletedProcess:
    """`python example_cli.py ARGS` with piped streams. `preexec_fn` runs in the child before the CLI starts (to put
    it under a memory limit); the run then starts a fresh interpreter, as one whose environment changes how Python
    or torch start does (else it forks from tests/support/zygote.py's imported torch)."""
    data = stdin.encode() if isinstance(stdin, str) else stdin
    return _run([str(ROOT / "example_cli.py"), *args], data, timeout, cli_env(**env), preexec_fn)


def run_python(*args: str, timeout: float = 600, **env) -> subprocess.CompletedProcess:
    """`python ARGS` (a script or -m MODULE) in the repository with the CLI's environment, output as text; forked
    from the zygote where the environment allows, as run_cli's runs."""
    r = _run(list(args), b"", timeout, cli_env(**env))
    return subprocess.CompletedProcess(r.args, r.returncode, r.stdout.decode(), r.stderr.decode())


def _run(args: list[str], data: bytes, timeout: float, env: dict, preexec_fn=None) -> subprocess.CompletedProcess:
    """`python ARGS` in the repository, piped, output as bytes: forked from the zygote where it takes the run."""
    argv = [sys.executable, *args]
    if preexec_fn is None and (z := zygote()) is not None and z.takes(env):
        return z.run(argv, data, timeout, ROOT, env)
    return subprocess.run(
        argv, input=data, capture_output=True, timeout=timeout, cwd=ROOT, env=env, preexec_fn=preexec_fn
    )


def piped_chat(model, history, lines: list[str], *args: str, new_tokens: int = 24, **env) -> tuple[str, str]:
    """A piped chat with `model`, one message or command per line, conversations in `history`: (stdout, stderr),
    the exit status 0 asserted."""
    r = run_cli(
        "--model-path", str(model), "--history-dir", str(history), "--max-new-tokens", str(new_tokens), *args,
        stdin="".join(line + "\n" for line in lines), **env,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode(), r.stderr.decode()


def only_transcript(history: Path) -> Path:
    """The one conversation written in `history`."""
    files = list(history.glob("*.jsonl"))
    assert len(files) == 1, files
    return files[0]


def debug_reports(stderr: str) -> list[dict]:
    """The JSON summaries --debug prints after each reply, in order."""
    import json
    import re

    return [json.loads(block) for block in re.findall(r"^\{\n.*?^\}", stderr, re.S | re.M)]


def spawn_cli(*args: str, **env):
    """`python example_cli.py ARGS` on a pseudo-terminal of 40 x 120, as pexpect.spawn gives it (forked from
    tests/support/zygote.py's imported torch where the environment allows, as run_cli's)."""
    import pexpect

    argv, env = [sys.executable, str(ROOT / "example_cli.py"), *args], cli_env(**env)
    terminal = dict(encoding="utf-8", codec_errors="strict", timeout=120)
    if (z := zygote()) is not None and z.takes(env):
        return z.spawn(argv, ROOT, env, (40, 120), **terminal)
    return pexpect.spawn(argv[0], argv[1:], cwd=str(ROOT), env=env, dimensions=(40, 120), **terminal)


def leave(child) -> None:
    """At the prompt: Ctrl+D, and the chat ends cleanly (exit 0)."""
    import pexpect

    child.expect(">>>")
    child.sendcontrol("d")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def stop_a_reply_then_ask_again(child, wait: float = 3) -> None:
    """At the prompt: start a long reply, Ctrl+C it, ask a short question, leave with Ctrl+D (exit 0)."""
    import time

    child.expect(">>>")
    child.sendline("Write a very long story about a dragon who learns to cook.")
    time.sleep(wait)
    child.sendcontrol("c")
    child.expect("reply stopped")
    child.expect(">>>")
    child.sendline("What is the capital of France?")
    child.expect("Paris")
    leave(child)


def one_turn_then_a_long_reply(child) -> None:
    """At the prompt: one completed turn (its reply names Paris), then a long reply left running for half a second
    (2 s was the whole reply of 400 tokens on a Zen 5: a key meant for the reply then met the next prompt)."""
    import time

    child.expect(">>>")
    child.sendline("What is the capital of France?")
    child.expect("Paris")
    child.expect(">>>")
    child.sendline("Write a very long story about a dragon.")
    time.sleep(0.5)


class Screen:
    """What a user sees: a pseudo-terminal session's output played through a terminal emulator (pyte),
    with the lines scrolled off the top kept. `expect` reads output until a pattern shows."""

    def __init__(self, child, columns: int = 120, lines: int = 40):
        import pyte

        self.child = child
        self.screen = pyte.HistoryScreen(columns, lines, history=5000)
        self.stream = pyte.Stream(self.screen)

    def expect(self, pattern, timeout: float = 120) -> int:
        i = self.child.expect(pattern, timeout=timeout)
        self.stream.feed(self.child.before + (self.child.after if isinstance(self.child.after, str) else ""))
        return i

    def settle(self, seconds: float = 0.5) -> None:
        """Feed whatever else arrives until nothing has for `seconds`."""
        import pexpect

        try:
            while True:
                self.stream.feed(self.child.read_nonblocking(65536, timeout=seconds))
        except (pexpect.TIMEOUT, pexpect.EOF):
            pass

    def watch(self, seconds: float) -> None:
        """Read (as a terminal does, so the program never waits on a full pseudo-terminal) for `seconds`."""
        import time

        import pexpect

        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            try:
                self.stream.feed(self.child.read_nonblocking(65536, timeout=min(left, 0.05)))
            except pexpect.TIMEOUT:
                pass

    def leave(self) -> str:
        """At the prompt: Ctrl+D; then everything the screen showed, as text."""
        self.expect(">>>")
        self.child.sendcontrol("d")
        self.settle()
        return self.text()

    def lines(self) -> list[str]:
        top = ["".join(ch.data for ch in row.values()).rstrip() for row in self.screen.history.top]
        return [*top, *(line.rstrip() for line in self.screen.display)]

    def text(self) -> str:
        return "\n".join(self.lines()).rstrip()
