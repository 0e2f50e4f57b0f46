"""The platform's own Greeks for followed options, next to dxFeed's, from the book's current marks."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from services.marketdata.domain.book import QuoteBook
from services.marketdata.domain.events import GreeksUpdate
from services.marketdata.domain.pricing import implied_vols, price_and_greeks
from services.marketdata.domain.symbols import OptionSymbol

__all__ = ["ModelInputs", "model_greeks"]

NAN = math.nan


@dataclass(frozen=True)
class ModelInputs:
    """Market inputs of the model that the feed does not carry.

    Attributes:
        rate: Risk-free rate, continuously compounded (the broker's published rate in production).
        dividend_yields: Continuous dividend yield per underlying.
        default_dividend_yield: Yield of an underlying not in `dividend_yields`.
    """

    rate: float = 0.045
    dividend_yields: Mapping[str, float] = field(default_factory=dict)
    default_dividend_yield: float = 0.0

    def dividend_yield(self, underlying: str) -> float:
        """The dividend yield of `underlying`."""
        return self.dividend_yields.get(underlying, self.default_dividend_yield)


def model_greeks(
    options: Sequence[tuple[str, OptionSymbol]],
    book: QuoteBook,
    now: datetime,
    inputs: ModelInputs,
    time_ns: int,
) -> list[GreeksUpdate]:
    """Greeks updates for `(streamer symbol, option)` pairs: dxFeed's latest values and the model's.

    The model's implied vol is solved from the option's mark against the underlying's mark; price and Greeks
    follow at that vol (American exercise, ACT/365 to 16:00 New York on expiry). An option whose mark or
    underlying is unknown, or whose vol has no solution, gets NaN model values rather than a made-up number.
    """
    if not options:
        return []
    n = len(options)
    spot = np.full(n, NAN)
    price = np.full(n, NAN)
    strike = np.empty(n)
    years = np.empty(n)
    is_call = np.empty(n, dtype=bool)
    rate = np.full(n, inputs.rate)
    dividend = np.empty(n)
    for k, (symbol, option) in enumerate(options):
        underlying = book.quote(option.underlying)
        quote = book.quote(symbol)
        if underlying is not None:
            spot[k] = underlying.mark_price
        if quote is not None:
            price[k] = quote.mark_price
        strike[k] = float(option.strike)
        years[k] = option.years_to_expiry(now)
        is_call[k] = option.is_call
        dividend[k] = inputs.dividend_yield(option.underlying)
    vols = implied_vols(price, is_call, spot, strike, years, rate, dividend, american=True)
    values = price_and_greeks(is_call, spot, strike, years, vols, rate, dividend, american=True)
    updates: list[GreeksUpdate] = []
    for k, (symbol, _option) in enumerate(options):
        broker = book.broker_greeks(symbol)
        updates.append(
            GreeksUpdate(
                symbol=symbol,
                underlying_price=float(spot[k]),
                option_price=float(price[k]),
                broker_volatility=broker.volatility if broker else NAN,
                broker_delta=broker.delta if broker else NAN,
                broker_gamma=broker.gamma if broker else NAN,
                broker_theta=broker.theta if broker else NAN,
                broker_vega=broker.vega if broker else NAN,
                broker_rho=broker.rho if broker else NAN,
                model_volatility=float(vols[k]),
                model_price=float(values.price[k]),
                model_delta=float(values.delta[k]),
                model_gamma=float(values.gamma[k]),
                model_theta=float(values.theta[k]),
                model_vega=float(values.vega[k]),
                model_rho=float(values.rho[k]),
                model_vanna=float(values.vanna[k]),
                model_charm=float(values.charm[k]),
                time_ns=time_ns,
            )
        )
    return updates
