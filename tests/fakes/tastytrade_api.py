"""A local fake of the Tastytrade Open API (aiohttp on 127.0.0.1), faithful to the documented wire formats.

What it reproduces (see ``/work/shared/reference/tastytrade-api.md``):

* OAuth2 refresh-token grant on ``POST /oauth/token`` (JSON body, no Authorization header), access tokens
  that expire after 15 minutes on the fake's clock, 401 on a missing, unknown or expired bearer token.
* 401 when ``User-Agent`` is missing or not ``<product>/<version>``; 406 for an unsupported
  ``Accept-Version``; the sandbox ("cert") host refuses the header altogether, as the SDK's comment says.
* The ``data`` / ``data.items`` envelope (an empty list is still ``{"data":{"items":[]}}``), ``context``,
  the ``pagination`` block with 0-based ``page-offset``, dasherized keys, string decimals with ``-effect``
  siblings, unsigned ``quantity`` with ``quantity-direction``, ``[]`` array query parameters and the
  comma-separated ``symbols`` of market metrics, URL-encoded OCC symbols in paths.
* Errors in tastytrade's envelope (``{"error":{"code":..., "message":...}}``) and, when asked, the RFC
  6749 shape for OAuth errors; 429 with no rate-limit headers.
* Fault injection for tests: the next N requests fail with a status, answer 429, stall, or the whole host
  is down; a sliding-window request limit that answers 429 like Tastytrade's throttle.

Every request is recorded (method, path, query, headers, JSON body), and every status served, for assertions.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

NEW_YORK = ZoneInfo("America/New_York")
SUPPORTED_VERSIONS = frozenset({"20250813", "20251101", "20261012"})
_USER_AGENT = re.compile(r"^[^\s/]+/[^\s/]+")
ACCESS_TOKEN_LIFETIME = 900
JSON_BODY = web.RequestKey("json_body", object)


def _money(value: Decimal | int | str) -> str:
    return str(Decimal(value))


def _ts(moment: datetime) -> str:
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+00:00"


def _effect(amount: Decimal) -> tuple[str, str]:
    if amount > 0:
        return _money(amount), "Credit"
    if amount < 0:
        return _money(-amount), "Debit"
    return "0.0", "None"


def _close_utc(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 16, 0, tzinfo=NEW_YORK).astimezone(timezone.utc)


def occ_symbol(root: str, expiry: date, kind: str, strike: Decimal) -> str:
    """The OCC symbol: root padded to 6, YYMMDD, C/P, strike x 1000 in 8 digits."""
    return f"{root:<6}{expiry:%y%m%d}{kind}{int(strike * 1000):08d}"


def streamer_symbol(root: str, expiry: date, kind: str, strike: Decimal) -> str:
    """The dxFeed symbol: ``.SPY240419C500``."""
    return f".{root}{expiry:%y%m%d}{kind}{format(strike.normalize(), 'f')}"


def third_friday(year: int, month: int) -> date:
    """The third Friday of a month (standard monthly equity option expiry)."""
    first = date(year, month, 1)
    return first + timedelta(days=(4 - first.weekday()) % 7 + 14)


def fridays_after(today: date, count: int) -> list[date]:
    """The next ``count`` Fridays strictly after ``today``."""
    first = today + timedelta(days=(4 - today.weekday()) % 7 or 7)
    return [first + timedelta(weeks=i) for i in range(count)]


def monthlies_after(today: date, count: int) -> list[date]:
    """The next ``count`` third-Friday expiries after ``today``."""
    out: list[date] = []
    year, month = today.year, today.month
    while len(out) < count:
        day = third_friday(year, month)
        if day > today:
            out.append(day)
        month += 1
        if month > 12:
            year, month = year + 1, 1
    return out


class SharedTime:
    """One timeline for the fake (epoch seconds) and the client (monotonic): tests move both at once."""

    def __init__(self) -> None:
        self.offset = 0.0

    def epoch(self) -> float:
        """Seconds since the epoch, shifted (the fake's clock)."""
        return time.time() + self.offset

    def monotonic(self) -> float:
        """Monotonic seconds, shifted (the client's clock)."""
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        """Move both clocks forward."""
        self.offset += seconds


@dataclass
class Underlying:
    """A symbol the fake quotes and lists options for."""

    symbol: str
    description: str
    price: Decimal
    strike_step: Decimal
    volatility: Decimal
    beta: Decimal
    dividend_yield: Decimal
    is_etf: bool
    is_index: bool = False
    roots: tuple[str, ...] = ()


@dataclass
class FakeAccount:
    """An account and everything the fake returns for it."""

    number: str
    nickname: str
    account_type: str
    margin_or_cash: str
    opened_at: datetime
    is_closed: bool = False
    authority_level: str = "owner"
    cash: Decimal = Decimal("0")
    positions: list[dict[str, Any]] = field(default_factory=list)
    transactions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class FakeCustomer:
    """A customer (OAuth grant owner) and the accounts it can see."""

    id: str
    first_name: str
    last_name: str
    email: str
    accounts: dict[str, FakeAccount] = field(default_factory=dict)


@dataclass
class RecordedRequest:
    """One request as the fake saw it."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    json: Any


@dataclass
class _Fault:
    status: int | None
    count: int
    path_prefix: str | None
    delay: float = 0.0


class FakeTastytrade:
    """The fake server. Use ``async with FakeTastytrade() as fake:``, then ``fake.url``.

    Args:
        sandbox: Behave like ``api.cert.tastyworks.com`` (refuses ``Accept-Version``; no market data).
        client_secret: The OAuth client secret refreshes must send.
        client_id: The OAuth client id; when a refresh sends one it must match.
        clock: Seconds since the epoch; tests pass a controllable clock to expire tokens.
        today: The date chains, expiries and history are built around (default: the clock's New York date).
        oauth_error_style: ``"tastytrade"`` (401 with the error envelope, which the SDK understands) or
            ``"rfc6749"`` (400 ``{"error":"invalid_grant", ...}``).
        transactions_per_account: History size of the main account (three pages at 250 per page by default).
    """

    def __init__(
        self,
        *,
        sandbox: bool = False,
        client_secret: str = "provider-secret",
        client_id: str = "provider-client-id",
        clock: Callable[[], float] = time.time,
        today: date | None = None,
        oauth_error_style: str = "tastytrade",
        transactions_per_account: int = 620,
    ) -> None:
        self.sandbox = sandbox
        self.client_secret = client_secret
        self.client_id = client_id
        self.clock = clock
        self.today = today or datetime.fromtimestamp(clock(), NEW_YORK).date()
        self.oauth_error_style = oauth_error_style
        self.token_lifetime = ACCESS_TOKEN_LIFETIME
        self.risk_free_rate = "0.0425"
        self.requests: list[RecordedRequest] = []
        self.statuses: list[int] = []
        self.customers: dict[str, FakeCustomer] = {}
        self.refresh_tokens: dict[str, str] = {}
        self.access_tokens: dict[str, tuple[str, float]] = {}
        self.underlyings = _default_underlyings()
        self.quote_token = "fake-quote-token"
        self.dxlink_url = "wss://tasty-openapi-ws.dxfeed.com/realtime"
        self.down = False
        self.request_limit: tuple[int, float] | None = None
        self._recent: list[float] = []
        self._faults: list[_Fault] = []
        self._token_serial = 0
        self._runner: web.AppRunner | None = None
        self.url = ""
        self._seed_default(transactions_per_account)
        self.app = self._build_app()

    # ---- lifecycle

    async def start(self) -> str:
        """Listen on 127.0.0.1 on a free port and return the base URL."""
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self.url

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTastytrade:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- test controls

    def fail_next(self, status: int, count: int = 1, path_prefix: str | None = None) -> None:
        """Answer the next ``count`` matching requests with ``status`` (429 is sent without headers)."""
        self._faults.append(_Fault(status, count, path_prefix))

    def stall_next(self, seconds: float, count: int = 1, path_prefix: str | None = None) -> None:
        """Delay the next ``count`` matching requests by ``seconds`` before answering normally."""
        self._faults.append(_Fault(None, count, path_prefix, delay=seconds))

    def expire_access_tokens(self) -> None:
        """Revoke every issued access token (the next bearer call gets 401)."""
        self.access_tokens.clear()

    def revoke_refresh_token(self, refresh_token: str) -> None:
        """Make a refresh token invalid (the grant was revoked)."""
        self.refresh_tokens.pop(refresh_token, None)

    def add_customer(self, customer: FakeCustomer, refresh_token: str) -> None:
        """Register a customer reachable with ``refresh_token``."""
        self.customers[customer.id] = customer
        self.refresh_tokens[refresh_token] = customer.id

    def count(self, method: str, path: str) -> int:
        """How many recorded requests hit ``method path`` exactly."""
        return sum(1 for r in self.requests if r.method == method and r.path == path)

    # ---- data

    def _seed_default(self, transactions: int) -> None:
        alice = FakeCustomer("me-1001", "Alice", "Trader", "alice@example.com")
        opened = datetime(2021, 3, 26, 18, 31, 41, 70000, tzinfo=timezone.utc)
        main = FakeAccount("5WT00001", "Margin acct", "Individual", "Margin", opened, cash=Decimal("51600.762"))
        roth = FakeAccount("5WT00002", "Roth", "Roth IRA", "Cash", opened + timedelta(days=40), cash=Decimal("8125.40"))
        closed = FakeAccount("5WT00003", "Old", "Individual", "Cash", opened - timedelta(days=900), is_closed=True)
        main.positions = self._main_positions(main.number)
        roth.positions = [self._equity_position(roth.number, "QQQ", 40, Decimal("412.18"))]
        main.transactions = _history(main.number, transactions, self.today, seed=1)
        roth.transactions = _history(roth.number, 12, self.today, seed=2)
        for account in (main, roth, closed):
            alice.accounts[account.number] = account
        self.add_customer(alice, "refresh-alice")
        bob = FakeCustomer("me-1002", "Bob", "Holder", "bob@example.com")
        bob_account = FakeAccount("5WT00009", "Bob", "Individual", "Margin", opened, cash=Decimal("1000.00"))
        bob_account.positions = [self._equity_position(bob_account.number, "AAPL", 10, Decimal("180.00"))]
        bob.accounts[bob_account.number] = bob_account
        self.add_customer(bob, "refresh-bob")

    def _main_positions(self, account: str) -> list[dict[str, Any]]:
        monthly = monthlies_after(self.today, 3)
        weekly = fridays_after(self.today, 2)
        spy, qqq, aapl, tsla = (self.underlyings[s] for s in ("SPY", "QQQ", "AAPL", "TSLA"))
        return [
            self._equity_position(account, "SPY", 100, Decimal("521.37")),
            self._equity_position(account, "AAPL", 50, Decimal("182.50")),
            self._option_position(account, spy, monthly[0], "P", _strike(spy, -5), 2, "Short", Decimal("3.85")),
            self._option_position(account, spy, monthly[1], "C", _strike(spy, 4), 1, "Long", Decimal("6.20")),
            self._option_position(account, qqq, weekly[1], "P", _strike(qqq, -3), 3, "Long", Decimal("2.05")),
            self._option_position(account, aapl, monthly[0], "C", _strike(aapl, 2), 1, "Short", Decimal("2.40")),
            self._option_position(account, tsla, monthly[2], "P", _strike(tsla, -4), 1, "Short", Decimal("9.75")),
            self._option_position(account, tsla, monthly[2], "C", _strike(tsla, 4), 1, "Short", Decimal("8.10")),
        ]

    def _equity_position(self, account: str, symbol: str, quantity: int, open_price: Decimal) -> dict[str, Any]:
        under = self.underlyings[symbol]
        created = _close_utc(self.today - timedelta(days=60)) - timedelta(hours=3)
        return {
            "account-number": account,
            "symbol": symbol,
            "instrument-type": "Equity",
            "underlying-symbol": symbol,
            "quantity": quantity,
            "quantity-direction": "Long",
            "close-price": _money(under.price),
            "average-open-price": _money(open_price),
            "average-yearly-market-close-price": _money(open_price),
            "average-daily-market-close-price": _money(under.price),
            "multiplier": 1,
            "cost-effect": "Debit",
            "is-suppressed": False,
            "is-frozen": False,
            "restricted-quantity": 0,
            "realized-day-gain": "0.0",
            "realized-day-gain-effect": "None",
            "realized-day-gain-date": self.today.isoformat(),
            "realized-today": "0.0",
            "realized-today-effect": "None",
            "realized-today-date": self.today.isoformat(),
            "created-at": _ts(created),
            "updated-at": _ts(created + timedelta(seconds=1)),
            "_mark": _money(under.price),
        }

    def _option_position(
        self,
        account: str,
        under: Underlying,
        expiry: date,
        kind: str,
        strike: Decimal,
        quantity: int,
        direction: str,
        open_price: Decimal,
    ) -> dict[str, Any]:
        mark = _option_mid(under, expiry, kind, strike, self.today)
        created = _close_utc(self.today - timedelta(days=12)) - timedelta(hours=4)
        return {
            "account-number": account,
            "symbol": occ_symbol(under.symbol, expiry, kind, strike),
            "instrument-type": "Equity Option",
            "underlying-symbol": under.symbol,
            "quantity": quantity,
            "quantity-direction": direction,
            "close-price": _money(mark),
            "average-open-price": _money(open_price),
            "average-yearly-market-close-price": _money(open_price),
            "average-daily-market-close-price": _money(mark),
            "multiplier": 100,
            # Tastytrade reports cost-effect from the opening trade: a short was opened for a credit.
            "cost-effect": "Credit" if direction == "Short" else "Debit",
            "is-suppressed": False,
            "is-frozen": False,
            "restricted-quantity": 0,
            "expires-at": _ts(_close_utc(expiry)),
            "realized-day-gain": "12.5" if direction == "Short" else "0.0",
            "realized-day-gain-effect": "Debit" if direction == "Short" else "None",
            "realized-day-gain-date": self.today.isoformat(),
            "realized-today": "0.0",
            "realized-today-effect": "None",
            "realized-today-date": self.today.isoformat(),
            "created-at": _ts(created),
            "updated-at": _ts(created + timedelta(seconds=1)),
            "_mark": _money(mark),
        }

    # ---- HTTP plumbing

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        r.add_post("/oauth/token", self._oauth_token)
        r.add_post("/sessions/validate", self._validate)
        r.add_get("/customers/me", self._customer)
        r.add_get("/customers/me/accounts", self._accounts)
        r.add_get("/customers/me/accounts/{account}", self._account)
        r.add_get("/accounts/{account}/balances", self._balances)
        r.add_get("/accounts/{account}/balances/{currency}", self._balances)
        r.add_get("/accounts/{account}/positions", self._positions)
        r.add_get("/accounts/{account}/transactions", self._transactions)
        r.add_get("/accounts/{account}/transactions/total-fees", self._total_fees)
        r.add_get("/accounts/{account}/transactions/{id}", self._transaction)
        r.add_get("/option-chains/{symbol}", self._flat_chain)
        r.add_get("/option-chains/{symbol}/nested", self._nested_chain)
        r.add_get("/option-chains/{symbol}/compact", self._compact_chain)
        r.add_get("/instruments/equities/{symbol}", self._equity)
        r.add_get("/instruments/equity-options/{symbol}", self._equity_option)
        r.add_get("/market-metrics", self._market_metrics)
        r.add_get("/margin-requirements-public-configuration", self._risk_free_rate)
        r.add_get("/api-quote-tokens", self._quote_token)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        response = await self._serve(request, handler)
        self.statuses.append(response.status)
        return response

    async def _serve(self, request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
        self.requests.append(
            RecordedRequest(request.method, request.path, list(request.query.items()), dict(request.headers), body)
        )
        request[JSON_BODY] = body
        fault = self._take_fault(request.path)
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.status is not None:
                return _raw_status(fault.status)
        if self.down:
            return _raw_status(503)
        if self.request_limit is not None:
            limit, window = self.request_limit
            now = time.monotonic()
            self._recent = [t for t in self._recent if t > now - window]
            if len(self._recent) >= limit:
                return _raw_status(429)
            self._recent.append(now)
        if not _USER_AGENT.match(request.headers.get("User-Agent", "")):
            return _error(401, "unauthorized", "A User-Agent header of the form <product>/<version> is required.")
        version = request.headers.get("Accept-Version")
        if version is not None and (self.sandbox or version not in SUPPORTED_VERSIONS):
            return web.json_response({"error": {"code": 406, "message": "The requested version is not supported."}}, status=406)
        try:
            return await handler(request)
        except _HttpError as exc:
            return exc.response

    def _take_fault(self, path: str) -> _Fault | None:
        for fault in self._faults:
            if fault.count > 0 and (fault.path_prefix is None or path.startswith(fault.path_prefix)):
                fault.count -= 1
                if fault.count == 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _customer_of(self, request: web.Request) -> FakeCustomer:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            raise _HttpError(_error(401, "unauthorized", "Unauthorized. Unique customer support identifier: fake"))
        entry = self.access_tokens.get(header.removeprefix("Bearer "))
        if entry is None or entry[1] <= self.clock():
            raise _HttpError(_error(401, "invalid_session", "Session user not present or expired"))
        return self.customers[entry[0]]

    def _account_of(self, request: web.Request) -> FakeAccount:
        customer = self._customer_of(request)
        number = request.match_info["account"]
        account = customer.accounts.get(number)
        if account is None:
            raise _HttpError(_error(404, "record_not_found", f"Account {number} not found"))
        return account

    # ---- handlers

    async def _oauth_token(self, request: web.Request) -> web.Response:
        body = request[JSON_BODY]
        if "Authorization" in request.headers:
            return self._oauth_error(400, "invalid_request", "Do not send Authorization to the token endpoint")
        if not isinstance(body, dict):
            return self._oauth_error(400, "invalid_request", "Expected a JSON body")
        if body.get("grant_type") != "refresh_token":
            return self._oauth_error(400, "unsupported_grant_type", "Only refresh_token is supported here")
        if body.get("client_secret") != self.client_secret or body.get("client_id", self.client_id) != self.client_id:
            return self._oauth_error(401, "invalid_client", "Client authentication failed")
        customer_id = self.refresh_tokens.get(str(body.get("refresh_token", "")))
        if customer_id is None:
            return self._oauth_error(401, "invalid_grant", "Grant is invalid or was revoked")
        self._token_serial += 1
        token = f"access-{self._token_serial}-{random.getrandbits(32):08x}"
        self.access_tokens[token] = (customer_id, self.clock() + self.token_lifetime)
        return web.json_response(
            {"access_token": token, "token_type": "Bearer", "expires_in": self.token_lifetime}
        )

    def _oauth_error(self, status: int, code: str, message: str) -> web.Response:
        if self.oauth_error_style == "rfc6749":
            return web.json_response({"error": code, "error_description": message}, status=400)
        return _error(status, code, message)

    async def _validate(self, request: web.Request) -> web.Response:
        customer = self._customer_of(request)
        return _data({"id": customer.id, "email": customer.email}, "/sessions/validate", status=201)

    async def _customer(self, request: web.Request) -> web.Response:
        return _data(_customer_json(self._customer_of(request), self.today), "/customers/me")

    async def _accounts(self, request: web.Request) -> web.Response:
        customer = self._customer_of(request)
        items = [{"account": _account_json(a), "authority-level": a.authority_level} for a in customer.accounts.values()]
        return _items(items, "/customers/me/accounts")

    async def _account(self, request: web.Request) -> web.Response:
        return _data(_account_json(self._account_of(request)), request.path)

    async def _balances(self, request: web.Request) -> web.Response:
        account = self._account_of(request)
        currency = request.match_info.get("currency", "USD")
        if currency != "USD":
            raise _HttpError(_error(404, "record_not_found", f"No {currency} balances"))
        return _data(_balances_json(account, self.clock()), request.path)

    async def _positions(self, request: web.Request) -> web.Response:
        account = self._account_of(request)
        q = request.query
        underlyings = set(q.getall("underlying-symbol[]", []))
        marks = q.get("include-marks") == "true"
        items = []
        for position in account.positions:
            if underlyings and position["underlying-symbol"] not in underlyings:
                continue
            if "symbol" in q and position["symbol"] != q["symbol"]:
                continue
            if "instrument-type" in q and position["instrument-type"] != q["instrument-type"]:
                continue
            item = {k: v for k, v in position.items() if not k.startswith("_")}
            if marks:
                item["mark"] = position["_mark"]
                item["mark-price"] = position["_mark"]
            items.append(item)
        return _items(items, request.path)

    async def _transactions(self, request: web.Request) -> web.Response:
        account = self._account_of(request)
        q = request.query
        try:
            per_page = min(int(q.get("per-page", "250")), 2000)
            offset = int(q.get("page-offset", "0"))
        except ValueError:
            return _validation_error("per-page", "must be an integer")
        if per_page < 1 or offset < 0:
            return _validation_error("page-offset", "is out of range")
        rows = account.transactions
        if "start-date" in q:
            rows = [t for t in rows if t["transaction-date"] >= q["start-date"]]
        if "end-date" in q:
            rows = [t for t in rows if t["transaction-date"] <= q["end-date"]]
        if "type" in q:
            rows = [t for t in rows if t["transaction-type"] == q["type"]]
        if types := q.getall("types[]", []):
            rows = [t for t in rows if t["transaction-type"] in types]
        if "symbol" in q:
            rows = [t for t in rows if t.get("symbol") == q["symbol"]]
        if "underlying-symbol" in q:
            rows = [t for t in rows if t.get("underlying-symbol") == q["underlying-symbol"]]
        rows = sorted(rows, key=lambda t: (t["executed-at"], t["id"]), reverse=q.get("sort", "Desc") != "Asc")
        page = rows[offset * per_page : (offset + 1) * per_page]
        total_pages = (len(rows) + per_page - 1) // per_page
        return web.json_response(
            {
                "data": {"items": page},
                "api-version": "v1",
                "context": request.path,
                "pagination": {
                    "per-page": per_page,
                    "page-offset": offset,
                    "item-offset": offset * per_page,
                    "total-items": len(rows),
                    "total-pages": total_pages,
                    "current-item-count": len(page),
                    "previous-link": None,
                    "next-link": None,
                    "paging-link-template": None,
                },
            }
        )

    async def _transaction(self, request: web.Request) -> web.Response:
        account = self._account_of(request)
        wanted = request.match_info["id"]
        for row in account.transactions:
            if str(row["id"]) == wanted:
                return _data(row, request.path)
        raise _HttpError(_error(404, "record_not_found", f"Transaction {wanted} not found"))

    async def _total_fees(self, request: web.Request) -> web.Response:
        account = self._account_of(request)
        day = request.query.get("date", self.today.isoformat())
        total = Decimal(0)
        for row in account.transactions:
            if row["transaction-date"] == day:
                for key in ("commission", "clearing-fees", "regulatory-fees", "proprietary-index-option-fees"):
                    if key in row:
                        total += Decimal(row[key])
        amount, effect = _effect(-total)
        return _data({"total-fees": amount, "total-fees-effect": effect}, request.path)

    def _underlying(self, request: web.Request) -> Underlying:
        self._customer_of(request)
        symbol = request.match_info["symbol"]
        under = self.underlyings.get(symbol)
        if under is None:
            raise _HttpError(_error(404, "record_not_found", f"No option chain for {symbol}"))
        return under

    async def _flat_chain(self, request: web.Request) -> web.Response:
        under = self._underlying(request)
        items = [
            _option_json(under, root, expiry, kind, strike, settlement, exp_type, self.today)
            for root, settlement, exp_type, expiry, strikes in _chain_layout(under, self.today)
            for strike in strikes
            for kind in ("C", "P")
        ]
        return _items(items, request.path)

    async def _nested_chain(self, request: web.Request) -> web.Response:
        under = self._underlying(request)
        by_root: dict[str, list[dict[str, Any]]] = {}
        for root, settlement, exp_type, expiry, strikes in _chain_layout(under, self.today):
            by_root.setdefault(root, []).append(
                {
                    "expiration-type": exp_type,
                    "expiration-date": expiry.isoformat(),
                    "days-to-expiration": (expiry - self.today).days,
                    "settlement-type": settlement,
                    "strikes": [
                        {
                            "strike-price": _money(strike),
                            "call": occ_symbol(root, expiry, "C", strike),
                            "call-streamer-symbol": streamer_symbol(root, expiry, "C", strike),
                            "put": occ_symbol(root, expiry, "P", strike),
                            "put-streamer-symbol": streamer_symbol(root, expiry, "P", strike),
                        }
                        for strike in strikes
                    ],
                }
            )
        items = [
            {
                "underlying-symbol": under.symbol,
                "root-symbol": root,
                "option-chain-type": "Standard",
                "shares-per-contract": 100,
                "tick-sizes": [{"value": "0.01", "threshold": "3.0"}, {"value": "0.05"}],
                "deliverables": [
                    {
                        "id": 313656 + i,
                        "root-symbol": root,
                        "deliverable-type": "Shares" if not under.is_index else "Cash",
                        "description": f"100 shares of {under.symbol}",
                        "amount": "100.0",
                        "symbol": under.symbol,
                        "instrument-type": "Equity" if not under.is_index else "Index",
                        "percent": "100",
                    }
                ],
                "expirations": expirations,
            }
            for i, (root, expirations) in enumerate(by_root.items())
        ]
        return _items(items, request.path)

    async def _compact_chain(self, request: web.Request) -> web.Response:
        under = self._underlying(request)
        symbols, streamers = [], []
        for root, _settlement, _type, expiry, strikes in _chain_layout(under, self.today):
            for strike in strikes:
                for kind in ("C", "P"):
                    symbols.append(occ_symbol(root, expiry, kind, strike))
                    streamers.append(streamer_symbol(root, expiry, kind, strike))
        item = {
            "underlying-symbol": under.symbol,
            "root-symbol": under.symbol,
            "option-chain-type": "Standard",
            "settlement-type": "PM",
            "shares-per-contract": 100,
            "expiration-type": "Regular",
            "symbols": symbols,
            "streamer-symbols": streamers,
        }
        return _items([item], request.path)

    async def _equity(self, request: web.Request) -> web.Response:
        self._customer_of(request)
        symbol = request.match_info["symbol"]
        under = self.underlyings.get(symbol)
        if under is None or under.is_index:
            raise _HttpError(_error(404, "record_not_found", f"Equity {symbol} not found"))
        return _data(_equity_json(under), request.path)

    async def _equity_option(self, request: web.Request) -> web.Response:
        self._customer_of(request)
        symbol = request.match_info["symbol"]
        match = re.match(r"^(\S{1,6}) *(\d{6})([CP])(\d{8})$", symbol)
        if match is not None:
            root = match[1]
            expiry = datetime.strptime(match[2], "%y%m%d").date()
            strike = Decimal(int(match[4])) / 1000
            for under in self.underlyings.values():
                for chain_root, settlement, exp_type, chain_expiry, strikes in _chain_layout(under, self.today):
                    if chain_root == root and chain_expiry == expiry and strike in strikes:
                        item = _option_json(under, root, expiry, match[3], strike, settlement, exp_type, self.today)
                        return _data(item, request.path)
        raise _HttpError(_error(404, "record_not_found", f"Option {symbol!r} not found"))

    async def _market_metrics(self, request: web.Request) -> web.Response:
        self._customer_of(request)
        if self.sandbox:
            return _items([], request.path)
        symbols = [s for s in request.query.get("symbols", "").split(",") if s]
        items = [_metrics_json(self.underlyings[s], self.today, self.clock()) for s in symbols if s in self.underlyings]
        return _items(items, request.path)

    async def _risk_free_rate(self, request: web.Request) -> web.Response:
        return _data({"risk-free-rate": self.risk_free_rate}, request.path)

    async def _quote_token(self, request: web.Request) -> web.Response:
        self._customer_of(request)
        level = "demo" if self.sandbox else "api"
        now = datetime.fromtimestamp(self.clock(), timezone.utc)
        return _data(
            {
                "token": self.quote_token,
                "dxlink-url": self.dxlink_url,
                "level": level,
                "issued-at": _ts(now),
                "expires-at": _ts(now + timedelta(hours=24)),
            },
            request.path,
        )


class _HttpError(Exception):
    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def _raw_status(status: int) -> web.Response:
    # Tastytrade's throttle and its proxy errors carry no Retry-After or rate-limit headers.
    if status == 429:
        return web.Response(status=429, text="Too Many Requests", content_type="text/plain")
    if status >= 500:
        return web.Response(status=status, text="<html><body>upstream error</body></html>", content_type="text/html")
    return _error(status, "fault", f"injected {status}")


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def _validation_error(domain: str, reason: str) -> web.Response:
    return web.json_response(
        {
            "error": {
                "code": "validation_error",
                "message": "Request validation failed",
                "errors": [{"domain": domain, "reason": reason}],
            }
        },
        status=400,
    )


def _data(data: dict[str, Any], context: str, status: int = 200) -> web.Response:
    return web.json_response({"data": data, "context": context}, status=status)


def _items(items: list[dict[str, Any]], context: str) -> web.Response:
    return web.json_response({"data": {"items": items}, "context": context})


def _default_underlyings() -> dict[str, Underlying]:
    return {
        u.symbol: u
        for u in (
            Underlying("SPY", "SPDR S&P 500 ETF TRUST", Decimal("545.20"), Decimal("5"), Decimal("0.14"), Decimal("1.0"), Decimal("0.0122"), True),
            Underlying("QQQ", "INVESCO QQQ TRUST SERIES 1", Decimal("468.40"), Decimal("5"), Decimal("0.18"), Decimal("1.12"), Decimal("0.0057"), True),
            Underlying("AAPL", "APPLE INC", Decimal("190.10"), Decimal("5"), Decimal("0.24"), Decimal("1.265634436"), Decimal("0.006396146"), False),
            Underlying("TSLA", "TESLA INC", Decimal("182.60"), Decimal("10"), Decimal("0.55"), Decimal("2.08"), Decimal("0"), False),
            Underlying("SPX", "S&P 500 INDEX", Decimal("5452.0"), Decimal("50"), Decimal("0.14"), Decimal("1.0"), Decimal("0.0125"), False, True, ("SPX", "SPXW")),
        )
    }


def _strike(under: Underlying, steps: int) -> Decimal:
    """The listed strike ``steps`` grid steps from the at-the-money one."""
    centre = (under.price / under.strike_step).quantize(Decimal(1), ROUND_HALF_UP) * under.strike_step
    return centre + under.strike_step * steps


def _chain_layout(under: Underlying, today: date) -> list[tuple[str, str, str, date, list[Decimal]]]:
    """(root, settlement, expiration type, expiry, strikes) for every expiry the fake lists."""
    strikes = [_strike(under, i) for i in range(-6, 7)]
    monthlies = monthlies_after(today, 3)
    weeklies = [d for d in fridays_after(today, 4) if d not in monthlies]
    rows: list[tuple[str, str, str, date, list[Decimal]]] = []
    if under.is_index:
        rows += [("SPX", "AM", "Regular", d, strikes) for d in monthlies]
        rows += [("SPXW", "PM", "Weekly", d, strikes) for d in sorted(set(weeklies) | set(monthlies))]
        return rows
    for day in sorted(set(weeklies) | set(monthlies)):
        rows.append((under.symbol, "PM", "Regular" if day in monthlies else "Weekly", day, strikes))
    return rows


def _norm_cdf(x: float) -> float:
    from math import erf, sqrt

    return 0.5 * (1.0 + erf(x / sqrt(2.0)))


def _option_mid(under: Underlying, expiry: date, kind: str, strike: Decimal, today: date) -> Decimal:
    """A plausible Black-Scholes mid, rounded to the cent, for marks in the fake's data."""
    from math import exp, log, sqrt

    s, k, v = float(under.price), float(strike), float(under.volatility)
    t = max((expiry - today).days, 1) / 365.0
    r, q = 0.0425, float(under.dividend_yield)
    d1 = (log(s / k) + (r - q + v * v / 2) * t) / (v * sqrt(t))
    d2 = d1 - v * sqrt(t)
    if kind == "C":
        price = s * exp(-q * t) * _norm_cdf(d1) - k * exp(-r * t) * _norm_cdf(d2)
    else:
        price = k * exp(-r * t) * _norm_cdf(-d2) - s * exp(-q * t) * _norm_cdf(-d1)
    return Decimal(str(max(price, 0.01))).quantize(Decimal("0.01"), ROUND_HALF_UP)


def _option_json(
    under: Underlying, root: str, expiry: date, kind: str, strike: Decimal, settlement: str, exp_type: str, today: date
) -> dict[str, Any]:
    close = _ts(_close_utc(expiry) if settlement == "PM" else _close_utc(expiry) - timedelta(hours=6, minutes=30))
    return {
        "symbol": occ_symbol(root, expiry, kind, strike),
        "instrument-type": "Equity Option",
        "active": True,
        "strike-price": _money(strike),
        "root-symbol": root,
        "underlying-symbol": under.symbol,
        "expiration-date": expiry.isoformat(),
        "exercise-style": "European" if under.is_index else "American",
        "shares-per-contract": 100,
        "option-type": kind,
        "option-chain-type": "Standard",
        "expiration-type": exp_type,
        "settlement-type": settlement,
        "stops-trading-at": close,
        "market-time-instrument-collection": "Cash Settled Equity Option" if under.is_index else "Equity Option",
        "days-to-expiration": (expiry - today).days,
        "expires-at": close,
        "is-closing-only": False,
        "streamer-symbol": streamer_symbol(root, expiry, kind, strike),
    }


def _equity_json(under: Underlying) -> dict[str, Any]:
    return {
        "id": 700 + sum(map(ord, under.symbol)),
        "symbol": under.symbol,
        "instrument-type": "Equity",
        "cusip": "000000000",
        "short-description": under.description[:20],
        "is-index": False,
        "listed-market": "ARCX" if under.is_etf else "XNAS",
        "description": under.description,
        "lendability": "Easy To Borrow",
        "borrow-rate": "0.0",
        "market-time-instrument-collection": "Equity",
        "is-closing-only": False,
        "is-options-closing-only": False,
        "active": True,
        "is-fractional-quantity-eligible": True,
        "is-illiquid": False,
        "is-etf": under.is_etf,
        "streamer-symbol": under.symbol,
        "tick-sizes": [{"value": "0.0001", "threshold": "1.0"}, {"value": "0.01"}],
        "option-tick-sizes": [{"value": "0.01", "threshold": "3.0"}, {"value": "0.05"}],
        "bypass-manual-review": False,
        "overnight-trading-permitted": True,
    }


def _metrics_json(under: Underlying, today: date, now: float) -> dict[str, Any]:
    updated = datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return {
        "symbol": under.symbol,
        "implied-volatility-index": _money(under.volatility),
        "implied-volatility-index-5-day-change": "-0.014691909",
        "implied-volatility-index-rank": "0.02231313",
        "tos-implied-volatility-index-rank": "0.02231313",
        "tw-implied-volatility-index-rank": "0.037374278",
        "tos-implied-volatility-index-rank-updated-at": updated,
        "implied-volatility-index-rank-source": "tos",
        "implied-volatility-percentile": "0.031249801",
        "implied-volatility-updated-at": updated,
        "liquidity-value": "899091.420242437",
        "liquidity-rank": "1.516319123",
        "liquidity-rating": 4,
        "updated-at": updated,
        "option-expiration-implied-volatilities": [
            {
                "expiration-date": d.isoformat(),
                "option-chain-type": "Standard",
                "settlement-type": "PM",
                "implied-volatility": _money(under.volatility),
            }
            for d in monthlies_after(today, 2)
        ],
        "beta": _money(under.beta),
        "beta-updated-at": updated,
        "corr-spy-3month": "0.79",
        "dividend-yield": _money(under.dividend_yield),
        "dividend-ex-date": (today - timedelta(days=20)).isoformat(),
        "listed-market": "XNAS",
        "lendability": "Easy To Borrow",
        "borrow-rate": "0.0",
        "market-cap": 2846108626900,
        "implied-volatility-30-day": _money(under.volatility * 100),
        "historical-volatility-30-day": _money(under.volatility * 90),
        "historical-volatility-60-day": "19.55",
        "historical-volatility-90-day": "20.24",
        "iv-hv-30-day-difference": "1.85",
    }


def _account_json(account: FakeAccount) -> dict[str, Any]:
    return {
        "account-number": account.number,
        "external-id": f"A{account.number[-7:]}",
        "opened-at": _ts(account.opened_at),
        "nickname": account.nickname,
        "account-type-name": account.account_type,
        "day-trader-status": False,
        "is-closed": account.is_closed,
        "is-firm-error": False,
        "is-firm-proprietary": False,
        "is-futures-approved": account.margin_or_cash == "Margin",
        "is-test-drive": False,
        "margin-or-cash": account.margin_or_cash,
        "is-foreign": False,
        "funding-date": (account.opened_at + timedelta(days=12)).date().isoformat(),
        "investment-objective": "GROWTH",
        "suitable-options-level": "No Restrictions",
        "created-at": _ts(account.opened_at + timedelta(milliseconds=8)),
    }


def _balances_json(account: FakeAccount, now: float) -> dict[str, Any]:
    long_eq = short_eq = long_der = short_der = Decimal(0)
    for p in account.positions:
        value = Decimal(p["_mark"]) * p["quantity"] * p["multiplier"]
        option = p["instrument-type"] == "Equity Option"
        if p["quantity-direction"] == "Long":
            long_der, long_eq = (long_der + value, long_eq) if option else (long_der, long_eq + value)
        else:
            short_der, short_eq = (short_der + value, short_eq) if option else (short_der, short_eq + value)
    net_liq = account.cash + long_eq + long_der - short_eq - short_der
    maintenance = (short_der * 2 + long_eq / 4).quantize(Decimal("0.001"))
    buying_power = max(net_liq - maintenance, Decimal(0)).quantize(Decimal("0.001"))
    z = "0.0"
    when = datetime.fromtimestamp(now, timezone.utc)
    return {
        "account-number": account.number,
        "cash-balance": _money(account.cash),
        "long-equity-value": _money(long_eq),
        "short-equity-value": _money(short_eq),
        "long-derivative-value": _money(long_der),
        "short-derivative-value": _money(short_der),
        "long-futures-value": z, "short-futures-value": z,
        "long-futures-derivative-value": z, "short-futures-derivative-value": z,
        "long-margineable-value": z, "short-margineable-value": z,
        "margin-equity": _money(net_liq),
        "equity-buying-power": _money(buying_power),
        "derivative-buying-power": _money(buying_power),
        "day-trading-buying-power": z,
        "futures-margin-requirement": z,
        "available-trading-funds": z,
        "maintenance-requirement": _money(maintenance),
        "maintenance-call-value": z, "reg-t-call-value": z,
        "day-trading-call-value": z, "day-equity-call-value": z,
        "net-liquidating-value": _money(net_liq),
        "cash-available-to-withdraw": _money(buying_power.quantize(Decimal("0.01"))),
        "day-trade-excess": _money(buying_power.quantize(Decimal("0.01"))),
        "pending-cash": "125.5", "pending-cash-effect": "Debit",
        "long-cryptocurrency-value": z, "short-cryptocurrency-value": z,
        "cryptocurrency-margin-requirement": z,
        "unsettled-cryptocurrency-fiat-amount": z, "unsettled-cryptocurrency-fiat-effect": "None",
        "closed-loop-available-balance": _money(buying_power.quantize(Decimal("0.01"))),
        "equity-offering-margin-requirement": z,
        "long-bond-value": z, "bond-margin-requirement": z,
        "used-derivative-buying-power": _money(short_der),
        "snapshot-date": when.date().isoformat(),
        "reg-t-margin-requirement": _money(maintenance),
        "futures-overnight-margin-requirement": z,
        "futures-intraday-margin-requirement": z,
        "maintenance-excess": _money(buying_power),
        "pending-margin-interest": z,
        "effective-cryptocurrency-buying-power": _money(buying_power.quantize(Decimal("0.01"))),
        "updated-at": _ts(when),
    }


def _customer_json(customer: FakeCustomer, today: date) -> dict[str, Any]:
    address = {
        "street-one": "1 Main St",
        "city": "Chicago",
        "state-region": "IL",
        "postal-code": "60604",
        "country": "USA",
        "is-foreign": False,
        "is-domestic": True,
    }
    return {
        "id": customer.id,
        "external-id": f"U{customer.id[-4:]}",
        "first-name": customer.first_name,
        "last-name": customer.last_name,
        "first-surname": customer.first_name,
        "address": address,
        "mailing-address": address,
        "customer-suitability": {
            "id": 1,
            "marital-status": "SINGLE",
            "number-of-dependents": 0,
            "employment-status": "EMPLOYED",
            "occupation": "Engineer",
            "employer-name": "Example",
            "job-title": "Engineer",
            "annual-net-income": 100000,
            "net-worth": 500000,
            "liquid-net-worth": 250000,
            "stock-trading-experience": "EXTENSIVE",
            "covered-options-trading-experience": "EXTENSIVE",
            "uncovered-options-trading-experience": "EXTENSIVE",
            "futures-trading-experience": "LIMITED",
        },
        "usa-citizenship-type": "Citizen",
        "is-foreign": False,
        "mobile-phone-number": "+13125550100",
        "email": customer.email,
        "tax-number-type": "SSN",
        "tax-number": "*****1234",
        "birth-date": "1985-04-12",
        "citizenship-country": "USA",
        "agreed-to-margining": True,
        "subject-to-tax-withholding": False,
        "agreed-to-terms": True,
        "has-industry-affiliation": False,
        "has-listed-affiliation": False,
        "has-political-affiliation": False,
        "has-delayed-quotes": False,
        "has-pending-or-approved-application": True,
        "is-professional": False,
        "permitted-account-types": [
            {
                "name": "Individual",
                "description": "Individual Account",
                "is-tax-advantaged": False,
                "is-publicly-available": True,
                "has-multiple-owners": False,
                "margin-types": [{"name": "Cash", "is-margin": False}, {"name": "Margin", "is-margin": True}],
            }
        ],
        "created-at": "2021-03-26T18:31:41.070+00:00",
        "identifiable-type": "Person",
        "person": {
            "external-id": f"P{customer.id[-4:]}",
            "first-name": customer.first_name,
            "last-name": customer.last_name,
            "birth-date": "1985-04-12",
            "citizenship-country": "USA",
            "usa-citizenship-type": "Citizen",
            "marital-status": "SINGLE",
            "number-of-dependents": 0,
            "employment-status": "EMPLOYED",
        },
        "user-id": customer.id.replace("me-", ""),
    }


def _history(account: str, count: int, today: date, *, seed: int) -> list[dict[str, Any]]:
    """A deterministic history of trades, assignments, expirations, dividends and deposits, newest first."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    moment = _close_utc(today - timedelta(days=1)) - timedelta(hours=2)
    next_id = 2455333333 + seed * 1_000_000
    roots = [("SPY", Decimal("545")), ("QQQ", Decimal("468")), ("AAPL", Decimal("190")), ("TSLA", Decimal("180"))]
    for index in range(count):
        moment -= timedelta(minutes=rng.randint(17, 600))
        root, spot = roots[rng.randrange(len(roots))]
        base: dict[str, Any] = {
            "id": next_id - index,
            "account-number": account,
            "executed-at": _ts(moment),
            "transaction-date": moment.astimezone(NEW_YORK).date().isoformat(),
            "is-estimated-fee": True,
        }
        roll = rng.random()
        if index == count - 1 or roll < 0.02:
            amount = Decimal(rng.choice([5000, 10000, 25000]))
            base.update(
                {
                    "transaction-type": "Money Movement",
                    "transaction-sub-type": "Deposit",
                    "description": "ACH DEPOSIT",
                    "value": _money(amount), "value-effect": "Credit",
                    "net-value": _money(amount), "net-value-effect": "Credit",
                }
            )
        elif roll < 0.06:
            amount = Decimal(rng.randint(500, 9000)) / 100
            base.update(
                {
                    "symbol": root,
                    "instrument-type": "Equity",
                    "underlying-symbol": root,
                    "transaction-type": "Money Movement",
                    "transaction-sub-type": "Dividend",
                    "description": f"{root} CASH DIVIDEND",
                    "value": _money(amount), "value-effect": "Credit",
                    "net-value": _money(amount), "net-value-effect": "Credit",
                }
            )
        elif roll < 0.08:
            amount = Decimal(rng.randint(100, 2500)) / 100
            base.update(
                {
                    "transaction-type": "Money Movement",
                    "transaction-sub-type": "Balance Adjustment",
                    "description": "MARGIN INTEREST",
                    "value": _money(amount), "value-effect": "Debit",
                    "net-value": _money(amount), "net-value-effect": "Debit",
                }
            )
        elif roll < 0.12:
            expiry = moment.astimezone(NEW_YORK).date()
            strike = spot + 5 * rng.randint(-6, 6)
            kind = rng.choice("CP")
            sub = rng.choice(["Expiration", "Assignment"])
            base.update(
                {
                    "symbol": occ_symbol(root, expiry, kind, strike),
                    "instrument-type": "Equity Option",
                    "underlying-symbol": root,
                    "transaction-type": "Receive Deliver",
                    "transaction-sub-type": sub,
                    "description": "Removal of option due to " + sub.lower(),
                    "action": "Buy to Close",
                    "quantity": f"{rng.randint(1, 5)}.0",
                    "value": "0.0", "value-effect": "None",
                    "net-value": "0.0", "net-value-effect": "None",
                }
            )
        else:
            option = rng.random() < 0.8
            action = rng.choice(["Buy to Open", "Sell to Open", "Buy to Close", "Sell to Close"])
            quantity = rng.randint(1, 10) if option else rng.choice([10, 25, 50, 100])
            if option:
                expiry = fridays_after((moment + timedelta(days=rng.randint(3, 60))).astimezone(NEW_YORK).date(), 1)[0]
                strike = spot + 5 * rng.randint(-8, 8)
                kind = rng.choice("CP")
                price = Decimal(rng.randint(15, 1500)) / 100
                symbol, multiplier = occ_symbol(root, expiry, kind, strike), 100
                description = f"{'Bought' if action.startswith('Buy') else 'Sold'} {quantity} {root} {expiry:%m/%d/%y} {'Call' if kind == 'C' else 'Put'} {strike} @ {price}"
                commission = Decimal(min(quantity, 10)) if action.endswith("Open") else Decimal(0)
                clearing = Decimal("0.10") * quantity
                regulatory = (Decimal("0.0105") * quantity).quantize(Decimal("0.001"))
            else:
                price = (spot * Decimal(1 + rng.uniform(-0.05, 0.05))).quantize(Decimal("0.01"))
                symbol, multiplier = root, 1
                description = f"{'Bought' if action.startswith('Buy') else 'Sold'} {quantity} {root} @ {price}"
                commission = Decimal(0)
                clearing = (Decimal("0.0008") * quantity).quantize(Decimal("0.001"))
                regulatory = Decimal("0.0") if action.startswith("Buy") else Decimal("0.02")
            value = price * quantity * multiplier * (-1 if action.startswith("Buy") else 1)
            net = value - commission - clearing - regulatory
            v_amount, v_effect = _effect(value)
            n_amount, n_effect = _effect(net)
            base.update(
                {
                    "symbol": symbol,
                    "instrument-type": "Equity Option" if option else "Equity",
                    "underlying-symbol": root,
                    "transaction-type": "Trade",
                    "transaction-sub-type": action,
                    "description": description,
                    "action": action,
                    "quantity": f"{quantity}.0",
                    "price": _money(price),
                    "value": v_amount, "value-effect": v_effect,
                    "regulatory-fees": _money(regulatory), "regulatory-fees-effect": "Debit" if regulatory else "None",
                    "clearing-fees": _money(clearing), "clearing-fees-effect": "Debit" if clearing else "None",
                    "net-value": n_amount, "net-value-effect": n_effect,
                    "commission": _money(commission), "commission-effect": "Debit" if commission else "None",
                    "proprietary-index-option-fees": "0.0", "proprietary-index-option-fees-effect": "None",
                    "ext-exchange-order-number": str(6309579568813 + index),
                    "ext-global-order-number": 1469 + index,
                    "ext-group-id": "0",
                    "ext-group-fill-id": str(613761478 + index),
                    "ext-exec-id": str(6075255 + index),
                    "exec-id": f"4_A5F-1DY-{index:04d}",
                    "exchange": "D",
                    "order-id": 272610989 + index,
                    "exchange-affiliation-identifier": "",
                    "leg-count": 1,
                    "destination-venue": "WOLVERINE_OPTIONS_A" if option else "NITE_EQUITIES_A",
                }
            )
        rows.append(base)
    return rows
