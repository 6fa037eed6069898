"""A local stand-in for the Hugging Face hub: serves model folders in the hub's URL layout, so the real
download code (huggingface_hub, with its progress bars) runs against it offline. HF_ENDPOINT points here."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from pathlib import Path

SHA = "0123456789abcdef0123456789abcdef01234567"  # the one commit every repo here has


def handler_for(repos: dict[str, Path], log: list[str]):
    class Hub(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _repo_file(self) -> tuple[str, str] | None:
            for repo in repos:  # /{repo}/resolve/{revision}/{file}
                prefix = f"/{repo}/resolve/"
                if self.path.startswith(prefix):
                    return repo, self.path[len(prefix) :].split("?")[0].split("/", 1)[1]
            return None

        def _json(self, body) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _missing(self) -> None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.send_header("X-Error-Code", "EntryNotFound")
            self.end_headers()

        def _file(self, body: bool) -> None:
            found = self._repo_file()
            if found is None or not (repos[found[0]] / found[1]).is_file():
                return self._missing()
            data = (repos[found[0]] / found[1]).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("ETag", '"' + hashlib.sha256(data).hexdigest() + '"')
            self.send_header("X-Repo-Commit", SHA)
            self.end_headers()
            if body:
                for i in range(0, len(data), 1 << 16):
                    self.wfile.write(data[i : i + 1 << 16])

        def do_HEAD(self):
            log.append("HEAD " + self.path)
            self._file(body=False)

        def do_GET(self):
            log.append("GET " + self.path)
            path = self.path.split("?")[0]
            for repo, folder in repos.items():
                files = sorted(f for f in folder.rglob("*") if f.is_file())
                if path in (
                    f"/api/models/{repo}",
                    f"/api/models/{repo}/revision/main",
                    f"/api/models/{repo}/revision/{SHA}",
                ):
                    return self._json(
                        {
                            "id": repo,
                            "modelId": repo,
                            "sha": SHA,
                            "private": False,
                            "siblings": [{"rfilename": str(f.relative_to(folder))} for f in files],
                        }
                    )
                if path in (f"/api/models/{repo}/tree/main", f"/api/models/{repo}/tree/{SHA}"):
                    return self._json(
                        [
                            {
                                "type": "file",
                                "path": str(f.relative_to(folder)),
                                "size": f.stat().st_size,
                                "oid": hashlib.sha1(f.read_bytes()).hexdigest(),
                            }
                            for f in files
                        ]
                    )
            self._file(body=True)

        def log_message(self, *args):
            pass

    return Hub


class Quiet(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that closed a kept-alive connection is not news


def serve(repos: dict[str, Path]):
    """(server, base URL, request log); stop with server.shutdown()."""
    log: list[str] = []
    server = Quiet(("127.0.0.1", 0), handler_for(repos, log))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}", log
