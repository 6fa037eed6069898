"""A scripted OpenAI-compatible server for the remote backend's tests: it lists model "m" and answers each
chat request as told (stream a reply, refuse with an HTTP status, or die mid-reply), the way real servers do
(HTTP/1.1, chunked server-sent events). transformers serve never refuses a key nor dies on cue."""

from __future__ import annotations

import http.server
import json
import threading
import time


def _chunk(content: str | None = None, finish: str | None = None, usage: dict | None = None) -> bytes:
    body = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "choices": []
        if usage
        else [{"index": 0, "delta": {"content": content} if content else {}, "finish_reason": finish}],
    }
    if usage:
        body["usage"] = usage
    return b"data: " + json.dumps(body).encode() + b"\n\n"


class Script(http.server.BaseHTTPRequestHandler):
    """Class attributes say what to do; a test sets them on its own subclass."""

    protocol_version = "HTTP/1.1"
    models = 200  # status of GET /v1/models
    chat = 200  # status of POST /v1/chat/completions
    reply = ["Hello", " there", "!"]  # streamed pieces
    die_after: int | None = None  # close the connection after this many pieces
    delay = 0.0  # seconds between pieces
    prefix = "/v1"  # where the API lives (/models without it is a 404)

    def _send(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, code: int) -> None:
        self._send(code, {"error": {"message": f"status {code}", "type": "test", "code": code}})

    def do_GET(self):
        if self.path != self.prefix + "/models":
            return self._error(404)
        if self.models != 200:
            return self._error(self.models)
        self._send(200, {"object": "list", "data": [{"id": "m", "object": "model", "created": 0, "owned_by": "t"}]})

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path != self.prefix + "/chat/completions":
            return self._error(404)
        if self.chat != 200:
            return self._error(self.chat)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def write(data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        for i, piece in enumerate(self.reply):
            if self.die_after is not None and i == self.die_after:
                self.wfile.write(b'40\r\ndata: {"trunc')  # half a chunk, then the process is gone
                self.wfile.flush()
                self.close_connection = True
                return
            write(_chunk(piece))
            time.sleep(self.delay)
        write(_chunk(finish="stop"))
        write(
            _chunk(
                usage={"prompt_tokens": 7, "completion_tokens": len(self.reply), "total_tokens": 7 + len(self.reply)}
            )
        )
        write(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, *args):
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass


def serve(**script):
    """(server, base URL with /v1, the handler class to change later); stop with server.shutdown()."""
    handler = type("Handler", (Script,), script)
    server = _Server(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1", handler
