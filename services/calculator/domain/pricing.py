"""Pricing rules: validate one option or a columnar batch, call ``core_ext``, and vouch for what comes back.

Validation happens here, before the kernel, so a bad input is reported against the request field (and the
element index in a batch) rather than as an anonymous kernel status. Checks over whole columns use two
reductions (``min``/``max``, which propagate NaN) and build element masks only when something is wrong, so a
clean 100,000-element batch costs a few tens of microseconds to validate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import core_ext
import numpy as np
import numpy.typing as npt

from services.calculator.domain.errors import (
    BatchTooLarge,
    CalculatorError,
    ColumnLengthMismatch,
    FieldInvalid,
    FieldRequired,
    NoConvergence,
    PriceAboveMaximum,
    PriceBelowIntrinsic,
    invalid_argument,
)
from services.calculator.domain.model import (
    GREEKS_OUTPUTS,
    MAX_BATCH_SIZE,
    MAX_LISTED_VIOLATIONS,
    ExerciseStyle,
    Greeks,
    GreeksBatch,
    GreeksBatchResult,
    GreeksInputs,
    ImpliedVolatilityBatch,
    ImpliedVolatilityBatchResult,
    ImpliedVolatilityInputs,
    OptionKind,
)
from services.platform.errors import FieldViolation

__all__ = [
    "Rule",
    "STATUS_ABOVE_MAXIMUM",
    "STATUS_BELOW_INTRINSIC",
    "STATUS_INVALID_INPUT",
    "STATUS_NO_CONVERGENCE",
    "STATUS_OK",
    "check_batch_size",
    "compute_greeks",
    "compute_greeks_batch",
    "compute_implied_volatility",
    "compute_implied_volatility_batch",
    "exercise_style",
    "option_kind",
    "rule_violation",
]

STATUS_OK = int(core_ext.Status.OK)
STATUS_INVALID_INPUT = int(core_ext.Status.INVALID_INPUT)
STATUS_BELOW_INTRINSIC = int(core_ext.Status.BELOW_INTRINSIC)
STATUS_ABOVE_MAXIMUM = int(core_ext.Status.ABOVE_MAXIMUM)
STATUS_NO_CONVERGENCE = int(core_ext.Status.NO_CONVERGENCE)

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Rule:
    """What every value of a numeric field must be.

    Attributes:
        lower: The bound below which a value is invalid (None: any finite value).
        inclusive: Whether ``lower`` itself is allowed.
    """

    lower: float | None = None
    inclusive: bool = False
    note: str = ""

    @property
    def text(self) -> str:
        """The rule as a human reads it."""
        if self.lower is None:
            return "a finite number"
        return f"a finite number {'>=' if self.inclusive else '>'} {self.lower:g}{self.note}"

    def holds(self, value: float) -> bool:
        """Tell whether one value meets the rule (NaN never does)."""
        if not math.isfinite(value):
            return False
        if self.lower is None:
            return True
        return value >= self.lower if self.inclusive else value > self.lower

    def column_holds(self, values: FloatArray) -> bool:
        """Tell whether every value of a non-empty column meets the rule (two NaN-propagating reductions)."""
        lo, hi = float(values.min()), float(values.max())
        if not hi < math.inf:
            return False
        if self.lower is None:
            return lo > -math.inf
        return lo >= self.lower if self.inclusive else lo > self.lower

    def bad_mask(self, values: FloatArray) -> BoolArray:
        """Element mask of the values that break the rule."""
        with np.errstate(invalid="ignore"):
            if self.lower is None:
                good = np.isfinite(values)
            elif self.inclusive:
                good = (values >= self.lower) & (values < math.inf)
            else:
                good = (values > self.lower) & (values < math.inf)
        return ~good


FINITE = Rule()
POSITIVE = Rule(0.0)
NON_NEGATIVE = Rule(0.0, inclusive=True)
# Bjerksund-Stensland (2002) assumes a non-negative rate; core_ext refuses a negative one for American style.
AMERICAN_RATE = Rule(0.0, inclusive=True, note=" for American options (Bjerksund-Stensland 2002)")


def rate_rule(style_code: int) -> Rule:
    """The rule for the risk-free rate under an ``ExerciseStyle`` code (any finite rate for European)."""
    return AMERICAN_RATE if style_code == int(ExerciseStyle.AMERICAN) else FINITE


def rule_violation(field: str, value: float, rule: Rule) -> FieldViolation | None:
    """Return the FIELD_INVALID violation for ``value`` at ``field``, or None when it meets ``rule``."""
    if rule.holds(value):
        return None
    return FieldViolation(field, f"must be {rule.text}, got {value!r}", FieldInvalid.reason)


def option_kind(code: int, field: str) -> OptionKind | FieldViolation:
    """Read an ``OptionKind`` code: the kind, or the violation (0 is FIELD_REQUIRED, unknown FIELD_INVALID)."""
    if code == 0:
        return FieldViolation(field, "required: OPTION_KIND_CALL or OPTION_KIND_PUT", FieldRequired.reason)
    try:
        return OptionKind(code)
    except ValueError:
        return FieldViolation(field, f"unknown option kind {code}", FieldInvalid.reason)


def exercise_style(code: int, field: str) -> ExerciseStyle | FieldViolation:
    """Read an ``ExerciseStyle`` code: the style, or the violation (0 is FIELD_REQUIRED, unknown FIELD_INVALID)."""
    if code == 0:
        return FieldViolation(
            field, "required: EXERCISE_STYLE_EUROPEAN or EXERCISE_STYLE_AMERICAN", FieldRequired.reason
        )
    try:
        return ExerciseStyle(code)
    except ValueError:
        return FieldViolation(field, f"unknown exercise style {code}", FieldInvalid.reason)


def _raise_if(violations: Sequence[FieldViolation], what: str) -> None:
    if violations:
        fields = ", ".join(v.field for v in violations)
        raise invalid_argument(f"invalid {what}: {fields}", violations)


def _check_single(
    kind_code: int, style_code: int, numbers: Sequence[tuple[str, float, Rule]], what: str
) -> tuple[OptionKind, ExerciseStyle]:
    violations: list[FieldViolation] = []
    kind = option_kind(kind_code, "kind")
    if isinstance(kind, FieldViolation):
        violations.append(kind)
    for field, value, rule in numbers:
        violation = rule_violation(field, value, rule)
        if violation is not None:
            violations.append(violation)
    style = exercise_style(style_code, "style")
    if isinstance(style, FieldViolation):
        violations.append(style)
    _raise_if(violations, what)
    assert isinstance(kind, OptionKind) and isinstance(style, ExerciseStyle)
    return kind, style


def compute_greeks(inputs: GreeksInputs) -> Greeks:
    """Price one option and compute its Greeks.

    Args:
        inputs: The option, as received.

    Returns:
        Price and Greeks per share, all finite.

    Raises:
        FieldRequired: ``kind`` or ``style`` is not given.
        FieldInvalid: A number is NaN, infinite or out of range (spot, strike, volatility <= 0, expiry < 0),
            or the inputs together overflow the model (every numeric field is named then).
    """
    numbers = (
        ("spot_price", inputs.spot_price, POSITIVE),
        ("strike_price", inputs.strike_price, POSITIVE),
        ("expiry_years", inputs.expiry_years, NON_NEGATIVE),
        ("volatility", inputs.volatility, POSITIVE),
        ("rate", inputs.rate, rate_rule(inputs.style)),
        ("dividend_yield", inputs.dividend_yield, FINITE),
    )
    kind, style = _check_single(inputs.kind, inputs.style, numbers, "option")
    try:
        out = core_ext.greeks(
            kind.kernel_name,
            inputs.spot_price,
            inputs.strike_price,
            inputs.expiry_years,
            inputs.volatility,
            rate=inputs.rate,
            dividend_yield=inputs.dividend_yield,
            style=style.kernel_name,
        )
    except ValueError:
        # Every argument passed the checks above, so what is left is the kernel's "too extreme for a finite
        # result in double precision".
        raise _overflow([name for name, _, _ in numbers]) from None
    greeks = Greeks(*(float(getattr(out, name)) for name in GREEKS_OUTPUTS))
    if not all(math.isfinite(getattr(greeks, name)) for name in GREEKS_OUTPUTS):
        raise _overflow([name for name, _, _ in numbers])
    return greeks


def _overflow(fields: Sequence[str]) -> CalculatorError:
    description = "together with the other inputs, takes the model outside double precision"
    return invalid_argument(
        "the inputs give a non-finite model value (outside double precision)",
        [FieldViolation(field, description, FieldInvalid.reason) for field in fields],
    )


def compute_implied_volatility(inputs: ImpliedVolatilityInputs) -> float:
    """Solve the volatility at which the model price equals ``inputs.option_price``.

    Args:
        inputs: The option and its observed price, as received.

    Returns:
        The implied volatility: finite and > 0.

    Raises:
        FieldRequired: ``kind`` or ``style`` is not given.
        FieldInvalid: A number is NaN, infinite or out of range (price, spot, strike <= 0, expiry <= 0).
        PriceBelowIntrinsic: The price is at or below intrinsic value.
        PriceAboveMaximum: The price is at or above the no-arbitrage maximum.
        NoConvergence: The price is within rounding of a bound.
    """
    numbers = (
        ("option_price", inputs.option_price, POSITIVE),
        ("spot_price", inputs.spot_price, POSITIVE),
        ("strike_price", inputs.strike_price, POSITIVE),
        ("expiry_years", inputs.expiry_years, POSITIVE),
        ("rate", inputs.rate, rate_rule(inputs.style)),
        ("dividend_yield", inputs.dividend_yield, FINITE),
    )
    kind, style = _check_single(inputs.kind, inputs.style, numbers, "option")
    # The array form reports every outcome as a status (no exception class to guess for NO_CONVERGENCE);
    # one element costs about a microsecond more than the scalar form, nothing next to an RPC.
    vols, status = core_ext.implied_volatility_array(
        np.array([kind is OptionKind.CALL]),
        np.array([inputs.option_price]),
        np.array([inputs.spot_price]),
        np.array([inputs.strike_price]),
        np.array([inputs.expiry_years]),
        np.array([inputs.rate]),
        np.array([inputs.dividend_yield]),
        style=style.kernel_name,
    )
    code, vol = int(status[0]), float(vols[0])
    if code == STATUS_OK and math.isfinite(vol) and vol > 0.0:
        return vol
    price = inputs.option_price
    if code == STATUS_BELOW_INTRINSIC:
        raise PriceBelowIntrinsic(
            f"option price {price!r} is at or below the option's intrinsic value: no volatility reproduces it",
            field_violations=[FieldViolation("option_price", "at or below intrinsic value", PriceBelowIntrinsic.reason)],
        )
    if code == STATUS_ABOVE_MAXIMUM:
        if style is ExerciseStyle.AMERICAN:
            bound = "model's value as volatility grows without bound"
        else:
            bound = "discounted spot" if kind is OptionKind.CALL else "discounted strike"
        raise PriceAboveMaximum(
            f"option price {price!r} is at or above the no-arbitrage maximum (the {bound}): no volatility "
            "reproduces it",
            field_violations=[FieldViolation("option_price", f"at or above the {bound}", PriceAboveMaximum.reason)],
        )
    if code == STATUS_INVALID_INPUT:
        raise _overflow([name for name, _, _ in numbers])
    raise NoConvergence(
        f"option price {price!r} is within rounding of a bound, so it does not pin down a volatility",
        field_violations=[FieldViolation("option_price", "within rounding of a bound", NoConvergence.reason)],
    )


def check_batch_size(n: int, what: str = "elements") -> None:
    """Raise ``BatchTooLarge`` when ``n`` exceeds the documented limit of 100,000 per call."""
    if n > MAX_BATCH_SIZE:
        raise BatchTooLarge(
            f"batch of {n:,} {what} exceeds the limit of {MAX_BATCH_SIZE:,} {what} per call; split it",
            metadata={"limit": str(MAX_BATCH_SIZE), "size": str(n)},
        )


# (column name, rule, may be empty meaning 0.0)
_Column = tuple[str, Rule | None, bool]


def _greeks_columns(style: ExerciseStyle) -> tuple[_Column, ...]:
    return (
        ("is_call", None, False),
        ("spot_prices", POSITIVE, False),
        ("strike_prices", POSITIVE, False),
        ("expiry_years", NON_NEGATIVE, False),
        ("volatilities", POSITIVE, False),
        ("rates", rate_rule(style), True),
        ("dividend_yields", FINITE, True),
    )


def _iv_columns(style: ExerciseStyle) -> tuple[_Column, ...]:
    return (
        ("is_call", None, False),
        ("option_prices", POSITIVE, False),
        ("spot_prices", POSITIVE, False),
        ("strike_prices", POSITIVE, False),
        ("expiry_years", POSITIVE, False),
        ("rates", rate_rule(style), True),
        ("dividend_yields", FINITE, True),
    )


_Batch = GreeksBatch | ImpliedVolatilityBatch


def _check_batch_shape(
    batch: _Batch, column_rules: Callable[[ExerciseStyle], Sequence[_Column]]
) -> tuple[int, ExerciseStyle, Sequence[_Column]]:
    n = batch.size
    check_batch_size(n)
    style = exercise_style(batch.style, "style")
    if isinstance(style, FieldViolation):
        _raise_if([style], "batch")
    assert isinstance(style, ExerciseStyle)
    columns = column_rules(style)
    violations: list[FieldViolation] = []
    for name, _, may_be_empty in columns:
        length = len(getattr(batch, name))
        if length == n or length == 1 or (length == 0 and may_be_empty):
            continue
        if length == 0:
            violations.append(
                FieldViolation(name, f"required: the batch has {n} elements but this column is empty",
                               FieldRequired.reason)
            )
        else:
            violations.append(
                FieldViolation(name, f"has {length} elements; must have {n} (the longest column) or 1",
                               ColumnLengthMismatch.reason)
            )
    _raise_if(violations, "batch columns")
    return n, style, columns


def _element_violations(
    batch: _Batch, columns: Sequence[_Column], n: int
) -> tuple[list[FieldViolation], int, BoolArray | None]:
    """Find invalid elements: (first violations by element index, count of bad (column, element) pairs,
    mask over the n elements or None when all are valid)."""
    masks: list[tuple[int, str, BoolArray, FloatArray]] = []
    for order, (name, rule, _) in enumerate(columns):
        values = getattr(batch, name)
        if rule is None or len(values) == 0 or rule.column_holds(values):
            continue
        masks.append((order, name, rule.bad_mask(values), values))
    if not masks:
        return [], 0, None
    found: list[tuple[int, int, str, float, Rule]] = []
    count = 0
    element_mask = np.zeros(n, dtype=np.bool_)
    for order, name, mask, values in masks:
        rule = columns[order][1]
        assert rule is not None
        count += int(mask.sum())
        element_mask |= mask if len(mask) == n else bool(mask[0])
        for index in np.flatnonzero(mask)[:MAX_LISTED_VIOLATIONS]:
            found.append((int(index), order, name, float(values[index]), rule))
    found.sort(key=lambda item: (item[0], item[1]))
    violations = [
        FieldViolation(f"{name}[{index}]", f"must be {rule.text}, got {value!r}", FieldInvalid.reason)
        for index, _, name, value, rule in found[:MAX_LISTED_VIOLATIONS]
    ]
    return violations, count, element_mask


def _raise_element_errors(violations: list[FieldViolation], count: int) -> None:
    listed = len(violations)
    more = f"; the first {listed} are listed" if count > listed else ""
    raise invalid_argument(
        f"{count} batch element input(s) are invalid{more} (set mark_invalid_elements to get per-element "
        "statuses instead)",
        violations,
        invalid_inputs=str(count),
        listed=str(listed),
    )


def _kernel_argument(values: npt.NDArray[np.generic], n: int, *, empty: float | None = None) -> object:
    # A one-element column broadcasts: the kernel takes a scalar for it. Arrays go in contiguous and aligned
    # (a column parsed straight from the request bytes may start at any offset).
    if len(values) == 0:
        return empty
    if len(values) == 1 and n != 1:
        return values[0].item()
    return np.require(values, requirements=("C", "A"))


def compute_greeks_batch(batch: GreeksBatch) -> GreeksBatchResult:
    """Price a columnar batch and compute every element's Greeks.

    Args:
        batch: The columns as received.

    Returns:
        Arrays of length n; an element whose input is invalid (only with ``mark_invalid_elements``), or whose
        inputs take the model outside double precision, has status INVALID_INPUT and NaN outputs.

    Raises:
        BatchTooLarge: More than 100,000 elements.
        FieldRequired: ``style`` is not given, or a required column is empty while another is not.
        ColumnLengthMismatch: A column's length is neither n nor 1.
        FieldInvalid: Invalid elements without ``mark_invalid_elements`` (the first 100 named with index).
    """
    n, style, columns = _check_batch_shape(batch, _greeks_columns)
    if n == 0:
        empty = np.empty(0, dtype=np.float64)
        return GreeksBatchResult(**dict.fromkeys(GREEKS_OUTPUTS, empty), status=np.empty(0, dtype=np.uint8))
    violations, count, invalid = _element_violations(batch, columns, n)
    if violations and not batch.mark_invalid_elements:
        _raise_element_errors(violations, count)
    out = core_ext.greeks_array(
        _kernel_argument(batch.is_call, n),
        _kernel_argument(batch.spot_prices, n),
        _kernel_argument(batch.strike_prices, n),
        _kernel_argument(batch.expiry_years, n),
        _kernel_argument(batch.volatilities, n),
        _kernel_argument(batch.rates, n, empty=0.0),
        _kernel_argument(batch.dividend_yields, n, empty=0.0),
        style=style.kernel_name,
    )
    arrays = [np.asarray(getattr(out, name), dtype=np.float64) for name in GREEKS_OUTPUTS]
    status = np.asarray(out.status).astype(np.uint8, copy=False)
    # An element the kernel could not evaluate although its inputs passed the checks, or whose outputs are not
    # all finite, is beyond the model's double-precision range: a NaN or infinity must never pass for a price.
    beyond = _non_finite_ok_elements(arrays, status)
    refused = status == STATUS_INVALID_INPUT
    if invalid is not None:
        refused &= ~invalid
    if refused.any():
        beyond = refused if beyond is None else beyond | refused
    if beyond is not None and not batch.mark_invalid_elements:
        raise _beyond_model_range(beyond, batch, columns)
    mark = invalid if beyond is None else beyond if invalid is None else beyond | invalid
    if mark is not None:
        status = status.copy()
        status[mark] = STATUS_INVALID_INPUT
        for array in arrays:
            array[mark] = np.nan
    return GreeksBatchResult(**dict(zip(GREEKS_OUTPUTS, arrays, strict=True)), status=status)


def _beyond_model_range(mask: BoolArray, batch: _Batch, columns: Sequence[_Column]) -> CalculatorError:
    indexes = np.flatnonzero(mask)
    first_numeric = columns[1][0]

    def inputs(i: int) -> str:
        return ", ".join(
            f"{name}={_element(getattr(batch, name), i)!r}" for name, _, _ in columns if len(getattr(batch, name))
        )

    violations = [
        FieldViolation(
            f"{first_numeric}[{i}]",
            f"element {i} ({inputs(int(i))}) takes the model outside double precision",
            FieldInvalid.reason,
        )
        for i in indexes[:MAX_LISTED_VIOLATIONS]
    ]
    return invalid_argument(
        f"{len(indexes)} batch element(s) are outside the range the model evaluates in double precision (set "
        "mark_invalid_elements to get per-element statuses instead)",
        violations,
        invalid_elements=str(len(indexes)),
        listed=str(len(violations)),
    )


def _element(column: npt.NDArray[np.generic], i: int) -> object:
    return column[0 if len(column) == 1 else i].item()


def _non_finite_ok_elements(arrays: Sequence[FloatArray], status: npt.NDArray[np.uint8]) -> BoolArray | None:
    ok = status == STATUS_OK
    all_ok = bool(ok.all())
    if all_ok:
        # Fast path: a sum over a column is finite exactly when no element is NaN or infinite (or it overflows,
        # which the exact check below then sorts out).
        with np.errstate(over="ignore", invalid="ignore"):
            if all(math.isfinite(float(np.sum(a))) for a in arrays):
                return None
    bad = np.zeros(len(status), dtype=np.bool_)
    for array in arrays:
        bad |= ~np.isfinite(array)
    bad &= ok
    return bad if bad.any() else None


def compute_implied_volatility_batch(batch: ImpliedVolatilityBatch) -> ImpliedVolatilityBatchResult:
    """Solve implied volatilities for a columnar batch.

    Args:
        batch: The columns as received.

    Returns:
        Volatilities of length n and per-element statuses: prices without a solution are BELOW_INTRINSIC,
        ABOVE_MAXIMUM or NO_CONVERGENCE with NaN; invalid inputs (with ``mark_invalid_elements``) are
        INVALID_INPUT with NaN.

    Raises:
        BatchTooLarge: More than 100,000 elements.
        FieldRequired: ``style`` is not given, or a required column is empty while another is not.
        ColumnLengthMismatch: A column's length is neither n nor 1.
        FieldInvalid: Invalid elements without ``mark_invalid_elements``.
    """
    n, style, columns = _check_batch_shape(batch, _iv_columns)
    if n == 0:
        return ImpliedVolatilityBatchResult(np.empty(0, dtype=np.float64), np.empty(0, dtype=np.uint8))
    violations, count, invalid = _element_violations(batch, columns, n)
    if violations and not batch.mark_invalid_elements:
        _raise_element_errors(violations, count)
    vols, raw_status = core_ext.implied_volatility_array(
        _kernel_argument(batch.is_call, n),
        _kernel_argument(batch.option_prices, n),
        _kernel_argument(batch.spot_prices, n),
        _kernel_argument(batch.strike_prices, n),
        _kernel_argument(batch.expiry_years, n),
        _kernel_argument(batch.rates, n, empty=0.0),
        _kernel_argument(batch.dividend_yields, n, empty=0.0),
        style=style.kernel_name,
    )
    vols = np.asarray(vols, dtype=np.float64)
    status = np.asarray(raw_status).astype(np.uint8, copy=False)
    refused = status == STATUS_INVALID_INPUT
    if invalid is not None:
        refused &= ~invalid
    if refused.any() and not batch.mark_invalid_elements:
        raise _beyond_model_range(refused, batch, columns)
    ok = status == STATUS_OK
    with np.errstate(invalid="ignore"):
        unsolved = ok & ~((vols > 0.0) & (vols < math.inf))
    if unsolved.any() or invalid is not None:
        status = status.copy()
        status[unsolved] = STATUS_NO_CONVERGENCE
        vols[unsolved] = np.nan
        if invalid is not None:
            status[invalid] = STATUS_INVALID_INPUT
            vols[invalid] = np.nan
    return ImpliedVolatilityBatchResult(vols, status)
