"""In-chat commands and transcripts through the real CLI with SmolLM2 (picking a chat up again: test_resume.py)."""

import json
import signal

import pytest

from llm42.chat.transcript import load
from tests.support.cli import (
    debug_reports,
    one_turn_then_a_long_reply,
    only_transcript,
    piped_chat,
    run_cli,
    spawn_cli,
)

pytestmark = pytest.mark.slow  # end to end: the full suite and CI run it, the quick tier does not


def assistant_events(path):
    return [e for e in map(json.loads, path.read_text().splitlines()) if e["event"] == "assistant"]


def test_help_unknown_and_slash_messages(smollm2, tmp_path):
    out, err = piped_chat(smollm2, tmp_path, ["/help", "/system", "/frobnicate", "//etc/hosts is a file. Say ok."])
    assert "/regen" in err and "/export path.md" in err
    assert "system prompt: the model's default: You are a helpful AI assistant named SmolLM" in err
    assert "unknown command /frobnicate" in err
    messages = load(only_transcript(tmp_path)).dialog.messages
    assert messages[0].content == "/etc/hosts is a file. Say ok."  # sent as a message, one slash dropped
    assert len(messages) == 2 and out.strip()


def test_regen_draws_a_new_reply_with_another_seed(smollm2, tmp_path):
    piped_chat(
        smollm2,
        tmp_path,
        ["Write one line of a poem about the moon.", "/regen", "/regen"],
        "--temperature",
        "1.0",
        "--seed",
        "1",
    )
    replies = [e["content"] for e in assistant_events(only_transcript(tmp_path))]
    assert len(replies) == 3 and len(set(replies)) >= 2
    assert len(load(only_transcript(tmp_path)).dialog.messages) == 2  # still one exchange


def test_undo_removes_the_exchange_from_what_the_model_sees(smollm2, tmp_path):
    _, err = piped_chat(smollm2, tmp_path, ["My name is Alice and I like green tea.", "/undo", "Hi"], "--debug")
    prompts = [r["prompt_tokens"] for r in debug_reports(err)]
    alone = run_cli("--model-path", str(smollm2), "--no-history", "--max-new-tokens", "4", "--debug", "--prompt", "Hi")
    assert prompts[1] == debug_reports(alone.stderr.decode())[0]["prompt_tokens"]
    assert [m.content for m in load(only_transcript(tmp_path)).dialog.messages][0] == "Hi"


def test_set_changes_sampling_and_refuses_bad_values(smollm2, tmp_path):
    _, err = piped_chat(
        smollm2,
        tmp_path,
        [
            "/set temperature 0",
            "/set top_p 0",
            "/set top_k x",
            "/set bogus 1",
            "/set",
            "Tell me a fun fact.",
            "/regen",
            "/regen",
        ],
        "--temperature",
        "1.5",
    )
    assert "temperature = 0" in err and "top-p must be in (0, 1]" in err and "top-k must be a whole number" in err
    assert "unknown setting: bogus" in err
    assert "temperature = 0.0" in err  # /set alone lists the settings
    replies = [e["content"] for e in assistant_events(only_transcript(tmp_path))]
    assert len(replies) == 3 and len(set(replies)) == 1  # greedy now: the same reply every time


def test_save_then_load_restores_the_exact_history(smollm2, tmp_path):
    saved = tmp_path / "saved.jsonl"
    piped_chat(
        smollm2,
        tmp_path / "a",
        ["What is the capital of France?", "And of Italy?", f"/save {saved}"],
        "--temperature",
        "0",
    )
    before = load(saved).dialog
    _, err = piped_chat(smollm2, tmp_path / "b", [f"/load {saved}", "/history"])
    assert "loaded 4 messages" in err
    after = load(saved).dialog
    assert after == before and len(before.messages) == 4
    assert before.messages[1].content in err and before.messages[3].content in err  # /history shows them


def test_export_markdown_shows_a_system_prompt_where_it_changed(smollm2, tmp_path):
    md = tmp_path / "chat.md"
    piped_chat(smollm2, tmp_path, ["What is 2+2?", "/system Answer in French.", "Hello again.", f"/export {md}"])
    text = md.read_text()
    assert text.startswith("# Conversation with") and "## You\n\nWhat is 2+2?" in text
    assert "> System:" not in text.split("## You")[0]  # the default system prompt at the start: none shown
    first, second = text.index("## You\n\nWhat is 2+2?"), text.index("## You\n\nHello again.")
    change = text.index("> System prompt changed to: Answer in French.")
    assert first < change < second


def test_edit_replaces_the_last_message(smollm2, tmp_path):
    piped_chat(
        smollm2,
        tmp_path,
        ["What is the capital of Spain?", "/edit What is the capital of France?"],
        "--temperature",
        "0",
    )
    messages = load(only_transcript(tmp_path)).dialog.messages
    assert [m.content for m in messages[::2]] == ["What is the capital of France?"]
    assert "Paris" in messages[1].content


def test_korean_interface(smollm2, tmp_path):
    _, err = piped_chat(smollm2, tmp_path, ["/frobnicate", "/undo"], "--lang", "ko")
    assert "알 수 없는 명령 /frobnicate" in err and "되돌릴 대화가 없습니다" in err


def test_unwritable_history_warns_and_the_chat_goes_on(smollm2, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    out, err = piped_chat(smollm2, tmp_path / "file" / "history", ["Say hello.", "Say bye."])
    assert err.count("cannot write the transcript") == 1
    assert len([line for line in out.splitlines() if line.strip()]) >= 2


def test_tab_completes_commands(smollm2, tmp_path):
    child = spawn_cli("--model-path", str(smollm2), "--history-dir", str(tmp_path))
    child.expect(">>>")
    child.send("/hist\t")
    child.expect("/history")
    child.send("\r")
    child.expect("no messages yet")
    child.expect(">>>")
    child.send("/set repet\t")  # a setting's name after /set
    child.expect("ition_penalty")
    child.send(" 1.1\r")
    child.expect("repetition_penalty = 1.1")
    child.expect(">>>")
    (tmp_path / "notes-for-export.md").write_text("")
    child.send(f"/export {tmp_path}/notes-for-e\t")  # a path after /export
    child.expect("xport\\.md")  # completed: the rest of the name is written after what was typed
    child.sendcontrol("c")  # the typed line is cleared, in place
    child.expect(r"\x1b\[K")
    child.sendcontrol("d")
    child.expect(pytest.importorskip("pexpect").EOF)


def test_set_shows_switches_as_on_off_and_stats_after_a_stopped_first_reply(smollm2, tmp_path):
    child = spawn_cli("--model-path", str(smollm2), "--history-dir", str(tmp_path), "--max-new-tokens", "300")
    child.expect(">>>")
    child.sendline("/set markdown off")
    child.expect("markdown = off")
    child.sendline("/set")
    child.expect("status = on")
    child.expect(">>>")
    child.sendline("Write a very long story about a dragon.")
    child.expect(r"\S")
    import time

    time.sleep(0.5)  # well inside the reply: SmolLM2 writes its 300 tokens in under 2 s here
    child.sendcontrol("c")
    child.expect("reply stopped")
    child.expect(">>>")
    child.sendline("/stats")
    child.expect(r"reply tokens +\d+ \(stopped\)")
    child.expect(">>>")
    child.sendcontrol("d")
    child.expect(pytest.importorskip("pexpect").EOF)


def test_lines_typed_during_a_reply_do_not_reach_the_shell_after_a_kill(smollm2):
    """In a terminal: a reply running, a line typed ahead, SIGTERM. The shell that reads the terminal next gets
    nothing of it (it ran as a shell command before)."""
    import sys
    import time

    import pexpect

    from tests.support.cli import ROOT, cli_env

    script = (
        f"{sys.executable} example_cli.py --model-path {smollm2} --max-new-tokens 400 --no-history; "
        'read -t 2 left; echo "LEFT:[$left]"'
    )
    child = pexpect.spawn(
        "bash", ["-c", script], cwd=str(ROOT), env=cli_env(), encoding="utf-8", timeout=120, dimensions=(40, 120)
    )
    child.expect(">>>")
    child.sendline("Write a very long story about a dragon.")
    child.expect("dragon", timeout=60)
    child.sendline("echo typed-ahead")
    time.sleep(0.5)
    python = next(p for p in __import__("psutil").Process(child.pid).children() if "python" in p.name())
    python.send_signal(signal.SIGTERM)
    child.expect(r"LEFT:\[(.*)\]")
    assert child.match.group(1) == "", child.match.group(1)
    child.expect(pexpect.EOF)


def test_export_and_save_never_replace_or_invent_and_history_marks_every_typed_line(smollm2, tmp_path):
    kept = tmp_path / "kept.md"
    kept.write_text("mine\n")
    transcript = tmp_path / "h" / "2026-12-01-100000-abcd.jsonl"
    transcript.parent.mkdir()
    transcript.write_text(
        '{"event": "start", "model": "m", "mode": "chat", "system": null, "settings": {}}\n'
        '{"event": "user", "content": "first line\\nsecond line"}\n'
        '{"event": "assistant", "content": "an answer"}\n'
    )
    _, err = piped_chat(
        smollm2,
        tmp_path / "other",
        [
            f"/export {tmp_path / 'empty.md'}",
            f"/load {transcript}",
            "/history",
            f"/export {kept}",
            f"/export {tmp_path / 'no' / 'x.md'}",
            f"/save {tmp_path / 'no' / 'x.jsonl'}",
            f"/export {tmp_path / 'new.md'}",
        ],
    )
    assert "nothing to export yet" in err and not (tmp_path / "empty.md").exists()
    assert ">>> first line\n... second line\nan answer" in err
    assert f"{kept} exists; left as it was" in err and kept.read_text() == "mine\n"
    assert err.count(f"there is no folder {tmp_path / 'no'}") == 2 and not (tmp_path / "no").exists()
    assert "## You\n\nfirst line  \nsecond line\n" in (tmp_path / "new.md").read_text()  # shown as two lines


def test_list_leaves_out_empty_chats_and_help_shows_every_argument(tmp_path):
    from llm42.chat.commands import help_text
    from llm42.chat.record import list_text

    (tmp_path / "2026-12-01-100000-aaaa.jsonl").write_text('{"event": "start", "model": "m", "mode": "chat"}\n')
    (tmp_path / "2026-12-01-100001-bbbb.jsonl").write_text(
        '{"event": "start", "model": "m", "mode": "chat"}\n{"event": "user", "content": "' + "long " * 80 + '"}\n'
        '{"event": "assistant", "content": "ok"}\n'
    )
    rows = list_text(tmp_path).splitlines()
    assert len(rows) == 1 and "bbbb" in rows[0] and rows[0].endswith("…") and len(rows[0]) <= 120
    assert "/edit [text]" in help_text() and "system prompt you set stays" in help_text()


def test_ctrl_d_during_a_reply_stops_it_and_leaves(smollm2, tmp_path):
    """No one reads the terminal while a reply streams, so its end of input would wait for the next prompt and be
    lost there: pressed during a reply, Ctrl+D stops the reply (kept as stopped, as Ctrl+C keeps it) and the chat
    ends at once, saying how to come back; the terminal's keys are as they were after."""
    import pexpect

    child = spawn_cli(
        "--model-path", str(smollm2), "--history-dir", str(tmp_path), "--temperature", "0", "--max-new-tokens", "400"
    )
    one_turn_then_a_long_reply(child)
    child.sendcontrol("d")
    child.expect(pexpect.EOF, timeout=30)
    child.close()
    said = "".join(child.before.split())
    path = only_transcript(tmp_path)
    assert child.exitstatus == 0 and "[replystopped]" in said and f"--resume{path.stem}continuesit" in said
    events = [json.loads(line) for line in path.read_text().splitlines()]
    users = [e["content"] for e in events if e["event"] == "user"]
    last = [e for e in events if e["event"] == "assistant"][-1]
    assert users[-1] == "Write a very long story about a dragon." and last["interrupted"] and last["content"]
