"""Every tolerance of a profile: the tolerant profile accepts, the strict one refuses; TOML."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path

import pytest

from sip2proto import (
    PROFILES,
    ChecksumError,
    EncodeError,
    FieldError,
    FramingError,
    Message,
    Parser,
    Profile,
    ProfileError,
    checkout,
    checksum,
    decode,
    encode,
    item_information,
    load_profile,
    parse_date,
    patron_information_response,
)

GENERIC = PROFILES["generic"]
T = datetime(2026, 11, 26, 9, 30)


def _frame(body: bytes, *, seq: int = 0, term: bytes = b"\r") -> bytes:
    data = body + b"AY%dAZ" % seq
    return data + checksum(data).encode() + term


CHECKOUT_BLANK_NB = b"11NY20261126    093000" + b" " * 18 + b"AOLIB|AAR001|ABB001|AC|"


def test_shipped_profiles() -> None:
    assert {"generic", "koha", "evergreen", "folio", "cn-utf8", "cn-gb18030"} <= set(PROFILES)
    assert PROFILES["folio"].encoding == "cp850"
    assert PROFILES["cn-gb18030"].encoding == "gb18030"
    assert PROFILES["koha"].terminator == b"\r\n"
    for name, profile in PROFILES.items():
        assert profile.name == name


# --- blank_dates_ok ---------------------------------------------------------------------------

def test_blank_date_tolerated_by_koha_refused_by_generic() -> None:
    frame = _frame(CHECKOUT_BLANK_NB)
    assert decode(frame, PROFILES["koha"]).get_fixed("nb_due_date") == " " * 18
    with pytest.raises(FieldError, match="nb_due_date"):
        decode(frame, GENERIC)


def test_blank_date_on_send_follows_the_profile() -> None:
    msg = checkout("R001", "B001", institution_id="LIB", transaction_date=T, no_block=True, seq=0)
    assert b" " * 18 in encode(msg, PROFILES["folio"])
    with pytest.raises(EncodeError) as err:
        encode(msg, PROFILES["pysip2"])  # pysip2 0.1.0 closes the connection on it (sip2-notes)
    assert err.value.field == "nb_due_date"
    dated = checkout("R001", "B001", institution_id="LIB", transaction_date=T, no_block=True,
                     nb_due_date=datetime(2026, 12, 24, 23, 59, 59), seq=0)
    assert b"20261224    235959" in encode(dated, PROFILES["pysip2"])


def test_parse_date_blank() -> None:
    assert parse_date(" " * 18, PROFILES["koha"]) is None
    with pytest.raises(FieldError):
        parse_date(" " * 18, GENERIC)


# --- checksum on / lenient / off ---------------------------------------------------------------

NO_CHECKSUM = b"941\r"


def test_missing_checksum_lenient_accepts_on_refuses() -> None:
    assert decode(NO_CHECKSUM, PROFILES["evergreen"]) == Message(code="94", fixed=(("ok", "1"),))
    with pytest.raises(ChecksumError):
        decode(NO_CHECKSUM, GENERIC)


def test_wrong_checksum_refused_by_lenient_ignored_by_off() -> None:
    wrong = b"941AY1AZ0000\r"
    with pytest.raises(ChecksumError):
        decode(wrong, PROFILES["evergreen"])
    off = dataclasses.replace(GENERIC, name="mediator", checksum="off")
    assert decode(wrong, off) == Message(code="94", fixed=(("ok", "1"),), seq=1)


def test_checksum_off_sends_neither_ay_nor_az() -> None:
    off = dataclasses.replace(GENERIC, name="mediator", checksum="off")
    msg = item_information("B001", institution_id="LIB", transaction_date=T, seq=4)
    assert encode(msg, off) == b"1720261126    093000AOLIB|ABB001|\r"
    with pytest.raises(EncodeError) as err:
        encode(msg.with_seq(None), GENERIC)
    assert err.value.field == "seq"


# --- strip_trailing_spaces ---------------------------------------------------------------------

def test_trailing_spaces_in_barcodes() -> None:
    frame = _frame(b"1720261126    093000AOLIB  |ABB001   |ACpw  |")
    got = decode(frame, PROFILES["evergreen"])
    assert (got.get("AO"), got.get("AB"), got.get("AC")) == ("LIB", "B001", "pw  ")
    assert decode(frame, GENERIC).get("AB") == "B001   "


# --- terminator / lenient_terminator -----------------------------------------------------------

def test_crlf_and_lf_accepted_by_lenient_terminator() -> None:
    stream = (_frame(b"941", term=b"\r\n") + _frame(b"940", seq=1, term=b"\r")
              + _frame(b"941", seq=2, term=b"\n"))
    got = Parser(PROFILES["evergreen"]).feed(stream)
    assert [m.get_fixed("ok") for m in got if isinstance(m, Message)] == ["1", "0", "1"]


def test_crlf_refused_by_strict_cr_profile() -> None:
    stream = _frame(b"941", term=b"\r\n") + _frame(b"940", seq=1, term=b"\r\n")
    first, second = Parser(GENERIC).feed(stream)
    assert isinstance(first, Message)
    assert isinstance(second, FramingError)  # the LF left at the start of the next frame


def test_strict_crlf_profile_waits_for_crlf() -> None:
    crlf = dataclasses.replace(GENERIC, name="crlf", terminator=b"\r\n")
    parser = Parser(crlf)
    assert parser.feed(_frame(b"941")) == []
    assert parser.pending == len(_frame(b"941"))
    assert parser.feed(b"\n") and parser.pending == 0
    assert encode(Message(code="94", fixed=(("ok", "1"),), seq=0), crlf).endswith(b"\r\n")


def test_parser_bounds_its_buffer_and_recovers() -> None:
    small = dataclasses.replace(GENERIC, name="small", max_frame=100)
    parser = Parser(small)
    out = parser.feed(b"x" * 150)
    assert len(out) == 1 and isinstance(out[0], FramingError)
    assert parser.pending <= 100
    assert parser.feed(b"y" * 150) == []  # still the same oversized frame: reported once
    out = parser.feed(b"zz\r" + _frame(b"941"))
    assert out == [Message(code="94", fixed=(("ok", "1"),), seq=0)]


# --- institution_prefix_items ------------------------------------------------------------------

def test_institution_prefixed_item_ids() -> None:
    msg = item_information("B001", institution_id="CN-00000-1-ZG", transaction_date=T, seq=0)
    sent = encode(msg, PROFILES["cn-utf8"])
    assert b"|ABCN-00000-1-ZG.B001|" in sent
    assert decode(sent, PROFILES["cn-utf8"]).get("AB") == "B001"
    assert b"|ABB001|" in encode(msg, GENERIC)
    assert decode(sent, GENERIC).get("AB") == "CN-00000-1-ZG.B001"  # verbatim without the switch


# --- lenient_date_zone, replace_undecodable, encoding, delimiter -------------------------------

def test_odd_date_zone() -> None:
    frame = _frame(b"1720261126 CST093000AOLIB|ABB001|")
    assert decode(frame, PROFILES["cn-utf8"]).get("AB") == "B001"
    assert parse_date("20261126 CST093000", PROFILES["cn-utf8"]) == T
    with pytest.raises(FieldError, match="zone"):
        decode(frame, GENERIC)


def test_undecodable_bytes() -> None:
    frame = _frame(b"1720261126    093000AOLIB|ABB\xff01|")
    tolerant = dataclasses.replace(GENERIC, name="replace", replace_undecodable=True)
    assert decode(frame, tolerant).get("AB") == "B\ufffd01"
    with pytest.raises(FieldError, match="utf-8"):
        decode(frame, GENERIC)


def test_cp850_names_and_unencodable_text() -> None:
    msg = patron_information_response("R001", institution_id="LIB", transaction_date=T,
                                      personal_name="Müller", seq=0)
    frame = encode(msg, PROFILES["folio"])
    assert b"AEM\x81ller|" in frame  # ü is 0x81 in IBM850
    assert decode(frame, PROFILES["folio"]).get("AE") == "Müller"
    chinese = patron_information_response("R001", institution_id="LIB", transaction_date=T,
                                          personal_name="张三", seq=0)
    with pytest.raises(EncodeError) as err:
        encode(chinese, PROFILES["folio"])
    assert err.value.field == "AE"


def test_other_field_delimiter() -> None:
    caret = dataclasses.replace(GENERIC, name="caret", field_delimiter="^")
    msg = item_information("B|001", institution_id="LIB", transaction_date=T, seq=0)
    frame = encode(msg, caret)
    assert b"^ABB|001^" in frame and decode(frame, caret) == msg
    with pytest.raises(EncodeError):
        encode(msg, GENERIC)


# --- Profile validation and TOML ---------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [
    {"encoding": "no-such-codec"}, {"encoding": "utf-16"}, {"terminator": b"\n"},
    {"checksum": "maybe"}, {"field_delimiter": "||"}, {"field_delimiter": "A"}, {"max_frame": 1},
])
def test_profile_refuses_bad_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(ProfileError):
        Profile(name="bad", **kwargs)  # type: ignore[arg-type]


def test_load_profile_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "city.toml"
    path.write_text('base = "koha"\nname = "city-koha"\nencoding = "gb18030"\n'
                    'terminator = "cr"\ninstitution_prefix_items = true\n', encoding="utf-8")
    profile = load_profile(path)
    assert profile == dataclasses.replace(PROFILES["koha"], name="city-koha", encoding="gb18030",
                                          terminator=b"\r", institution_prefix_items=True)


def test_load_profile_names_unknown_key_and_line(tmp_path: Path) -> None:
    path = tmp_path / "typo.toml"
    path.write_text('name = "x"\n# comment\nblank_date_ok = true\n', encoding="utf-8")
    with pytest.raises(ProfileError, match=r"typo.toml:3: unknown profile key 'blank_date_ok'") as err:
        load_profile(path)
    assert (err.value.key, err.value.line) == ("blank_date_ok", 3)


@pytest.mark.parametrize("text, key", [
    ('name = "x"\nchecksum = true\n', "checksum"),
    ('name = "x"\nterminator = "lf"\n', "terminator"),
    ('name = "x"\nencoding = "klingon"\n', "encoding"),
    ('base = "nope"\nname = "x"\n', "base"),
    ('encoding = "utf-8"\n', "name"),
    ('name = "x"\nmax_frame = "big"\n', "max_frame"),
])
def test_load_profile_refuses_bad_values(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    assert err.value.key == key


def test_load_profile_refuses_broken_toml(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("name = \n", encoding="utf-8")
    with pytest.raises(ProfileError):
        load_profile(path)


def test_sequence_number_without_checksum_is_read() -> None:
    off = dataclasses.replace(GENERIC, name="mediator", checksum="off")
    assert decode(b"941|AY3|\r", off).seq == 3
    assert decode(b"941AY3AZ0000\r", off).seq == 3


def test_next_seq_wraps() -> None:
    from sip2proto import next_seq

    assert [next_seq(None), next_seq(0), next_seq(8), next_seq(9)] == [0, 1, 9, 0]
