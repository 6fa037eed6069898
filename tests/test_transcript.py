"""Transcripts on disk: replay, torn lines, unanswered messages, write failures."""

from llm42.chat.transcript import Transcript, export_markdown, find, load
from llm42.conversation import Dialog, Role


def test_events_replay_into_the_dialog(tmp_path):
    t = Transcript(tmp_path / "c.jsonl")
    t.start("m", Dialog(system="짧게 답하세요."), {"temperature": 0.5})
    t.message(Role.USER, "안녕하세요")
    t.message(Role.ASSISTANT, "안녕하세요! 🙂", finish_reason="stop")
    t.message(Role.USER, "두 번째")
    t.message(Role.ASSISTANT, "답", interrupted=True)
    t.write("truncate", keep=2)  # an /undo
    t.write("system", content="새 시스템")
    loaded = load(t.path)
    assert [(m.role, m.content) for m in loaded.dialog.messages] == [
        (Role.USER, "안녕하세요"),
        (Role.ASSISTANT, "안녕하세요! 🙂"),
    ]
    assert loaded.dialog.system == "새 시스템" and loaded.settings == {"temperature": 0.5}
    assert loaded.skipped == 0 and not loaded.dropped_unanswered


def test_a_torn_last_line_is_skipped_and_the_next_write_starts_clean(tmp_path):
    t = Transcript(tmp_path / "c.jsonl")
    t.start("m", Dialog(), {})
    t.message(Role.USER, "one")
    t.message(Role.ASSISTANT, "reply one")
    t.message(Role.USER, "two")
    t.message(Role.ASSISTANT, "reply two, cut")
    data = t.path.read_bytes()
    t.path.write_bytes(data[: len(data) - 12])  # killed in the middle of writing
    loaded = load(t.path)
    assert loaded.skipped == 1 and loaded.dropped_unanswered  # "two" never got its reply
    assert [m.content for m in loaded.dialog.messages] == ["one", "reply one"]
    t.message(Role.USER, "three")
    assert load(t.path).skipped == 1 and t.path.read_text().endswith('"three"}\n')


def test_an_unwritable_folder_warns_once_and_goes_on(tmp_path):
    (tmp_path / "file").write_text("x")
    warnings = []
    t = Transcript(tmp_path / "file" / "sub" / "c.jsonl", warnings.append)
    assert not t.write("user", content="a") and not t.write("user", content="b")
    assert len(warnings) == 1


def test_find_by_id_path_or_latest(tmp_path):
    a = Transcript.create(tmp_path)
    a.start("m", Dialog(), {})  # every transcript llm42 writes begins with its start
    a.message(Role.USER, "x")
    b = Transcript(tmp_path / "later.jsonl")
    b.start("m", Dialog(), {})
    b.message(Role.USER, "y")
    assert find(None, tmp_path) == b.path
    assert find(a.path.stem, tmp_path) == a.path and find(str(a.path), tmp_path) == a.path


def test_markdown_export():
    d = Dialog()
    d.add(Role.USER, "질문")
    d.add(Role.ASSISTANT, "**답**", interrupted=True)
    text = export_markdown(d, "42dot")
    assert "## You\n\n질문" in text and "## Assistant *(stopped)*\n\n**답**" in text


def test_hand_edited_transcripts_are_listed_and_read_field_by_field(tmp_path):
    """Lines that are JSON but not what llm42 writes (not an object, a field of another type) are skipped and
    counted, in --list as in --resume, never a traceback."""
    import subprocess
    import sys

    from tests.support.cli import ROOT, cli_env

    good = Transcript(tmp_path / "2026-12-01-100000-good.jsonl")
    good.start("m", Dialog(), {})
    good.message(Role.USER, "a real question")
    good.message(Role.ASSISTANT, "a real answer")
    (tmp_path / "2026-12-01-100001-list.jsonl").write_text('[1, 2]\n{"event": "user", "content": "x"}\n')
    (tmp_path / "2026-12-01-100002-types.jsonl").write_text(
        '{"event": "start", "time": "noon", "mode": 7, "system": 5, "settings": "hot"}\n'
        '{"event": "user", "content": ["not", "text"]}\n{"event": "user", "content": "kept"}\n'
        '{"event": "assistant", "content": "ok", "interrupted": "yes"}\n{"event": "truncate", "keep": "all"}\n'
    )
    loaded = load(tmp_path / "2026-12-01-100002-types.jsonl")
    assert [m.content for m in loaded.dialog.messages] == ["kept", "ok"] and loaded.skipped == 3
    r = subprocess.run(
        [sys.executable, str(ROOT / "example_cli.py"), "--list", "--history-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=cli_env(),
        cwd=ROOT,
        timeout=60,
    )
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "a real question" in r.stdout and "kept" in r.stdout
