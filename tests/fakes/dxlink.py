"""A local fake of Tastytrade's DXLink websocket (dxFeed), faithful to the documented handshake and quirks.

It follows the checklist of the reference notes: SETUP answered with SETUP then AUTH_STATE UNAUTHORIZED;
AUTH with an issued, unexpired token -> AUTHORIZED (else UNAUTHORIZED); channels refused before
authorization; CHANNEL_REQUEST -> CHANNEL_OPENED; FEED_SETUP -> FEED_CONFIG echoing the accepted fields
(FULL when no format is asked for); FEED_SUBSCRIPTION add/remove/reset; FEED_DATA in each channel's format
and field order, with "NaN" for missing doubles; KEEPALIVE when idle and ERROR TIMEOUT for a silent client.

Faults for tests: `drop()` cuts every connection without a close frame, `stall()` keeps connections open
but silent, `restart()` stops and starts the server on the same port, `reject_upgrades(n)` answers the next
n upgrades with 502, oversized messages are closed with 1009, and tokens can expire.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

__all__ = ["FakeDXLinkServer"]


@dataclass
class _Channel:
    event_fields: dict[str, list[str]] = field(default_factory=dict)
    data_format: str = "FULL"
    symbols: dict[str, set[str]] = field(default_factory=dict)


@dataclass
class _Session:
    connection: ServerConnection
    authorized: bool = False
    token: str | None = None
    keepalive_timeout: float = 60.0
    channels: dict[int, _Channel] = field(default_factory=dict)
    last_received: float = field(default_factory=time.monotonic)
    last_sent: float = field(default_factory=time.monotonic)
    received: list[dict[str, Any]] = field(default_factory=list)


def _json_value(value: Any) -> Any:
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
    return value


class FakeDXLinkServer:
    """A DXLink server on 127.0.0.1 (port 0 by default) for tests; use as an async context manager."""

    def __init__(
        self,
        *,
        keepalive_timeout: float = 60.0,
        keepalive_interval: float = 30.0,
        max_message_bytes: int = 1 << 20,
        port: int = 0,
    ) -> None:
        self.keepalive_timeout = keepalive_timeout
        self.keepalive_interval = keepalive_interval
        self.max_message_bytes = max_message_bytes
        self.port = port
        self.sessions: list[_Session] = []
        self.connections_accepted = 0
        self.auth_tokens_seen: list[str] = []
        self._tokens: dict[str, float] = {}
        self._token_counter = itertools.count(1)
        self._server: Server | None = None
        self._stalled = False
        self._reject_upgrades = 0
        self._housekeeper: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """The websocket URL, as `/api-quote-tokens` would return it in `dxlink-url`."""
        return f"ws://127.0.0.1:{self.port}/realtime"

    async def __aenter__(self) -> FakeDXLinkServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen (on the same port again after a restart)."""
        self._stalled = False
        self._server = await serve(
            self._handle,
            "127.0.0.1",
            self.port,
            ping_interval=None,
            compression=None,
            max_size=self.max_message_bytes,
            process_request=self._process_request,
        )
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        self._housekeeper = asyncio.create_task(self._housekeeping())

    async def stop(self) -> None:
        """Close every connection and stop listening."""
        if self._housekeeper is not None:
            self._housekeeper.cancel()
            try:
                await self._housekeeper
            except asyncio.CancelledError:
                pass
            self._housekeeper = None
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self.sessions.clear()

    async def restart(self) -> None:
        """Stop and start again on the same port (a server-side restart)."""
        await self.stop()
        await self.start()

    # ------------------------------------------------------------------ tokens and faults

    def issue_token(self, ttl_seconds: float = 24 * 3600.0) -> str:
        """Issue a quote token valid for `ttl_seconds` (real tokens live 24 hours)."""
        token = f"qt-{next(self._token_counter)}"
        self._tokens[token] = time.monotonic() + ttl_seconds
        return token

    def revoke_all_tokens(self) -> None:
        """Make every issued token invalid."""
        self._tokens.clear()

    def drop(self) -> None:
        """Cut every connection at the TCP level, without a close frame."""
        for session in list(self.sessions):
            transport = session.connection.transport
            if transport is not None:
                transport.abort()

    def stall(self) -> None:
        """Stop sending anything (keepalives included) and ignore input, keeping sockets open."""
        self._stalled = True

    def resume(self) -> None:
        """End a stall."""
        self._stalled = False

    def reject_upgrades(self, count: int) -> None:
        """Answer the next `count` websocket upgrades with 502 Bad Gateway, as Tastytrade's proxy has."""
        self._reject_upgrades = count

    # ------------------------------------------------------------------ observation

    def subscribed(self, event_type: str) -> set[str]:
        """Symbols subscribed to `event_type` over all live authorized sessions."""
        symbols: set[str] = set()
        for session in self.sessions:
            for channel in session.channels.values():
                symbols |= channel.symbols.get(event_type, set())
        return symbols

    def messages_of_type(self, message_type: str) -> list[dict[str, Any]]:
        """Every client message of `message_type` received by live sessions, oldest first."""
        return [m for s in self.sessions for m in s.received if m.get("type") == message_type]

    # ------------------------------------------------------------------ publishing

    async def publish(self, event_type: str, events: Iterable[Mapping[str, Any]]) -> int:
        """Send events (dicts keyed by dxFeed field names) to every session subscribed to their symbols.

        Each session gets one FEED_DATA per channel with all its matching events, in that channel's format
        and field order; a field the event lacks is sent as "NaN" (COMPACT) or omitted (FULL).

        Returns:
            The number of FEED_DATA messages sent.
        """
        event_list = list(events)
        sent = 0
        if self._stalled:
            return 0
        for session in list(self.sessions):
            for channel_id, channel in session.channels.items():
                wanted = channel.symbols.get(event_type, set())
                matching = [e for e in event_list if e.get("eventSymbol") in wanted]
                if not matching:
                    continue
                if channel.data_format == "COMPACT":
                    names = channel.event_fields.get(event_type) or []
                    values: list[Any] = []
                    for event in matching:
                        values.extend(_json_value(event.get(name, math.nan)) for name in names)
                    data: list[Any] = [event_type, values]
                else:
                    data = [
                        {"eventType": event_type, **{k: _json_value(v) for k, v in event.items()}}
                        for event in matching
                    ]
                if await self._send(session, {"type": "FEED_DATA", "channel": channel_id, "data": data}):
                    sent += 1
        return sent

    async def publish_quote(self, symbol: str, bid: float, ask: float, bid_size: float = 100.0,
                            ask_size: float = 100.0, time_ms: int | None = None) -> int:
        """Publish one Quote event."""
        stamp = time_ms if time_ms is not None else int(time.time() * 1000)
        return await self.publish("Quote", [{
            "eventSymbol": symbol, "eventTime": 0, "sequence": 0, "timeNanoPart": 0, "bidTime": stamp,
            "bidExchangeCode": "Q", "askTime": stamp, "askExchangeCode": "Q", "bidPrice": bid,
            "askPrice": ask, "bidSize": bid_size, "askSize": ask_size,
        }])  # fmt: skip

    async def publish_greeks(self, symbol: str, *, price: float, volatility: float, delta: float,
                             gamma: float, theta: float, rho: float, vega: float,
                             time_ms: int | None = None) -> int:
        """Publish one Greeks event (index above 2**53, as dxFeed sends it)."""
        stamp = time_ms if time_ms is not None else int(time.time() * 1000)
        return await self.publish("Greeks", [{
            "eventSymbol": symbol, "eventTime": 0, "eventFlags": 0, "index": 7235129486797176832,
            "time": stamp, "sequence": 0, "price": price, "volatility": volatility, "delta": delta,
            "gamma": gamma, "theta": theta, "rho": rho, "vega": vega,
        }])  # fmt: skip

    # ------------------------------------------------------------------ protocol

    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if self._reject_upgrades > 0:
            self._reject_upgrades -= 1
            return connection.respond(HTTPStatus.BAD_GATEWAY, "502 Bad Gateway\n")
        return None

    async def _send(self, session: _Session, message: dict[str, Any]) -> bool:
        if self._stalled:
            return False
        try:
            await session.connection.send(json.dumps(message))
        except ConnectionClosed:
            return False
        session.last_sent = time.monotonic()
        return True

    async def _error(self, session: _Session, channel: int, error: str, message: str) -> None:
        await self._send(session, {"type": "ERROR", "channel": channel, "error": error, "message": message})

    def _token_valid(self, token: Any) -> bool:
        expires = self._tokens.get(token) if isinstance(token, str) else None
        return expires is not None and expires > time.monotonic()

    async def _handle(self, connection: ServerConnection) -> None:
        self.connections_accepted += 1
        session = _Session(connection, keepalive_timeout=self.keepalive_timeout)
        self.sessions.append(session)
        try:
            async for raw in connection:
                if self._stalled:
                    continue
                session.last_received = time.monotonic()
                try:
                    message = json.loads(raw)
                    if not isinstance(message, dict):
                        raise ValueError("not an object")
                except ValueError:
                    await self._error(session, 0, "INVALID_MESSAGE", "message is not a JSON object")
                    continue
                session.received.append(message)
                await self._dispatch(session, message)
        except ConnectionClosed:
            pass
        finally:
            if session in self.sessions:
                self.sessions.remove(session)

    async def _dispatch(self, session: _Session, message: dict[str, Any]) -> None:
        kind = message.get("type")
        channel_id = message.get("channel", 0)
        if kind == "SETUP":
            if "keepaliveTimeout" in message:
                session.keepalive_timeout = float(message["keepaliveTimeout"])
            await self._send(session, {
                "type": "SETUP", "channel": 0, "keepaliveTimeout": self.keepalive_timeout,
                "acceptKeepaliveTimeout": self.keepalive_timeout, "version": "0.1-fake-dxlink/1.0",
            })  # fmt: skip
            await self._send(session, {"type": "AUTH_STATE", "channel": 0, "state": "UNAUTHORIZED"})
        elif kind == "AUTH":
            token = message.get("token")
            self.auth_tokens_seen.append(str(token))
            if self._token_valid(token):
                session.authorized = True
                session.token = token
                await self._send(session, {"type": "AUTH_STATE", "channel": 0, "state": "AUTHORIZED"})
            else:
                session.authorized = False
                await self._send(session, {"type": "AUTH_STATE", "channel": 0, "state": "UNAUTHORIZED"})
        elif kind == "KEEPALIVE":
            pass
        elif not session.authorized:
            await self._error(session, channel_id, "UNAUTHORIZED", f"{kind} before authorization")
        elif kind == "CHANNEL_REQUEST":
            if not isinstance(channel_id, int) or channel_id % 2 == 0 or message.get("service") != "FEED":
                await self._error(session, channel_id, "BAD_ACTION", "channel ids are odd; service FEED")
                return
            session.channels[channel_id] = _Channel()
            await self._send(session, {
                "type": "CHANNEL_OPENED", "channel": channel_id, "service": "FEED",
                "parameters": message.get("parameters", {}),
            })  # fmt: skip
        elif kind == "CHANNEL_CANCEL":
            session.channels.pop(channel_id, None)
            await self._send(session, {"type": "CHANNEL_CLOSED", "channel": channel_id})
        elif channel_id not in session.channels:
            await self._error(session, channel_id, "BAD_ACTION", f"{kind} on a channel that is not open")
        elif kind == "FEED_SETUP":
            channel = session.channels[channel_id]
            channel.data_format = message.get("acceptDataFormat", "FULL")
            channel.event_fields.update(message.get("acceptEventFields", {}))
            await self._send(session, {
                "type": "FEED_CONFIG", "channel": channel_id,
                "aggregationPeriod": message.get("acceptAggregationPeriod", 0.1),
                "dataFormat": channel.data_format, "eventFields": channel.event_fields,
            })  # fmt: skip
        elif kind == "FEED_SUBSCRIPTION":
            channel = session.channels[channel_id]
            if message.get("reset"):
                channel.symbols.clear()
            for item in message.get("remove", []):
                channel.symbols.get(item.get("type"), set()).discard(item.get("symbol"))
            for item in message.get("add", []):
                channel.symbols.setdefault(item.get("type"), set()).add(item.get("symbol"))
        else:
            await self._error(session, channel_id, "UNSUPPORTED_PROTOCOL", f"unknown message type {kind!r}")

    async def _housekeeping(self) -> None:
        tick = min(self.keepalive_interval, self.keepalive_timeout) / 4
        while True:
            await asyncio.sleep(max(tick, 0.01))
            if self._stalled:
                continue
            now = time.monotonic()
            for session in list(self.sessions):
                if session.authorized and session.token is not None and not self._token_valid(session.token):
                    await self._error(session, 0, "UNAUTHORIZED", "the quote token has expired")
                    await session.connection.close()
                    continue
                if now - session.last_received > session.keepalive_timeout:
                    await self._error(
                        session, 0, "TIMEOUT",
                        f"The timeout has been reached. The message was last received "
                        f"{now - session.last_received:.0f} seconds ago.",
                    )  # fmt: skip
                    await session.connection.close()
                    continue
                if now - session.last_sent >= self.keepalive_interval:
                    await self._send(session, {"type": "KEEPALIVE", "channel": 0})
