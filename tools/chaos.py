"""Chaos runs against the real CLI: Ctrl+C at random moments, SIGKILL at random moments.

    python tools/chaos.py --model PATH [--interrupts 50] [--kills 20] [--seed 0]

Prints the counts; exits non-zero if any session died or any completed turn was lost."""

from __future__ import annotations

import argparse
import json
import random
import re
import signal
import sys
import tempfile
import time
from pathlib import Path

import pexpect

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llm42.chat.transcript import load  # noqa: E402
from tests.support.cli import spawn_cli  # noqa: E402

PROMPT_CLOSED = "\x1b[?2004l"  # prompt_toolkit turns bracketed paste off when it returns the line


def interrupts(model: str, n: int, rng: random.Random, history: Path) -> dict:
    """One session; n long replies, each stopped by Ctrl+C after a random delay."""
    child = spawn_cli("--model-path", model, "--max-new-tokens", "400", "--history-dir", str(history), "--seed", "1")
    child.expect(">>>")
    survived = stopped = 0
    for i in range(n):
        child.sendline(f"Write a very long, detailed story number {i} about a dragon, a baker and a lighthouse.")
        child.expect(f"number {i} about")  # the echoed message (its prompt line is redrawn)
        child.expect(re.escape(PROMPT_CLOSED))  # Enter was taken: a Ctrl+C from here on belongs to the reply
        time.sleep(rng.uniform(0.05, 1.5))
        child.sendcontrol("c")
        got = child.expect(
            ["reply stopped", r"press Ctrl\+C again", r"context \d+/\d+ tokens", pexpect.EOF, pexpect.TIMEOUT],
            timeout=60,
        )
        if got > 2:
            break  # the session died
        # else the reply had ended just before: the Ctrl+C met an empty prompt, which stays (1), or came within a
        # second of the reply's end and was taken as the tail of presses that stop a reply, ignored by design (2)
        stopped += got == 0
        survived += child.expect([">>>", pexpect.EOF, pexpect.TIMEOUT], timeout=60) == 0
    child.sendline("What is the capital of France?")
    child.expect(r"context \d+/\d+ tokens", timeout=120)  # the meter: the reply is complete
    child.expect(">>>", timeout=60)
    child.sendcontrol("d")
    child.expect(pexpect.EOF, timeout=60)
    child.close()
    (path,) = history.glob("*.jsonl")
    messages = load(path).dialog.messages
    replies = [m for m in messages if m.role.value == "assistant"]
    return {
        "interrupts": n,
        "sessions_survived": survived,
        "replies_stopped": stopped,
        "replies_in_transcript": len(replies),
        "expected_replies": n + 1,
        "exit_status": child.exitstatus,
    }


def kills(model: str, n: int, rng: random.Random, history: Path) -> dict:
    """n processes, each killed with SIGKILL at a random moment; each next one resumes the conversation."""
    completed: list[tuple[str, str]] = []
    lost = 0
    for i in range(n):
        args = ["--model-path", model, "--max-new-tokens", "60", "--temperature", "0", "--history-dir", str(history)]
        started = list(history.glob("*.jsonl"))  # killed before its first message was written: nothing to resume
        child = spawn_cli(*args, *(["--resume"] if started else []))
        child.expect(">>>", timeout=120)
        child.sendline(f"What is {i} plus {i + 1}? Answer in one sentence.")
        child.expect(r"context \d+/\d+ tokens", timeout=120)  # one turn completes in every process
        child.sendline(f"And {i} times {i + 1}?")
        time.sleep(rng.uniform(0.0, 3.0))  # then the kill lands anywhere: prefill, decode, transcript write
        child.kill(signal.SIGKILL)
        child.close()
        paths = list(history.glob("*.jsonl"))
        assert len(paths) <= 1, paths  # resuming appends to the same file
        messages = load(paths[0]).dialog.messages if paths else []
        now = [(messages[j].content, messages[j + 1].content) for j in range(0, len(messages) - 1, 2)]
        lost += sum(1 for turn in completed if turn not in now)
        completed = now
    return {"kills": n, "completed_turns": len(completed), "expected_at_least": n, "completed_turns_lost": lost}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--interrupts", type=int, default=50)
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    rng = random.Random(a.seed)
    with tempfile.TemporaryDirectory() as d:
        try:
            report = {
                **interrupts(a.model, a.interrupts, rng, Path(d) / "a"),
                **kills(a.model, a.kills, rng, Path(d) / "b"),
            }
        except pexpect.ExceptionPexpect as e:  # a session that hung or died where it should not have
            report = {"error": type(e).__name__, "last_output": str(getattr(e, "value", e))[-2000:]}
            print(json.dumps(report, indent=1))
            return 1
    print(json.dumps(report, indent=1))
    ok = (
        report["sessions_survived"] == a.interrupts
        and report["replies_in_transcript"] == a.interrupts + 1
        and report["completed_turns_lost"] == 0
        and report["completed_turns"] >= a.kills
        and report["exit_status"] == 0
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
