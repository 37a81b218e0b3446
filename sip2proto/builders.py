"""Typed builders, one per SIP2 2.00 self-service message.

Each takes Python values (datetime for dates, bool for Y/N, int for counts and codes), checks
them, and returns a Message with fields in the spec's order. Optional fields left as None are
not sent; ``extra`` appends further (code, value) pairs verbatim (vendor extensions). Time is
always passed in: nothing here reads a clock.

All builders raise EncodeError (a ValueError) naming the argument that is wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Literal

from .const import LAYOUTS
from .dates import BLANK_DATE, format_date
from .errors import EncodeError
from .message import Message

__all__ = [
    "login", "login_response", "sc_status", "acs_status",
    "patron_information", "patron_information_response", "patron_status", "patron_status_response",
    "item_information", "item_information_response", "checkout", "checkout_response",
    "checkin", "checkin_response", "renew", "renew_response", "renew_all", "renew_all_response",
    "end_patron_session", "end_session_response", "fee_paid", "fee_paid_response",
    "item_status_update", "item_status_update_response", "block_patron", "hold", "hold_response",
    "request_acs_resend", "request_sc_resend", "SUMMARY_ITEMS",
]

Fields = Sequence[tuple[str, str]]
_Opt = str | None

# Patron information "summary": which list the response should carry (one Y in 10 positions).
SUMMARY_ITEMS = ("hold", "overdue", "charged", "fine", "recall", "unavailable_holds")


def _text(value: object, name: str, *, required: bool = False) -> str:
    if not isinstance(value, str):
        raise EncodeError(f"{name} must be a str, got {type(value).__name__}", field=name)
    if required and not value:
        raise EncodeError(f"{name} must not be empty", field=name)
    if "\r" in value or "\n" in value:
        raise EncodeError(f"{name} contains CR or LF", field=name)
    return value


def _yn(value: object, name: str) -> str:
    if not isinstance(value, bool):
        raise EncodeError(f"{name} must be a bool", field=name)
    return "Y" if value else "N"


def _ynu(value: object, name: str) -> str:
    return "U" if value is None else _yn(value, name)


def _01(value: object, name: str) -> str:
    if not isinstance(value, bool):
        raise EncodeError(f"{name} must be a bool", field=name)
    return "1" if value else "0"


def _num(value: object, width: int, name: str) -> str:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 10 ** width:
        raise EncodeError(f"{name} must be an int in 0..{10 ** width - 1}", field=name)
    return f"{value:0{width}d}"


def _date(value: object, name: str, *, blank_ok: bool = False) -> str:
    if value is None and blank_ok:
        return BLANK_DATE
    if not isinstance(value, datetime):
        raise EncodeError(f"{name} must be a datetime", field=name)
    if not 1 <= value.year <= 9999:
        raise EncodeError(f"{name} out of range", field=name)
    return format_date(value)


def _build(code: str, fixed: Iterable[str], fields: Iterable[tuple[str, object]], extra: Fields,
           seq: int | None) -> Message:
    names = [s.name for s in LAYOUTS[code]]
    out: list[tuple[str, str]] = []
    for fcode, value in fields:
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            out.extend((fcode, _text(v, fcode)) for v in value)
        elif isinstance(value, bool):
            out.append((fcode, "Y" if value else "N"))
        elif isinstance(value, datetime):
            out.append((fcode, format_date(value)))
        else:
            out.append((fcode, _text(value, fcode)))
    for pair in extra:
        out.append((_text(pair[0], "extra"), _text(pair[1], f"extra {pair[0]}")))
    if seq is not None and (not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq <= 9):
        raise EncodeError("seq must be 0-9", field="seq")
    return Message(code=code, fixed=tuple(zip(names, fixed, strict=True)), fields=tuple(out), seq=seq)


def _msgs(screen_messages: Sequence[str], print_lines: Sequence[str]) -> list[tuple[str, object]]:
    return [("AF", list(screen_messages)), ("AG", list(print_lines))]


# --- session --------------------------------------------------------------------------------

def login(user_id: str, password: str, *, location_code: _Opt = None, uid_algorithm: str = "0",
          pwd_algorithm: str = "0", seq: int | None = None, extra: Fields = ()) -> Message:
    """93 Login: CN user id, CO password, CP location."""
    return _build("93", [_text(uid_algorithm, "uid_algorithm"), _text(pwd_algorithm, "pwd_algorithm")],
                  [("CN", _text(user_id, "user_id")), ("CO", _text(password, "password")),
                   ("CP", location_code)], extra, seq)


def login_response(ok: bool, *, seq: int | None = None, extra: Fields = ()) -> Message:
    """94 Login Response."""
    return _build("94", [_01(ok, "ok")], [], extra, seq)


def sc_status(*, status_code: int = 0, max_print_width: int = 80, protocol_version: str = "2.00",
              seq: int | None = None, extra: Fields = ()) -> Message:
    """99 SC Status: status_code 0 ok, 1 printer out of paper, 2 shutting down."""
    if status_code not in (0, 1, 2):
        raise EncodeError("status_code must be 0, 1 or 2", field="status_code")
    return _build("99", [str(status_code), _num(max_print_width, 3, "max_print_width"),
                         _text(protocol_version, "protocol_version")], [], extra, seq)


def acs_status(*, institution_id: str, date_time_sync: datetime, online: bool = True,
               checkin_ok: bool = True, checkout_ok: bool = True, renewal_policy: bool = True,
               status_update_ok: bool = False, offline_ok: bool = True, timeout_period: int = 30,
               retries_allowed: int = 3, supported_messages: _Opt = None, library_name: _Opt = None,
               terminal_location: _Opt = None, screen_messages: Sequence[str] = (),
               print_lines: Sequence[str] = (), protocol_version: str = "2.00",
               seq: int | None = None, extra: Fields = ()) -> Message:
    """98 ACS Status. ``supported_messages`` is the 16-character BX Y/N string."""
    return _build("98", [_yn(online, "online"), _yn(checkin_ok, "checkin_ok"),
                         _yn(checkout_ok, "checkout_ok"), _yn(renewal_policy, "renewal_policy"),
                         _yn(status_update_ok, "status_update_ok"), _yn(offline_ok, "offline_ok"),
                         _num(timeout_period, 3, "timeout_period"),
                         _num(retries_allowed, 3, "retries_allowed"),
                         _date(date_time_sync, "date_time_sync"),
                         _text(protocol_version, "protocol_version")],
                  [("AO", _text(institution_id, "institution_id")), ("AM", library_name),
                   ("BX", supported_messages), ("AN", terminal_location),
                   *_msgs(screen_messages, print_lines)], extra, seq)


# --- patron ---------------------------------------------------------------------------------

def patron_information(patron_id: str, *, institution_id: str, transaction_date: datetime,
                       language: int = 0, summary: str | None = None,
                       terminal_password: _Opt = None, patron_password: _Opt = None,
                       start_item: int | None = None, end_item: int | None = None,
                       seq: int | None = None, extra: Fields = ()) -> Message:
    """63 Patron Information. ``summary`` is one of SUMMARY_ITEMS (the list to return)."""
    flags = [" "] * 10
    if summary is not None:
        if summary not in SUMMARY_ITEMS:
            raise EncodeError(f"summary must be one of {SUMMARY_ITEMS}", field="summary")
        flags[SUMMARY_ITEMS.index(summary)] = "Y"
    return _build("63", [_num(language, 3, "language"), _date(transaction_date, "transaction_date"),
                         "".join(flags)],
                  [("AO", _text(institution_id, "institution_id")),
                   ("AA", _text(patron_id, "patron_id", required=True)),
                   ("AC", terminal_password), ("AD", patron_password),
                   ("BP", None if start_item is None else str(_num(start_item, 5, "start_item"))),
                   ("BQ", None if end_item is None else str(_num(end_item, 5, "end_item")))],
                  extra, seq)


def _status(patron_status: str) -> str:
    if not isinstance(patron_status, str) or len(patron_status) != 14 or set(patron_status) - {"Y", " "}:
        raise EncodeError("patron_status must be 14 characters of 'Y' or ' '", field="patron_status")
    return patron_status


def _opt_num(value: int | None, name: str) -> str | None:
    return None if value is None else _num(value, 4, name)


def patron_information_response(
        patron_id: str, *, institution_id: str, transaction_date: datetime, personal_name: str,
        patron_status: str = " " * 14, language: int = 0, valid_patron: bool | None = None,
        valid_patron_password: bool | None = None, hold_items: Sequence[str] = (),
        overdue_items: Sequence[str] = (), charged_items: Sequence[str] = (),
        fine_items: Sequence[str] = (), recall_items: Sequence[str] = (),
        unavailable_hold_items: Sequence[str] = (), hold_items_limit: int | None = None,
        overdue_items_limit: int | None = None, charged_items_limit: int | None = None,
        currency_type: _Opt = None, fee_amount: _Opt = None, fee_limit: _Opt = None,
        home_address: _Opt = None, email: _Opt = None, phone: _Opt = None,
        screen_messages: Sequence[str] = (), print_lines: Sequence[str] = (),
        counts: tuple[int, int, int, int, int, int] | None = None,
        seq: int | None = None, extra: Fields = ()) -> Message:
    """64 Patron Information Response. The six counts default to the lengths of the lists."""
    if counts is None:
        counts = (len(hold_items), len(overdue_items), len(charged_items), len(fine_items),
                  len(recall_items), len(unavailable_hold_items))
    names = ("hold_items_count", "overdue_items_count", "charged_items_count", "fine_items_count",
             "recall_items_count", "unavailable_holds_count")
    return _build("64", [_status(patron_status), _num(language, 3, "language"),
                         _date(transaction_date, "transaction_date"),
                         *(_num(c, 4, n) for c, n in zip(counts, names, strict=True))],
                  [("AO", _text(institution_id, "institution_id")),
                   ("AA", _text(patron_id, "patron_id")),
                   ("AE", _text(personal_name, "personal_name")),
                   ("BZ", _opt_num(hold_items_limit, "hold_items_limit")),
                   ("CA", _opt_num(overdue_items_limit, "overdue_items_limit")),
                   ("CB", _opt_num(charged_items_limit, "charged_items_limit")),
                   ("BL", valid_patron), ("CQ", valid_patron_password), ("BH", currency_type),
                   ("BV", fee_amount), ("CC", fee_limit), ("AS", list(hold_items)),
                   ("AT", list(overdue_items)), ("AU", list(charged_items)), ("AV", list(fine_items)),
                   ("BU", list(recall_items)), ("CD", list(unavailable_hold_items)),
                   ("BD", home_address), ("BE", email), ("BF", phone),
                   *_msgs(screen_messages, print_lines)], extra, seq)


def patron_status(patron_id: str, *, institution_id: str, transaction_date: datetime,
                  language: int = 0, terminal_password: str = "", patron_password: str = "",
                  seq: int | None = None, extra: Fields = ()) -> Message:
    """23 Patron Status Request (AC and AD are required by the spec, empty by default)."""
    return _build("23", [_num(language, 3, "language"), _date(transaction_date, "transaction_date")],
                  [("AO", _text(institution_id, "institution_id")),
                   ("AA", _text(patron_id, "patron_id", required=True)),
                   ("AC", terminal_password), ("AD", patron_password)], extra, seq)


def patron_status_response(patron_id: str, *, institution_id: str, transaction_date: datetime,
                           personal_name: str, patron_status: str = " " * 14, language: int = 0,
                           valid_patron: bool | None = None, valid_patron_password: bool | None = None,
                           currency_type: _Opt = None, fee_amount: _Opt = None,
                           screen_messages: Sequence[str] = (), print_lines: Sequence[str] = (),
                           seq: int | None = None, extra: Fields = ()) -> Message:
    """24 Patron Status Response."""
    return _build("24", [_status(patron_status), _num(language, 3, "language"),
                         _date(transaction_date, "transaction_date")],
                  [("AO", _text(institution_id, "institution_id")), ("AA", _text(patron_id, "patron_id")),
                   ("AE", _text(personal_name, "personal_name")), ("BL", valid_patron),
                   ("CQ", valid_patron_password), ("BH", currency_type), ("BV", fee_amount),
                   *_msgs(screen_messages, print_lines)], extra, seq)


# --- items ----------------------------------------------------------------------------------

def item_information(item_id: str, *, institution_id: str, transaction_date: datetime,
                     terminal_password: _Opt = None, seq: int | None = None,
                     extra: Fields = ()) -> Message:
    """17 Item Information."""
    return _build("17", [_date(transaction_date, "transaction_date")],
                  [("AO", _text(institution_id, "institution_id")),
                   ("AB", _text(item_id, "item_id", required=True)), ("AC", terminal_password)],
                  extra, seq)


def item_information_response(
        item_id: str, *, transaction_date: datetime, circulation_status: int, title: str = "",
        security_marker: int = 2, fee_type: int = 1, due_date: datetime | str | None = None,
        hold_queue_length: int | None = None, recall_date: datetime | None = None,
        hold_pickup_date: datetime | None = None, owner: _Opt = None, currency_type: _Opt = None,
        fee_amount: _Opt = None, media_type: _Opt = None, permanent_location: _Opt = None,
        current_location: _Opt = None, item_properties: _Opt = None,
        screen_messages: Sequence[str] = (), print_lines: Sequence[str] = (),
        seq: int | None = None, extra: Fields = ()) -> Message:
    """18 Item Information Response. circulation_status 01 other … 13 claimed returned."""
    return _build("18", [_num(circulation_status, 2, "circulation_status"),
                         _num(security_marker, 2, "security_marker"), _num(fee_type, 2, "fee_type"),
                         _date(transaction_date, "transaction_date")],
                  [("CF", None if hold_queue_length is None else str(_num(hold_queue_length, 4,
                                                                            "hold_queue_length"))),
                   ("AH", due_date), ("CJ", recall_date), ("CM", hold_pickup_date),
                   ("AB", _text(item_id, "item_id")), ("AJ", _text(title, "title")), ("BG", owner),
                   ("BH", currency_type), ("BV", fee_amount), ("CK", media_type),
                   ("AQ", permanent_location), ("AP", current_location), ("CH", item_properties),
                   *_msgs(screen_messages, print_lines)], extra, seq)


def item_status_update(item_id: str, *, institution_id: str, transaction_date: datetime,
                       item_properties: str, terminal_password: _Opt = None,
                       seq: int | None = None, extra: Fields = ()) -> Message:
    """19 Item Status Update."""
    return _build("19", [_date(transaction_date, "transaction_date")],
                  [("AO", _text(institution_id, "institution_id")),
                   ("AB", _text(item_id, "item_id", required=True)), ("AC", terminal_password),
                   ("CH", _text(item_properties, "item_properties"))], extra, seq)


def item_status_update_response(ok: bool, item_id: str, *, transaction_date: datetime,
                                title: _Opt = None, item_properties: _Opt = None,
                                screen_messages: Sequence[str] = (), print_lines: Sequence[str] = (),
                                seq: int | None = None, extra: Fields = ()) -> Message:
    """20 Item Status Update Response."""
    return _build("20", [_01(ok, "ok"), _date(transaction_date, "transaction_date")],
                  [("AB", _text(item_id, "item_id")), ("AJ", title), ("CH", item_properties),
                   *_msgs(screen_messages, print_lines)], extra, seq)


# --- circulation ----------------------------------------------------------------------------

def checkout(patron_id: str, item_id: str, *, institution_id: str, transaction_date: datetime,
             no_block: bool = False, nb_due_date: datetime | None = None,
             sc_renewal_policy: bool = False, terminal_password: _Opt = None,
             item_properties: _Opt = None, patron_password: _Opt = None,
             fee_acknowledged: bool | None = None, cancel: bool | None = None,
             seq: int | None = None, extra: Fields = ()) -> Message:
    """11 Checkout. Offline (store-and-forward) checkouts: ``no_block=True``, the original
    ``transaction_date`` and the cabinet's ``nb_due_date``; None sends 18 spaces."""
    return _build("11", [_yn(sc_renewal_policy, "sc_renewal_policy"), _yn(no_block, "no_block"),
                         _date(transaction_date, "transaction_date"),
                         _date(nb_due_date, "nb_due_date", blank_ok=True)],
                  [("AO", _text(institution_id, "institution_id")),
                   ("AA", _text(patron_id, "patron_id", required=True)),
                   ("AB", _text(item_id, "item_id", required=True)), ("AC", terminal_password),
                   ("CH", item_properties), ("AD", patron_password), ("BO", fee_acknowledged),
                   ("BI", cancel)], extra, seq)


def _circ_response(code: str, ok: bool, patron_id: str, item_id: str, *, institution_id: str,
                   transaction_date: datetime, renewal_ok: bool, magnetic_media: bool | None,
                   desensitize: bool | None, title: str, due_date: datetime | str | None,
                   fee_type: _Opt, security_inhibit: bool | None, currency_type: _Opt,
                   fee_amount: _Opt, media_type: _Opt, item_properties: _Opt,
                   transaction_id: _Opt, screen_messages: Sequence[str],
                   print_lines: Sequence[str], seq: int | None, extra: Fields) -> Message:
    return _build(code, [_01(ok, "ok"), _yn(renewal_ok, "renewal_ok"),
                         _ynu(magnetic_media, "magnetic_media"), _ynu(desensitize, "desensitize"),
                         _date(transaction_date, "transaction_date")],
                  [("AO", _text(institution_id, "institution_id")), ("AA", _text(patron_id, "patron_id")),
                   ("AB", _text(item_id, "item_id")), ("AJ", _text(title, "title")),
                   ("AH", "" if due_date is None else due_date), ("BT", fee_type),
                   ("CI", security_inhibit), ("BH", currency_type), ("BV", fee_amount),
                   ("CK", media_type), ("CH", item_properties), ("BK", transaction_id),
                   *_msgs(screen_messages, print_lines)], extra, seq)


def checkout_response(ok: bool, patron_id: str, item_id: str, *, institution_id: str,
                      transaction_date: datetime, renewal_ok: bool = False,
                      magnetic_media: bool | None = None, desensitize: bool | None = None,
                      title: str = "", due_date: datetime | str | None = None, fee_type: _Opt = None,
                      security_inhibit: bool | None = None, currency_type: _Opt = None,
                      fee_amount: _Opt = None, media_type: _Opt = None, item_properties: _Opt = None,
                      transaction_id: _Opt = None, screen_messages: Sequence[str] = (),
                      print_lines: Sequence[str] = (), seq: int | None = None,
                      extra: Fields = ()) -> Message:
    """12 Checkout Response (AH due date is sent, empty when refused)."""
    return _circ_response("12", ok, patron_id, item_id, institution_id=institution_id,
                          transaction_date=transaction_date, renewal_ok=renewal_ok,
                          magnetic_media=magnetic_media, desensitize=desensitize, title=title,
                          due_date=due_date, fee_type=fee_type, security_inhibit=security_inhibit,
                          currency_type=currency_type, fee_amount=fee_amount, media_type=media_type,
                          item_properties=item_properties, transaction_id=transaction_id,
                          screen_messages=screen_messages, print_lines=print_lines, seq=seq,
                          extra=extra)


def checkin(item_id: str, *, institution_id: str, transaction_date: datetime,
            return_date: datetime, current_location: str = "", no_block: bool = False,
            terminal_password: _Opt = None, item_properties: _Opt = None,
            cancel: bool | None = None, seq: int | None = None, extra: Fields = ()) -> Message:
    """09 Checkin. Offline returns: ``no_block=True`` and the real ``return_date``."""
    return _build("09", [_yn(no_block, "no_block"), _date(transaction_date, "transaction_date"),
                         _date(return_date, "return_date")],
                  [("AP", _text(current_location, "current_location")),
                   ("AO", _text(institution_id, "institution_id")),
                   ("AB", _text(item_id, "item_id", required=True)), ("AC", terminal_password),
                   ("CH", item_properties), ("BI", cancel)], extra, seq)


def checkin_response(ok: bool, item_id: str, *, institution_id: str, transaction_date: datetime,
                     resensitize: bool = True, magnetic_media: bool | None = None,
                     alert: bool = False, permanent_location: str = "", title: _Opt = None,
                     sort_bin: _Opt = None, patron_id: _Opt = None, media_type: _Opt = None,
                     item_properties: _Opt = None, screen_messages: Sequence[str] = (),
                     print_lines: Sequence[str] = (), seq: int | None = None,
                     extra: Fields = ()) -> Message:
    """10 Checkin Response."""
    return _build("10", [_01(ok, "ok"), _yn(resensitize, "resensitize"),
                         _ynu(magnetic_media, "magnetic_media"), _yn(alert, "alert"),
                         _date(transaction_date, "transaction_date")],
                  [("AO", _text(institution_id, "institution_id")), ("AB", _text(item_id, "item_id")),
                   ("AQ", _text(permanent_location, "permanent_location")), ("AJ", title),
                   ("CL", sort_bin), ("AA", patron_id), ("CK", media_type), ("CH", item_properties),
                   *_msgs(screen_messages, print_lines)], extra, seq)


def renew(patron_id: str, item_id: str, *, institution_id: str, transaction_date: datetime,
          no_block: bool = False, nb_due_date: datetime | None = None,
          third_party_allowed: bool = False, patron_password: _Opt = None, title_id: _Opt = None,
          terminal_password: _Opt = None, item_properties: _Opt = None,
          fee_acknowledged: bool | None = None, seq: int | None = None,
          extra: Fields = ()) -> Message:
    """29 Renew."""
    return _build("29", [_yn(third_party_allowed, "third_party_allowed"), _yn(no_block, "no_block"),
                         _date(transaction_date, "transaction_date"),
                         _date(nb_due_date, "nb_due_date", blank_ok=True)],
                  [("AO", _text(institution_id, "institution_id")),
                   ("AA", _text(patron_id, "patron_id", required=True)), ("AD", patron_password),
                   ("AB", _text(item_id, "item_id", required=True)), ("AJ", title_id),
                   ("AC", terminal_password), ("CH", item_properties), ("BO", fee_acknowledged)],
                  extra, seq)


def renew_response(ok: bool, patron_id: str, item_id: str, *, institution_id: str,
                   transaction_date: datetime, renewal_ok: bool = False,
                   magnetic_media: bool | None = None, desensitize: bool | None = None,
                   title: str = "", due_date: datetime | str | None = None, fee_type: _Opt = None,
                   security_inhibit: bool | None = None, currency_type: _Opt = None,
                   fee_amount: _Opt = None, media_type: _Opt = None, item_properties: _Opt = None,
                   transaction_id: _Opt = None, screen_messages: Sequence[str] = (),
                   print_lines: Sequence[str] = (), seq: int | None = None,
                   extra: Fields = ()) -> Message:
    """30 Renew Response."""
    return _circ_response("30", ok, patron_id, item_id, institution_id=institution_id,
                          transaction_date=transaction_date, renewal_ok=renewal_ok,
                          magnetic_media=magnetic_media, desensitize=desensitize, title=title,
                          due_date=due_date, fee_type=fee_type, security_inhibit=security_inhibit,
                          currency_type=currency_type, fee_amount=fee_amount, media_type=media_type,
                          item_properties=item_properties, transaction_id=transaction_id,
                          screen_messages=screen_messages, print_lines=print_lines, seq=seq,
                          extra=extra)


def renew_all(patron_id: str, *, institution_id: str, transaction_date: datetime,
              patron_password: _Opt = None, terminal_password: _Opt = None,
              fee_acknowledged: bool | None = None, seq: int | None = None,
              extra: Fields = ()) -> Message:
    """65 Renew All."""
    return _build("65", [_date(transaction_date, "transaction_date")],
                  [("AO", _text(institution_id, "institution_id")),
                   ("AA", _text(patron_id, "patron_id", required=True)), ("AD", patron_password),
                   ("AC", terminal_password), ("BO", fee_acknowledged)], extra, seq)


def renew_all_response(ok: bool, *, institution_id: str, transaction_date: datetime,
                       renewed_items: Sequence[str] = (), unrenewed_items: Sequence[str] = (),
                       screen_messages: Sequence[str] = (), print_lines: Sequence[str] = (),
                       seq: int | None = None, extra: Fields = ()) -> Message:
    """66 Renew All Response (the counts are the lengths of the lists)."""
    return _build("66", [_01(ok, "ok"), _num(len(renewed_items), 4, "renewed_items"),
                         _num(len(unrenewed_items), 4, "unrenewed_items"),
                         _date(transaction_date, "transaction_date")],
                  [("AO", _text(institution_id, "institution_id")), ("BM", list(renewed_items)),
                   ("BN", list(unrenewed_items)), *_msgs(screen_messages, print_lines)], extra, seq)


def end_patron_session(patron_id: str, *, institution_id: str, transaction_date: datetime,
                       terminal_password: _Opt = None, patron_password: _Opt = None,
                       seq: int | None = None, extra: Fields = ()) -> Message:
    """35 End Patron Session."""
    return _build("35", [_date(transaction_date, "transaction_date")],
                  [("AO", _text(institution_id, "institution_id")),
                   ("AA", _text(patron_id, "patron_id", required=True)), ("AC", terminal_password),
                   ("AD", patron_password)], extra, seq)


def end_session_response(end_session: bool, patron_id: str, *, institution_id: str,
                         transaction_date: datetime, screen_messages: Sequence[str] = (),
                         print_lines: Sequence[str] = (), seq: int | None = None,
                         extra: Fields = ()) -> Message:
    """36 End Session Response."""
    return _build("36", [_yn(end_session, "end_session"), _date(transaction_date, "transaction_date")],
                  [("AO", _text(institution_id, "institution_id")), ("AA", _text(patron_id, "patron_id")),
                   *_msgs(screen_messages, print_lines)], extra, seq)


def fee_paid(patron_id: str, *, institution_id: str, transaction_date: datetime, fee_type: int,
             payment_type: int, currency_type: str, fee_amount: str, terminal_password: _Opt = None,
             patron_password: _Opt = None, fee_identifier: _Opt = None,
             transaction_id: _Opt = None, seq: int | None = None, extra: Fields = ()) -> Message:
    """37 Fee Paid. currency_type is ISO 4217 ("CNY")."""
    if not (isinstance(currency_type, str) and len(currency_type) == 3 and currency_type.isascii()
            and currency_type.isalpha() and currency_type.isupper()):
        raise EncodeError("currency_type must be 3 uppercase letters", field="currency_type")
    return _build("37", [_date(transaction_date, "transaction_date"), _num(fee_type, 2, "fee_type"),
                         _num(payment_type, 2, "payment_type"), currency_type],
                  [("BV", _text(fee_amount, "fee_amount", required=True)),
                   ("AO", _text(institution_id, "institution_id")),
                   ("AA", _text(patron_id, "patron_id", required=True)), ("AC", terminal_password),
                   ("AD", patron_password), ("CG", fee_identifier), ("BK", transaction_id)],
                  extra, seq)


def fee_paid_response(payment_accepted: bool, patron_id: str, *, institution_id: str,
                      transaction_date: datetime, transaction_id: _Opt = None,
                      screen_messages: Sequence[str] = (), print_lines: Sequence[str] = (),
                      seq: int | None = None, extra: Fields = ()) -> Message:
    """38 Fee Paid Response."""
    return _build("38", [_yn(payment_accepted, "payment_accepted"),
                         _date(transaction_date, "transaction_date")],
                  [("AO", _text(institution_id, "institution_id")), ("AA", _text(patron_id, "patron_id")),
                   ("BK", transaction_id), *_msgs(screen_messages, print_lines)], extra, seq)


def block_patron(patron_id: str, *, institution_id: str, transaction_date: datetime,
                 card_retained: bool = False, blocked_card_msg: str = "",
                 terminal_password: str = "", seq: int | None = None, extra: Fields = ()) -> Message:
    """01 Block Patron (no response message in SIP2: the ACS answers with 24)."""
    return _build("01", [_yn(card_retained, "card_retained"), _date(transaction_date, "transaction_date")],
                  [("AO", _text(institution_id, "institution_id")),
                   ("AL", _text(blocked_card_msg, "blocked_card_msg")),
                   ("AA", _text(patron_id, "patron_id", required=True)), ("AC", terminal_password)],
                  extra, seq)


def hold(mode: Literal["+", "-", "*"], patron_id: str, *, institution_id: str,
         transaction_date: datetime, expiration_date: datetime | None = None,
         pickup_location: _Opt = None, hold_type: int | None = None, patron_password: _Opt = None,
         item_id: _Opt = None, title_id: _Opt = None, terminal_password: _Opt = None,
         fee_acknowledged: bool | None = None, seq: int | None = None, extra: Fields = ()) -> Message:
    """15 Hold: mode "+" add, "-" delete, "*" change. hold_type 1..5."""
    if mode not in ("+", "-", "*"):
        raise EncodeError("mode must be '+', '-' or '*'", field="mode")
    if hold_type is not None and hold_type not in range(1, 6):
        raise EncodeError("hold_type must be 1..5", field="hold_type")
    return _build("15", [mode, _date(transaction_date, "transaction_date")],
                  [("BW", expiration_date), ("BS", pickup_location),
                   ("BY", None if hold_type is None else str(hold_type)),
                   ("AO", _text(institution_id, "institution_id")),
                   ("AA", _text(patron_id, "patron_id", required=True)), ("AD", patron_password),
                   ("AB", item_id), ("AJ", title_id), ("AC", terminal_password),
                   ("BO", fee_acknowledged)], extra, seq)


def hold_response(ok: bool, patron_id: str, *, institution_id: str, transaction_date: datetime,
                  available: bool = False, expiration_date: datetime | None = None,
                  queue_position: int | None = None, pickup_location: _Opt = None,
                  item_id: _Opt = None, title_id: _Opt = None, screen_messages: Sequence[str] = (),
                  print_lines: Sequence[str] = (), seq: int | None = None,
                  extra: Fields = ()) -> Message:
    """16 Hold Response."""
    return _build("16", [_01(ok, "ok"), _yn(available, "available"),
                         _date(transaction_date, "transaction_date")],
                  [("BW", expiration_date),
                   ("BR", None if queue_position is None else str(_num(queue_position, 4,
                                                                       "queue_position"))),
                   ("BS", pickup_location), ("AO", _text(institution_id, "institution_id")),
                   ("AA", _text(patron_id, "patron_id")), ("AB", item_id), ("AJ", title_id),
                   *_msgs(screen_messages, print_lines)], extra, seq)


def request_acs_resend() -> Message:
    """97 Request ACS Resend (SC → ACS: repeat your last response)."""
    return Message(code="97")


def request_sc_resend() -> Message:
    """96 Request SC Resend (ACS → SC: your last request was garbled)."""
    return Message(code="96")
