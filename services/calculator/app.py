"""Use cases of the calculator: the domain's pricing and aggregation, with large work kept off the event loop.

``core_ext`` releases the GIL inside its loops, so a large batch computed in a worker thread leaves the
event loop free to serve other calls (health checks, single-option RPCs) meanwhile. Small work runs inline:
a thread hop costs tens of microseconds, more than pricing a few thousand options.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from services.calculator.domain import aggregation, pricing
from services.calculator.domain.aggregation import PortfolioGreeks, PortfolioRequest
from services.calculator.domain.model import (
    Greeks,
    GreeksBatch,
    GreeksBatchResult,
    GreeksInputs,
    ImpliedVolatilityBatch,
    ImpliedVolatilityBatchResult,
    ImpliedVolatilityInputs,
)

__all__ = ["CalculatorApp", "OffloadPolicy"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class OffloadPolicy:
    """From which size work goes to a worker thread instead of running on the event loop.

    Attributes:
        greeks_min_elements: Greeks batches of at least this many options (about 15 ns each).
        implied_volatility_min_elements: Implied-volatility batches of at least this many (about 300 ns each).
        aggregation_min_positions: Portfolios of at least this many positions.
    """

    greeks_min_elements: int = 8192
    implied_volatility_min_elements: int = 512
    aggregation_min_positions: int = 256


class CalculatorApp:
    """The calculator's use cases (stateless; safe to share between concurrent calls)."""

    def __init__(self, offload: OffloadPolicy | None = None) -> None:
        """Create the use cases.

        Args:
            offload: Sizes from which work runs in a worker thread; the defaults when None.
        """
        self.offload = offload or OffloadPolicy()

    @staticmethod
    async def _run(work: Callable[[], T], *, off_loop: bool) -> T:
        if off_loop:
            return await asyncio.to_thread(work)
        return work()

    async def greeks(self, inputs: GreeksInputs) -> Greeks:
        """Price one option and compute its Greeks (see ``pricing.compute_greeks`` for the errors)."""
        return pricing.compute_greeks(inputs)

    async def implied_volatility(self, inputs: ImpliedVolatilityInputs) -> float:
        """Solve one implied volatility (see ``pricing.compute_implied_volatility`` for the errors)."""
        return pricing.compute_implied_volatility(inputs)

    async def greeks_batch(self, batch: GreeksBatch) -> GreeksBatchResult:
        """Price a batch (see ``pricing.compute_greeks_batch``); off the loop from the policy's size."""
        pricing.check_batch_size(batch.size)
        return await self._run(
            lambda: pricing.compute_greeks_batch(batch),
            off_loop=batch.size >= self.offload.greeks_min_elements,
        )

    async def implied_volatility_batch(self, batch: ImpliedVolatilityBatch) -> ImpliedVolatilityBatchResult:
        """Solve a batch (see ``pricing.compute_implied_volatility_batch``); off the loop from the policy's size."""
        pricing.check_batch_size(batch.size)
        return await self._run(
            lambda: pricing.compute_implied_volatility_batch(batch),
            off_loop=batch.size >= self.offload.implied_volatility_min_elements,
        )

    async def aggregate_portfolio_greeks(self, request: PortfolioRequest) -> PortfolioGreeks:
        """Aggregate a portfolio (see ``aggregation.aggregate_portfolio_greeks``)."""
        aggregation_size = len(request.positions)
        pricing.check_batch_size(aggregation_size, "positions")
        return await self._run(
            lambda: aggregation.aggregate_portfolio_greeks(request),
            off_loop=aggregation_size >= self.offload.aggregation_min_positions,
        )
