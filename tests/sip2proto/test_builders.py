"""Builders: every message type, typed arguments, validation naming the field, spec layouts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest

import sip2proto as s
from sip2proto import LAYOUTS, PROFILES, EncodeError, Message, decode, encode

T = datetime(2026, 11, 26, 9, 30, 5)
DUE = datetime(2026, 12, 24, 23, 59, 59)
GENERIC = PROFILES["generic"]
KW: dict[str, Any] = {"institution_id": "LIB", "transaction_date": T}

BUILT: dict[str, Callable[[], Message]] = {
    "93": lambda: s.login("user", "pw", location_code="Cabinet 1"),
    "94": lambda: s.login_response(True),
    "99": lambda: s.sc_status(max_print_width=40),
    "98": lambda: s.acs_status(institution_id="LIB", date_time_sync=T, supported_messages="Y" * 16,
                               library_name="市图书馆", screen_messages=["hello", "world"]),
    "63": lambda: s.patron_information("R001", summary="charged", start_item=1, end_item=5, **KW),
    "64": lambda: s.patron_information_response("R001", personal_name="张三", valid_patron=True,
                                                charged_items=["B001", "B002"], email="a@b.cn", **KW),
    "23": lambda: s.patron_status("R001", **KW),
    "24": lambda: s.patron_status_response("R001", personal_name="张三", valid_patron=True, **KW),
    "17": lambda: s.item_information("B001", **KW),
    "18": lambda: s.item_information_response("B001", transaction_date=T, circulation_status=3,
                                              title="红楼梦", due_date=DUE, owner="LIB",
                                              permanent_location="Stacks"),
    "11": lambda: s.checkout("R001", "B001", no_block=True, nb_due_date=DUE, **KW),
    "12": lambda: s.checkout_response(True, "R001", "B001", renewal_ok=True, desensitize=True,
                                      title="红楼梦", due_date=DUE, **KW),
    "09": lambda: s.checkin("B001", return_date=T, no_block=True, current_location="Cab1", **KW),
    "10": lambda: s.checkin_response(True, "B001", permanent_location="Stacks", sort_bin="3", **KW),
    "29": lambda: s.renew("R001", "B001", nb_due_date=DUE, **KW),
    "30": lambda: s.renew_response(False, "R001", "B001", screen_messages=["已达续借上限"], **KW),
    "65": lambda: s.renew_all("R001", **KW),
    "66": lambda: s.renew_all_response(True, renewed_items=["B1", "B2"], unrenewed_items=["B3"], **KW),
    "35": lambda: s.end_patron_session("R001", **KW),
    "36": lambda: s.end_session_response(True, "R001", **KW),
    "37": lambda: s.fee_paid("R001", fee_type=1, payment_type=0, currency_type="CNY",
                             fee_amount="2.50", **KW),
    "38": lambda: s.fee_paid_response(True, "R001", transaction_id="T9", **KW),
    "19": lambda: s.item_status_update("B001", item_properties="RFID", **KW),
    "20": lambda: s.item_status_update_response(True, "B001", transaction_date=T),
    "01": lambda: s.block_patron("R001", card_retained=True, blocked_card_msg="lost card", **KW),
    "15": lambda: s.hold("+", "R001", item_id="B001", expiration_date=DUE, hold_type=2, **KW),
    "16": lambda: s.hold_response(True, "R001", available=True, queue_position=1, **KW),
    "97": s.request_acs_resend,
    "96": s.request_sc_resend,
}


def test_a_builder_for_every_message_type() -> None:
    assert set(BUILT) == set(LAYOUTS)


@pytest.mark.parametrize("code", sorted(BUILT))
@pytest.mark.parametrize("profile_name", ["generic", "cn-gb18030", "koha"])
def test_builder_output_round_trips(code: str, profile_name: str) -> None:
    profile = PROFILES[profile_name]
    msg = BUILT[code]()
    assert msg.code == code
    if code not in s.RESEND_CODES:
        msg = msg.with_seq(7)
    assert decode(encode(msg, profile), profile) == msg
    assert msg.named()["name"] == s.MESSAGE_NAMES[code]


def test_offline_checkout_frame_byte_exact() -> None:
    msg = s.checkout("R001", "B001", no_block=True, nb_due_date=DUE, seq=2, **KW)
    body = b"11NY20261126    09300520261224    235959AOLIB|AAR001|ABB001|AY2AZ"
    assert encode(msg, GENERIC) == body + s.checksum(body).encode() + b"\r"


def test_checkin_with_return_date_and_utc() -> None:
    msg = s.checkin("B001", institution_id="LIB", transaction_date=T,
                    return_date=datetime(2026, 11, 20, 1, 2, 3, tzinfo=timezone.utc))
    assert msg.get_fixed("return_date") == "20261120   Z010203"
    assert msg.fields[0] == ("AP", "")  # current location is required by the spec


def test_named_view_groups_repeats_and_keeps_unknown_codes() -> None:
    msg = s.patron_information_response("R001", personal_name="张三", charged_items=["B1", "B2"],
                                        extra=[("ZZ", "vendor")], **KW)
    named = msg.named()
    assert named["fields"]["personal_name"] == "张三"
    assert named["fields"]["charged_items"] == ["B1", "B2"]
    assert named["fields"]["ZZ"] == "vendor"
    assert named["fixed"]["charged_items_count"] == "0002"
    assert msg.get_all("AU") == ["B1", "B2"] and msg.get("AU") == "B1" and msg.get("XX") is None


@pytest.mark.parametrize("call, field", [
    (lambda: s.checkout("", "B001", **KW), "patron_id"),
    (lambda: s.checkout("R001", "B\r1", **KW), "item_id"),
    (lambda: s.checkout("R001", "B001", no_block="Y", **KW), "no_block"),  # type: ignore[arg-type]
    (lambda: s.checkout("R001", "B001", institution_id="LIB", transaction_date="2026"), "transaction_date"),  # type: ignore[arg-type]
    (lambda: s.sc_status(status_code=5), "status_code"),
    (lambda: s.sc_status(max_print_width=1000), "max_print_width"),
    (lambda: s.patron_information("R001", summary="everything", **KW), "summary"),
    (lambda: s.patron_status_response("R", personal_name="x", patron_status="Y", **KW), "patron_status"),
    (lambda: s.fee_paid("R", fee_type=1, payment_type=0, currency_type="yuan", fee_amount="1", **KW),
     "currency_type"),
    (lambda: s.hold("?", "R001", **KW), "mode"),  # type: ignore[arg-type]
    (lambda: s.hold("+", "R001", hold_type=9, **KW), "hold_type"),
    (lambda: s.item_information("B001", seq=10, **KW), "seq"),
])
def test_builders_validate_naming_the_field(call: Callable[[], Message], field: str) -> None:
    with pytest.raises(ValueError) as err:
        call()
    assert isinstance(err.value, EncodeError) and err.value.field == field


@pytest.mark.parametrize("msg, field", [
    (Message(code="XX", seq=0), "code"),
    (Message(code="94", fixed=(("ok", "2"),), seq=0), "ok"),
    (Message(code="94", fixed=(), seq=0), "fixed"),
    (Message(code="17", fixed=(("transaction_date", "2026112609300"),), seq=0), "transaction_date"),
    (Message(code="17", fixed=(("transaction_date", "20261126    093000"),), fields=(("AB", "a|b"),),
             seq=0), "AB"),
    (Message(code="17", fixed=(("transaction_date", "20261126    093000"),), fields=(("AB", "a\nb"),),
             seq=0), "AB"),
    (Message(code="17", fixed=(("transaction_date", "20261126    093000"),), fields=(("A", "x"),),
             seq=0), "A"),
    (Message(code="17", fixed=(("transaction_date", "20261126    093000"),), fields=(("AZ", "0000"),),
             seq=0), "AZ"),
])
def test_encode_is_strict(msg: Message, field: str) -> None:
    with pytest.raises(EncodeError) as err:
        encode(msg, GENERIC)
    assert err.value.field == field


def test_message_validates_its_shape() -> None:
    with pytest.raises(ValueError):
        Message(code="1")
    with pytest.raises(ValueError):
        Message(code="17", seq=12)
    with pytest.raises(ValueError):
        Message(code="17", fields=(("AB", 1),))  # type: ignore[arg-type]
