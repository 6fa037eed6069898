"""The chat's verbs in-process, against a scripted backend (the Backend contract, no model): what it sends,
what it keeps, what it writes down. The subprocess tests on real models are the end-to-end checks."""

from dataclasses import dataclass, field

from llm42.backend import Response
from llm42.chat.loop import Chat, Options
from llm42.chat.record import Record
from llm42.chat.transcript import load
from llm42.chat.ui import UI
from llm42.conversation import Dialog, Role
from llm42.settings import SamplingSettings
from llm42.template import ContextError


@dataclass
class Scripted:
    """Answers each message with the next scripted reply, streamed two characters at a time."""

    replies: list[str]
    name: str = "scripted"
    device: str = "test"
    window: int = 1000
    seen: list[list[str]] = field(default_factory=list)  # the user messages of each request
    finish: str = "stop"
    sampling_defaults: dict = field(default_factory=dict)
    endpoint: str | None = None
    speculate: bool = False

    def default_system(self):
        return None

    def set_speculate(self, on: bool) -> bool:
        return False

    counts: bool = True  # False: tokens unknown here, as with a server's tokenizer

    def count_tokens(self, text: str) -> int | None:
        return len(text.split()) if self.counts else None

    def stored(self):
        return None

    def keep_for(self, chat):
        self.recorded = chat  # the conversation file the chat says it writes

    def ready(self, dialog):
        pass  # nothing kept on disk to read ahead

    def reply(self, dialog: Dialog, s: SamplingSettings, debug: bool = False):
        self.seen.append([m.content for m in dialog.messages if m.role is Role.USER])
        if "too long" in dialog.messages[-1].content:
            raise ContextError("this message needs 500 prompt tokens, but the window is 100 tokens")
        text = self.replies.pop(0)

        def stream():
            n = 0
            for i in range(0, len(text), 2):
                n += 1
                yield Response(text[i : i + 2], prompt_tokens=10, generation_tokens=n)
            yield Response("", prompt_tokens=10, generation_tokens=n, finish_reason=self.finish, dropped_turns=0)

        return stream()


def chat_with(tmp_path, replies, **kw):
    backend = Scripted(list(replies), **kw)
    ui = UI(markdown=False, interactive=False)
    record = Record(tmp_path, backend.name, mode="piped")
    return Chat(backend, ui, record, SamplingSettings(), options=Options(status=False)), backend


def test_send_streams_the_reply_and_records_the_turn(tmp_path, capsys):
    chat, backend = chat_with(tmp_path, ["안녕하세요! 반갑습니다."])
    turn = chat.send("안녕")
    assert turn.text == "안녕하세요! 반갑습니다." and not turn.interrupted
    assert capsys.readouterr().out == "안녕하세요! 반갑습니다.\n"
    (path,) = tmp_path.glob("*.jsonl")
    assert [(m.role, m.content) for m in load(path).dialog.messages] == [
        (Role.USER, "안녕"),
        (Role.ASSISTANT, "안녕하세요! 반갑습니다."),
    ]


def test_undo_regen_edit_change_what_the_backend_is_sent(tmp_path):
    chat, backend = chat_with(tmp_path, ["one", "two", "three", "four"])
    chat.handle("first")
    chat.handle("/regen")  # the same message, asked again
    chat.handle("/edit second")  # the last message replaced
    chat.handle("/undo")
    chat.handle("third")
    assert backend.seen == [["first"], ["first"], ["second"], ["third"]]
    (path,) = tmp_path.glob("*.jsonl")
    assert [m.content for m in load(path).dialog.messages] == ["third", "four"]  # what a resume would see


def test_a_message_that_cannot_fit_is_taken_back(tmp_path, capsys):
    chat, backend = chat_with(tmp_path, ["fine"])
    chat.handle("this is too long")
    assert "message not sent" in capsys.readouterr().err and chat.dialog.messages == []
    chat.handle("short")
    assert [m.content for m in chat.dialog.messages] == ["short", "fine"]


def test_a_reply_cut_at_the_token_limit_is_marked(tmp_path, capsys):
    chat, _ = chat_with(tmp_path, ["a long story that goes on"], finish="length")
    chat.handle("tell me a story")
    err = capsys.readouterr().err
    assert "[cut at the 13-token limit" in err


def test_reset_starts_a_new_file_and_load_continues_an_old_one(tmp_path, capsys):
    chat, backend = chat_with(tmp_path, ["a", "b", "c"])
    chat.handle("first chat")
    first = chat.record.path
    chat.handle("/reset")
    chat.handle("second chat")
    second = chat.record.path
    assert first != second and len(list(tmp_path.glob("*.jsonl"))) == 2
    assert backend.recorded == second  # the backend knows which file each reply belongs to (its KV names it)
    chat.handle(f"/load {first.stem}")
    assert [m.content for m in chat.dialog.messages] == ["first chat", "a"]
    chat.handle("more")
    assert backend.seen[-1] == ["first chat", "more"]  # the loaded history goes to the backend
    assert backend.recorded == first
    assert [m.content for m in load(first).dialog.messages] == ["first chat", "a", "more", "c"]


def test_resume_keeps_the_saved_sampling_settings_unless_flags_say_otherwise(tmp_path):
    chat, _ = chat_with(tmp_path, ["a"])
    chat.handle("/set temperature 0.1")
    chat.handle("/set top_k 5")
    chat.handle("hello")
    path = chat.record.path
    again, _ = chat_with(tmp_path, [])
    again.options.pinned = {"top_k"}
    again.sampling = SamplingSettings(top_k=7)
    again.resume(str(path))
    assert again.sampling.temperature == 0.1 and again.sampling.top_k == 7  # top_k was given as a flag


def test_stats_after_a_reply_stopped_before_it_finished(tmp_path, capsys):
    chat, backend = chat_with(tmp_path, ["x" * 40])
    stream = backend.reply

    def interrupted(dialog, s, debug=False):
        inner = stream(dialog, s, debug)

        def cut():
            yield next(inner)
            yield next(inner)
            raise KeyboardInterrupt

        return cut()

    backend.reply = interrupted
    chat.handle("go")
    chat.handle("/stats")
    err = capsys.readouterr().err
    assert "[reply stopped]" in err and "reply tokens       2 (stopped)" in err
    assert chat.dialog.messages[-1].interrupted and chat.dialog.messages[-1].content == "xxxx"


def test_read_says_each_file_and_the_total_also_where_tokens_cannot_be_counted(tmp_path, capsys):
    """A server's tokenizer is unseen from here: each file is said without a count, and two of them as two files."""
    (tmp_path / "a.txt").write_text("alpha beta\n")
    (tmp_path / "b.txt").write_text("gamma\n")
    for counts, first, total in (
        (True, "read a.txt: 11 characters (5 tokens)", "attached to your next message: 2 files, 9 tokens in all"),
        (False, "read a.txt: 11 characters;", "attached to your next message: 2 files"),
    ):
        chat, _ = chat_with(tmp_path / str(counts), [], counts=counts)
        chat.handle(f"/read {tmp_path / 'a.txt'}")
        chat.handle(f"/read {tmp_path / 'b.txt'}")
        err = capsys.readouterr().err
        assert first in err and total in err and len(chat.attached) == 2
