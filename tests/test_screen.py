"""What the terminal shows, read back through a terminal emulator: Markdown keeps the model's lines, and a
reply stopped with Ctrl+C at any moment leaves the screen whole and equal to the transcript.
A scripted server streams the replies, so the text and its pace are known."""

import json
import random
import re

import pytest

from tests.support import fake_server
from tests.support.cli import Screen, run_cli, spawn_cli

pytestmark = pytest.mark.slow  # end to end: the full suite and CI run it, the quick tier does not

POEM = [
    "An old silent pond\n",
    "A frog jumps into the pond\n",
    "Splash! Silence again.\n",
    "\n",
    "1. Banana\n",
    "2. Apple\n",
    "\n",
    "Done.",
]


@pytest.fixture
def fake():
    server, url, handler = fake_server.serve()
    yield url, handler
    server.shutdown()


def words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z0-9']+", text)


def asked(fake, tmp_path, reply: list[str], message: str) -> Screen:
    """A chat with the scripted server: `message` sent, and its reply (which ends in "Done") on the screen."""
    url, handler = fake
    handler.reply = reply
    screen = Screen(spawn_cli("--endpoint", url, "--history-dir", str(tmp_path)))
    screen.expect(">>>")
    screen.child.sendline(message)
    screen.expect("Done")
    return screen


def test_markdown_keeps_line_breaks_and_list_numbers(fake, tmp_path):
    url, handler = fake
    screen = asked(fake, tmp_path, POEM, "A haiku, then two fruits.")
    handler.reply = ["Three steps:\n", "\n", "1."]  # a reply that ends at a bare list number, as one stopped there
    screen.expect(">>>")
    screen.child.sendline("And the steps?")
    screen.expect("Three steps:")
    screen.leave()
    lines = [line.strip() for line in screen.lines()]
    i = lines.index("An old silent pond")
    assert lines[i + 1 : i + 3] == ["A frog jumps into the pond", "Splash! Silence again."]
    assert "1. Banana" in lines and "2. Apple" in lines
    assert lines[lines.index("Three steps:") + 2] == "1."  # the number shows, though nothing follows it yet


def test_history_wraps_between_words(fake, tmp_path):
    url, handler = fake
    handler.reply = [
        "Streaming text should never break a character, and a long line wraps between its words "
        "so that nothing is cut in half on a narrow terminal window."
    ]
    child = spawn_cli("--endpoint", url, "--history-dir", str(tmp_path), "--no-markdown", COLUMNS="50")
    child.setwinsize(40, 50)
    screen = Screen(child, columns=50)
    screen.expect(">>>")
    child.sendline("Say something long.")
    screen.expect(r"context \d+ tokens")  # the reply ended: the next prompt is the one that reads /history
    screen.expect(">>>")
    child.sendline("/history")
    screen.expect(r"window\.")  # the end of the history shown
    screen.expect(">>>")
    child.sendcontrol("d")
    screen.settle()
    shown = screen.lines()
    start = max(i for i, line in enumerate(shown) if line.startswith(">>> Say something long."))  # in /history
    end = next(i for i in range(start + 1, len(shown)) if shown[i].startswith(">>>"))
    history = [line for line in shown[start + 1 : end] if line]
    reply_words = set(words(handler.reply[0]))
    assert len(history) >= 3  # wrapped
    for line in history[1:]:
        assert set(words(line)) <= reply_words, line  # every piece on a line is a whole word


def test_ctrl_c_at_any_moment_leaves_the_screen_whole(fake, tmp_path):
    url, handler = fake
    paragraph = ["The", " baker", " climbed", " the", " lighthouse", " stairs", " with", " bread", ".\n"]
    handler.reply = (paragraph * 3 + ["\n", "1.", " First", " step\n", "2.", " Second", " step\n", "\n"]) * 8
    handler.delay = 0.02
    rng = random.Random(5)
    screen = Screen(spawn_cli("--endpoint", url, "--history-dir", str(tmp_path)))
    screen.expect(">>>")
    screen.child.sendline("/set temperature 0.3")
    screen.expect("temperature = 0.3")
    for i in range(8):
        screen.expect(">>>")
        screen.child.sendline(f"Story number {i}, please.")
        screen.expect(f"Story number {i}, please.")
        screen.expect(re.escape("\x1b[?2004l"))  # the prompt gave the line up: the reply is on its way
        screen.watch(rng.uniform(0.05, 2.5))
        screen.child.sendcontrol("c")
        screen.expect(r"reply stopped")
    text = screen.leave()
    assert "temperature = 0.3" in text  # what was on screen stays on screen
    (path,) = tmp_path.glob("*.jsonl")
    replies = [e["content"] for e in map(json.loads, path.read_text().splitlines()) if e["event"] == "assistant"]
    assert len(replies) == 8
    for i, reply in enumerate(replies):
        asked = f">>> Story number {i}, please."
        assert text.count(asked) == 1, text
        shown = text.split(asked, 1)[1].split("[reply stopped]", 1)[0]
        assert words(shown) == words(reply), (i, shown, reply)  # the screen says what the transcript says


def test_debug_candidates_wait_below_the_reply_on_a_terminal(tiny42):
    """--debug in a terminal: the reply reads as one text, its candidate lines follow it, each on its own line,
    byte pieces of an unfinished character as \\xNN (one backslash)."""
    child = spawn_cli("--model-path", str(tiny42), "--debug", "--seed", "3", "--max-new-tokens", "24")
    screen = Screen(child)
    screen.expect(">>>")
    child.sendline("안녕하세요 🙂")
    screen.expect(r"\[debug\]")
    text = screen.leave()  # at the next prompt, after the reply and its candidates
    debug = [line for line in text.splitlines() if "[debug]" in line]
    assert len(debug) >= 10 and all(line.startswith("[debug]") for line in debug), debug[:3]
    assert "\\\\x" not in text


CODE = ["Here it is:\n", "\n", "def reverse_string(s):\n", "    return s[::-1]\n", "\n", "Done."]


def test_code_without_a_fence_keeps_its_indentation_on_screen(fake, tmp_path):
    """The model wrote a function without a code fence: the indented line keeps its four spaces on the screen, as
    in /history and the transcript (as a paragraph, Markdown strips them and the copied code breaks)."""
    screen = asked(fake, tmp_path, CODE, "Reverse a string in Python.")
    screen.leave()
    lines = screen.lines()
    at = next(i for i, line in enumerate(lines) if "def reverse_string(s):" in line)
    margin = lines[at].index("def")
    assert lines[at + 1][margin:] == "    return s[::-1]"


def test_a_one_shot_prompt_in_a_terminal_renders_markdown(fake, tmp_path):
    """--prompt with a terminal on stdout gets the table drawn, as the chat draws it; into a pipe, plain text."""
    import pexpect

    url, handler = fake
    handler.reply = ["| Name | Age |\n", "| --- | --- |\n", "| Emily | 28 |\n"]
    args = ("--endpoint", url, "--history-dir", str(tmp_path), "--prompt", "A table, please.")
    screen = Screen(spawn_cli(*args))
    screen.expect(pexpect.EOF)
    row = next(line for line in screen.lines() if "Emily" in line)
    assert "28" in row and "|" not in row  # drawn as a table, not the Markdown source
    r = run_cli(*args)
    assert "| Emily | 28 |" in r.stdout.decode()


FENCED = ["Here:\n", "\n", "```python\n", "def add(a, b):\n", "    return a + b\n", "```\n", "\n", "Done."]


def test_a_code_block_streams_in_a_fence_and_keeps_its_indentation(fake, tmp_path):
    """A fenced code block is drawn while it is still open (each redraw renders an unclosed fence) and then whole."""
    screen = asked(fake, tmp_path, FENCED, "Add two numbers in Python.")
    text = screen.leave()
    lines = screen.lines()
    at = next(i for i, line in enumerate(lines) if "def add(a, b):" in line)
    assert lines[at + 1][lines[at].index("def") :].rstrip() == "    return a + b"
    assert "Traceback" not in text and "Error" not in text
