"""A loopback HTTP server for download tests: no test ever leaves 127.0.0.1.

Register bytes or JSON under a path, optionally with headers, a required basic-auth pair, a
redirect, or a switch that drops the connection mid-body once (optionally after going silent, to
trip the client's read timeout). The server answers ``Range``
requests with 206 (or 416), records every request (method, path, headers) for assertions, and
runs in a background thread. Use the ``loopback`` fixture (import it into a test module).
"""

from __future__ import annotations

import base64
import io
import json
import re
import tarfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from requests.structures import CaseInsensitiveDict


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    drop_after: int | None = None      # GET: send this many body bytes, then drop (once)
    stall: float = 0.0                 # with drop_after: go silent this long before dropping
    auth: tuple[str, str] | None = None   # required basic auth (401 otherwise)
    redirect: str | None = None        # answer 302 with this Location (after the auth check)
    ranges: bool = True                # honour Range headers (False: always 200 with the full body)
    dropped: bool = False


@dataclass
class Seen:
    method: str
    path: str
    headers: CaseInsensitiveDict     # header names as any client spells them


class LoopbackServer:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):   # keep test output clean
                pass

            def do_HEAD(self):
                self._answer(head=True)

            def do_GET(self):
                self._answer(head=False)

            def _answer(self, head: bool) -> None:
                path = self.path.split("?", 1)[0]
                with server._lock:
                    server.seen.append(Seen(self.command, self.path, CaseInsensitiveDict(self.headers.items())))
                    route = server.routes.get(path)
                if route is None:
                    return self._send(404, b"not found", {})
                if route.auth is not None:
                    want = "Basic " + base64.b64encode(":".join(route.auth).encode()).decode()
                    if self.headers.get("Authorization") != want:
                        return self._send(401, b"unauthorised", {"WWW-Authenticate": 'Basic realm="api"'},
                                          head=head)
                if route.redirect is not None:
                    return self._send(302, b"", {"Location": route.redirect, **route.headers}, head=head)
                if route.status != 200:
                    return self._send(route.status, route.body, route.headers, head=head)
                body, status, headers = route.body, 200, {"Accept-Ranges": "bytes", **route.headers}
                m = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
                if m and route.ranges:
                    start = int(m.group(1))
                    end = int(m.group(2)) if m.group(2) else len(body) - 1
                    if start >= len(body):
                        return self._send(416, b"", {"Content-Range": f"bytes */{len(body)}"}, head=head)
                    headers["Content-Range"] = f"bytes {start}-{end}/{len(body)}"
                    body, status = body[start:end + 1], 206
                if not head and route.drop_after is not None and not route.dropped:
                    route.dropped = True
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: route.drop_after])
                    self.wfile.flush()
                    time.sleep(route.stall)         # a silent server: the client's read timeout fires
                    self.close_connection = True    # the client sees a short body
                    return
                self._send(status, body, headers, head=head)

            def _send(self, status: int, body: bytes, headers: dict, head: bool = False) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def other_host_url(self) -> str:
        """The same server under another host name: a stand-in for a CDN or storage host."""
        return f"http://localhost:{self.port}"

    def add(self, path: str, body: bytes = b"", **kw) -> Route:
        route = Route(body=body, **kw)
        self.routes[path] = route
        return route

    def add_json(self, path: str, obj, **kw) -> Route:
        headers = {"Content-Type": "application/json", **kw.pop("headers", {})}
        return self.add(path, json.dumps(obj).encode(), headers=headers, **kw)

    def requests_for(self, path: str, method: str | None = None) -> list[Seen]:
        return [s for s in self.seen if s.path.split("?", 1)[0] == path and method in (None, s.method)]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def loopback():
    server = LoopbackServer()
    try:
        yield server
    finally:
        server.close()


# ----------------------------------------------------------------------------- archive builders


def make_zip(files: dict[str, bytes], symlinks: dict[str, str] | None = None,
             compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip of ``files``; ``symlinks`` adds entries flagged as symbolic links (name -> target)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (0o120777 << 16)
            zf.writestr(info, target)
    return buf.getvalue()


def make_tar(files: dict[str, bytes], symlinks: dict[str, str] | None = None,
             hardlinks: dict[str, str] | None = None, mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for kind, links in ((tarfile.SYMTYPE, symlinks), (tarfile.LNKTYPE, hardlinks)):
            for name, target in (links or {}).items():
                info = tarfile.TarInfo(name)
                info.type = kind
                info.linkname = target
                tf.addfile(info)
    return buf.getvalue()
