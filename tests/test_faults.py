"""Break it on purpose: bad flags, bad model files, bad input, signals. Each ends in one clear line
(or a warning and the chat goes on), never a traceback, and no completed turn is lost."""

import json
import shutil
import signal

import pytest
import torch

from llm42.chat.transcript import load
from tests.support.cli import one_turn_then_a_long_reply, run_cli, spawn_cli

pytestmark = pytest.mark.slow  # end to end: the full suite and CI run it, the quick tier does not


def copy_model(src, dst, **config_changes):
    shutil.copytree(src, dst)
    if config_changes:
        cfg = json.loads((dst / "config.json").read_text())
        cfg.update(config_changes)
        (dst / "config.json").write_text(json.dumps(cfg))
    return dst


def truncated(tiny42, tmp):
    d = copy_model(tiny42, tmp / "trunc")
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])
    return d


def garbage(tiny42, tmp):
    d = copy_model(tiny42, tmp / "garbage")
    (d / "model.safetensors").write_bytes(bytes(range(256)) * 40)
    return d


def pickled(tiny42, tmp):
    from safetensors.torch import load_file

    d = copy_model(tiny42, tmp / "pickle")
    torch.save(load_file(d / "model.safetensors"), d / "pytorch_model.bin")
    (d / "model.safetensors").unlink()
    return d


def not_gguf(tiny42, tmp):
    (tmp / "fake.gguf").write_text("this is not a GGUF file")
    return tmp / "fake.gguf"


def no_config(tiny42, tmp):
    (tmp / "empty").mkdir()
    return tmp / "empty"


# (id, extra args, how to make the model path (None: the tiny model), stdin, exit code, message)
FATAL = [
    ("unknown flag", ["--frobnicate"], None, "", 2, "unrecognized arguments: --frobnicate"),
    ("temperature not a number", ["--temperature", "warm"], None, "", 2, "temperature must be a number"),
    ("negative temperature", ["--temperature", "-0.1"], None, "", 2, "temperature must be >= 0"),
    ("top-p zero", ["--top-p", "0"], None, "", 2, "top-p must be in (0, 1]"),
    ("top-p above one", ["--top-p", "1.01"], None, "", 2, "top-p must be in (0, 1]"),
    ("negative top-k", ["--top-k", "-3"], None, "", 2, "top-k must be >= 0"),
    ("zero max tokens", ["--max-new-tokens", "0"], None, "", 2, "max new tokens must be >= 1"),
    ("max tokens beyond the window", ["--max-new-tokens", "400"], None, "", 2, "400 must be below the 320-token"),
    ("unknown device", ["--device", "tpu"], None, "", 2, "unknown device 'tpu'"),
    (
        "endpoint with quantize",
        ["--endpoint", "http://127.0.0.1:9/v1", "--quantize", "int8"],
        None,
        "",
        2,
        "not with --endpoint",
    ),
    (
        "prompt and prompt file",
        ["--prompt", "a", "--prompt-file", "b"],
        None,
        "",
        2,
        "either --prompt or --prompt-file",
    ),
    ("missing prompt file", ["--prompt-file", "/no/such.txt"], None, "", 2, "cannot read --prompt-file /no/such.txt"),
    ("missing model folder", ["--model-path", "/no/such/model"], "raw", "", 1, "no model folder at /no/such/model"),
    ("folder without config", [], no_config, "", 1, "has no config.json"),
    (
        "unsupported architecture",
        [],
        lambda t, d: copy_model(t, d / "arch", model_type="nope_arch"),
        "",
        1,
        "does not recognize this architecture",
    ),
    ("truncated safetensors", [], truncated, "", 1, "are damaged or incomplete"),
    ("garbage safetensors", [], garbage, "", 1, "are damaged or incomplete"),
    ("not a GGUF", [], not_gguf, "", 1, "not a GGUF file"),
    ("pickle checkpoint", [], pickled, "", 1, "only pickle weights (pytorch_model.bin)"),
    (
        "needs remote code",
        [],
        lambda t, d: copy_model(
            t, d / "custom", model_type="custom42", auto_map={"AutoConfig": "configuration_x.XConfig"}
        ),
        "",
        1,
        "--trust-remote-code",
    ),
    (
        "hub id while offline",
        ["--model-path", "someone/some-model"],
        "raw",
        "",
        1,
        "not in the local cache and the Hugging Face hub cannot be reached",
    ),
    ("absent GPU", ["--device", "cuda"], None, "", 1, "no CUDA GPU is visible"),
    ("absent MPS", ["--device", "mps"], None, "", 1, "MPS backend is not available"),
    ("unknown conversation", ["--resume", "nope"], None, "", 1, "no conversation 'nope'"),
    ("message alone too long, one-shot", ["--prompt", "가나다라 " * 400], None, "", 2, "window is 320 tokens"),
]


@pytest.mark.parametrize("name, args, make, stdin, code, message", FATAL, ids=[row[0] for row in FATAL])
def test_fatal_faults_end_in_one_line(tiny42, tmp_path, name, args, make, stdin, code, message):
    model = [] if make == "raw" else ["--model-path", str(make(tiny42, tmp_path) if make else tiny42)]
    r = run_cli(*model, "--max-new-tokens", "8", "--history-dir", str(tmp_path / "h"), *args, stdin=stdin, timeout=120)
    err = r.stderr.decode()
    last = err.strip().splitlines()[-1]
    assert r.returncode == code, err
    assert last.startswith("llm42: error: ") and message in last, err
    assert "Traceback" not in err


def test_pickle_loads_when_allowed(tiny42, tmp_path):
    r = run_cli(
        "--model-path",
        str(pickled(tiny42, tmp_path)),
        "--allow-pickle",
        "--max-new-tokens",
        "4",
        "--no-history",
        "--prompt",
        "안녕",
    )
    assert r.returncode == 0, r.stderr.decode()


def _short_of_memory(model, tmp_path, limit_in) -> str:
    """Run the CLI with SmolLM2 in fp32 (about 1.2 GiB needed) inside a memory limit; its last line."""
    r = run_cli(
        "--model-path",
        str(model),
        "--dtype",
        "float32",
        "--prompt",
        "hi",
        "--history-dir",
        str(tmp_path),
        timeout=120,
        preexec_fn=limit_in,
    )
    err = r.stderr.decode()
    assert r.returncode == 1, err
    assert "loaded in" not in err and "Traceback" not in err  # said before loading anything
    return err.strip().splitlines()[-1]


def test_not_enough_memory_under_ulimit_is_said_before_loading(smollm2, tmp_path):
    import resource

    limit = int(1.4 * 2**30)  # address space: Python with torch and transformers imported takes about 0.8 GiB of it
    last = _short_of_memory(smollm2, tmp_path, lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))
    assert last.startswith("llm42: error: the model needs about 1.") and " in fp32 but only 0." in last, last
    assert "under ulimit -v; raise that limit or try --quantize int8" in last


def test_not_enough_memory_in_a_container_is_said_before_loading(smollm2, tmp_path):
    """psutil sees the host's RAM inside a container; llm42 reads the cgroup's limit. Needs a writable cgroup."""
    import os
    from pathlib import Path

    own = next(
        (
            line.split(":", 2)[2]
            for line in Path("/proc/self/cgroup").read_text().splitlines()
            if "memory" in line.split(":")[1].split(",")
        ),
        None,
    )
    group = Path("/sys/fs/cgroup/memory" + (own or "/")) / f"llm42-test-{os.getpid()}"
    try:
        group.mkdir()
        (group / "memory.limit_in_bytes").write_text(str(900 * 2**20))
    except OSError as e:
        pytest.skip(f"no writable cgroup v1 memory controller here ({e.strerror})")
    try:
        last = _short_of_memory(smollm2, tmp_path, lambda: (group / "cgroup.procs").write_text(str(os.getpid())))
    finally:
        group.rmdir()
    assert " in fp32 but only 0." in last and "under this container's (cgroup's) memory limit" in last, last


# Faults the chat survives: (id, stdin bytes, what stderr must say, how many replies)
SURVIVED = [
    ("empty and blank lines", b"\n   \n\t\n", None, 0),
    ("invalid UTF-8 on stdin", b"\xff\xfe \xed\xa0\x80 hello \xc3\x28\n", None, 1),
    ("huge paste of 1 MB", ("가" * 350_000 + "\n").encode() + "안녕\n".encode(), "message not sent", 1),
    ("unknown command", b"/nope\n", "unknown command /nope", 0),
    ("slash message", b"//not a command\n", None, 1),
]


@pytest.mark.parametrize("name, stdin, said, replies", SURVIVED, ids=[row[0] for row in SURVIVED])
def test_bad_input_the_chat_survives(tiny42, tmp_path, name, stdin, said, replies):
    r = run_cli(
        "--model-path",
        str(tiny42),
        "--max-new-tokens",
        "6",
        "--seed",
        "0",
        "--history-dir",
        str(tmp_path),
        stdin=stdin,
        timeout=180,
    )
    err = r.stderr.decode()
    assert r.returncode == 0 and "Traceback" not in err, err
    if said:
        assert said in err
    files = list(tmp_path.glob("*.jsonl"))
    got = sum(1 for m in load(files[0]).dialog.messages if m.role.value == "assistant") if files else 0
    assert got == replies


def test_huge_paste_into_the_terminal(tiny42, tmp_path):
    """1 MB pasted at the prompt (bracketed paste, as terminals send it): refused in a line, the chat goes on."""
    import pexpect

    child = spawn_cli("--model-path", str(tiny42), "--max-new-tokens", "8", "--history-dir", str(tmp_path))
    child.expect(">>>")
    child.send("\x1b[200~" + "가" * 350_000 + "\x1b[201~")
    child.send("\r")
    child.expect("message not sent", timeout=60)
    child.expect(">>>")
    child.sendline("안녕하세요")
    child.expect(r"context \d+/320 tokens")  # the next message was answered
    child.expect(">>>")
    child.sendcontrol("d")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_model_output_never_drives_the_terminal(tiny42, tmp_path):
    """A random model emits every byte, ESC and other controls included: none reaches the screen raw."""
    r = run_cli(
        "--model-path",
        str(tiny42),
        "--max-new-tokens",
        "300",
        "--seed",
        "7",
        "--no-history",
        "--repetition-penalty",
        "1.0",
        "--temperature",
        "1.5",
        "--top-k",
        "0",
        stdin="안녕\n한국의 수도는?\n오늘 날씨\n",
    )
    out = r.stdout.decode("utf-8", errors="replace")
    assert r.returncode == 0
    assert not any(c in out for c in "\x1b\x07\x08\x0b\x0c\r\x00\x7f")


def test_dumb_terminal_and_narrow_window(smollm2, tmp_path):
    import pexpect

    child = pexpect.spawn(
        *_argv(smollm2, tmp_path), env=_env(TERM="dumb"), encoding="utf-8", dimensions=(24, 20), timeout=120
    )
    child.expect(">")
    child.sendline("What is the capital of France?")
    child.expect("Paris")
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_ctrl_c_while_loading_is_one_line(smollm2, tmp_path):
    child = spawn_cli("--model-path", str(smollm2), "--history-dir", str(tmp_path))
    child.expect("starting PyTorch")  # the first status: loading goes on for a few hundred ms (a fixed 0.4 s wait
    child.sendcontrol("c")  # met the prompt once a warm start took 0.6 s)
    child.expect(pytest.importorskip("pexpect").EOF)
    child.close()
    assert child.exitstatus in (0, 130) and "Traceback" not in child.before


def test_sigterm_leaves_cleanly_with_the_transcript_on_disk(smollm2, tmp_path):
    child = spawn_cli(
        "--model-path", str(smollm2), "--temperature", "0", "--history-dir", str(tmp_path), "--max-new-tokens", "300"
    )
    one_turn_then_a_long_reply(child)
    child.kill(signal.SIGTERM)
    child.expect(pytest.importorskip("pexpect").EOF)
    child.close()
    assert child.exitstatus == 143 and "Traceback" not in child.before
    (path,) = tmp_path.glob("*.jsonl")
    assert "Paris" in load(path).dialog.messages[1].content


def _argv(model, history):
    import sys

    from tests.support.cli import ROOT

    return sys.executable, [
        str(ROOT / "example_cli.py"),
        "--model-path",
        str(model),
        "--temperature",
        "0",
        "--max-new-tokens",
        "40",
        "--history-dir",
        str(history),
    ]


def _env(**extra):
    from tests.support.cli import cli_env

    return cli_env(**extra)


@pytest.mark.slow
def test_chaos_interrupts_and_kills_lose_nothing(smollm2):
    """A short chaos run in CI (3 Ctrl+C, 1 kill: each kind of moment is tested on its own elsewhere);
    `python tools/chaos.py --model ...` runs the full 50 + 20."""
    import subprocess
    import sys

    from tests.support.cli import ROOT

    r = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "chaos.py"),
            "--model",
            str(smollm2),
            "--interrupts",
            "3",
            "--kills",
            "1",
            "--seed",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert "{" in r.stdout, r.stderr[-3000:]
    report = json.loads(r.stdout[r.stdout.index("{") :])
    assert r.returncode == 0, (report, r.stderr[-3000:])
    assert report["sessions_survived"] == 3 and report["replies_in_transcript"] == 4
    assert report["completed_turns_lost"] == 0 and report["completed_turns"] >= 1
