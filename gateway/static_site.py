"""A loopback static-file server for the dashboard's built assets, the upstream of Envoy's `/` and `/assets/`.

Envoy's `direct_response` only serves small bodies read at start-up, so the built single-page app (index.html
and hashed files under assets/) is served by this small server instead, on a loopback port that only the
gateway reaches. It serves exactly two kinds of path, `/` (index.html, never cached) and `/assets/<file>`
(content-hashed, cached for a year), reads every file into memory once at start, and answers anything else
with 404, so no request can walk outside the build directory.
"""

from __future__ import annotations

import dataclasses
import http.server
import logging
import pathlib
import threading
from typing import ClassVar

log = logging.getLogger("tastyplat.static_site")

ASSETS_PREFIX = "/assets/"
# The page may talk to its own origin only: every script, style, image and API call (connect-src) comes from
# the gateway, so nothing is loaded from outside the platform even if a dependency tried to.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
    ".map": "application/json",
}


class DashboardNotBuilt(RuntimeError):
    """The build directory has no index.html (run `make dashboard`)."""


@dataclasses.dataclass(frozen=True)
class _File:
    body: bytes
    content_type: str
    cache_control: str


def load_site(root: pathlib.Path) -> dict[str, _File]:
    """Every servable file of a Vite build, by request path.

    Raises:
        DashboardNotBuilt: `root` has no index.html.
    """
    index = root / "index.html"
    if not index.is_file():
        raise DashboardNotBuilt(f"{index} does not exist; build the dashboard with `make dashboard`")
    files = {"/": _File(index.read_bytes(), _TYPES[".html"], "no-cache")}
    assets = root / "assets"
    if assets.is_dir():
        for path in sorted(assets.iterdir()):
            if path.is_file():
                content_type = _TYPES.get(path.suffix.lower(), "application/octet-stream")
                files[ASSETS_PREFIX + path.name] = _File(
                    path.read_bytes(), content_type, "public, max-age=31536000, immutable"
                )
    return files


class _Handler(http.server.BaseHTTPRequestHandler):
    files: ClassVar[dict[str, _File]] = {}
    server_version = "tastyplat-static"
    sys_version = ""

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's naming)
        self._answer(with_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(with_body=False)

    def _answer(self, *, with_body: bool) -> None:
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        found = self.files.get(path)
        if found is None:
            self._plain(404, b"not found\n", with_body)
            return
        self.send_response(200)
        self.send_header("Content-Type", found.content_type)
        self.send_header("Content-Length", str(len(found.body)))
        self.send_header("Cache-Control", found.cache_control)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        if path == "/":
            self.send_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.end_headers()
        if with_body:
            self.wfile.write(found.body)

    def _plain(self, status: int, body: bytes, with_body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def _refuse(self) -> None:
        self.send_response(405)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse  # noqa: N815

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the stdlib's signature)
        log.debug("static %s", format % args)


class StaticSite:
    """The dashboard's static server on a loopback port, in a background thread.

    Args:
        root: The Vite build directory (index.html and assets/).
        host: Address to bind (loopback: only the gateway should reach it).
        port: Port to bind; 0 picks a free one (see `port` after `start`).
    """

    def __init__(self, root: pathlib.Path, host: str = "127.0.0.1", port: int = 0):
        self.root = root
        self.host = host
        self._port = port
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (after `start`)."""
        if self._server is None:
            raise RuntimeError("the static site is not started")
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Load the build and start serving.

        Raises:
            DashboardNotBuilt: the build directory has no index.html.
        """
        handler = type("DashboardHandler", (_Handler,), {"files": load_site(self.root)})
        self._server = http.server.ThreadingHTTPServer((self.host, self._port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="dashboard-static", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
