"""Conversations picked up again through the real CLI: --resume after a kill, a torn line, another model, a
file elsewhere; what leaving says, and what is never resumed."""

import re
import signal

import pytest

from llm42.chat.transcript import load
from tests.support.cli import leave, one_turn_then_a_long_reply, only_transcript, piped_chat, run_cli, spawn_cli

pytestmark = pytest.mark.slow  # end to end: the full suite and CI run it, the quick tier does not


def test_killed_mid_reply_then_resume_restores_completed_turns(smollm2, tmp_path):
    child = spawn_cli(
        "--model-path", str(smollm2), "--history-dir", str(tmp_path), "--temperature", "0", "--max-new-tokens", "300"
    )
    one_turn_then_a_long_reply(child)
    child.kill(signal.SIGKILL)
    child.close()
    path = only_transcript(tmp_path)
    _, err = piped_chat(smollm2, tmp_path, ["/history"], "--resume")
    assert f"resumed 2 messages from {path}" in err and "no reply when it stopped" in err
    assert ">>> What is the capital of France?" in err and "dragon" not in err.split("/history")[-1]
    data = path.read_bytes()
    path.write_bytes(data[:-7])  # a torn last line, as a crash during a write leaves it
    _, err = piped_chat(smollm2, tmp_path, ["/history"], "--resume", path.stem)
    assert "(1 unreadable line skipped)" in err and ">>> What is the capital of France?" in err


def test_resume_of_an_unknown_conversation_is_one_line(smollm2, tmp_path):
    r = run_cli("--model-path", str(smollm2), "--history-dir", str(tmp_path), "--resume", "nope")
    err = r.stderr.decode().strip()
    assert r.returncode == 1 and err.startswith("llm42: error: no conversation 'nope'") and "\n" not in err


def test_resume_takes_the_last_chat_not_a_later_one_shot_and_list_shows_them(tiny42, tmp_path):
    child = spawn_cli("--model-path", str(tiny42), "--history-dir", str(tmp_path), "--max-new-tokens", "4")
    child.expect(">>>")
    child.sendline("a chat in the terminal")
    child.expect(r"context \d+/320")
    leave(child)
    (chat_file,) = tmp_path.glob("*.jsonl")
    piped_chat(tiny42, tmp_path, [], "--prompt", "a one-shot question", new_tokens=4)  # exit 0 asserted there
    _, err = piped_chat(tiny42, tmp_path, ["/history"], "--resume", new_tokens=4)
    assert f"resumed 2 messages from {chat_file}" in err
    assert f"(the most recent chat, {chat_file.stem}; --list shows the others)" in err
    assert ">>> a chat in the terminal" in err and "one-shot question" not in err
    listing = run_cli("--list", "--history-dir", str(tmp_path), timeout=60)
    rows = listing.stdout.decode().splitlines()
    assert listing.returncode == 0 and len(rows) == 2
    assert re.match(
        r"  \d{8}-\d{6}-[0-9a-f]{4}  \d{4}-\d\d-\d\d \d\d:\d\d +1 reply  a one-shot question \(one-shot\)$", rows[0]
    ), rows
    assert rows[1].startswith(f"  {chat_file.stem}  ") and rows[1].endswith("a chat in the terminal")


def test_resume_goes_on_with_the_recorded_model_and_says_when_told_otherwise(smollm2, tiny42, tmp_path):
    piped_chat(smollm2, tmp_path, ["What is the capital of France?"], "--temperature", "0")
    (recorded,) = tmp_path.glob("*.jsonl")
    r = run_cli(
        "--resume", recorded.stem, "--history-dir", str(tmp_path), "--max-new-tokens", "8", stdin="And of Italy?\n"
    )
    err = r.stderr.decode()
    assert r.returncode == 0, err  # no --model-path: the recorded one, not the 42dot hub default
    assert f"resuming with the model this conversation was recorded with: {smollm2}" in err
    other = run_cli(
        "--resume",
        recorded.stem,
        "--model-path",
        str(tiny42),
        "--history-dir",
        str(tmp_path),
        "--max-new-tokens",
        "4",
        stdin="Thanks.\n",
    )
    assert other.returncode == 0, other.stderr.decode()
    assert f"this conversation was recorded with {smollm2}; it goes on with {tiny42}, as asked" in other.stderr.decode()


def test_a_file_that_is_not_a_conversation_is_never_resumed_nor_written(smollm2, tmp_path):
    notes = tmp_path / "notes.md"
    notes.write_text("# My notes\n\n- buy milk\n")
    r = run_cli(
        "--model-path",
        str(smollm2),
        "--resume",
        str(notes),
        "--history-dir",
        str(tmp_path / "h"),
        stdin="hello\n",
        timeout=60,
    )
    err = r.stderr.decode().strip()
    assert r.returncode != 0 and "is not an llm42 conversation" in err and "\n" not in err, err
    _, err = piped_chat(smollm2, tmp_path / "h2", [f"/load {notes}", "/exit"])
    assert "is not an llm42 conversation" in err
    assert notes.read_text() == "# My notes\n\n- buy milk\n"


def test_leaving_a_chat_says_how_to_come_back_and_resuming_shows_where_it_was(smollm2, tmp_path):
    """Ctrl+D in a terminal chat: one line with the file and the --resume that continues it (nothing when nothing
    was said); --resume and /load then show the last exchange, shortened to a line each."""
    import pexpect

    args = ("--model-path", str(smollm2), "--history-dir", str(tmp_path), "--temperature", "0")
    child = spawn_cli(*args, "--max-new-tokens", "60")
    child.expect(">>>")
    child.sendline("Tell me about Paris in three sentences.")
    child.expect(r"context \d+/8192")  # the reply ended (a Ctrl+D during it would stop it)
    child.expect(">>>")
    child.sendcontrol("d")
    child.expect(pexpect.EOF)
    child.close()
    path = only_transcript(tmp_path)
    said = "".join(child.before.split())  # the terminal may wrap a long path anywhere
    assert child.exitstatus == 0 and f"conversationkeptin{path};--resume{path.stem}continuesit" in said
    reply = load(path).dialog.messages[1].content
    for way in (["--resume", path.stem], ["--resume", str(path)]):
        _, err = piped_chat(smollm2, tmp_path, [], *way)
        lines = err.splitlines()
        at = next(i for i, line in enumerate(lines) if line.startswith("resumed 2 messages"))
        assert lines[at + 1] == "  you: Tell me about Paris in three sentences."
        shown = lines[at + 2]
        assert (
            shown.startswith("  bot: ")
            and len(shown) <= 7 + 72
            and " ".join(reply.split()).startswith(shown[7:].rstrip("…"))
        )
    _, err = piped_chat(smollm2, tmp_path / "other", [f"/load {path}"])
    assert "  you: Tell me about Paris in three sentences." in err
    child = spawn_cli(*args)  # nothing said: nothing kept, nothing to say
    leave(child)
    assert "kept in" not in child.before


def test_resume_takes_the_chat_last_continued_even_from_a_file_elsewhere(tiny42, tmp_path):
    """A chat kept outside the history folder, continued there with /load after a newer chat in the folder:
    a bare --resume goes on with it, the one last active, not the newest file in the folder."""
    history, elsewhere = tmp_path / "history", tmp_path / "kept"
    args = ("--model-path", str(tiny42), "--max-new-tokens", "4")

    def terminal_chat(folder, *lines):
        child = spawn_cli(*args, "--history-dir", str(folder))
        for line in lines:
            child.expect(">>>")
            child.sendline(line)
            if not line.startswith("/"):
                child.expect(r"context \d+/320")
        leave(child)

    terminal_chat(elsewhere, "a chat kept elsewhere")
    (kept,) = elsewhere.glob("*.jsonl")
    terminal_chat(history, "a newer chat in the folder")
    terminal_chat(history, f"/load {kept}", "going on with the kept one")
    r = run_cli(*args, "--history-dir", str(history), "--resume", stdin="/history\n")
    err = r.stderr.decode()
    assert r.returncode == 0 and f"resumed 4 messages from {kept}" in err, err
    assert ">>> going on with the kept one" in err and "newer chat" not in err
