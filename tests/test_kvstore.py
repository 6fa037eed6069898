"""The KV cache kept on disk between runs, through the real CLI with SmolLM2 (greedy).

What "never wrong" means here, exactly: a chat picked up from its stored KV replies with the very tokens the same
chat gives had it never stopped (the same numbers: the stored keys and values are the ones that run computed, and
the rest of the prompt is prefilled in the same pieces); a stored file that is damaged or busy is a miss, and the
reply is the one a run without the store gives. A prompt that shares only a prefix with a stored one (a second
question over the same file) is prefilled in other pieces than a fresh run would, so its numbers agree within
rounding, not bit for bit: there the first token's distribution is compared."""

import fcntl
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from tests.support.cli import debug_reports, leave, only_transcript, piped_chat, run_cli, spawn_cli

pytestmark = pytest.mark.slow  # end to end: the full suite and CI run it, the quick tier does not

QUESTION = "And three fruits?"


def own_cache(folder: Path) -> Path:
    """A cache folder of a test's own (the suite's KV store is off), with the suite's built kernels and kernel
    choices copied in so that nothing is built or measured again."""
    suite, own = Path(os.environ["LLM42_CACHE"]), folder / "cache"
    own.mkdir(parents=True)
    for name in ("native", "kernels.json"):
        if (suite / name).is_dir():
            shutil.copytree(suite / name, own / name)
        elif (suite / name).is_file():
            shutil.copy2(suite / name, own / name)
    return own


@pytest.fixture
def cache(tmp_path) -> Path:
    return own_cache(tmp_path)


TURNS = ["Name three colors.", "And three animals?"]


@pytest.fixture(scope="module")
def two_turns(smollm2, tmp_path_factory) -> dict:
    """A piped two-turn chat and its stored KV (each test takes a copy); the reply to QUESTION after it when it is
    resumed without the store ("plain"), and when the same chat asks it without ever stopping ("uninterrupted")."""
    root = tmp_path_factory.mktemp("two-turns")
    cache, history = own_cache(root), root / "h"
    _, reports, _ = run(smollm2, cache, history, TURNS)
    path = only_transcript(history)
    chat = path.read_bytes()
    plain, (p,), plain_err = run(smollm2, cache, history, [QUESTION], "--resume", str(path), gb="0")
    path.write_bytes(chat)
    whole, _, whole_err = run(smollm2, cache, root / "whole", [*TURNS, QUESTION], gb="0")
    return dict(
        root=root, reports=reports, plain=plain, uninterrupted=whole, prompt_tokens=p["prompt_tokens"], off=p,
        plain_first=first_token(plain_err), uninterrupted_first=first_token(whole_err, 2),
    )  # fmt: skip


def first_token(err: str, turn: int = 0) -> dict[str, float]:
    """A reply's first token's top-5 candidates and their probabilities, from --debug (the first reply's, or that of
    reply `turn`, from 0)."""
    replies = err.split("\n}\n")  # each reply's token lines, then its report (a JSON object)
    line = next(line for line in replies[turn].splitlines() if line.startswith("[debug]"))
    return {tok: float(p) for tok, p in re.findall(r"'((?:[^'\\]|\\.)*)' ([0-9.]+)", line.split(" -> ")[0])}


def close(a: dict[str, float], b: dict[str, float], within: float = 0.01) -> bool:
    """Two top-5 lists as rounding would leave them: 4 tokens in common at least, each probability within `within`."""
    common = a.keys() & b.keys()
    return len(common) >= 4 and all(abs(a[t] - b[t]) <= within for t in common)


def spread(a: dict[str, float], b: dict[str, float]) -> float:
    """How far apart two top-5 lists are (the largest difference of a common token's probability)."""
    return max(abs(a[t] - b[t]) for t in a.keys() & b.keys())


def copy_of(two_turns: dict, tmp_path: Path) -> tuple[Path, Path, Path]:
    """(cache, history, transcript) of a copy of the two-turn chat."""
    shutil.copytree(two_turns["root"], tmp_path / "copy")
    cache, history = tmp_path / "copy" / "cache", tmp_path / "copy" / "h"
    return cache, history, only_transcript(history)


def run(model, cache, history, lines, *args, gb="1"):
    """A piped greedy run; (stdout, the --debug reports, stderr)."""
    out, err = piped_chat(
        model, history, lines, "--temperature", "0", "--debug", *args, new_tokens=16, LLM42_CACHE=str(cache),
        LLM42_KV_CACHE_GB=gb,
    )  # fmt: skip
    assert "Traceback" not in err, err[-3000:]
    return out, debug_reports(err), err


def stored(cache) -> list[Path]:
    return sorted((cache / "kv").glob("*/*.kv"))


def test_resume_starts_from_the_stored_kv_and_replies_as_if_never_stopped(smollm2, two_turns, tmp_path):
    reports = two_turns["reports"]
    assert [r["restored_prompt_tokens"] for r in reports] == [0, 0]
    assert two_turns["off"]["restored_prompt_tokens"] == 0  # the store off
    cache, history, path = copy_of(two_turns, tmp_path)
    (kv,) = stored(cache)
    out, (r,), _ = run(smollm2, cache, history, [QUESTION], "--resume", str(path))
    assert r["restored_prompt_tokens"] > reports[1]["prompt_tokens"], r  # both turns, the second reply included
    assert r["reused_prompt_tokens"] == r["restored_prompt_tokens"]
    assert r["prompt_tokens"] == two_turns["prompt_tokens"]
    assert out and two_turns["uninterrupted"].endswith(out)
    assert stored(cache) == [kv]  # the resumed chat went on in the same file


def test_a_repeated_one_shot_over_the_same_file_prefills_only_the_question(smollm2, cache, tmp_path):
    doc = tmp_path / "notes.txt"
    doc.write_text("Meeting notes. " * 40 + "The launch moved to Friday because the printer broke.\n")
    ask = lambda q, **kw: run(smollm2, cache, tmp_path / "h", [], "--file", str(doc), "--prompt", q, **kw)
    ask("When is the launch?")
    _, (r,), err = ask("Why did the launch move?")
    _, (p,), plain = ask("Why did the launch move?", gb="0")
    assert r["restored_prompt_tokens"] > 0.9 * r["prompt_tokens"] - 20, r  # the system prompt and the file
    assert p["restored_prompt_tokens"] == 0
    assert close(first_token(err), first_token(plain)), (first_token(err), first_token(plain))
    assert len(stored(cache)) == 2  # the second question's chat a file of its own: the first one's kept whole


def test_undo_cuts_the_stored_chat_back_and_the_size_limit_holds(smollm2, cache, tmp_path):
    history, lines = tmp_path / "h", [*TURNS, "/undo", "And three cities?"]
    run(smollm2, cache, history, lines)
    path = only_transcript(history)
    out, (r,), stats = run(smollm2, cache, history, [QUESTION, "/stats"], "--resume", str(path))
    whole, _, plain_stats = run(smollm2, cache, tmp_path / "whole", [*lines, QUESTION, "/stats"], gb="0")
    assert r["restored_prompt_tokens"] > r["prompt_tokens"] - 20, r  # the turns /undo kept and the one after
    assert out and whole.endswith(out)
    assert f"read from disk     {r['restored_prompt_tokens']} of the cached tokens" in stats
    assert "kept on disk" in stats and "kept on disk" not in plain_stats
    (kv,) = stored(cache)
    size = kv.stat().st_size
    limit = size * 1.2 / 2**30  # room for this chat, not for it and another
    run(smollm2, cache, tmp_path / "other", ["Name three colors, please, and say why."], gb=f"{limit:.9f}")
    assert sum(p.stat().st_size for p in stored(cache)) <= limit * 2**30
    assert kv not in stored(cache)  # the least recently used went first


def _truncate(kv: Path) -> None:
    with open(kv, "r+b") as f:
        f.truncate(kv.stat().st_size - 1000)


def _other_key(kv: Path) -> None:
    data = bytearray(kv.read_bytes())
    at = data.index(b'"key": "') + 8
    data[at : at + 4] = b"0000" if data[at : at + 4] != b"0000" else b"1111"
    kv.write_bytes(bytes(data))


def _half_written(kv: Path) -> None:
    """As a process killed mid-write leaves it: a block whose header still says 0 tokens, its data cut off."""
    with open(kv, "ab") as f:
        f.write(b"BLK1" + bytes(4) + (10**6).to_bytes(8, "little") + os.urandom(5000))


def _garbage(kv: Path) -> None:
    kv.write_bytes(os.urandom(3000))


@pytest.mark.parametrize("damage", [_truncate, _other_key, _half_written, _garbage, "locked"])
def test_a_damaged_or_busy_store_is_a_miss_and_the_reply_is_right(smollm2, two_turns, tmp_path, damage):
    cache, history, path = copy_of(two_turns, tmp_path)
    (kv,) = stored(cache)
    if damage == "locked":  # another process is writing it
        lock = open(kv, "r+b")
        fcntl.flock(lock, fcntl.LOCK_EX)
    else:
        damage(kv)
    out, (r,), err = run(smollm2, cache, history, [QUESTION], "--resume", str(path))
    if damage == "locked":
        lock.close()
        assert r["restored_prompt_tokens"] == 0 and out == two_turns["plain"]
    elif damage is _truncate:  # the whole blocks before the cut still serve (the first turn): numbers within rounding
        assert 0 < r["restored_prompt_tokens"] < r["prompt_tokens"] - 20
        # part of the history's KV as the first run's steps computed it, the rest prefilled: another mix of stepped
        # and prefilled positions, so within rounding noise of the kind that sets the chat never stopped (its KV all
        # its own) apart from the one prefilled whole: twice that spread (two such draws), or 0.01
        plain, whole = two_turns["plain_first"], two_turns["uninterrupted_first"]
        assert close(first_token(err), plain, max(0.01, 2 * spread(whole, plain)))
    elif damage is _half_written:  # the whole blocks do: both turns
        assert r["restored_prompt_tokens"] > r["prompt_tokens"] - 20
        assert out and two_turns["uninterrupted"].endswith(out)
    else:
        assert r["restored_prompt_tokens"] == 0 and out == two_turns["plain"]
        assert kv not in stored(cache)  # removed, then written again by this run


def test_load_in_a_new_chat_starts_from_the_stored_kv(smollm2, two_turns, tmp_path):
    cache, history, path = copy_of(two_turns, tmp_path)
    out, (r,), _ = run(smollm2, cache, tmp_path / "new", [f"/load {path}", QUESTION])
    assert r["restored_prompt_tokens"] > r["prompt_tokens"] - 20, r
    assert out and two_turns["uninterrupted"].endswith(out)


def test_turns_left_out_of_a_small_window_keep_the_reply_as_without_the_store(smollm2, cache, tmp_path):
    lines = [f"Tell me one fact about the number {i}." for i in range(6)]
    out, reports, _ = run(smollm2, cache, tmp_path / "a", lines, "--context", "200")
    plain, plain_reports, _ = run(smollm2, cache, tmp_path / "b", lines, "--context", "200", gb="0")
    assert any(r["dropped_turns"] for r in reports)  # the window did leave turns out
    assert out == plain
    assert [r["prompt_tokens"] for r in reports] == [r["prompt_tokens"] for r in plain_reports]


def test_list_shows_the_kv_a_chat_keeps_and_a_deleted_chat_s_kv_goes(smollm2, cache, tmp_path):
    """--list shows, per conversation, the KV kept on disk for it (the file names its conversation); once the
    conversation's file is deleted, the next reply that stores KV removes that chat's, whatever the room."""
    history = tmp_path / "h"
    run(smollm2, cache, history, TURNS[:1])
    path = only_transcript(history)
    (kv,) = stored(cache)
    listed = run_cli("--list", "--history-dir", str(history), LLM42_CACHE=str(cache)).stdout.decode()
    (row,) = [line for line in listed.splitlines() if path.stem in line]
    size = kv.stat().st_size / 2**20
    shown = re.search(r"KV (\d+(\.\d)?) MB", row)
    assert shown and abs(float(shown[1]) - size) < 0.06
    path.unlink()
    run(smollm2, cache, tmp_path / "other", ["Name one color."])
    assert kv not in stored(cache) and len(stored(cache)) == 1  # the other chat's own file, only


def test_a_reply_is_fed_back_as_generated_so_no_part_of_it_is_prefilled_again(tiny42, cache, tmp_path):
    """The random 42dot-shaped model writes bytes that tokenize back into other ids than it drew. The next prompt
    feeds a reply as its own ids (kept in the transcript): the second turn reuses all that the first left in the
    cache, a resumed chat all that the store holds, and a resume without the store builds the same prompt."""
    history = tmp_path / "h"
    _, (a, b), _ = run(tiny42, cache, history, TURNS)
    assert b["reused_prompt_tokens"] == a["prompt_tokens"] + a["completion_tokens"] - 1  # the last drawn, not fed
    path = only_transcript(history)
    chat = path.read_bytes()
    out, (r,), _ = run(tiny42, cache, history, [QUESTION], "--resume", str(path))
    assert r["restored_prompt_tokens"] == b["prompt_tokens"] + b["completion_tokens"] - 1, (b, r)
    path.write_bytes(chat)
    _, (p,), _ = run(tiny42, cache, history, [QUESTION], "--resume", str(path), gb="0")
    assert p["prompt_tokens"] == r["prompt_tokens"] and p["restored_prompt_tokens"] == 0
    whole, reports, _ = run(tiny42, cache, tmp_path / "whole", [*TURNS, QUESTION], gb="0")
    assert reports[2]["prompt_tokens"] == r["prompt_tokens"] and out and whole.endswith(out)


def test_a_resumed_chat_reads_its_stored_kv_before_the_next_message_is_typed(smollm2, two_turns, tmp_path):
    cache, history, path = copy_of(two_turns, tmp_path)
    (kv,) = stored(cache)
    os.utime(kv, (0, 0))  # a read marks it used (its time is now)
    child = spawn_cli(
        "--model-path", str(smollm2), "--history-dir", str(history), "--resume", str(path), "--temperature", "0",
        "--max-new-tokens", "16", "--debug", LLM42_CACHE=str(cache), LLM42_KV_CACHE_GB="1",
    )  # fmt: skip
    child.expect(">>>")
    waited = time.monotonic()
    while kv.stat().st_mtime == 0 and time.monotonic() - waited < 60:
        time.sleep(0.1)
    assert kv.stat().st_mtime > 0  # read with nothing typed yet
    child.sendline(QUESTION)
    child.expect(r'restored_prompt_tokens"(?:\x1b\[[0-9;]*m)*: (?:\x1b\[[0-9;]*m)*(\d+)')  # colored JSON
    assert int(child.match[1]) > two_turns["reports"][1]["prompt_tokens"]  # the history, read ahead, counted
    leave(child)
