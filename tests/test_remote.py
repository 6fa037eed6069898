"""llm42 as a client of a real OpenAI-compatible server (transformers serve with SmolLM2)."""

import json
import re
import signal
import subprocess
import sys
import time

import jinja2.sandbox
import pytest

from llm42.chat.transcript import load
from llm42.template import TEMPLATE_42DOT
from tests.support import fake_server
from tests.support.cli import ROOT, Screen, cli_env, run_cli, spawn_cli, stop_a_reply_then_ask_again
from tests.support.serve import start_server, stop_server

pytestmark = pytest.mark.slow  # end to end: the full suite and CI run it, the quick tier does not


def remote(server, *args, stdin="", history=None):
    url, _ = server
    extra = ["--history-dir", str(history)] if history else ["--no-history"]
    return run_cli("--endpoint", url, "--max-new-tokens", "40", *extra, *args, stdin=stdin)


def test_piped_multi_turn_chat_through_the_server(smollm2_server, tmp_path):
    r = remote(
        smollm2_server,
        "--temperature",
        "0",
        history=tmp_path,
        stdin="What is the capital of France?\nAnd what is the capital of Germany?\n",
    )
    out, err = r.stdout.decode(), r.stderr.decode()
    assert r.returncode == 0, err
    assert "Paris" in out.splitlines()[0] and "Berlin" in out
    assert err.count("does not take top_k or repetition_penalty") == 1  # said once, then sampled without them
    (path,) = tmp_path.glob("*.jsonl")
    events = [json.loads(line) for line in path.read_text().splitlines()]
    replies = [e for e in events if e["event"] == "assistant"]
    assert len(replies) == 2 and all(e["stats"]["completion_tokens"] > 1 for e in replies)  # streamed in pieces
    assert len(load(path).dialog.messages) == 4


def test_unreachable_server_and_unknown_model_are_one_line(smollm2_server):
    r = run_cli("--endpoint", "http://127.0.0.1:9/v1", "--prompt", "hi", "--no-history")
    err = r.stderr.decode().strip()
    assert r.returncode == 1 and err.startswith("llm42: error: cannot reach http://127.0.0.1:9/v1") and "\n" not in err
    r = remote(smollm2_server, "--model", "no-such-model", "--prompt", "hi")
    err = r.stderr.decode().strip().splitlines()[-1]
    assert r.returncode == 1 and "has no model 'no-such-model'; it has:" in err


def test_remote_mode_never_imports_torch_or_transformers(fake):
    url, _ = fake
    r = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            str(ROOT / "example_cli.py"),
            "--endpoint",
            url,
            "--no-history",
            "--prompt",
            "hi",
        ],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=60,
    )
    assert r.returncode == 0 and r.stdout.strip() == "Hello there!", r.stderr[-2000:]
    imported = {
        line.split("|")[-1].strip().split(".")[0] for line in r.stderr.splitlines() if line.startswith("import time:")
    }
    assert "openai" in imported and "rich" in imported  # the check sees real imports
    assert not imported & {"torch", "transformers", "tokenizers", "safetensors"}


def test_an_endpoint_without_v1_is_tried_with_it(fake):
    url, _ = fake
    bare = url.removesuffix("/v1")
    r = run_cli("--endpoint", bare, "--no-history", "--prompt", "hi")
    err = r.stderr.decode()
    assert r.returncode == 0 and r.stdout.decode().strip() == "Hello there!", err
    assert f"{bare} has no API; using {url}" in err and "None" not in err


def test_the_server_dying_mid_reply_shows_the_partial_once_and_says_so(fake, tmp_path):
    url, handler = fake
    handler.reply, handler.die_after, handler.delay = ["First words", " of a reply", " that never ends"], 2, 0.3
    screen = Screen(spawn_cli("--endpoint", url, "--history-dir", str(tmp_path)))
    screen.expect(">>>")
    screen.child.sendline("Tell me a story.")
    screen.expect(r"\[connection lost: .*\]")
    text = screen.leave()
    assert text.count("First words of a reply") == 1 and text.count("[connection lost") == 1, text
    assert re.search(
        r"\[connection lost: http://127\.0\.0\.1:\d+/v1 stopped answering in the middle of the reply "
        r"\(\w+\); the part that came is kept\]",
        " ".join(text.split()),
    ), text
    assert "cannot reach" not in text  # not a start-up problem
    (path,) = tmp_path.glob("*.jsonl")
    (reply,) = [json.loads(line) for line in path.read_text().splitlines() if '"assistant"' in line]
    assert reply["content"] == "First words of a reply" and reply["finish_reason"] == "connection lost"


def test_endpoint_with_quantize_is_refused():
    r = run_cli("--endpoint", "http://127.0.0.1:9/v1", "--quantize", "int4")
    assert r.returncode == 2 and "not with --endpoint" in r.stderr.decode()


@pytest.fixture
def fake():
    """A scripted server: (base URL, handler class whose attributes say what it does)."""
    server, url, handler = fake_server.serve()
    yield url, handler
    server.shutdown()


def test_a_refused_api_key_at_start_is_one_line(fake):
    url, handler = fake
    handler.models = 401
    r = run_cli(
        "--endpoint",
        url,
        "--api-key-env",
        "LLM42_TEST_KEY",
        "--prompt",
        "hi",
        "--no-history",
        LLM42_TEST_KEY="sk-wrong-secret",
    )
    err = r.stderr.decode()
    assert (
        r.returncode == 1
        and err.strip()
        == f"llm42: error: {url} refused the API key (HTTP 401): check the variable named by --api-key-env"
    )
    assert "sk-wrong-secret" not in err


@pytest.mark.parametrize(
    "code, words",
    [
        (401, "refused the API key (HTTP 401)"),
        (404, "has no model 'm' or no chat endpoint (HTTP 404)"),
        (429, "is rate-limiting (HTTP 429): wait a moment"),
        (500, "answered HTTP 500"),
    ],
)
def test_http_errors_mid_chat_are_said_and_the_chat_goes_on(fake, tmp_path, code, words):
    url, handler = fake
    handler.chat = code
    r = run_cli("--endpoint", url, "--model", "m", "--history-dir", str(tmp_path), stdin="hello\nagain\n")
    err = r.stderr.decode()
    assert r.returncode == 0 and err.count(f"message not sent: {url} {words}") == 2, err
    assert "Traceback" not in err


def test_ctrl_c_mid_stream_keeps_the_session(smollm2_server, tmp_path):
    url, _ = smollm2_server
    child = spawn_cli(
        "--endpoint", url, "--max-new-tokens", "300", "--temperature", "0", "--history-dir", str(tmp_path)
    )
    stop_a_reply_then_ask_again(child, wait=4)
    (path,) = tmp_path.glob("*.jsonl")
    messages = load(path).dialog.messages
    assert messages[1].interrupted and not messages[3].interrupted


def test_server_killed_mid_reply_keeps_the_partial_and_goes_on(smollm2, tmp_path):
    proc, url, out = start_server(smollm2)
    try:
        child = spawn_cli(
            "--endpoint", url, "--max-new-tokens", "400", "--temperature", "0", "--history-dir", str(tmp_path)
        )
        child.expect(">>>")
        child.sendline("Write a very long story about a dragon who learns to cook.")
        time.sleep(5)
        proc.send_signal(signal.SIGKILL)
        child.expect("connection lost", timeout=60)
        child.expect(">>>")
        child.sendcontrol("d")
        child.expect(pytest.importorskip("pexpect").EOF)
        child.close()
        assert child.exitstatus == 0
    finally:
        stop_server(proc, out)
    (path,) = tmp_path.glob("*.jsonl")
    events = [json.loads(line) for line in path.read_text().splitlines()]
    reply = [e for e in events if e["event"] == "assistant"][-1]
    assert reply.get("interrupted") and reply["finish_reason"] == "connection lost"


def test_shipped_template_renders_like_llm42_for_a_serving_engine(tiny42_loaded):
    """vLLM renders --chat-template files in a sandboxed Jinja environment; the result must equal llm42's prompt."""
    tok = tiny42_loaded[1]
    messages = [
        {"role": "user", "content": "안녕하세요"},
        {"role": "assistant", "content": "안녕하세요! 무엇을 도와드릴까요?"},
        {"role": "user", "content": "한국의 수도는 어디인가요?"},
    ]
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    engine_text = env.from_string(TEMPLATE_42DOT).render(
        messages=messages, bos_token=tok.bos_token, eos_token=tok.eos_token, add_generation_prompt=True
    )
    tok.chat_template = TEMPLATE_42DOT
    assert engine_text == tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert engine_text.endswith("<human>: 한국의 수도는 어디인가요? <bot>:")
