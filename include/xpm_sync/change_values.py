"""The values of local changes: what a person types, read as the column and XPM expect, and written
out in the text form the outbox keeps. Each refusal says what to write instead."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from xpm_sync.errors import XpmInputError


class ChangeRefused(XpmInputError):
    """The change is not allowed, or not valid; the message says why and what to do instead.

    `field` names the value at fault (as the JSON API's request names it), when one is.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def text_of(value: Any) -> str | None:
    """A value in the text form the outbox keeps (and XPM's answers compare with)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return str(value)


def job_value(field: str, value: Any) -> Any:
    if field in ("start_date", "due_date"):
        return value if isinstance(value, date) else parse_date(str(value), field.replace("_", " "))
    if field == "budget":
        return None if value in (None, "") else parse_decimal(str(value), "budget")
    text = str(value).strip()
    if field == "name" and not text:
        raise ChangeRefused("A job needs a name.")
    if field == "name" and len(text) > NAME_LENGTH:
        raise ChangeRefused(f"A job's name has at most {NAME_LENGTH} characters; this one has {len(text):,}.")
    return text or None


def parse_date(text: str, what: str) -> date:
    for fmt in ("%Y-%m-%d", "%Y%m%d", "%d/%m/%Y"):
        try:
            return datetime.strptime(text.strip(), fmt).date()
        except ValueError:
            continue
    raise ChangeRefused(f"{text!r} is not a date for the {what}: write it as 2026-12-24.")


# What XPM's money and number fields and the practice database's columns (18 digits, 4 after the
# point) hold.
WHOLE_DIGITS, DECIMALS = 14, 4
NAME_LENGTH = 255


def parse_decimal(text: str, what: str) -> Decimal:
    shown = text if len(text) <= 40 else f"{text[:20]}... ({len(text):,} characters)"
    if len(text) > 60:
        raise ChangeRefused(f"{shown!r} is not a number the {what} can hold.")
    try:
        number = Decimal(text.strip().replace(",", ""))
    except InvalidOperation:
        raise ChangeRefused(f"{shown!r} is not a number for the {what}.") from None
    if not number.is_finite():
        raise ChangeRefused(f"{shown!r} is not a number for the {what}.")
    if number != 0 and number.adjusted() >= WHOLE_DIGITS:
        raise ChangeRefused(
            f"{shown!r} is too large for the {what}: XPM and the practice database hold at most "
            f"{WHOLE_DIGITS} digits before the point."
        )
    if number != number.quantize(Decimal(1).scaleb(-DECIMALS), rounding="ROUND_DOWN"):
        raise ChangeRefused(f"{shown!r} has more than {DECIMALS} decimal places, which the {what} cannot hold.")
    return number


VALUE_COLUMN = {
    "Text": "text_value",
    "Decimal": "decimal_value",
    "Number": "number_value",
    "Boolean": "boolean_value",
    "Date": "date_value",
}
_YES, _NO = {"yes", "true", "on", "1", "y"}, {"no", "false", "off", "0", "n", ""}


def field_value(element: str, text: str | None, name: str) -> Any:
    """A custom field value typed as its definition's ValueElement says; None clears it."""
    if text is None or (text.strip() == "" and element != "Boolean"):
        return None
    raw = text.strip()
    if element == "Boolean":
        if raw.lower() in _YES:
            return True
        if raw.lower() in _NO:
            return None  # XPM holds no value for an unticked checkbox
        raise ChangeRefused(f"{text!r} is not yes or no for {name}.")
    if element == "Date":
        return parse_date(raw, name)
    if element == "Decimal":
        return parse_decimal(raw, name)
    if element == "Number":
        number = parse_decimal(raw, name)
        if number != number.to_integral_value():
            raise ChangeRefused(f"{text!r} is not a whole number for {name}.")
        return number
    return raw
