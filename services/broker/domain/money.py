"""Sign rules for broker money: Tastytrade sends unsigned string decimals with a sibling ``-effect``."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from services.broker.domain.errors import BrokerBadResponse
from services.broker.domain.model import QuantityDirection

CREDIT = "Credit"
DEBIT = "Debit"
NO_EFFECT = "None"
_EFFECTS = frozenset({CREDIT, DEBIT, NO_EFFECT})


def to_decimal(value: object, *, field: str) -> Decimal:
    """Parse a broker number exactly.

    Args:
        value: A string decimal (``"51600.762"``), an int, or a Decimal (JSON parsed with ``parse_float=Decimal``).
        field: The wire field name, for the error message.

    Returns:
        The finite Decimal.

    Raises:
        BrokerBadResponse: The value is missing, a float, not a number, or not finite.
    """
    if isinstance(value, bool) or value is None or isinstance(value, float):
        raise BrokerBadResponse(f"{field}: expected a decimal string, got {type(value).__name__}")
    try:
        number = Decimal(value) if isinstance(value, (str, int, Decimal)) else None
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite():
        raise BrokerBadResponse(f"{field}: {value!r} is not a finite decimal")
    return number


def apply_effect(amount: Decimal, effect: str | None, *, field: str) -> Decimal:
    """Give an unsigned broker amount its sign from its ``-effect`` sibling.

    ``Credit`` is money in (positive), ``Debit`` money out (negative), ``None`` (or no effect field) keeps
    the amount as sent, which the broker uses for zero amounts.

    Raises:
        BrokerBadResponse: The effect is not one of Credit, Debit, None.
    """
    if effect is None or effect == NO_EFFECT:
        return amount
    if effect == CREDIT:
        return abs(amount)
    if effect == DEBIT:
        return -abs(amount)
    raise BrokerBadResponse(f"{field}-effect: {effect!r} is not Credit, Debit or None")


def signed_quantity(quantity: Decimal, direction: QuantityDirection) -> Decimal:
    """Turn an unsigned position quantity and its ``quantity-direction`` into a signed quantity."""
    if direction is QuantityDirection.SHORT:
        return -abs(quantity)
    if direction is QuantityDirection.ZERO:
        return Decimal(0)
    return abs(quantity)


def effect_of(amount: Decimal) -> tuple[Decimal, str]:
    """Split a signed amount into the broker's unsigned amount and ``-effect`` (the inverse of apply_effect)."""
    if amount > 0:
        return amount, CREDIT
    if amount < 0:
        return -amount, DEBIT
    return Decimal(0), NO_EFFECT
