"""A DXLink client that stays connected: handshake, COMPACT feed, keepalive, silent-feed reconnect, token renewal.

Theory of operation. `run()` loops over connections. Each connection:

1. gets a quote token (cached until `renewal_margin` before it expires, else fetched from the token source),
2. opens the websocket to the token's `dxlink_url` with websocket pings off (DXLink wants its own
   KEEPALIVE messages),
3. handshakes strictly in order: SETUP -> (server SETUP) -> AUTH_STATE UNAUTHORIZED -> AUTH -> AUTHORIZED,
4. opens one FEED channel per event type that has subscriptions; on CHANNEL_OPENED sends FEED_SETUP (COMPACT,
   this client's field list) and the channel's whole subscription in chunks of at most
   `max_symbols_per_message` symbols (DXLink drops the connection on one huge subscription message),
5. then runs four tasks until one fails: the reader (decodes FEED_DATA by the channel's field order), the
   keepalive sender, the watchdog (no inbound message for `silence_timeout` seconds means a silent feed:
   the socket is aborted) and the token renewer (a fresh token is sent with AUTH before the old one expires).

Any failure ends the connection; the loop waits `attempt x reconnect_delay` (capped, with jitter) and
starts again at step 1, so every subscription is restored on the new connection. An UNAUTHORIZED answer
drops the cached token so the next attempt fetches a new one.

    state          event                        next
    DISCONNECTED   connect + handshake ok       CONNECTED (reconnects += 1 after the first)
    DISCONNECTED   connect/handshake fails      DISCONNECTED (back-off)
    CONNECTED      socket closed / ERROR        DISCONNECTED (back-off)
    CONNECTED      silence > silence_timeout    DISCONNECTED (abort, back-off)
    CONNECTED      UNAUTHORIZED                 DISCONNECTED (token dropped, back-off)
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from services.marketdata.adapters.dxlink import protocol
from services.marketdata.domain.events import FeedEvent
from services.marketdata.ports import QuoteToken, QuoteTokenSource
from services.platform.clock import Clock, SystemClock

__all__ = ["DXLinkClient", "DXLinkSettings"]

log = logging.getLogger("tastyplat.marketdata.dxlink")


@dataclass(frozen=True, slots=True)
class DXLinkSettings:
    """Tuning of the DXLink client.

    Attributes:
        keepalive_timeout: Seconds of our silence the server should tolerate (sent in SETUP).
        keepalive_interval: Seconds between our KEEPALIVE messages (at most half the server's timeout).
        silence_timeout: Seconds without any inbound message after which the feed counts as silent.
        aggregation_period: Seconds dxFeed may aggregate events over (FEED_SETUP).
        max_symbols_per_message: Largest FEED_SUBSCRIPTION, in symbols.
        renewal_margin: Seconds before a quote token's expiry at which a fresh one is fetched and sent.
        handshake_timeout: Seconds allowed for connect + handshake.
        reconnect_delay: Base back-off in seconds; attempt n waits n x this (capped), with jitter.
        reconnect_delay_max: Cap of the back-off.
        max_message_bytes: Largest inbound websocket message accepted.
    """

    keepalive_timeout: float = 60.0
    keepalive_interval: float = 30.0
    silence_timeout: float = 60.0
    aggregation_period: float = 0.1
    max_symbols_per_message: int = 500
    renewal_margin: float = 3600.0
    handshake_timeout: float = 10.0
    reconnect_delay: float = 1.0
    reconnect_delay_max: float = 30.0
    max_message_bytes: int = 16 << 20


class _Unauthorized(Exception):
    pass


class _SilentFeed(Exception):
    pass


class _ServerError(Exception):
    pass


@dataclass(slots=True)
class _Channel:
    event_type: str
    fields: dict[str, tuple[str, ...]]
    opened: bool = False


class DXLinkClient:
    """Keeps a DXLink connection up and delivers decoded feed events in batches (one per FEED_DATA)."""

    def __init__(
        self,
        tokens: QuoteTokenSource,
        *,
        settings: DXLinkSettings | None = None,
        clock: Clock | None = None,
        queue_size: int = 10_000,
    ) -> None:
        self._tokens = tokens
        self._settings = settings or DXLinkSettings()
        self._clock = clock or SystemClock()
        self._desired: dict[str, set[str]] = {event_type: set() for event_type in protocol.CHANNELS}
        self._out: asyncio.Queue[list[FeedEvent]] = asyncio.Queue(maxsize=queue_size)
        self._token: QuoteToken | None = None
        self._ws: ClientConnection | None = None
        self._channels: dict[int, _Channel] = {}
        self._send_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._connected = asyncio.Event()
        self._last_received = time.monotonic()
        self._last_sent = time.monotonic()
        self._server_keepalive_timeout = 60.0
        self.reconnects = 0
        self.connections = 0
        self.down_since: float | None = time.monotonic()
        self.last_error: str | None = None
        self.token_renewals = 0

    # ------------------------------------------------------------------ public API

    @property
    def connected(self) -> bool:
        """True while a connection is authorized and running."""
        return self._connected.is_set()

    async def wait_connected(self, timeout: float) -> None:
        """Wait until the client is connected.

        Raises:
            TimeoutError: not connected within `timeout` seconds.
        """
        await asyncio.wait_for(self._connected.wait(), timeout)

    def start(self) -> None:
        """Start connecting in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="dxlink-client")

    async def close(self) -> None:
        """Stop the client and close the connection."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        self._connected.clear()

    async def subscribe(self, event_type: str, symbols: Iterable[str]) -> None:
        """Follow `symbols` for `event_type` (Quote, Trade, Greeks, Summary, Profile), now and after reconnects."""
        self._check_type(event_type)
        new = [s for s in dict.fromkeys(symbols) if s not in self._desired[event_type]]
        if not new:
            return
        self._desired[event_type].update(new)
        await self._apply(event_type, add=new)

    async def unsubscribe(self, event_type: str, symbols: Iterable[str]) -> None:
        """Stop following `symbols` for `event_type`."""
        self._check_type(event_type)
        gone = [s for s in dict.fromkeys(symbols) if s in self._desired[event_type]]
        if not gone:
            return
        self._desired[event_type].difference_update(gone)
        await self._apply(event_type, remove=gone)

    def subscriptions(self, event_type: str) -> frozenset[str]:
        """The symbols followed for `event_type`."""
        return frozenset(self._desired[event_type])

    async def batches(self) -> AsyncIterator[list[FeedEvent]]:
        """Yield decoded events, one list per FEED_DATA message, across reconnects, until closed."""
        while True:
            yield await self._out.get()

    # ------------------------------------------------------------------ connection loop

    @staticmethod
    def _check_type(event_type: str) -> None:
        if event_type not in protocol.CHANNELS:
            raise ValueError(f"unsupported DXLink event type {event_type!r}; one of {sorted(protocol.CHANNELS)}")

    async def _run(self) -> None:
        attempt = 0
        while not self._closed:
            try:
                token = await self._current_token()
                await self._connect_once(token)
            except asyncio.CancelledError:
                raise
            except _Unauthorized as error:
                self._token = None
                self.last_error = f"unauthorized: {error}"
            except (_SilentFeed, _ServerError, protocol.ProtocolError) as error:
                self.last_error = f"{type(error).__name__}: {error}"
            except (OSError, ConnectionClosed, InvalidHandshake, InvalidURI, TimeoutError) as error:
                self.last_error = f"{type(error).__name__}: {error}"
            except Exception as error:  # the token source may fail in any way; keep retrying
                log.exception("dxlink connection failed")
                self.last_error = f"{type(error).__name__}: {error}"
            if self._connected.is_set():
                attempt = 0
            self._connected.clear()
            self._ws = None
            if self.down_since is None:
                self.down_since = time.monotonic()
            if self._closed:
                return
            attempt += 1
            delay = min(self._settings.reconnect_delay * attempt, self._settings.reconnect_delay_max)
            log.warning("dxlink disconnected (%s); reconnecting in %.2fs", self.last_error, delay)
            await self._clock.sleep(delay * random.uniform(0.5, 1.0))

    async def _current_token(self) -> QuoteToken:
        token = self._token
        if token is None or self._seconds_to_renewal(token) <= 0:
            token = await self._tokens.fetch()
            self._token = token
        return token

    def _seconds_to_renewal(self, token: QuoteToken) -> float:
        if token.expires_at is None:
            return float("inf")
        return (token.expires_at - self._clock.now()).total_seconds() - self._settings.renewal_margin

    async def _connect_once(self, token: QuoteToken) -> None:
        settings = self._settings
        async with asyncio.timeout(settings.handshake_timeout):
            ws = await connect(
                token.dxlink_url,
                ping_interval=None,
                compression=None,
                max_size=settings.max_message_bytes,
                open_timeout=settings.handshake_timeout,
                close_timeout=1.0,
            )
        try:
            self._ws = ws
            self._channels = {}
            async with asyncio.timeout(settings.handshake_timeout):
                await self._handshake(ws, token)
            self.connections += 1
            if self.connections > 1:
                self.reconnects += 1
            self.down_since = None
            self._connected.set()
            log.info("dxlink connected to %s", token.dxlink_url)
            for event_type, symbols in self._desired.items():
                if symbols:
                    await self._open_channel(event_type)
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._reader(ws))
                    group.create_task(self._keepalive(ws))
                    group.create_task(self._watchdog(ws))
                    group.create_task(self._renewer(ws))
            except BaseExceptionGroup as failures:
                # The first task to fail ended the connection; the others were cancelled because of it.
                raise failures.exceptions[0] from None
        finally:
            self._connected.clear()
            if ws.transport is not None:
                ws.transport.abort()

    async def _send(self, ws: ClientConnection, message: dict[str, Any]) -> None:
        async with self._send_lock:
            await ws.send(json.dumps(message, separators=(",", ":")))
        self._last_sent = time.monotonic()

    async def _receive(self, ws: ClientConnection) -> dict[str, Any]:
        raw = await ws.recv()
        self._last_received = time.monotonic()
        try:
            message = json.loads(raw)
        except ValueError as error:
            raise protocol.ProtocolError(f"not JSON: {str(raw)[:80]!r}") from error
        if not isinstance(message, dict):
            raise protocol.ProtocolError("message is not an object")
        return message

    async def _handshake(self, ws: ClientConnection, token: QuoteToken) -> None:
        settings = self._settings
        await self._send(ws, protocol.setup(settings.keepalive_timeout, settings.keepalive_timeout))
        sent_auth = False
        while True:
            message = await self._receive(ws)
            kind = message.get("type")
            if kind == "SETUP":
                timeout = message.get("keepaliveTimeout")
                if isinstance(timeout, int | float) and timeout > 0:
                    self._server_keepalive_timeout = float(timeout)
            elif kind == "AUTH_STATE":
                state = message.get("state")
                if state == "AUTHORIZED":
                    return
                if state == "UNAUTHORIZED":
                    if sent_auth:
                        raise _Unauthorized("DXLink refused the quote token")
                    # Tastytrade requires waiting for this UNAUTHORIZED before sending AUTH.
                    await self._send(ws, protocol.auth(token.token))
                    sent_auth = True
            elif kind == "ERROR":
                if message.get("error") == "UNAUTHORIZED":
                    raise _Unauthorized(str(message.get("message")))
                raise _ServerError(f"{message.get('error')}: {message.get('message')}")

    async def _open_channel(self, event_type: str) -> None:
        ws = self._ws
        channel_id = protocol.CHANNELS[event_type]
        if ws is None or not self._connected.is_set() or channel_id in self._channels:
            return
        self._channels[channel_id] = _Channel(event_type, {event_type: protocol.EVENT_FIELDS[event_type]})
        await self._send(ws, protocol.channel_request(channel_id))

    async def _apply(self, event_type: str, *, add: Sequence[str] = (), remove: Sequence[str] = ()) -> None:
        ws = self._ws
        if ws is None or not self._connected.is_set():
            return  # sent with the whole subscription once connected
        channel_id = protocol.CHANNELS[event_type]
        channel = self._channels.get(channel_id)
        if channel is None:
            if add:
                await self._open_channel(event_type)
            return
        if not channel.opened:
            return
        try:
            await self._send_subscription(ws, channel_id, event_type, add=add, remove=remove)
        except ConnectionClosed:
            pass  # the connection loop notices and restores the whole subscription

    async def _send_subscription(
        self, ws: ClientConnection, channel_id: int, event_type: str, *, add: Sequence[str], remove: Sequence[str]
    ) -> None:
        size = self._settings.max_symbols_per_message
        for start in range(0, len(remove), size):
            await self._send(ws, protocol.feed_subscription(channel_id, event_type, remove=remove[start : start + size]))
        for start in range(0, len(add), size):
            await self._send(ws, protocol.feed_subscription(channel_id, event_type, add=add[start : start + size]))

    async def _reader(self, ws: ClientConnection) -> None:
        while True:
            message = await self._receive(ws)
            kind = message.get("type")
            channel_id = message.get("channel", 0)
            if kind == "FEED_DATA":
                channel = self._channels.get(channel_id)
                if channel is None:
                    continue
                events = protocol.decode_feed_data(message.get("data"), channel.fields, received_ns=time.time_ns())
                if events:
                    await self._out.put(events)
            elif kind == "KEEPALIVE":
                continue
            elif kind == "CHANNEL_OPENED":
                channel = self._channels.get(channel_id)
                if channel is None or channel.opened:
                    continue
                channel.opened = True
                await self._send(
                    ws, protocol.feed_setup(channel_id, channel.event_type, self._settings.aggregation_period)
                )
                symbols = sorted(self._desired[channel.event_type])
                await self._send_subscription(ws, channel_id, channel.event_type, add=symbols, remove=())
            elif kind == "FEED_CONFIG":
                channel = self._channels.get(channel_id)
                fields = message.get("eventFields")
                if channel is not None and isinstance(fields, dict):
                    for event_type, names in fields.items():
                        if isinstance(names, list) and names:
                            channel.fields[event_type] = tuple(str(name) for name in names)
            elif kind == "CHANNEL_CLOSED":
                self._channels.pop(channel_id, None)
            elif kind == "AUTH_STATE":
                if message.get("state") == "UNAUTHORIZED":
                    raise _Unauthorized("DXLink withdrew authorization")
            elif kind == "ERROR":
                if message.get("error") == "UNAUTHORIZED":
                    raise _Unauthorized(str(message.get("message")))
                if channel_id == 0:
                    raise _ServerError(f"{message.get('error')}: {message.get('message')}")
                log.warning("dxlink channel %s error: %s", channel_id, message)

    async def _keepalive(self, ws: ClientConnection) -> None:
        interval = min(self._settings.keepalive_interval, self._server_keepalive_timeout / 2)
        while True:
            await asyncio.sleep(max(interval - (time.monotonic() - self._last_sent), 0.0))
            if time.monotonic() - self._last_sent >= interval * 0.99:
                await self._send(ws, protocol.keepalive())

    async def _watchdog(self, ws: ClientConnection) -> None:
        timeout = self._settings.silence_timeout
        while True:
            silent_for = time.monotonic() - self._last_received
            if silent_for > timeout:
                raise _SilentFeed(f"no message from DXLink for {silent_for:.1f}s")
            await asyncio.sleep(max(min(timeout - silent_for, timeout / 4), 0.005))

    async def _renewer(self, ws: ClientConnection) -> None:
        while True:
            token = self._token
            if token is None:
                return
            wait = self._seconds_to_renewal(token)
            if wait > 0:
                await self._clock.sleep(wait)
                continue
            fresh = await self._tokens.fetch()
            self._token = fresh
            self.token_renewals += 1
            log.info("dxlink quote token renewed")
            await self._send(ws, protocol.auth(fresh.token))
            if self._seconds_to_renewal(fresh) <= 0:
                # A token that is already inside the margin would make this loop spin: wait a margin's worth.
                await self._clock.sleep(max(self._settings.renewal_margin / 2, 1.0))
