"""Settings of the calculator service (``CALCULATOR_*``), read once in ``__main__``."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from services.calculator.app import OffloadPolicy
from services.platform.settings import ServerSettings, env

__all__ = ["CalculatorSettings"]

_DEFAULT = OffloadPolicy()


@dataclasses.dataclass(frozen=True, kw_only=True)
class CalculatorSettings(ServerSettings):
    """Server settings plus the sizes from which work leaves the event loop for a worker thread.

    Attributes:
        offload_greeks_min_elements: ``CALCULATOR_OFFLOAD_GREEKS_MIN_ELEMENTS``.
        offload_implied_volatility_min_elements: ``CALCULATOR_OFFLOAD_IMPLIED_VOLATILITY_MIN_ELEMENTS``.
        offload_aggregation_min_positions: ``CALCULATOR_OFFLOAD_AGGREGATION_MIN_POSITIONS``.
    """

    env_prefix: ClassVar[str] = "CALCULATOR_"
    port: int = env("PORT", default=8085, ge=0, le=65535, help="listen port")
    offload_greeks_min_elements: int = env(
        "OFFLOAD_GREEKS_MIN_ELEMENTS", default=_DEFAULT.greeks_min_elements, ge=1,
        help="Greeks batches of at least this many options run in a worker thread",
    )
    offload_implied_volatility_min_elements: int = env(
        "OFFLOAD_IMPLIED_VOLATILITY_MIN_ELEMENTS", default=_DEFAULT.implied_volatility_min_elements, ge=1,
        help="implied-volatility batches of at least this many options run in a worker thread",
    )
    offload_aggregation_min_positions: int = env(
        "OFFLOAD_AGGREGATION_MIN_POSITIONS", default=_DEFAULT.aggregation_min_positions, ge=1,
        help="portfolios of at least this many positions are aggregated in a worker thread",
    )

    @property
    def offload(self) -> OffloadPolicy:
        """The offload policy these settings describe."""
        return OffloadPolicy(
            greeks_min_elements=self.offload_greeks_min_elements,
            implied_volatility_min_elements=self.offload_implied_volatility_min_elements,
            aggregation_min_positions=self.offload_aggregation_min_positions,
        )
