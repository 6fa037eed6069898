"""A real OpenAI-compatible server for the remote tests: `transformers serve` on a free localhost port."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .cli import cli_env
from .models import CACHE


def start_server(model: Path):
    """`transformers serve` with `model` on a free localhost port: a real OpenAI-compatible server."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = CACHE / f"serve-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    out = open(log, "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "transformers.cli.transformers",
            "serve",
            str(model),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--device",
            "cpu",
            "--dtype",
            "float32",  # the folder is bf16; a CPU without bf16 arithmetic runs PyTorch's bf16 kernels slowly
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
        env=cli_env(),
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            if urllib.request.urlopen(url + "/health", timeout=1).status == 200:
                return proc, url + "/v1", out
        except OSError:
            time.sleep(0.5)
        if proc.poll() is not None:
            break
    proc.kill()
    pytest.fail("transformers serve did not start: " + log.read_text()[-2000:])


def stop_server(proc, out) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except Exception:
        proc.kill()
    out.close()
    Path(out.name).unlink(missing_ok=True)  # kept only when the server failed to start
