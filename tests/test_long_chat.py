"""A long chat past its context window, through the real CLI (tools/soak.py, a short run of it)."""

import json
import subprocess
import sys

import pytest

from tests.support.cli import ROOT, cli_env

pytestmark = pytest.mark.slow  # end to end: the full suite and CI run it, the quick tier does not


@pytest.mark.slow
def test_a_chat_past_its_window_stays_fast_and_keeps_every_turn(smollm2):
    """SmolLM2 with a 1,024-token window (the full 8,192 would take 150 turns to fill): after the window is
    full, at most one turn in ten re-reads its prompt from scratch, memory stops growing, nothing is lost."""
    r = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "soak.py"),
            "--model",
            str(smollm2),
            "--turns",
            "40",
            "--context",
            "1024",
            "--max-new-tokens",
            "24",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=cli_env(),
    )
    assert "{" in r.stdout, r.stderr[-3000:]
    report = json.loads(r.stdout)
    assert r.returncode == 0 and report["ok"], report
    assert report["turns_in_transcript"] == 40 and report["window_full_at_turn"] is not None
    assert report["turns_after_full"] >= 15 and report["full_rereads_after_full"] * 10 <= report["turns_after_full"] + 9
    assert report["peak_memory_growth_gb_over_tail"] <= 0.02 * report["peak_memory_gb_last"]
