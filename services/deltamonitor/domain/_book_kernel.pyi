"""Type stubs for the book's compiled per-tick steps (``_book_kernel.pyx``)."""

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from typing_extensions import disjoint_base

_F64 = npt.NDArray[np.float64]
_I64 = npt.NDArray[np.int64]
_Moved = tuple[list[int], list[float], list[int]]

def exposures(
    delta: _F64,
    gamma: _F64,
    charm: _F64,
    vanna: _F64,
    units: _F64,
    volatility: _F64,
    spot: float,
    beta_spot: float,
    start: int,
    stop: int,
    contrib: _F64,
    dollars: bool,
    beta_dollars: bool,
) -> None: ...
def watch_sums(contrib: _F64, pair_local: _I64, pair_position: _I64, pair_metric: _I64, sums: _F64) -> None: ...

@disjoint_base
class WatchColumns:
    def __init__(
        self,
        state: npt.NDArray[np.int8],
        last_alert: _F64,
        delta: _F64,
        charm: _F64,
        vanna: _F64,
        move: _F64,
        lower: _F64,
        upper: _F64,
        evaluated: _F64,
        forecast_stale: npt.NDArray[np.bool_],
        next_state: npt.NDArray[np.int8],
        raises: npt.NDArray[np.bool_],
        rearms: npt.NDArray[np.bool_],
    ) -> None: ...
    def step(
        self,
        watches: _I64,
        sums: _F64,
        lower: _F64,
        upper: _F64,
        deep_lower: _F64,
        deep_upper: _F64,
        cooldown: _F64,
        now: float,
    ) -> _Moved | None: ...

@disjoint_base
class UnderlyingStep:
    def __init__(
        self,
        start: int,
        stop: int,
        runs: Sequence[tuple[int, int, object]],
        is_call: npt.NDArray[np.bool_],
        strike: _F64,
        expiry: _F64,
        years: _F64,
        volatility: _F64,
        units: _F64,
        rate: float,
        greeks: _F64,
        rows: tuple[int, int, int, int],
        contrib: _F64,
        dollars: bool,
        beta_dollars: bool,
        pair_local: _I64,
        pair_position: _I64,
        pair_metric: _I64,
        sums: _F64,
        bench_local: _I64,
        bench_under: _I64,
        prices: _F64,
        watches: _I64,
        columns: WatchColumns,
        bands: tuple[_F64, _F64, _F64, _F64, _F64] | None,
    ) -> None: ...
    @property
    def kernel_seconds(self) -> float: ...
    def tick(self, spot: float, dividend_yield: float, beta_spot: float, now: float) -> _Moved | None: ...
