"""A local fake of the FCM HTTP v1 API (``POST /v1/projects/{project}/messages:send``) for firebase-admin.

Wire format reproduced: a JSON body ``{"message": {...}, "validate_only": bool}``; 200 with
``{"name": "projects/{project}/messages/{id}"}``; errors in Google's envelope ``{"error": {"code", "message",
"status", "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode"}]}}``:
404 UNREGISTERED for a token marked unregistered, 503 UNAVAILABLE and 500 INTERNAL on demand (optionally after
recording the message as delivered, the "accepted, then the response failed" case).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = ["FakeFcm"]


@dataclass
class FakeFcm:
    """The fake endpoint on 127.0.0.1; ``endpoint`` replaces ``https://fcm.googleapis.com``."""

    project_id: str = "demo-tastyplat"
    delivered: list[dict[str, Any]] = field(default_factory=list)
    posts: list[dict[str, Any]] = field(default_factory=list)
    unregistered: set[str] = field(default_factory=set)
    _faults: list[tuple[int, bool]] = field(default_factory=list)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _runner: web.AppRunner | None = None
    endpoint: str = ""

    def fail_next(self, status: int, *, count: int = 1, deliver_anyway: bool = False) -> None:
        """Make the next ``count`` sends answer ``status`` (500 or 503), delivering first if asked."""
        self._faults.extend((status, deliver_anyway) for _ in range(count))

    async def start(self) -> None:
        """Serve on a free loopback port."""
        app = web.Application()
        app.router.add_post("/v1/projects/{project}/messages:send", self._send)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.endpoint = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()

    @staticmethod
    def _error(status: int, grpc_status: str, message: str, fcm_code: str | None = None) -> web.Response:
        details = []
        if fcm_code:
            details.append({"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": fcm_code})
        return web.json_response(
            {"error": {"code": status, "message": message, "status": grpc_status, "details": details}}, status=status
        )

    async def _send(self, request: web.Request) -> web.Response:
        if request.match_info["project"] != self.project_id:
            return self._error(403, "PERMISSION_DENIED", "SenderId mismatch", "SENDER_ID_MISMATCH")
        body = await request.json()
        message = body.get("message") if isinstance(body, dict) else None
        self.posts.append(body)
        if not isinstance(message, dict) or not (message.get("token") or message.get("fid") or message.get("topic")):
            return self._error(400, "INVALID_ARGUMENT", "Invalid message", "INVALID_ARGUMENT")
        fault = self._faults.pop(0) if self._faults else None
        if fault is not None and fault[1]:
            self.delivered.append(message)
        if fault is not None:
            status = fault[0]
            return self._error(status, "UNAVAILABLE" if status == 503 else "INTERNAL", "injected failure", None)
        if message.get("token") in self.unregistered:
            return self._error(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED")
        self.delivered.append(message)
        return web.json_response({"name": f"projects/{self.project_id}/messages/{next(self._ids)}"})
