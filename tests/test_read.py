"""Files in the chat (/read, --file) and speculation through the real CLI with SmolLM2: encodings a Korean user
meets read right, what is not text refused in one line, the transcript holding what was sent."""

import re

import pytest

from llm42.chat.transcript import load
from tests.support.cli import piped_chat, run_cli

pytestmark = pytest.mark.slow  # end to end: the full suite and CI run it, the quick tier does not

KOREAN = "회의록: 오늘 회의는 세 시에 시작했습니다.\nThe meeting started at three.\n"


def chat(model, history, lines, *args, **env):
    return piped_chat(model, history, lines, "--temperature", "0", *args, new_tokens=16, **env)


def sent(history) -> list[str]:
    (path,) = history.glob("*.jsonl")
    return [m.content for m in load(path).dialog.messages if m.role.value == "user"]


def test_read_takes_utf8_bom_and_cp949_and_refuses_what_is_not_text(smollm2, tmp_path):
    files = tmp_path / "files"
    files.mkdir()
    (files / "utf8.txt").write_text(KOREAN, encoding="utf-8")
    (files / "bom.txt").write_bytes(b"\xef\xbb\xbf" + KOREAN.encode())
    (files / "cp949.txt").write_bytes(KOREAN.encode("cp949"))
    (files / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(range(256)))
    (files / "empty.txt").write_text("")
    lines = [f"/read {files / name}" for name in ("utf8.txt", "image.png", "bom.txt", "empty.txt", "folder")]
    _, err = chat(
        smollm2, tmp_path / "h", [f"/read {files}", *lines, "/read", "Summarize these.", f"/read {files / 'cp949.txt'}",
                                  "And this one?"],
    )  # fmt: skip
    assert f"{files} is a folder; /read and --file take a text file" in err
    assert f"{files / 'image.png'} is not a text file (UTF-8 or CP949/EUC-KR)" in err
    assert f"{files / 'empty.txt'} is empty" in err and f"cannot read {files / 'folder'}" in err
    assert re.search(r"read utf8\.txt: 55 characters \(\d+ tokens\); it goes with your next message", err)
    assert "attached to your next message: utf8.txt, bom.txt" in err
    first, second = sent(tmp_path / "h")
    assert first == f"utf8.txt:\n```\n{KOREAN.strip()}\n```\n\nbom.txt:\n```\n{KOREAN.strip()}\n```\n\nSummarize these."
    assert second == f"cp949.txt:\n```\n{KOREAN.strip()}\n```\n\nAnd this one?"  # the attachments went with the first


def test_a_file_too_big_for_the_window_is_refused_before_it_is_sent(smollm2, tmp_path):
    big = tmp_path / "big.txt"
    big.write_text("all work and no play makes jack a dull boy\n" * 400)
    _, err = chat(smollm2, tmp_path / "h", [f"/read {big}", "hi"], "--context", "1024")
    assert re.search(r"big\.txt is \d+ tokens; with what is attached it would not fit the 1024-token window", err)
    assert sent(tmp_path / "h") == ["hi"]


def test_file_flag_goes_with_the_prompt_and_a_bad_one_stops_before_loading(smollm2, tmp_path):
    notes = tmp_path / "notes.md"
    notes.write_text("Paris is the capital of France.\n```python\nprint(1)\n```\n")
    r = run_cli(
        "--model-path", str(smollm2), "--history-dir", str(tmp_path / "h"), "--max-new-tokens", "8",
        "--file", str(notes), "--prompt", "What is the capital of France?",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr.decode()
    assert sent(tmp_path / "h") == [
        f"notes.md:\n````\n{notes.read_text().strip()}\n````\n\nWhat is the capital of France?"
    ]  # a longer fence than the file's own
    bad = run_cli("--model-path", str(tmp_path / "nowhere"), "--file", str(tmp_path / "nope.txt"), "--prompt", "x")
    assert bad.returncode == 2 and bad.stderr.decode().strip().startswith("llm42: error: cannot read")


def test_speculation_shows_in_the_meter_and_stats_and_can_be_turned_off(smollm2, tmp_path):
    text = "Fix the typos: The quikc brown fox jumsp over the lazzy dog. The quikc brown fox jumsp over the lazzy dog."
    lines = [text, "/stats", "/set speculate off", text, "/set"]
    # a cache of its own: the verify price other tests' chats learned under the suite's load (0.46 steps per drafted
    # token once) would keep a 16-token reply from drafting at all, as it would a user's next start
    own_cache = str(tmp_path / "cache")
    _, err = chat(  # no penalty: a penalty stops copying
        smollm2, tmp_path / "h", lines, "--verbose", "--repetition-penalty", "1", LLM42_CACHE=own_cache
    )
    meters = re.findall(r"context \d+/\d+ tokens · TTFT [\d.]+s · [\d.]+ tokens/s(.*)", err)
    assert len(meters) == 2 and "drafted tokens accepted" in meters[0] and meters[1] == "", meters
    assert re.search(r"drafted tokens     \d+ \(\d+ accepted\)", err)
    assert "speculate = off" in err
    off = run_cli("--model-path", str(smollm2), "--speculate", "off", "--verbose", "--no-history", "--temperature",
                  "0", "--repetition-penalty", "1", "--max-new-tokens", "16", "--prompt", text)  # fmt: skip
    assert off.returncode == 0 and "drafted" not in off.stderr.decode()


def test_each_file_shows_its_own_count_and_the_same_file_is_attached_once(smollm2, tmp_path):
    """Per file its own tokens, the total apart; the same file again is said, not attached twice."""
    from llm42.chat.files import attach
    from llm42.model.tokenizer import Tokenizer

    tok = Tokenizer.read(smollm2)
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("The quick brown fox jumps over the lazy dog.\n")
    b.write_text(KOREAN, encoding="utf-8")
    own = {p.name: len(tok.encode(attach([(p.name, p.read_text())], ""), add_special_tokens=False)) for p in (a, b)}
    both = len(tok.encode(attach([(p.name, p.read_text()) for p in (a, b)], ""), add_special_tokens=False))
    _, err = chat(smollm2, tmp_path / "h", [f"/read {a}", f"/read {b}", f"/read {a}", "Compare them."])
    assert f"read a.txt: 45 characters ({own['a.txt']} tokens)" in err
    assert f"read b.txt: {len(KOREAN)} characters ({own['b.txt']} tokens)" in err
    assert f"attached to your next message: 2 files, {both} tokens in all" in err
    assert "a.txt is already attached to your next message" in err
    (first,) = sent(tmp_path / "h")
    assert first.count("a.txt:") == 1 and first.count("b.txt:") == 1
    listing = run_cli("--list", "--history-dir", str(tmp_path / "h"), timeout=60).stdout.decode()
    assert "Compare them. [a.txt, b.txt]" in listing and "quick brown fox" not in listing  # what was typed
