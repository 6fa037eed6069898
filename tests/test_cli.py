"""The CLI driven for real: piped conversations, a pseudo-terminal session, and bad flags."""

import re

import pytest

from llm42.model.tokenizer import Tokenizer
from tests.support.cli import leave, run_cli, spawn_cli, stop_a_reply_then_ask_again


def test_piped_multi_turn_chat_with_smollm2(smollm2):
    r = run_cli(
        "--model-path",
        str(smollm2),
        "--temperature",
        "0",
        "--max-new-tokens",
        "60",
        stdin="What is the capital of France?\nWhat is 2 plus 2? Answer with the number.\n",
    )
    assert r.returncode == 0, r.stderr.decode()
    out, err = r.stdout.decode(), r.stderr.decode()
    replies = out.strip().split("\n")
    assert "Paris" in replies[0]
    assert "4" in out.split("Paris", 1)[1]
    assert "device cpu" in err and "loaded in" in err  # status goes to stderr, not into the replies
    assert "device" not in out and "Traceback" not in err


def test_korean_goes_in_and_comes_out_as_clean_utf8(smollm2):
    r = run_cli(
        "--model-path",
        str(smollm2),
        "--seed",
        "3",
        "--max-new-tokens",
        "40",
        stdin="안녕하세요! 한국어로 자기소개를 해 주세요. 🙂\n",
    )
    assert r.returncode == 0, r.stderr.decode()
    text = r.stdout.decode("utf-8").strip()  # strict: a broken byte sequence would raise
    assert text
    # a character the model had not finished when the 40-token limit cut it may end the reply as U+FFFD,
    # as in the full decode; nowhere else
    assert "\ufffd" not in text[:-1]


def test_one_shot_prompt_prints_only_the_reply(smollm2):
    r = run_cli(
        "--model-path",
        str(smollm2),
        "--temperature",
        "0",
        "--max-new-tokens",
        "30",
        "--prompt",
        "What is the capital of France?",
    )
    out, err = r.stdout.decode(), r.stderr.decode()
    assert r.returncode == 0 and "Paris" in out
    assert "loaded in" in err and not any(line in out for line in err.splitlines() if line.strip())  # status apart
    # marked as cut exactly when it was: a greedy reply may end by itself or run on, as this CPU's rounding falls
    tokens = len(Tokenizer.read(smollm2).encode(out.strip(), add_special_tokens=False))
    assert tokens >= 28 if "cut at" in err else tokens < 30
    assert "TTFT" not in err and "context" not in err  # no meter off a terminal unless --verbose


def test_42dot_shaped_model_through_the_cli(tiny42):
    r = run_cli(
        "--model-path",
        str(tiny42),
        "--max-new-tokens",
        "12",
        "--seed",
        "0",
        "--debug",
        stdin="안녕하세요\n한국의 수도는 어디인가요?\n",
    )
    assert r.returncode == 0, r.stderr.decode()
    err = r.stderr.decode()
    assert err.count('"finish_reason"') == 2 and err.count("[debug]") >= 2
    assert '"reused_prompt_tokens": 0' in err and err.count('"reused_prompt_tokens": 0') == 1  # turn 2 reused turn 1


def test_too_long_message_is_refused_and_the_chat_goes_on(tiny42):
    r = run_cli(
        "--model-path", str(tiny42), "--max-new-tokens", "8", "--seed", "0", stdin="가나다라 " * 400 + "\n안녕하세요\n"
    )
    assert r.returncode == 0
    err = r.stderr.decode()
    assert "message not sent" in err and "window is 320 tokens" in err
    assert r.stdout.decode().strip()  # the second message was answered


def test_terminal_session_ctrl_c_stops_a_reply_and_ctrl_d_leaves(smollm2):
    child = spawn_cli("--model-path", str(smollm2), "--temperature", "0", "--max-new-tokens", "400")
    stop_a_reply_then_ask_again(child)


def test_a_stopped_reply_keeps_the_prompt_cache(smollm2):
    """Ctrl+C mid-reply keeps everything cached up to the last token fed: the next turn prefills only its own
    message, not the whole conversation again."""
    import time

    child = spawn_cli("--model-path", str(smollm2), "--temperature", "0", "--max-new-tokens", "400")
    child.expect(">>>")
    child.sendline("Write a very long story about a dragon who learns to cook.")
    child.expect("dragon", timeout=60)
    time.sleep(1)
    child.sendcontrol("c")
    child.expect("reply stopped")
    child.expect(">>>")
    child.sendline("What is the capital of France?")
    child.expect("Paris")
    child.expect(">>>")
    child.sendline("/stats")
    child.expect(r"prompt tokens\s+(\d+) \((\d+) from the cache\)")
    prompt, reused = int(child.match.group(1)), int(child.match.group(2))
    assert reused > 40 and prompt - reused < 30, (prompt, reused)  # the story so far came from the cache
    leave(child)


def test_ctrl_c_twice_on_an_empty_prompt_leaves_cleanly(tiny42):
    child = spawn_cli("--model-path", str(tiny42), "--max-new-tokens", "16")
    child.expect(">>>")
    child.send("typed, then cleared")
    child.expect("cleared")
    child.sendcontrol("c")  # a typed line: cleared, the chat goes on
    child.sendcontrol("c")  # an empty line, once: a hint
    child.expect("press Ctrl\\+C again to quit")
    child.expect(">>>")
    child.sendcontrol("c")
    child.expect(pytest.importorskip("pexpect").EOF)
    child.close()
    assert child.exitstatus == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--temperature", "-1"], "temperature must be >= 0"),
        (["--top-p", "0"], "top-p must be in (0, 1]"),
        (["--top-p", "1.5"], "top-p must be in (0, 1]"),
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--max-new-tokens", "abc"], "max new tokens must be a whole number"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--model-path", "/no/such/folder"], "no model folder at /no/such/folder"),
        (["--model-path", "missing.gguf"], "no GGUF file at missing.gguf"),
        (["--endpoint", "notaurl"], "--endpoint notaurl is not a URL"),
        (["--endpoint", "http://127.0.0.1:9/v1", "--model-path", "x"], "--model-path is for a local model"),
    ],
)
def test_bad_flags_give_one_line_and_a_nonzero_exit(args, message):
    r = run_cli(*args, timeout=60)
    err = r.stderr.decode().strip()
    assert r.returncode != 0
    assert err.startswith("llm42: error:") and message in err and "\n" not in err


def test_uncached_hub_model_while_offline_says_what_to_do():
    r = run_cli("--model-path", "42dot/42dot_LLM-SFT-1.3B", timeout=60)
    err = r.stderr.decode().strip().splitlines()
    assert r.returncode == 1
    assert err[-1].startswith("llm42: error: 42dot/42dot_LLM-SFT-1.3B is not in the local cache")
    assert "--model-path /path/to/folder" in err[-1] and "Traceback" not in r.stderr.decode()


def test_help_is_readable():
    r = run_cli("--help", timeout=60)
    out = r.stdout.decode()
    assert r.returncode == 0
    for flag in ["--model-path", "--temperature", "--device", "--dtype", "--system-prompt", "--no-markdown"]:
        assert flag in out
    assert "(default: 0.5)" in out and "(default: None)" not in out


def test_a_reply_cut_by_the_token_limit_is_marked_on_stderr_only(smollm2, tmp_path):
    r = run_cli(
        "--model-path",
        str(smollm2),
        "--temperature",
        "0",
        "--max-new-tokens",
        "6",
        "--history-dir",
        str(tmp_path),
        "--prompt",
        "Write a long story about a dragon.",
    )
    out, err = r.stdout.decode(), r.stderr.decode()
    assert r.returncode == 0, err
    assert "[cut at the 6-token limit: --max-new-tokens N for longer replies]" in err  # no /set in a one-shot run
    assert "cut at" not in out and out.strip()  # stdout keeps only the reply


def test_flags_are_checked_before_loading_and_useless_ones_are_named(smollm2, tmp_path):
    fast = run_cli("--model-path", "/no/where/never", "--save-quantized", str(tmp_path / "q"), timeout=60)
    assert fast.returncode == 2 and "--save-quantized needs --quantize int8 or int4" in fast.stderr.decode()
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("keep me")
    taken = run_cli("--model-path", "/no/where", "--quantize", "int8", "--save-quantized", str(tmp_path / "taken"))
    assert taken.returncode == 2 and "already exists and is not empty" in taken.stderr.decode()
    assert (tmp_path / "taken" / "x").read_text() == "keep me"
    empty = run_cli("--prompt", "  ")
    assert empty.returncode == 2 and "--prompt is empty" in empty.stderr.decode()


def test_verbose_one_shot_prints_the_timing(tiny42):
    r = run_cli(
        "--model-path",
        str(tiny42),
        "--max-new-tokens",
        "4",
        "--seed",
        "0",
        "--no-history",
        "--verbose",
        "--prompt",
        "안녕하세요",
    )
    assert r.returncode == 0 and re.search(
        r"context \d+/320 tokens · TTFT [\d.]+s · [\d.]+ tokens/s", r.stderr.decode()
    )


def test_debug_shows_byte_pieces_escaped_and_plain_text(tiny42):
    r = run_cli(
        "--model-path",
        str(tiny42),
        "--max-new-tokens",
        "40",
        "--seed",
        "1",
        "--no-history",
        "--debug",
        "--temperature",
        "1.5",
        "--top-k",
        "0",
        "--repetition-penalty",
        "1.0",
        "--prompt",
        "이모지 🙂🚀 漢字",
    )
    err = r.stderr.decode()
    assert r.returncode == 0 and "[debug]" in err
    assert "\ufffd" not in err  # a byte of a character shows as \xNN, never as the replacement character
    assert re.search(r"\\x[0-9a-f]{2}", err)


def test_a_reader_that_leaves_early_ends_the_output_quietly(tmp_path):
    """`llm42 --list | head -1`: the pipe's reader is gone before llm42 writes; no traceback, the exit status of a
    program that SIGPIPE ended (141), as `yes | head -1` gives."""
    import subprocess
    import sys

    from tests.support.cli import ROOT, cli_env

    (tmp_path / "2026-12-01-120000-abcd.jsonl").write_text(
        '{"type": "start", "model": "m", "started": "2026-12-01T12:00:00"}\n'
        '{"type": "message", "role": "user", "content": "hello"}\n'
    )
    child = subprocess.Popen(
        [sys.executable, str(ROOT / "example_cli.py"), "--list", "--history-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(),
        cwd=ROOT,
    )
    child.stdout.close()  # the reader leaves before anything is written
    err = child.stderr.read().decode()
    assert child.wait(timeout=60) == 141 and "Traceback" not in err and "BrokenPipe" not in err, err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model-path", "/nonexistent"], "no model folder at /nonexistent"),
        (["--model-path", "README.md"], "README.md is a file, but neither a model folder nor a .gguf file"),
        (["--prompt-file", "/nonexistent.txt"], "cannot read --prompt-file /nonexistent.txt"),
    ],
)
def test_a_wrong_path_is_said_before_anything_loads(smollm2, args, message):
    """Checked before torch is imported: no device line, no loading, just the one line."""
    base = ["--model-path", str(smollm2)] + (["--prompt", "hi"] if "--prompt-file" not in args else [])
    r = run_cli(*base, *args, timeout=60)
    err = r.stderr.decode()
    assert r.returncode != 0 and message in err and "device " not in err and "Traceback" not in err, err


def test_a_context_larger_than_the_models_window_is_said(smollm2):
    r = run_cli("--model-path", str(smollm2), "--context", "100000", "--max-new-tokens", "4", "--prompt", "hi")
    assert r.returncode == 0, r.stderr.decode()
    assert "--context 100000 is more than this model's 8192-token window: using 8192" in r.stderr.decode()


def test_mashing_ctrl_c_to_stop_a_reply_does_not_quit(smollm2):
    """Three quick presses during a reply mean "stop": the chat goes on. Presses at an idle prompt still quit."""
    import time

    import pexpect

    child = spawn_cli("--model-path", str(smollm2), "--temperature", "0", "--max-new-tokens", "400")
    child.expect(">>>")
    child.sendline("Write a very long story about a dragon who learns to cook.")
    child.expect("dragon", timeout=60)
    time.sleep(1)  # the reply is streaming
    child.sendcontrol("c")
    child.expect("reply stopped")
    child.expect(">>>")
    for _ in range(2):  # the rest of the mashing lands on the fresh prompt
        child.sendcontrol("c")
        time.sleep(0.05)
    time.sleep(1.5)
    assert child.isalive()
    child.sendline("What is the capital of France?")
    child.expect("Paris")
    child.expect(">>>")
    time.sleep(1.5)  # idle at the prompt now: twice quits
    child.sendcontrol("c")
    child.expect("press Ctrl\\+C again to quit")
    child.sendcontrol("c")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_a_models_own_sampling_defaults_apply_where_no_flag_gives_one(tiny42, tmp_path):
    """Where a model's generation_config.json sets sampling values they are its defaults (said in one line), a flag
    wins over them, and /set and the transcript show the values in force; 42dot's where the file sets none."""
    import json
    import shutil

    from llm42.chat.transcript import load

    model = tmp_path / "model"
    shutil.copytree(tiny42, model)
    config = model / "generation_config.json"
    ids = {k: v for k, v in json.loads(config.read_text()).items() if k.endswith("token_id")} if config.exists() else {}
    config.write_text(json.dumps({**ids, "do_sample": True, "temperature": 0.7, "top_p": 0.8, "top_k": 40}))
    history = tmp_path / "h"
    args = ("--model-path", str(model), "--history-dir", str(history), "--max-new-tokens", "4", "--top-k", "5")
    r = run_cli(*args, stdin="hello\n/set\n")
    err = r.stderr.decode()
    assert r.returncode == 0, err
    assert "sampling: temperature 0.7, top-p 0.8, as the model's generation_config.json sets them" in err
    assert "temperature = 0.7" in err and "top_p = 0.8" in err and "top_k = 5" in err  # --top-k wins
    assert "repetition_penalty = 1.2" in err and "repeat_last_n = 64" in err and "speculate = auto" in err
    (path,) = history.glob("*.jsonl")
    assert {k: load(path).settings[k] for k in ("temperature", "top_p", "top_k")} == dict(
        temperature=0.7, top_p=0.8, top_k=5
    )
    r = run_cli("--model-path", str(tiny42), "--no-history", "--max-new-tokens", "4", stdin="hello\n/set\n")
    err = r.stderr.decode()
    assert "generation_config.json sets" not in err and "temperature = 0.5" in err and "top_k = 20" in err


def test_a_small_context_fits_the_default_reply_or_names_both_flags(tiny42):
    """--context 256 alone: the default longest reply (512) cannot fit, so it is halved to the window and said;
    asked for explicitly, the error names both flags."""
    base = ("--model-path", str(tiny42), "--context", "256", "--prompt", "hello", "--seed", "0")
    r = run_cli(*base)
    err = r.stderr.decode()
    assert r.returncode == 0, err
    assert "replies up to 128 tokens: half the 256-token context window (--context 256)" in err
    r = run_cli(*base, "--max-new-tokens", "300")
    err = r.stderr.decode()
    assert r.returncode == 2 and "Traceback" not in err
    assert "--max-new-tokens 300 must be below the 256-token context window (--context 256)" in err


@pytest.mark.parametrize("entry", [["example_cli.py"], ["-m", "llm42"]])
def test_outside_the_virtual_environment_one_line_names_what_is_missing(entry):
    """A Python without llm42's packages (-S: no site-packages, as outside the venv): one line naming them and the
    install command, exit 1, no traceback."""
    import subprocess
    import sys

    from tests.support.cli import ROOT

    r = subprocess.run([sys.executable, "-S", *entry, "--prompt", "hi"], cwd=ROOT, capture_output=True, timeout=60)
    err = r.stderr.decode().strip()
    assert r.returncode == 1 and "\n" not in err and "Traceback" not in err
    assert err.startswith("llm42: error: missing Python packages: torch,") and "rich" in err
    assert err.endswith("install them with: python -m llm42.install")


def test_runs_as_the_tests_make_them_leave_the_users_folders_alone(smollm2, tmp_path):
    """Sealed: with the suite's environment (conftest points conversations and the cache at folders of its own), a
    one-shot run and a piped chat write nothing under a fresh HOME: no history, no cache, no settings."""
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "XDG_CACHE_HOME": "", "XDG_DATA_HOME": "", "XDG_CONFIG_HOME": ""}
    one = run_cli("--model-path", str(smollm2), "--max-new-tokens", "4", "--prompt", "hi", **env)
    chat = run_cli("--model-path", str(smollm2), "--max-new-tokens", "4", stdin="hi\n/stats\n", **env)
    assert one.returncode == 0 and chat.returncode == 0, chat.stderr.decode()
    assert sorted(str(p.relative_to(home)) for p in home.rglob("*")) == []
