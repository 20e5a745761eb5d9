"""Amounts of money: ISO 4217 currencies, their minor units, parsing and rounding.

Amounts travel as decimal strings and live as :class:`~decimal.Decimal`; an
amount may carry no more fractional digits than its currency's exponent
(USD 2, JPY 0, BHD 3). Never ``float``.
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal, InvalidOperation

# ISO 4217 minor units of the currencies we accept. A code not listed here is refused
# with ``unknown_currency`` rather than guessed.
CURRENCY_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(
        [
            "AED",
            "AUD",
            "BGN",
            "BRL",
            "CAD",
            "CHF",
            "CNY",
            "COP",
            "CZK",
            "DKK",
            "EGP",
            "EUR",
            "GBP",
            "HKD",
            "HUF",
            "ILS",
            "INR",
            "MXN",
            "MYR",
            "NOK",
            "NZD",
            "PEN",
            "PHP",
            "PLN",
            "RON",
            "SAR",
            "SEK",
            "SGD",
            "THB",
            "TRY",
            "TWD",
            "USD",
            "ZAR",
        ],
        2,
    ),
    **dict.fromkeys(["CLP", "ISK", "JPY", "KRW", "VND", "XAF", "XOF"], 0),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
}

# Largest amount accepted: 12 integer digits fit DecimalField(max_digits=18, decimal_places=4).
MAX_AMOUNT = Decimal("999999999999")
_AMOUNT_SHAPE = re.compile(r"^-?\d{1,15}(\.\d{1,6})?$")


class AmountError(ValueError):
    """An amount or currency that cannot be accepted; ``code`` is an ``ERROR_CODES`` key."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


def currency_exponent(currency: str) -> int:
    """Number of minor-unit digits of ``currency``, or :class:`AmountError` (unknown_currency)."""
    exponent = CURRENCY_EXPONENTS.get(currency)
    if exponent is None:
        raise AmountError("unknown_currency", f"{currency!r} is not an ISO 4217 currency code we support.")
    return exponent


def currency_quantum(currency: str) -> Decimal:
    """The smallest step of ``currency``: ``0.01`` for USD, ``1`` for JPY, ``0.001`` for BHD."""
    return Decimal(1).scaleb(-currency_exponent(currency))


def amount_parse(value: object, *, currency: str, allow_negative: bool = False) -> Decimal:
    """Parse a decimal string of ``currency``; refuse floats, extra digits and negatives.

    Accepts ``"19.99"`` (a JSON number is refused: the contract says string, and a float
    loses cents); returns the value quantized to the currency's minor unit, so ``"19.9"``
    becomes ``Decimal("19.90")``.
    """
    exponent = currency_exponent(currency)
    if not isinstance(value, str):
        raise AmountError("invalid_decimal", 'Send amounts as decimal strings, e.g. "19.99".')
    text = str(value).strip()
    if not _AMOUNT_SHAPE.match(text):
        raise AmountError("invalid_decimal", f"{text!r} is not a decimal amount.")
    try:
        amount = Decimal(text)
    except InvalidOperation as error:
        raise AmountError("invalid_decimal", f"{text!r} is not a decimal amount.") from error
    if amount < 0 and not allow_negative:
        raise AmountError("negative_amount", f"{text} is negative; amounts must be zero or more.")
    if amount.as_tuple().exponent < -exponent:  # type: ignore[operator]
        raise AmountError(
            "invalid_decimal", f"{text} has more than {exponent} decimal places, the minor units of {currency}."
        )
    if abs(amount) > MAX_AMOUNT:
        raise AmountError("invalid_decimal", f"{text} is larger than {MAX_AMOUNT}.")
    return amount.quantize(currency_quantum(currency))


def amount_quantize(amount: Decimal, currency: str) -> Decimal:
    """Round half up to the currency's minor unit (what a shopper sees)."""
    return amount.quantize(currency_quantum(currency), rounding=ROUND_HALF_UP)


def amount_quantize_up(amount: Decimal, currency: str) -> Decimal:
    """Round up to the minor unit: used for floors, so a margin is never shaved."""
    return amount.quantize(currency_quantum(currency), rounding=ROUND_CEILING)


def amount_fits(amount: Decimal, currency: str) -> bool:
    """Whether ``amount`` has no more digits than ``currency`` allows."""
    return amount == amount.quantize(currency_quantum(currency))


def amount_format(amount: Decimal, currency: str) -> str:
    """The wire form: exactly the currency's number of decimals, ``"19.99"``, ``"1999"``."""
    return str(amount_quantize(amount, currency))


def bounded_decimal_parse(value: object, *, low: Decimal, high: Decimal) -> Decimal:
    """A decimal string (a percentage, a multiplier, a rounding step) within ``[low, high]``, at most 4 decimals."""
    if not isinstance(value, str):
        raise AmountError("invalid_decimal", 'Send percentages as decimal strings, e.g. "5.5".')
    text = str(value).strip()
    if not _AMOUNT_SHAPE.match(text):
        raise AmountError("invalid_decimal", f"{text!r} is not a decimal number.")
    number = Decimal(text)
    if number.as_tuple().exponent < -4:  # type: ignore[operator]
        raise AmountError("invalid_decimal", f"{text} has more than 4 decimal places.")
    if not low <= number <= high:
        raise AmountError("invalid_decimal", f"{text} must lie between {low} and {high}.")
    return number
