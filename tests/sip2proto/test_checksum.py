"""Checksums byte-exact: published SIP2 examples, and Chinese names summed over encoded bytes."""

from __future__ import annotations

from datetime import datetime

import pytest

from sip2proto import PROFILES, ChecksumError, checksum, decode, encode, patron_information_response
from sip2proto import SIP2Error, request_acs_resend, request_sc_resend, verify_checksum


def _reference(data: bytes) -> str:
    """The 3M definition, written independently: binary sum of the bytes, two's complement, 16 bits."""
    total = 0
    for byte in data:
        total = (total + byte) & 0xFFFF
    return format((0x10000 - total) & 0xFFFF, "04X")


# Published frames whose checksum is printed in public documents. Each was cross-checked here by
# computing; examples remembered with a checksum our computation did not reproduce were dropped.
PUBLISHED = [
    # 3M SIP2 2.00 spec, SC Status example (quoted in most SIP2 guides): status 0, width 030, 2.00.
    b"9900302.00AY1AZFCA5",
    # Request SC Resend / Request ACS Resend as sent by ACS and SC implementations (no AY).
    b"96AZFEF6",
    b"97AZFEF5",
]


@pytest.mark.parametrize("frame", PUBLISHED)
def test_published_examples(frame: bytes) -> None:
    body, printed = frame[:-4], frame[-4:].decode()
    assert checksum(body) == printed == _reference(body)
    assert verify_checksum(frame) and verify_checksum(frame + b"\r")
    assert decode(frame + b"\r", PROFILES["generic"]).code == frame[:2].decode()


def test_resend_messages_encode_to_the_published_frames() -> None:
    assert encode(request_sc_resend(), PROFILES["generic"]) == b"96AZFEF6\r"
    assert encode(request_acs_resend(), PROFILES["generic"]) == b"97AZFEF5\r"
    assert encode(request_acs_resend(), PROFILES["koha"]) == b"97AZFEF5\r\n"


def test_checksum_is_four_uppercase_hex_digits_even_when_small() -> None:
    assert checksum(b"\xff" * 257) == "0001"  # 255 * 257 = 0xFFFF; sip2 1.1 would print "1"
    assert checksum(b"") == "0000"
    assert checksum(b"\x01") == "FFFF"


def test_verify_checksum_rejects_wrong_and_missing() -> None:
    assert not verify_checksum(b"9900302.00AY1AZFCA6")
    assert not verify_checksum(b"9900302.00")
    assert verify_checksum(b"9900302.00AY1AZfca5")  # hex digits in either case


# The frames of a 64 Patron Information Response for 张三, built by hand byte for byte.
_HEAD = b"64" + b" " * 14 + b"000" + b"20261126    093000" + b"0000" * 6 + b"AOLIB|AAR001|AE"
CHINESE = {
    # 张 U+5F20 = E5 BC A0, 三 U+4E09 = E4 B8 89 in UTF-8; D5 C5 / C8 FD in GB18030 (GB2312 rows).
    "cn-utf8": (_HEAD + b"\xe5\xbc\xa0\xe4\xb8\x89|AY1AZ", "EAF4"),
    "cn-gb18030": (_HEAD + b"\xd5\xc5\xc8\xfd|AY1AZ", "EBFB"),
}
CHECKSUM_BY_CHARACTERS = "4231"  # what a character-summing client (sip2 1.1, old Evergreen) sends


@pytest.mark.parametrize("profile_name", sorted(CHINESE))
def test_chinese_name_frames_byte_exact(profile_name: str) -> None:
    profile = PROFILES[profile_name]
    body, expected = CHINESE[profile_name]
    assert _reference(body) == expected
    message = patron_information_response(
        "R001", institution_id="LIB", transaction_date=datetime(2026, 11, 26, 9, 30),
        personal_name="张三", seq=1)
    frame = encode(message, profile)
    assert frame == body + expected.encode() + b"\r"
    assert decode(frame, profile).get("AE") == "张三"
    # the checksum over characters differs from the one over bytes (sip2-notes: Evergreen, php-sip2)
    chars = body.decode(profile.encoding)
    by_chars = format((0x10000 - sum(map(ord, chars))) & 0xFFFF, "04X")
    assert by_chars == CHECKSUM_BY_CHARACTERS != expected
    with pytest.raises(ChecksumError):
        decode(body + by_chars.encode() + b"\r", profile)


def test_utf8_frame_read_as_gb18030_is_a_message_or_a_typed_error() -> None:
    frame = encode(patron_information_response(
        "R001", institution_id="LIB", transaction_date=datetime(2026, 11, 26, 9, 30),
        personal_name="张三", seq=1), PROFILES["cn-utf8"])
    try:
        got = decode(frame, PROFILES["cn-gb18030"])
    except SIP2Error:
        return
    assert got.get("AE") != "张三"  # mojibake: the profile's encoding is the operator's choice
