"""A local fake of Twilio's Programmable Messaging REST API (2010-04-01), for the real twilio SDK to talk to.

Wire format reproduced: ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` with a form body (``To``,
``From`` or ``MessagingServiceSid``, ``Body``) and HTTP Basic auth (account SID, auth token), answering 201 with
the Message resource (``sid`` "SM" + 32 hex, ``status`` "queued", RFC 2822 dates); ``GET`` on the same path lists
messages newest first with the ``To`` and ``DateSent>`` filters and Twilio's paging envelope; errors as
``{"code", "message", "more_info", "status"}`` (21211 invalid "To", 20003 bad credentials, 20429 too many
requests).

Fault injection: the next create requests can answer a status without sending, or send and then answer 500
(an accepted message whose response is lost: the ambiguous case reconciliation is for).
"""

from __future__ import annotations

import base64
import email.utils
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

__all__ = ["FakeTwilio", "SentSms"]

_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


@dataclass
class SentSms:
    """A message the fake accepted."""

    sid: str
    to: str
    sender: str
    body: str
    date_created: datetime


@dataclass
class _Fault:
    status: int
    code: int
    send_anyway: bool = False


@dataclass
class FakeTwilio:
    """The fake API on 127.0.0.1; ``base_url`` is what ``client.api.base_url`` should be set to."""

    account_sid: str = "AC" + "0" * 32
    auth_token: str = "test-auth-token"
    messages: list[SentSms] = field(default_factory=list)
    create_requests: int = 0
    list_requests: int = 0
    _faults: list[_Fault] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    base_url: str = ""

    def fail_next(self, status: int, code: int, *, count: int = 1, send_anyway: bool = False) -> None:
        """Make the next ``count`` creates answer ``status`` (sending the message first if ``send_anyway``)."""
        self._faults.extend(_Fault(status, code, send_anyway) for _ in range(count))

    async def start(self) -> None:
        """Serve on a free loopback port."""
        app = web.Application()
        path = f"/2010-04-01/Accounts/{{sid}}/Messages.json"
        app.router.add_post(path, self._create)
        app.router.add_get(path, self._list)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()

    def _error(self, status: int, code: int, message: str) -> web.Response:
        return web.json_response(
            {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status},
            status=status,
        )

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return user == self.account_sid and password == self.auth_token and request.match_info["sid"] == self.account_sid

    def _resource(self, m: SentSms) -> dict[str, Any]:
        created = email.utils.format_datetime(m.date_created, usegmt=True)
        return {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": m.body,
            "date_created": created,
            "date_sent": created,
            "date_updated": created,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": m.sender,
            "messaging_service_sid": None,
            "num_media": "0",
            "num_segments": str(max(1, (len(m.body) + 152) // 153)),
            "price": None,
            "price_unit": "USD",
            "sid": m.sid,
            "status": "queued",
            "subresource_uris": {"media": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{m.sid}/Media.json"},
            "to": m.to,
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{m.sid}.json",
        }

    async def _create(self, request: web.Request) -> web.Response:
        self.create_requests += 1
        if not self._authorized(request):
            return self._error(401, 20003, "Authenticate")
        form = await request.post()
        to = str(form.get("To", ""))
        sender = str(form.get("From", "") or form.get("MessagingServiceSid", ""))
        body = str(form.get("Body", ""))
        fault = self._faults.pop(0) if self._faults else None
        if fault is not None and not fault.send_anyway:
            return self._error(fault.status, fault.code, "injected failure")
        if not _E164.match(to):
            return self._error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not sender or not body:
            return self._error(400, 21602, "Message body is required.")
        message = SentSms("SM" + uuid.uuid4().hex, to, sender, body, datetime.now(UTC).replace(microsecond=0))
        self.messages.append(message)
        if fault is not None:
            return self._error(fault.status, fault.code, "injected failure after acceptance")
        return web.json_response(self._resource(message), status=201)

    async def _list(self, request: web.Request) -> web.Response:
        self.list_requests += 1
        if not self._authorized(request):
            return self._error(401, 20003, "Authenticate")
        to = request.query.get("To")
        after = request.query.get("DateSent>")
        since = None
        if after:
            since = datetime.fromisoformat(after.replace("Z", "+00:00"))
            if since.tzinfo is None:
                since = since.replace(tzinfo=UTC)
        page_size = int(request.query.get("PageSize", "50"))
        found = [
            m for m in reversed(self.messages) if (to is None or m.to == to) and (since is None or m.date_created >= since)
        ][:page_size]
        uri = f"/2010-04-01/Accounts/{self.account_sid}/Messages.json"
        return web.json_response(
            {
                "messages": [self._resource(m) for m in found],
                "end": max(0, len(found) - 1),
                "first_page_uri": f"{uri}?PageSize={page_size}&Page=0",
                "next_page_uri": None,
                "page": 0,
                "page_size": page_size,
                "previous_page_uri": None,
                "start": 0,
                "uri": f"{uri}?PageSize={page_size}&Page=0",
            }
        )
