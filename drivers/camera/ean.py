"""EAN-13 check digits and ISBN-13s: pure functions, no image work.

A barcode decoder returning 13 digits is not proof the book is what it says: some decoders
(and some configurations of every decoder) return a symbol whose check digit does not match.
A purchase recommendation (荐购) keyed on a misread ISBN asks the library to buy the wrong
book, so every EAN-13 is re-validated here, whatever decoder produced it.
"""

from __future__ import annotations

__all__ = ["ISBN_PREFIXES", "ean13_check_digit", "is_valid_ean13", "isbn13_from_ean13"]

ISBN_PREFIXES = ("978", "979")
"""GS1 prefixes of "Bookland": an EAN-13 starting with these is an ISBN-13."""


def _digits_only(text: str) -> bool:
    # str.isdigit() accepts "²" and other Unicode digits; barcodes carry ASCII digits only.
    return text.isascii() and text.isdigit()


def ean13_check_digit(first12: str) -> int:
    """The check digit of an EAN-13 whose first 12 digits are ``first12``.

    Weights alternate 1, 3 from the left; the check digit brings the sum to a multiple of 10.

    Raises:
        ValueError: ``first12`` is not exactly 12 ASCII digits.
    """
    if len(first12) != 12 or not _digits_only(first12):
        raise ValueError(f"expected 12 digits, got {first12!r}")
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(first12))
    return (10 - total % 10) % 10


def is_valid_ean13(text: str) -> bool:
    """True if ``text`` is 13 ASCII digits with a matching check digit. Never raises."""
    if len(text) != 13 or not _digits_only(text):
        return False
    return ean13_check_digit(text[:12]) == int(text[12])


def isbn13_from_ean13(text: str) -> str | None:
    """The ISBN-13 carried by an EAN-13 string, or None if it is not a valid ISBN-13.

    Hyphens and spaces (as printed above the bars) are ignored. A valid EAN-13 outside the
    978/979 prefixes (a magazine's ISSN-based code, a retail product) is not an ISBN.
    """
    digits = text.replace("-", "").replace(" ", "")
    if not is_valid_ean13(digits) or not digits.startswith(ISBN_PREFIXES):
        return None
    return digits
