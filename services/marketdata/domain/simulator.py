"""A market simulator: correlated stochastic-volatility jump-diffusions for underlyings, option quotes from core_ext.

Theory of operation. Each underlying i follows, in trading time,

    d ln S = (r - q - v/2 - lambda k) dt + sqrt(v) dW_i + dJ          (Merton jumps, compensated)
    dv     = kappa (theta - v) dt + xi sqrt(v) dZ_i                    (Heston variance, full truncation)

with dW_i = rho_i dM + sqrt(1 - rho_i^2) dE_i (one market factor M: underlyings are correlated through their
loadings rho_i) and dZ_i correlated with dW_i by the leverage coefficient (falling prices raise volatility).
Simulated time runs `time_scale` trading seconds per wall second over a 252 x 6.5 hour trading year.

Options are priced from the underlying's current volatility with a smile in log-moneyness, American style,
through core_ext; their quotes straddle the model price with a spread that widens with price and snaps to
the exchange tick (0.01 below 3.00, 0.05 above). The model's own Greeks at that volatility are what the
simulator reports as the feed's ("dxFeed") Greeks; the service's model Greeks come from the quoted mid, so
the two differ the way they do live.

Everything random comes from one `numpy.random.Generator` seeded at construction: the same seed, universe
and step sequence give the same ticks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from services.marketdata.domain.events import GreeksEvent, QuoteEvent, TradeEvent
from services.marketdata.domain.pricing import price_and_greeks
from services.marketdata.domain.symbols import OptionSymbol

__all__ = ["DEFAULT_UNIVERSE", "MarketSimulator", "UnderlyingSpec"]

TRADING_SECONDS_PER_YEAR = 252 * 6.5 * 3600


@dataclass(frozen=True, slots=True)
class UnderlyingSpec:
    """Parameters of one simulated underlying.

    Attributes:
        symbol: Its symbol.
        spot: Starting price.
        volatility: Long-run volatility (a fraction per year); the variance starts there.
        market_loading: Correlation of its returns with the market factor.
        dividend_yield: Continuous dividend yield.
        spread: Quoted bid/ask width in currency.
        jump_intensity: Expected jumps per year.
        jump_mean: Mean log jump size.
        jump_stdev: Standard deviation of the log jump size.
        vol_of_vol: Heston xi.
        mean_reversion: Heston kappa, per year.
        leverage: Correlation of variance shocks with price shocks.
    """

    symbol: str
    spot: float
    volatility: float
    market_loading: float
    dividend_yield: float = 0.0
    spread: float = 0.01
    jump_intensity: float = 4.0
    jump_mean: float = -0.01
    jump_stdev: float = 0.02
    vol_of_vol: float = 0.6
    mean_reversion: float = 3.0
    leverage: float = -0.7


DEFAULT_UNIVERSE: tuple[UnderlyingSpec, ...] = (
    UnderlyingSpec("SPY", 500.0, 0.15, 0.95, 0.013, 0.01, 2.0, -0.015, 0.01),
    UnderlyingSpec("QQQ", 430.0, 0.20, 0.90, 0.006, 0.01, 2.0, -0.015, 0.015),
    UnderlyingSpec("IWM", 200.0, 0.22, 0.80, 0.012, 0.01),
    UnderlyingSpec("AAPL", 190.0, 0.25, 0.65, 0.005, 0.02),
    UnderlyingSpec("MSFT", 410.0, 0.24, 0.65, 0.007, 0.03),
    UnderlyingSpec("NVDA", 900.0, 0.50, 0.60, 0.0003, 0.10, 6.0, 0.0, 0.04),
    UnderlyingSpec("TSLA", 240.0, 0.55, 0.50, 0.0, 0.05, 6.0, 0.0, 0.05),
    UnderlyingSpec("AMZN", 180.0, 0.30, 0.60, 0.0, 0.02),
    UnderlyingSpec("META", 480.0, 0.35, 0.60, 0.004, 0.05),
    UnderlyingSpec("GOOGL", 170.0, 0.28, 0.60, 0.005, 0.02),
)


def _floor_tick(price: np.ndarray, tick: np.ndarray) -> np.ndarray:
    return np.floor(price / tick + 1e-9) * tick


def _ceil_tick(price: np.ndarray, tick: np.ndarray) -> np.ndarray:
    return np.ceil(price / tick - 1e-9) * tick


class MarketSimulator:
    """The simulated market (see the module docstring). Not thread-safe; call from one task."""

    def __init__(
        self,
        universe: Sequence[UnderlyingSpec] = DEFAULT_UNIVERSE,
        *,
        seed: int = 20240611,
        rate: float = 0.045,
        time_scale: float = 1.0,
        trade_probability: float = 0.3,
    ) -> None:
        if not universe:
            raise ValueError("the simulator needs at least one underlying")
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.universe = tuple(universe)
        self.rate = rate
        self.time_scale = time_scale
        self.trade_probability = trade_probability
        self._index = {spec.symbol: i for i, spec in enumerate(self.universe)}
        self._rng = np.random.default_rng(seed)
        self._spot = np.array([s.spot for s in self.universe])
        self._variance = np.array([s.volatility**2 for s in self.universe])
        self._theta = self._variance.copy()
        self._loading = np.clip([s.market_loading for s in self.universe], -0.99, 0.99)
        self._q = np.array([s.dividend_yield for s in self.universe])
        self._spread = np.array([s.spread for s in self.universe])
        self._lambda = np.array([s.jump_intensity for s in self.universe])
        self._jump_mean = np.array([s.jump_mean for s in self.universe])
        self._jump_stdev = np.array([s.jump_stdev for s in self.universe])
        self._xi = np.array([s.vol_of_vol for s in self.universe])
        self._kappa = np.array([s.mean_reversion for s in self.universe])
        self._leverage = np.clip([s.leverage for s in self.universe], -0.99, 0.99)
        self._day_volume = np.zeros(len(self.universe))
        self.steps = 0

    def knows(self, symbol: str) -> bool:
        """Tell whether `symbol` is a simulated underlying."""
        return symbol in self._index

    def spot(self, symbol: str) -> float:
        """The current price of an underlying."""
        return float(self._spot[self._index[symbol]])

    def volatility(self, symbol: str) -> float:
        """The current instantaneous volatility of an underlying."""
        return math.sqrt(max(float(self._variance[self._index[symbol]]), 0.0))

    def step(self, wall_seconds: float) -> None:
        """Advance the market by `wall_seconds` of wall time."""
        if wall_seconds <= 0:
            return
        dt = wall_seconds * self.time_scale / TRADING_SECONDS_PER_YEAR
        n = len(self.universe)
        rng = self._rng
        market = rng.standard_normal()
        own = rng.standard_normal(n)
        vol_noise = rng.standard_normal(n)
        dw = self._loading * market + np.sqrt(1.0 - self._loading**2) * own
        dz = self._leverage * dw + np.sqrt(1.0 - self._leverage**2) * vol_noise
        v = np.maximum(self._variance, 0.0)
        jumps = rng.poisson(self._lambda * dt)
        jump_size = np.where(
            jumps > 0,
            self._jump_mean * jumps + self._jump_stdev * np.sqrt(jumps) * rng.standard_normal(n),
            0.0,
        )
        compensator = self._lambda * (np.exp(self._jump_mean + 0.5 * self._jump_stdev**2) - 1.0)
        drift = (self.rate - self._q - 0.5 * v - compensator) * dt
        self._spot = self._spot * np.exp(drift + np.sqrt(v * dt) * dw + jump_size)
        self._variance = v + self._kappa * (self._theta - v) * dt + self._xi * np.sqrt(v * dt) * dz
        self.steps += 1

    def underlying_events(
        self, symbols: Sequence[str], time_ns: int
    ) -> tuple[list[QuoteEvent], list[TradeEvent]]:
        """Quotes of the given underlyings (unknown ones skipped) and the trades that happened this step."""
        idx = [self._index[s] for s in symbols if s in self._index]
        if not idx:
            return [], []
        at = np.array(idx)
        spot = self._spot[at]
        half = self._spread[at] / 2
        cent = np.full(len(at), 0.01)
        bid = _floor_tick(spot - half, cent)
        ask = np.maximum(_ceil_tick(spot + half, cent), bid + 0.01)
        sizes = self._rng.integers(1, 20, size=(2, len(at))) * 100.0
        traded = self._rng.random(len(at)) < self.trade_probability
        take_ask = self._rng.random(len(at)) < 0.5
        trade_size = self._rng.integers(1, 10, size=len(at)) * 100.0
        quotes: list[QuoteEvent] = []
        trades: list[TradeEvent] = []
        for k, i in enumerate(idx):
            symbol = self.universe[i].symbol
            quotes.append(
                QuoteEvent(symbol, round(float(bid[k]), 2), round(float(ask[k]), 2), float(sizes[0, k]),
                           float(sizes[1, k]), time_ns)
            )  # fmt: skip
            if traded[k]:
                self._day_volume[i] += trade_size[k]
                price = ask[k] if take_ask[k] else bid[k]
                trades.append(
                    TradeEvent(symbol, round(float(price), 2), float(trade_size[k]), float(self._day_volume[i]),
                               time_ns)
                )  # fmt: skip
        return quotes, trades

    def option_events(
        self, options: Sequence[OptionSymbol], now: datetime, time_ns: int
    ) -> tuple[list[QuoteEvent], list[GreeksEvent]]:
        """Quotes and feed Greeks of options on simulated underlyings (others and expired ones skipped).

        Events carry each option's dxFeed streamer symbol.
        """
        live = [o for o in options if o.underlying in self._index and o.years_to_expiry(now) > 0]
        if not live:
            return [], []
        at = np.array([self._index[o.underlying] for o in live])
        spot = self._spot[at]
        strike = np.array([float(o.strike) for o in live])
        years = np.array([o.years_to_expiry(now) for o in live])
        is_call = np.array([o.is_call for o in live])
        base_vol = np.sqrt(np.maximum(self._variance[at], 1e-6))
        forward = spot * np.exp((self.rate - self._q[at]) * years)
        moneyness = np.log(strike / forward) / np.sqrt(np.maximum(years, 1.0 / 365.0))
        smile = np.clip(1.0 - 0.35 * moneyness + 0.6 * moneyness**2, 0.6, 3.0)
        vol = np.maximum(base_vol * smile, 0.05)
        values = price_and_greeks(
            is_call, spot, strike, years, vol, np.full(len(live), self.rate), self._q[at], american=True
        )
        theo = values.price
        tick = np.where(theo < 3.0, 0.01, 0.05)
        width = np.maximum(tick, _ceil_tick(0.01 + 0.015 * theo, tick))
        bid = np.maximum(_floor_tick(theo - width / 2, tick), 0.0)
        ask = np.maximum(_ceil_tick(theo + width / 2, tick), bid + tick)
        sizes = self._rng.integers(1, 50, size=(2, len(live))) * 1.0
        quotes: list[QuoteEvent] = []
        greeks: list[GreeksEvent] = []
        for k, option in enumerate(live):
            if not math.isfinite(theo[k]):
                continue
            symbol = option.streamer()
            quotes.append(
                QuoteEvent(symbol, round(float(bid[k]), 2), round(float(ask[k]), 2), float(sizes[0, k]),
                           float(sizes[1, k]), time_ns)
            )  # fmt: skip
            greeks.append(
                GreeksEvent(symbol, float(theo[k]), float(vol[k]), float(values.delta[k]), float(values.gamma[k]),
                            float(values.theta[k]), float(values.rho[k]), float(values.vega[k]), time_ns)
            )  # fmt: skip
        return quotes, greeks
