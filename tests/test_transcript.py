"""Transcripts on disk: replay, torn lines, unanswered messages, write failures."""

from llm42.conversation import Dialog, Role
from llm42.transcript import Transcript, export_markdown, find, load


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
    assert [(m.role, m.content) for m in loaded.dialog.messages] == [(Role.USER, "안녕하세요"), (Role.ASSISTANT, "안녕하세요! 🙂")]
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
    a.message(Role.USER, "x")
    b = Transcript(tmp_path / "later.jsonl")
    b.message(Role.USER, "y")
    assert find(None, tmp_path) == b.path
    assert find(a.path.stem, tmp_path) == a.path and find(str(a.path), tmp_path) == a.path


def test_markdown_export():
    d = Dialog()
    d.add(Role.USER, "질문")
    d.add(Role.ASSISTANT, "**답**", interrupted=True)
    text = export_markdown(d, "42dot")
    assert "## You\n\n질문" in text and "## Assistant *(stopped)*\n\n**답**" in text
