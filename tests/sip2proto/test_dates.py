"""SIP2 dates: YYYYMMDDZZZZHHMMSS, local or UTC, blanks and odd zones per profile."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given

from sip2proto import PROFILES, FieldError, format_date, parse_date

from .strategies import dates


def test_format_local_and_utc() -> None:
    assert format_date(datetime(1998, 8, 21, 8, 57, 21)) == "19980821    085721"
    beijing = timezone(timedelta(hours=8))
    assert format_date(datetime(2026, 11, 26, 9, 30, tzinfo=beijing)) == "20261126   Z013000"
    assert format_date(datetime(5, 1, 2, 3, 4, 5)) == "00050102    030405"


@given(dates)
def test_round_trip(dt: datetime) -> None:
    assert parse_date(format_date(dt)) == dt


@pytest.mark.parametrize("text", ["2026112", "20261126    09300X", "20261326    093000",
                                  "2026112６    093000", "20261126XXXX093000", "20261126    256000"])
def test_bad_dates(text: str) -> None:
    with pytest.raises(FieldError):
        parse_date(text, PROFILES["cn-utf8"] if "XXXX" not in text else None)


def test_format_refuses_non_datetime() -> None:
    with pytest.raises(ValueError):
        format_date("2026-11-26")  # type: ignore[arg-type]
