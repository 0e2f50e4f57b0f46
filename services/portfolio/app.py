"""Portfolio use cases: valuations, P&L, Greeks, scenarios and risk limits, with breach alerts on the bus.

Every RPC values the account afresh from the broker (positions, balances), the broker's metrics (betas,
yields, rate) and market data (prices, feed Greeks). Pricing runs off the event loop. Each valuation is
checked against the account's limits; new breaches are stored with an outbox entry in one transaction and
a relay publishes them on the alert topic, so an alert is neither lost nor sent twice. While an owner's
access token is valid, a monitor re-values the accounts that have limits every few seconds.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from services.platform.bus import MessageBus
from services.platform.clock import Clock
from services.portfolio.domain.beta import estimate_beta
from services.portfolio.domain.errors import (
    AccountNotFound,
    BenchmarkPriceMissing,
    FieldInvalid,
    FieldRequired,
    HistoryIncomplete,
    PageTokenInvalid,
    TimeRangeInvalid,
)
from services.portfolio.domain.greeks import (
    BetaSource,
    PortfolioGreeks,
    PricingBook,
    build_book,
    compute_greeks,
    solve_implied_vols,
)
from services.portfolio.domain.ledger import Ledger, Trade, build_ledger
from services.portfolio.domain.model import NEW_YORK, HeldPosition, MarketInputs, day_end
from services.portfolio.domain.pnl import PnlReport, PositionValuation, compute_pnl, value_positions
from services.portfolio.domain.risk import (
    Breach,
    LimitKind,
    RiskLimits,
    RiskMeasures,
    check_limits,
    compute_measures,
    diff_breaches,
    validate_limits,
)
from services.portfolio.domain.scenario import Grid, ScenarioResult, run_scenario, validate_grid
from services.portfolio.ports import (
    ALERT_TOPIC,
    AccountBalances,
    BrokerPort,
    Caller,
    MarketDataPort,
    RiskAlert,
    Snapshot,
    Store,
)

__all__ = ["AppSettings", "PortfolioApp", "Valuation"]

log = logging.getLogger("tastyplat.portfolio")
ZERO = Decimal(0)


@dataclass(frozen=True)
class AppSettings:
    """Behaviour of the application.

    Attributes:
        benchmark: Default beta-weighting benchmark.
        snapshot_interval_seconds: Least time between two recorded snapshots of an account.
        risk_check_seconds: Period of the monitor's re-valuation of accounts with limits.
        outbox_retry_seconds: Pause after a failed publish.
        beta_history_days: Calendar days of closes used to estimate a missing beta.
    """

    benchmark: str = "SPY"
    snapshot_interval_seconds: float = 300.0
    risk_check_seconds: float = 60.0
    outbox_retry_seconds: float = 2.0
    beta_history_days: int = 365


@dataclass
class Valuation:
    """An account priced now."""

    account_number: str
    now: datetime
    positions: list[HeldPosition]
    balances: AccountBalances
    inputs: MarketInputs
    book: PricingBook
    greeks: PortfolioGreeks
    benchmark: str
    benchmark_price: float
    ledger: Ledger | None = None
    valuations: list[PositionValuation] = field(default_factory=list)

    @property
    def market_value(self) -> Decimal:
        """Sum of the positions' market values at marks."""
        return sum(
            ((p.mark_price if p.mark_price is not None else ZERO) * p.quantity * p.multiplier for p in self.positions),
            ZERO,
        )


def _check_account(account_number: str) -> str:
    if not account_number:
        raise FieldRequired("account_number")
    return account_number


def _check_range(start: datetime | None, end: datetime | None) -> None:
    if start is not None and end is not None and start > end:
        raise TimeRangeInvalid()


def _token(query: str, position: str) -> str:
    digest = hashlib.sha256(query.encode()).hexdigest()[:16]
    return base64.urlsafe_b64encode(json.dumps([digest, position]).encode()).decode().rstrip("=")


def _untoken(query: str, token: str) -> str | None:
    if not token:
        return None
    try:
        digest, position = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, TypeError):
        raise PageTokenInvalid() from None
    if digest != hashlib.sha256(query.encode()).hexdigest()[:16] or not isinstance(position, str):
        raise PageTokenInvalid()
    return position


def _page_size(value: int, default: int, maximum: int) -> int:
    if value < 0:
        raise FieldInvalid("page_size", f"must be >= 0, got {value}")
    return default if value == 0 else min(value, maximum)


_LIMIT_NAMES = {
    LimitKind.MAX_BETA_WEIGHTED_DELTA: "beta-weighted delta",
    LimitKind.MAX_DELTA_DOLLARS: "dollar delta",
    LimitKind.MAX_VEGA: "vega",
    LimitKind.MAX_THETA_DECAY: "theta decay",
    LimitKind.MAX_SCENARIO_LOSS: "scenario loss",
    LimitKind.MAX_CONCENTRATION: "concentration",
}


def describe_breach(account_number: str, breach: Breach, benchmark: str) -> tuple[str, str]:
    """(title, message) of a breach alert."""
    name = _LIMIT_NAMES[breach.kind]
    if breach.kind is LimitKind.MAX_CONCENTRATION:
        title = f"{breach.underlying_symbol} is {breach.observed_value:.1%} of net liq (limit {breach.limit_value:.1%})"
    elif breach.kind is LimitKind.MAX_BETA_WEIGHTED_DELTA:
        title = f"Beta-weighted delta {breach.observed_value:,.1f} {benchmark} beyond limit {breach.limit_value:,.1f}"
    else:
        title = f"{name.capitalize()} {breach.observed_value:,.2f} beyond limit {breach.limit_value:,.2f}"
    message = (
        f"Account {account_number}: the {name} risk limit is breached. Observed {breach.observed_value:,.4f}, "
        f"limit {breach.limit_value:,.4f}. No orders are placed by the platform; review the positions."
    )
    return title, message


class PortfolioApp:
    """The portfolio service's use cases."""

    def __init__(
        self,
        *,
        broker: BrokerPort,
        market_data: MarketDataPort,
        store: Store,
        bus: MessageBus,
        encode_alert: Callable[[RiskAlert], bytes],
        clock: Clock,
        settings: AppSettings | None = None,
    ) -> None:
        """Wire the use cases to their ports."""
        self.broker = broker
        self.market_data = market_data
        self.store = store
        self.bus = bus
        self._encode = encode_alert
        self.clock = clock
        self.settings = settings or AppSettings()
        self._callers: dict[str, Caller] = {}
        self._last_snapshot: dict[str, datetime] = {}
        self._outbox_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._check_locks: dict[str, asyncio.Lock] = {}

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Start the outbox relay and the risk monitor."""
        self._tasks = [
            asyncio.create_task(self._relay(), name="portfolio-outbox"),
            asyncio.create_task(self._monitor(), name="portfolio-monitor"),
        ]
        self._outbox_wake.set()

    async def stop(self) -> None:
        """Stop the background tasks (after publishing what is pending, best effort)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        with contextlib.suppress(Exception):
            await self.publish_pending()

    # ---------------------------------------------------------------- valuation

    async def _inputs(self, positions: Sequence[HeldPosition], benchmark: str, caller: Caller, now: datetime) -> tuple[MarketInputs, dict[str, tuple[float, BetaSource]]]:
        underlyings = sorted({p.underlying_symbol for p in positions} | {benchmark})
        options = sorted({p.symbol for p in positions if p.option is not None})
        metrics, prices, feed = await asyncio.gather(
            self.broker.metrics(underlyings, caller),
            self.market_data.prices(underlyings, caller),
            self.market_data.option_greeks(options, caller) if options else _empty(),
        )
        for p in positions:
            if p.option is None and p.mark_price is not None and p.underlying_symbol not in prices:
                prices[p.underlying_symbol] = float(p.mark_price)
        solved = await asyncio.to_thread(solve_implied_vols, positions, prices, metrics.dividend_yields, metrics.rate, now)
        vols: dict[str, float] = {}
        broker_greeks = {}
        for symbol in options:
            f = feed.get(symbol)
            if f is not None and f.broker is not None:
                broker_greeks[symbol] = f.broker
            candidates = [solved.get(symbol), f.model_volatility if f else None, f.broker[5] if f and f.broker else None]
            vol = next((v for v in candidates if v is not None and math.isfinite(v) and v > 0), None)
            if vol is not None:
                vols[symbol] = vol
        betas = await self._betas(underlyings, benchmark, metrics.betas, caller, now)
        inputs = MarketInputs(
            prices=prices,
            betas=metrics.betas,
            dividend_yields=metrics.dividend_yields,
            rate=metrics.rate,
            implied_volatilities=vols,
            broker_greeks=broker_greeks,
            volatility_indices=metrics.volatility_indices,
        )
        return inputs, betas

    async def _betas(
        self, underlyings: Sequence[str], benchmark: str, broker_betas: dict[str, float], caller: Caller, now: datetime
    ) -> dict[str, tuple[float, BetaSource]]:
        out: dict[str, tuple[float, BetaSource]] = {}
        missing: list[str] = []
        bench_beta = 1.0 if benchmark == "SPY" else broker_betas.get(benchmark)
        for u in underlyings:
            if u == benchmark:
                out[u] = (1.0, BetaSource.BENCHMARK)
            elif u in broker_betas and bench_beta:
                # The broker's betas are to SPY; against another benchmark, beta(u, B) = beta(u, SPY) / beta(B, SPY).
                out[u] = (broker_betas[u] / bench_beta, BetaSource.BROKER)
            else:
                missing.append(u)
        if missing:
            start = now - timedelta(days=self.settings.beta_history_days)
            bench = await self.market_data.daily_closes(benchmark, start, now, caller)
            for u in missing:
                estimate = estimate_beta(await self.market_data.daily_closes(u, start, now, caller), bench) if bench else None
                out[u] = (estimate, BetaSource.ESTIMATED) if estimate is not None else (1.0, BetaSource.DEFAULT)
        return out

    async def value(self, account_number: str, caller: Caller, benchmark: str = "", *, check: bool = True) -> Valuation:
        """Value the account now (positions, balances, market inputs, Greeks) and check its limits.

        Raises:
            AccountNotFound, BrokerUnavailable, MarketDataUnavailable, BenchmarkPriceMissing.
        """
        _check_account(account_number)
        benchmark = benchmark or self.settings.benchmark
        now = self.clock.now()
        positions, balances = await asyncio.gather(
            self.broker.positions(account_number, caller), self.broker.balances(account_number, caller)
        )
        positions.sort(key=lambda p: (p.underlying_symbol, p.symbol))
        self._callers[account_number] = caller
        inputs, betas = await self._inputs(positions, benchmark, caller, now)
        bench_price = inputs.prices.get(benchmark)
        if bench_price is None or not bench_price > 0:
            raise BenchmarkPriceMissing(benchmark)
        book = await asyncio.to_thread(build_book, positions, inputs, now)
        greeks = await asyncio.to_thread(compute_greeks, book, betas, benchmark, bench_price)
        valuation = Valuation(account_number, now, positions, balances, inputs, book, greeks, benchmark, bench_price)
        if check:
            await self._after_valuation(valuation, caller)
        return valuation

    async def _after_valuation(self, valuation: Valuation, caller: Caller) -> RiskMeasures | None:
        measures = None
        limits = await self.store.get_limits(valuation.account_number)
        if limits is not None and limits[0] == caller.user_id:
            measures = await self._check(valuation, limits[0], limits[1])
        await self._snapshot(valuation)
        return measures

    async def _snapshot(self, v: Valuation) -> None:
        last = self._last_snapshot.get(v.account_number)
        if last is not None and (v.now - last).total_seconds() < self.settings.snapshot_interval_seconds:
            return
        self._last_snapshot[v.account_number] = v.now
        unrealized = sum((val.unrealized_pnl for val in v.valuations), ZERO) if v.valuations else ZERO
        await self.store.add_snapshot(
            v.account_number,
            Snapshot(
                record_time=v.now,
                net_liquidating_value=v.balances.net_liquidating_value,
                unrealized_pnl=unrealized,
                delta_dollars=v.greeks.total_delta_dollars,
                beta_weighted_delta=v.greeks.total_beta_weighted_delta,
                theta=v.greeks.total_theta,
                vega=v.greeks.total_vega,
                benchmark_symbol=v.benchmark,
            ),
        )

    async def _ledger(self, account_number: str, caller: Caller, positions: Sequence[HeldPosition], now: datetime) -> Ledger:
        history = await self.broker.transactions(account_number, caller)

        def build() -> Ledger:
            ledger = build_ledger(history)
            ledger.expire_lapsed(now, [p.symbol for p in positions])
            return ledger

        return await asyncio.to_thread(build)

    # ---------------------------------------------------------------- RPC use cases

    async def portfolio(self, account_number: str, caller: Caller) -> Valuation:
        """The account's positions valued with their lots (positions the history does not explain use the
        broker's own average open price)."""
        valuation = await self.value(account_number, caller, check=False)
        ledger = await self._ledger(account_number, caller, valuation.positions, valuation.now)
        valuation.ledger = ledger
        valuation.valuations = value_positions(ledger, valuation.positions, valuation.now)
        await self._after_valuation(valuation, caller)
        return valuation

    async def greeks(self, account_number: str, caller: Caller, benchmark: str) -> Valuation:
        """The account's Greeks (see ``value``)."""
        return await self.value(account_number, caller, benchmark)

    async def profit_and_loss(self, account_number: str, caller: Caller) -> tuple[PnlReport, datetime]:
        """P&L at every grouping.

        Raises:
            HistoryIncomplete: The history does not reconcile with the positions.
        """
        _check_account(account_number)
        now = self.clock.now()
        positions = await self.broker.positions(account_number, caller)
        self._callers[account_number] = caller
        ledger = await self._ledger(account_number, caller, positions, now)
        problem = ledger.reconcile(positions)
        if problem is not None:
            raise HistoryIncomplete(*problem)
        valuations = value_positions(ledger, positions, now)
        return compute_pnl(ledger, valuations, now, account_number), now

    async def closed_trades(
        self, account_number: str, caller: Caller, start: datetime | None, end: datetime | None, page_size: int, page_token: str
    ) -> tuple[list[Trade], str]:
        """A page of closed trades, newest close first."""
        _check_account(account_number)
        _check_range(start, end)
        size = _page_size(page_size, 500, 5000)
        query = f"trades|{account_number}|{start}|{end}"
        offset = int(_untoken(query, page_token) or 0)
        now = self.clock.now()
        positions = await self.broker.positions(account_number, caller)
        ledger = await self._ledger(account_number, caller, positions, now)
        problem = ledger.reconcile(positions)
        if problem is not None:
            raise HistoryIncomplete(*problem)
        trades = [
            t for t in ledger.closed_trades()
            if t.close_time is not None and (start is None or t.close_time >= start) and (end is None or t.close_time < end)
        ]
        page = trades[offset : offset + size]
        token = _token(query, str(offset + size)) if offset + size < len(trades) else ""
        return page, token

    async def history(
        self, account_number: str, caller: Caller, start: datetime | None, end: datetime | None
    ) -> tuple[list[tuple[datetime, Decimal, Decimal]], list[Snapshot]]:
        """Realized P&L per New York day (day end, amount, cumulative in range) and recorded snapshots."""
        _check_account(account_number)
        _check_range(start, end)
        now = self.clock.now()
        positions = await self.broker.positions(account_number, caller)
        ledger = await self._ledger(account_number, caller, positions, now)
        problem = ledger.reconcile(positions)
        if problem is not None:
            raise HistoryIncomplete(*problem)
        daily: dict[Any, Decimal] = {}
        for b in ledger.bookings:
            if (start is None or b.time >= start) and (end is None or b.time < end):
                day = b.time.astimezone(NEW_YORK).date()
                daily[day] = daily.get(day, ZERO) + b.amount
        running = ZERO
        series = []
        for day in sorted(daily):
            running += daily[day]
            series.append((day_end(day), daily[day], running))
        snapshots = await self.store.list_snapshots(account_number, start, end)
        return series, snapshots

    async def get_limits(self, account_number: str, caller: Caller) -> tuple[RiskLimits, RiskMeasures]:
        """The account's limits (empty when none are set) and the current measures."""
        valuation = await self.value(account_number, caller, check=False)
        stored = await self.store.get_limits(account_number)
        limits = stored[1] if stored is not None and stored[0] == caller.user_id else RiskLimits()
        if stored is not None and stored[0] == caller.user_id:
            measures = await self._check(valuation, caller.user_id, limits)
        else:
            measures = await self._measures(valuation, limits)
        return limits, measures

    async def set_limits(self, account_number: str, caller: Caller, limits: RiskLimits) -> tuple[RiskLimits, RiskMeasures]:
        """Validate and store the limits, then check them at once (a breach alerts immediately)."""
        _check_account(account_number)
        validate_limits(limits, None)
        valuation = await self.value(account_number, caller, limits.benchmark_symbol, check=False)
        validate_limits(limits, valuation.book)
        await self.store.put_limits(account_number, caller.user_id, limits)
        measures = await self._check(valuation, caller.user_id, limits)
        return limits, measures

    async def scenario(self, account_number: str, caller: Caller, moves: Sequence[float], shifts: Sequence[float], days: Sequence[float]) -> tuple[ScenarioResult, Decimal, datetime]:
        """Re-price the account on the grid."""
        _check_account(account_number)
        validate_grid(moves, shifts, days, None)
        valuation = await self.value(account_number, caller)
        grid = validate_grid(moves, shifts, days, valuation.book)
        base = valuation.market_value
        result = await asyncio.to_thread(run_scenario, valuation.book, grid, float(base))
        return result, base, valuation.now

    async def risk_alerts(
        self, account_number: str, caller: Caller, start: datetime | None, end: datetime | None, page_size: int, page_token: str
    ) -> tuple[list[RiskAlert], str]:
        """A page of the account's risk alerts, newest first."""
        _check_account(account_number)
        _check_range(start, end)
        size = _page_size(page_size, 100, 1000)
        query = f"alerts|{account_number}|{start}|{end}"
        before = _untoken(query, page_token)
        stored = await self.store.get_limits(account_number)
        if stored is None or stored[0] != caller.user_id:
            # Not known as the caller's here: the broker decides (another user's account is NOT_FOUND).
            await self.broker.balances(account_number, caller)
        alerts = await self.store.list_alerts(account_number, start, end, before, size + 1)
        if stored is not None and stored[0] != caller.user_id:
            alerts = [a for a in alerts if a.user_id == caller.user_id]
        page = alerts[:size]
        token = _token(query, page[-1].alert_id) if len(alerts) > size else ""
        return page, token

    # ---------------------------------------------------------------- risk

    async def _measures(self, valuation: Valuation, limits: RiskLimits) -> RiskMeasures:
        worst = None
        if limits.scenario is not None:
            grid = validate_grid(limits.scenario.moves, limits.scenario.shifts, limits.scenario.days, valuation.book,
                                 prefix="risk_limits.scenario.")
            result = await asyncio.to_thread(run_scenario, valuation.book, grid, float(valuation.market_value))
            worst = result.worst_pnl()
        market_values = [float((p.mark_price or ZERO) * p.quantity * p.multiplier) for p in valuation.positions]
        greeks = valuation.greeks
        if limits.benchmark_symbol and limits.benchmark_symbol != valuation.benchmark:
            _, betas = await self._inputs(valuation.positions, limits.benchmark_symbol, self._callers[valuation.account_number], valuation.now)
            price = valuation.inputs.prices.get(limits.benchmark_symbol)
            if price is None:
                raise BenchmarkPriceMissing(limits.benchmark_symbol)
            greeks = await asyncio.to_thread(compute_greeks, valuation.book, betas, limits.benchmark_symbol, price)
        return compute_measures(greeks, market_values, float(valuation.balances.net_liquidating_value), worst, valuation.now)

    async def _check(self, valuation: Valuation, user_id: str, limits: RiskLimits) -> RiskMeasures:
        lock = self._check_locks.setdefault(valuation.account_number, asyncio.Lock())
        async with lock:
            measures = await self._measures(valuation, limits)
            breaches = check_limits(limits, measures)
            active = await self.store.active_breaches(valuation.account_number)
            new, still = diff_breaches(active, breaches)
            if new or still != active:
                drafts = []
                for breach in new:
                    title, message = describe_breach(valuation.account_number, breach, limits.benchmark_symbol)
                    drafts.append(
                        RiskAlert("", user_id, valuation.account_number, limits.breach_severity, title, message,
                                  valuation.now, breach)
                    )
                stored = await self.store.record_breaches(valuation.account_number, drafts, still, active)
                if stored:
                    log.warning(
                        "risk limit breached",
                        extra={"account": valuation.account_number, "alerts": [a.alert_id for a in stored]},
                    )
                    self._outbox_wake.set()
        return measures

    async def publish_pending(self) -> int:
        """Publish every stored, unpublished alert in order; return how many were published."""
        published = 0
        while True:
            pending = await self.store.pending_outbox(100)
            if not pending:
                return published
            done: list[str] = []
            try:
                for alert in pending:
                    await self.bus.publish(ALERT_TOPIC, self._encode(alert), alert.alert_id)
                    done.append(alert.alert_id)
            finally:
                if done:
                    await self.store.mark_published(done)
                    published += len(done)

    async def _relay(self) -> None:
        while True:
            await self._outbox_wake.wait()
            self._outbox_wake.clear()
            try:
                await self.publish_pending()
            except Exception as error:  # noqa: BLE001  # the relay must outlive a bus or database outage
                log.warning("risk alert outbox: publish failed, will retry", extra={"error": repr(error)})
                await self.clock.sleep(self.settings.outbox_retry_seconds)
                self._outbox_wake.set()

    async def _monitor(self) -> None:
        while True:
            await self.clock.sleep(self.settings.risk_check_seconds)
            await self.check_all()

    async def check_all(self) -> int:
        """Re-value every account with limits whose owner's token is still valid; return how many were checked."""
        checked = 0
        try:
            accounts = await self.store.accounts_with_limits()
        except Exception as error:  # noqa: BLE001  # a database outage must not end the monitor
            log.warning("risk monitor: cannot list accounts", extra={"error": repr(error)})
            return 0
        now = self.clock.now()
        for account, owner in accounts:
            caller = self._callers.get(account)
            if caller is None or caller.user_id != owner or (caller.expires_at is not None and caller.expires_at <= now):
                continue
            try:
                await self.value(account, caller)
                checked += 1
            except AccountNotFound:
                self._callers.pop(account, None)
            except Exception as error:  # noqa: BLE001  # one account's failure must not stop the others
                log.warning("risk monitor: valuation failed", extra={"account": account, "error": repr(error)})
        return checked


async def _empty() -> dict[str, Any]:
    return {}
