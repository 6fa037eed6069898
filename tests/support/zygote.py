"""CLI runs without paying for `import torch` each time (2 of the ~3.5 s a run of the CLI takes to start here).

One process (`python -m tests.support.zygote SOCKET`) imports torch and the CLI's other libraries that read no setting
at import (PRELOAD), and nothing of llm42, then forks a child for each run it is asked for. The child becomes what
`python example_cli.py ARGS` (or `python -m MODULE ARGS`) would be: the run's pipes or pseudo-terminal on fds 0-2
(and new sys.std* objects over them, made as Python's start-up makes them), its environment, its
working folder, argv and sys.path, llm42 imported fresh, and an exit through the interpreter's own (threads joined,
atexit, streams flushed; an uncaught Ctrl+C exits by SIGINT as Python's does). The test side (`run`) gets its exit
status from the zygote, which is the child's parent.

A run whose environment changes what a Python or torch reads while starting (PYTHON*, the locale, OpenMP/oneDNN/
ATen settings, LD_*) or that needs a `preexec_fn` starts a real process instead (tests/support/cli.py decides), as
does every run when LLM42_TEST_FORK=0."""

from __future__ import annotations

import io
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from pexpect import fdpexpect

PRELOAD = ("torch", "rich.markdown", "rich.live", "tokenizers", "safetensors", "jinja2.sandbox", "psutil")
# what an interpreter or torch reads once, while starting: a run that sets any of these differently gets a real process
AT_START = ("PYTHON", "LANG", "LC_", "LD_", "ATEN_", "OMP_", "GOMP_", "KMP_", "MKL_", "ONEDNN_", "DNNL_", "TORCH")


def serve(path: str) -> None:
    for name in PRELOAD:
        __import__(name)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(16)
    print("ready", flush=True)
    parent = os.getppid()
    listener.settimeout(2)
    while True:
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            if os.getppid() != parent:  # the test run is gone (killed before it could stop this): so is the zygote
                return
            continue
        conn.settimeout(None)
        message, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)  # stdin, stdout, stderr; or one terminal
        request = json.loads(message)
        pid = os.fork()
        if pid == 0:
            listener.close()
            conn.close()
            _become(request, fds)  # returns only into the interpreter's exit, via SystemExit or an exception
            return
        for fd in fds:
            os.close(fd)
        conn.sendall(f"{pid}\n".encode())
        threading.Thread(target=_report, args=(conn, pid), daemon=True).start()


def _report(conn: socket.socket, pid: int) -> None:
    """Wait for the child and send its exit status as subprocess gives it (-N: killed by signal N)."""
    _, status = os.waitpid(pid, 0)
    try:
        conn.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
    finally:
        conn.close()


def _become(request: dict, fds: list[int]) -> None:
    """In the forked child: take the run's streams, environment, folder and argv, and run the script."""
    import runpy

    streams = [(sys.__stdin__, "r"), (sys.__stdout__, "w"), (sys.__stderr__, "w")]
    if request.get("tty"):  # one pseudo-terminal for all three, this child's controlling terminal, as pexpect's are
        import fcntl
        import termios

        os.setsid()
        fcntl.ioctl(fds[0], termios.TIOCSCTTY, 0)
        fds = [fds[0], os.dup(fds[0]), os.dup(fds[0])]
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    made = [_stream(target, like, mode) for target, (like, mode) in enumerate(streams)]
    sys.stdin, sys.stdout, sys.stderr = made
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = made
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = list(request["argv"])
    if sys.argv[0] == "-m":  # python -m MODULE ARGS: the folder it runs in comes first on the path
        sys.argv = sys.argv[1:]
        sys.path[0] = os.getcwd()
        runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
    else:
        sys.path[0] = str(Path(sys.argv[0]).resolve().parent)
        runpy.run_path(sys.argv[0], run_name="__main__")


def _stream(fd: int, like, mode: str) -> io.TextIOWrapper:
    """A standard stream over `fd` as Python's start-up makes one: the encoding and error handler it chose for this
    environment (the zygote's, which equals the run's in what decides them), newlines untranslated, stdout
    line-buffered on a terminal, stderr always line-buffered."""
    raw = io.FileIO(fd, mode, closefd=False)
    buffered = io.BufferedReader(raw) if mode == "r" else io.BufferedWriter(raw)
    line = fd == 2 or (fd == 1 and os.isatty(fd))
    return io.TextIOWrapper(buffered, encoding=like.encoding, errors=like.errors, newline="\n", line_buffering=line)


class Zygote:
    """The test side: starts the zygote once, and runs the CLI through it."""

    def __init__(self, root: Path, env: dict, folder: Path):
        self.env = env
        self.path = str(folder / "zygote.sock")
        self.log = open(folder / "zygote.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.zygote", self.path],
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.log,
            start_new_session=True,  # a Ctrl+C in pytest's terminal does not reach it
        )
        if self.proc.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"the test zygote did not start: see {folder / 'zygote.log'}")

    def takes(self, env: dict) -> bool:
        """Whether a run with `env` can start from the zygote (else it needs a real process)."""
        keys = {*env, *self.env}
        return all(env.get(k) == self.env.get(k) for k in keys if k.startswith(AT_START))

    def run(self, argv: list[str], data: bytes, timeout: float, cwd: Path, env: dict) -> subprocess.CompletedProcess:
        """subprocess.run(argv, input=data, capture_output=True, timeout=timeout) for `python SCRIPT ARGS` or
        `python -m MODULE ARGS`."""
        r0, w0 = os.pipe()
        r1, w1 = os.pipe()
        r2, w2 = os.pipe()
        pid, replies = self._start(argv, cwd, env, [r0, w1, w2])
        try:
            out, err = _communicate(w0, r1, r2, data, time.monotonic() + timeout)
        except subprocess.TimeoutExpired:
            os.kill(pid, signal.SIGKILL)
            raise subprocess.TimeoutExpired(argv, timeout) from None
        finally:
            code = replies.line()
            replies.close()
        return subprocess.CompletedProcess(argv, int(code), out, err)

    def _start(self, argv: list[str], cwd: Path, env: dict, fds: list[int], tty: bool = False):
        """Ask for a child with `fds` as its streams (closed here once sent); (pid, its replies)."""
        conn = socket.socket(socket.AF_UNIX)
        conn.connect(self.path)
        request = dict(argv=argv[1:], cwd=str(cwd), env=env, tty=tty)
        socket.send_fds(conn, [json.dumps(request).encode()], fds)
        for fd in fds:
            os.close(fd)
        replies = Replies(conn)
        return int(replies.line()), replies

    def spawn(self, argv: list[str], cwd: Path, env: dict, dimensions: tuple[int, int], **kwargs) -> Spawned:
        """pexpect.spawn(argv[0], argv[1:], cwd=cwd, env=env, dimensions=dimensions, **kwargs)."""
        master, slave = os.openpty()
        _winsize(slave, *dimensions)
        pid, replies = self._start(argv, cwd, env, [slave], tty=True)
        return Spawned(master, pid, replies, **kwargs)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.log.close()


def _communicate(w0: int, r1: int, r2: int, data: bytes, deadline: float) -> tuple[bytes, bytes]:
    """Write `data` to the child's stdin (then close it) while reading its stdout and stderr to their ends."""
    chunks: dict[int, list[bytes]] = {r1: [], r2: []}
    sel = selectors.DefaultSelector()
    os.set_blocking(w0, False)
    if data:
        sel.register(w0, selectors.EVENT_WRITE)
    else:
        os.close(w0)
    for fd in (r1, r2):
        sel.register(fd, selectors.EVENT_READ)
    view = memoryview(data)
    try:
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired("", 0)
            for key, _ in sel.select(left):
                fd = key.fd
                if fd == w0:
                    try:
                        view = view[os.write(w0, view[:65536]) :]
                    except BrokenPipeError:
                        view = view[:0]
                    if not view:
                        sel.unregister(w0)
                        os.close(w0)
                    continue
                chunk = os.read(fd, 65536)
                if chunk:
                    chunks[fd].append(chunk)
                else:
                    sel.unregister(fd)
                    os.close(fd)
    finally:
        for key in list(sel.get_map().values()):
            sel.unregister(key.fd)
            os.close(key.fd)
        sel.close()
    return b"".join(chunks[r1]), b"".join(chunks[r2])


def _winsize(fd: int, rows: int, cols: int) -> None:
    """Set the size of the terminal `fd` belongs to (its program is sent SIGWINCH)."""
    import fcntl
    import struct
    import termios

    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class Spawned(fdpexpect.fdspawn):
    """What tests use of pexpect.spawn, for a child the zygote forked onto a pseudo-terminal: expect and send (pexpect's
    own, on the terminal's master side), and pid, kill, sendcontrol, sendeof, setwinsize, wait, isalive, close,
    exitstatus and signalstatus as pexpect.spawn has them."""

    def __init__(self, master: int, pid: int, replies, **kwargs):
        super().__init__(master, **kwargs)
        self.pid, self._replies = pid, replies
        self.exitstatus = self.signalstatus = self.status = None
        self.delayafterclose, self.delayafterterminate = 0.1, 0.1

    def _ended(self, code: int) -> None:
        self.status = code
        self.exitstatus, self.signalstatus = (code, None) if code >= 0 else (None, -code)
        self.terminated = True
        self._replies.close()

    def isalive(self) -> bool:
        if self.status is not None:
            return False
        if (line := self._replies.line(block=False)) is not None:
            self._ended(int(line))
            return False
        return True

    def wait(self) -> int | None:
        if self.status is None:
            self._ended(int(self._replies.line()))
        return self.exitstatus

    def kill(self, sig: int) -> None:
        if self.isalive():
            os.kill(self.pid, sig)

    def sendcontrol(self, char: str) -> int:
        char = char.lower()
        if "a" <= char <= "z":
            return self.send(chr(ord(char) - 96))
        return self.send(chr({"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31, "?": 127}[char]))

    def sendeof(self) -> None:
        self.send("\x04")  # a fresh terminal's end-of-file character

    def setwinsize(self, rows: int, cols: int) -> None:
        _winsize(self.child_fd, rows, cols)

    def close(self, force: bool = True) -> None:
        """As pexpect's: the terminal closed (the child is sent a hangup), then, if it still runs, SIGHUP, SIGCONT,
        SIGINT and, with `force`, SIGKILL."""
        if not self.closed:
            super().close()
        time.sleep(self.delayafterclose)
        for sig in (signal.SIGHUP, signal.SIGCONT, signal.SIGINT, *((signal.SIGKILL,) if force else ())):
            if not self.isalive():
                break
            self.kill(sig)
            time.sleep(self.delayafterterminate)
        self.wait()


class Replies:
    """The zygote's lines about one child: its pid, then its exit status when it ends."""

    def __init__(self, conn: socket.socket):
        self.conn, self.buf = conn, b""

    def line(self, block: bool = True) -> str | None:
        """The next line; None if it has not come yet and `block` is False."""
        while b"\n" not in self.buf:
            self.conn.setblocking(block)
            try:
                chunk = self.conn.recv(64)
            except BlockingIOError:
                return None
            if not chunk:
                raise EOFError("the test zygote closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def close(self) -> None:
        self.conn.close()


if __name__ == "__main__":
    serve(sys.argv[1])
