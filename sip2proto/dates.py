"""SIP2 dates: 18 characters ``YYYYMMDDZZZZHHMMSS``.

ZZZZ is four spaces for the local time of the ACS, or ``   Z`` for UTC (the 2.00 spec).
``format_date`` writes a naive datetime as local and an aware one converted to UTC with ``Z``.
"""

from __future__ import annotations

from datetime import datetime, timezone

from .errors import FieldError
from .profile import Profile

__all__ = ["format_date", "parse_date", "BLANK_DATE", "DATE_WIDTH"]

DATE_WIDTH = 18
BLANK_DATE = " " * DATE_WIDTH
_LOCAL = "    "
_UTC = "   Z"


def format_date(dt: datetime) -> str:
    """The 18-character SIP2 form of ``dt`` (seconds precision).

    Raises:
        ValueError: ``dt`` is not a datetime.
    """
    if not isinstance(dt, datetime):
        raise ValueError(f"expected a datetime, got {type(dt).__name__}")
    zone = _LOCAL
    if dt.tzinfo is not None and dt.utcoffset() is not None:
        dt = dt.astimezone(timezone.utc)
        zone = _UTC
    return (f"{dt.year:04d}{dt.month:02d}{dt.day:02d}{zone}"
            f"{dt.hour:02d}{dt.minute:02d}{dt.second:02d}")


def parse_date(text: str, profile: Profile | None = None) -> datetime | None:
    """Read a SIP2 date.

    Args:
        text: the 18 characters.
        profile: its ``blank_dates_ok`` and ``lenient_date_zone`` apply; None means strict.

    Returns:
        A naive datetime (local zone), an aware UTC one (``Z``), or None for an all-blank date
        when the profile allows it.

    Raises:
        FieldError: wrong length, not a date, a blank date or an odd zone not tolerated.
    """
    if len(text) != DATE_WIDTH:
        raise FieldError(f"date {text!r} is not {DATE_WIDTH} characters")
    if text == BLANK_DATE:
        if profile is not None and profile.blank_dates_ok:
            return None
        raise FieldError("blank date not allowed by the profile")
    day, zone, clock = text[:8], text[8:12], text[12:]
    if not (day.isascii() and day.isdigit() and clock.isascii() and clock.isdigit()):
        raise FieldError(f"date {text!r} is not YYYYMMDDZZZZHHMMSS")
    tz: timezone | None
    if zone == _LOCAL:
        tz = None
    elif zone == _UTC:
        tz = timezone.utc
    elif profile is not None and profile.lenient_date_zone:
        tz = None
    else:
        raise FieldError(f"date {text!r} has zone {zone!r}; expected '    ' or '   Z'")
    try:
        return datetime(int(day[:4]), int(day[4:6]), int(day[6:]), int(clock[:2]),
                        int(clock[2:4]), int(clock[4:]), tzinfo=tz)
    except ValueError as exc:
        raise FieldError(f"date {text!r} is not a valid date: {exc}") from exc
