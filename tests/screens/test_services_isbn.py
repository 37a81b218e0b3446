"""The 荐购 page's ISBN parser (kiosk.reader_services.parse_isbn), property-tested.

What a reader notices: an ISBN typed with or without hyphens and spaces is accepted exactly
when its check digit matches, and anything else is refused with a reason (never a crash).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.camera.ean import ean13_check_digit
from kiosk.reader_services import IsbnError, isbn10_check_digit, parse_isbn

REASONS = {"empty", "characters", "x_position", "length", "check_digit"}
digits = st.text(alphabet="0123456789", min_size=1, max_size=1)


def _isbn13(body: str) -> str:
    return body + str(ean13_check_digit(body))


def _isbn10(body: str) -> str:
    return body + isbn10_check_digit(body)


def _spell(isbn: str, cuts: list[int], sep: str) -> str:
    """``isbn`` with ``sep`` inserted at the positions ``cuts`` (as printed on books)."""
    out, last = [], 0
    for cut in sorted({c % len(isbn) for c in cuts}):
        out.append(isbn[last:cut])
        last = cut
    out.append(isbn[last:])
    return sep.join(part for part in out if part)


@given(st.text(alphabet="0123456789", min_size=12, max_size=12),
       st.lists(st.integers(0, 12), max_size=4), st.sampled_from(["-", " ", ""]))
def test_every_isbn13_round_trips_with_any_hyphens(body: str, cuts: list[int], sep: str) -> None:
    isbn = _isbn13(body)
    assert parse_isbn(_spell(isbn, cuts, sep)) == isbn
    assert parse_isbn(f"  {isbn}\n") == isbn


@given(st.text(alphabet="0123456789", min_size=9, max_size=9),
       st.lists(st.integers(0, 9), max_size=3), st.booleans())
def test_every_isbn10_round_trips_and_a_lower_x_is_fine(body: str, cuts: list[int],
                                                       lower: bool) -> None:
    isbn = _isbn10(body)
    typed = _spell(isbn, cuts, "-")
    assert parse_isbn(typed.lower() if lower else typed) == isbn


@given(st.text(alphabet="0123456789", min_size=12, max_size=12), st.integers(0, 12),
       st.integers(1, 9))
def test_one_wrong_digit_in_an_isbn13_is_caught(body: str, pos: int, delta: int) -> None:
    isbn = _isbn13(body)
    typo = isbn[:pos] + str((int(isbn[pos]) + delta) % 10) + isbn[pos + 1:]
    with pytest.raises(IsbnError) as caught:
        parse_isbn(typo)
    assert caught.value.reason == "check_digit"


@given(st.text(alphabet="0123456789", min_size=9, max_size=9), st.integers(0, 8),
       st.integers(1, 9))
def test_one_wrong_digit_in_an_isbn10_is_caught(body: str, pos: int, delta: int) -> None:
    isbn = _isbn10(body)
    typo = isbn[:pos] + str((int(isbn[pos]) + delta) % 10) + isbn[pos + 1:]
    with pytest.raises(IsbnError) as caught:
        parse_isbn(typo)
    assert caught.value.reason == "check_digit"


@given(st.text(max_size=40))
def test_any_text_is_an_isbn_or_a_value_error_with_a_reason(text: str) -> None:
    try:
        got = parse_isbn(text)
    except ValueError as exc:
        assert isinstance(exc, IsbnError) and exc.reason in REASONS and str(exc)
        return
    assert len(got) in (10, 13) and got[:-1].isdigit() and got.isascii()


@pytest.mark.parametrize(("typed", "reason"), [
    ("", "empty"), ("  - ", "empty"), ("978-7-02-000220-７", "characters"),
    ("ISBN ８", "characters"), ("ISBN", "empty"), ("97870200022X7", "x_position"),
    ("978702000220X", "x_position"), ("97870200", "length"), ("9787020002208", "check_digit"),
    ("0-306-40615-3", "check_digit"),
])
def test_known_refusals(typed: str, reason: str) -> None:
    with pytest.raises(IsbnError) as caught:
        parse_isbn(typed)
    assert caught.value.reason == reason


def test_known_isbns() -> None:
    assert parse_isbn("978-7-02-000220-7") == "9787020002207"  # 红楼梦, 人民文学出版社
    assert parse_isbn("0-306-40615-2") == "0306406152"
    assert parse_isbn("0-8044-2957-x") == "080442957X"
    assert parse_isbn("ISBN 978-7-02-000220-7") == "9787020002207"  # as printed on the book
    assert parse_isbn("isbn：7-02-000220-x") == "702000220X"
