"""The SIP2 2.00 tables: message codes, fixed-field layouts and variable field codes.

Layouts are in wire order; each fixed field has a kind that says what ``encode`` accepts:

- ``yn``: ``Y``/``N``; ``ynu``: ``Y``/``N``/``U``; ``01``: ``0``/``1``;
- ``date``: 18 characters ``YYYYMMDDZZZZHHMMSS`` (see ``dates``);
- ``digits``: exactly ``width`` ASCII digits; ``flags``: ``Y`` or space per position;
- ``status``: ``0``/``1``/``2`` (SC status); ``hold_mode``: ``+``/``-``/``*``;
- ``version``: ``d.dd``; ``alpha``: uppercase ASCII letters; ``text``: printable ASCII.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "FixedSpec",
    "LAYOUTS",
    "MESSAGE_NAMES",
    "FIELD_NAMES",
    "REPEATABLE_FIELDS",
    "ID_FIELDS",
    "RESEND_CODES",
    "REQUEST_SC_RESEND",
    "REQUEST_ACS_RESEND",
]


class FixedSpec(NamedTuple):
    """One fixed field: its name, width in characters and kind."""

    name: str
    width: int
    kind: str


def _d(name: str) -> FixedSpec:
    return FixedSpec(name, 18, "date")


def _yn(name: str) -> FixedSpec:
    return FixedSpec(name, 1, "yn")


_TD = _d("transaction_date")
_OK = FixedSpec("ok", 1, "01")

LAYOUTS: dict[str, tuple[FixedSpec, ...]] = {
    "93": (FixedSpec("uid_algorithm", 1, "text"), FixedSpec("pwd_algorithm", 1, "text")),
    "94": (_OK,),
    "99": (FixedSpec("status_code", 1, "status"), FixedSpec("max_print_width", 3, "digits"),
           FixedSpec("protocol_version", 4, "version")),
    "98": (_yn("online_status"), _yn("checkin_ok"), _yn("checkout_ok"), _yn("acs_renewal_policy"),
           _yn("status_update_ok"), _yn("offline_ok"), FixedSpec("timeout_period", 3, "digits"),
           FixedSpec("retries_allowed", 3, "digits"), _d("date_time_sync"),
           FixedSpec("protocol_version", 4, "version")),
    "63": (FixedSpec("language", 3, "digits"), _TD, FixedSpec("summary", 10, "flags")),
    "64": (FixedSpec("patron_status", 14, "flags"), FixedSpec("language", 3, "digits"), _TD,
           FixedSpec("hold_items_count", 4, "digits"), FixedSpec("overdue_items_count", 4, "digits"),
           FixedSpec("charged_items_count", 4, "digits"), FixedSpec("fine_items_count", 4, "digits"),
           FixedSpec("recall_items_count", 4, "digits"),
           FixedSpec("unavailable_holds_count", 4, "digits")),
    "23": (FixedSpec("language", 3, "digits"), _TD),
    "24": (FixedSpec("patron_status", 14, "flags"), FixedSpec("language", 3, "digits"), _TD),
    "17": (_TD,),
    "18": (FixedSpec("circulation_status", 2, "digits"), FixedSpec("security_marker", 2, "digits"),
           FixedSpec("fee_type", 2, "digits"), _TD),
    "11": (_yn("sc_renewal_policy"), _yn("no_block"), _TD, _d("nb_due_date")),
    "12": (_OK, _yn("renewal_ok"), FixedSpec("magnetic_media", 1, "ynu"),
           FixedSpec("desensitize", 1, "ynu"), _TD),
    "09": (_yn("no_block"), _TD, _d("return_date")),
    "10": (_OK, _yn("resensitize"), FixedSpec("magnetic_media", 1, "ynu"), _yn("alert"), _TD),
    "29": (_yn("third_party_allowed"), _yn("no_block"), _TD, _d("nb_due_date")),
    "30": (_OK, _yn("renewal_ok"), FixedSpec("magnetic_media", 1, "ynu"),
           FixedSpec("desensitize", 1, "ynu"), _TD),
    "65": (_TD,),
    "66": (_OK, FixedSpec("renewed_count", 4, "digits"), FixedSpec("unrenewed_count", 4, "digits"), _TD),
    "35": (_TD,),
    "36": (_yn("end_session"), _TD),
    "37": (_TD, FixedSpec("fee_type", 2, "digits"), FixedSpec("payment_type", 2, "digits"),
           FixedSpec("currency_type", 3, "alpha")),
    "38": (_yn("payment_accepted"), _TD),
    "19": (_TD,),
    "20": (FixedSpec("item_properties_ok", 1, "01"), _TD),
    "01": (_yn("card_retained"), _TD),
    "15": (FixedSpec("hold_mode", 1, "hold_mode"), _TD),
    "16": (_OK, _yn("available"), _TD),
    "97": (),
    "96": (),
}

MESSAGE_NAMES: dict[str, str] = {
    "93": "Login", "94": "Login Response", "99": "SC Status", "98": "ACS Status",
    "63": "Patron Information", "64": "Patron Information Response",
    "23": "Patron Status Request", "24": "Patron Status Response",
    "17": "Item Information", "18": "Item Information Response",
    "11": "Checkout", "12": "Checkout Response", "09": "Checkin", "10": "Checkin Response",
    "29": "Renew", "30": "Renew Response", "65": "Renew All", "66": "Renew All Response",
    "35": "End Patron Session", "36": "End Session Response",
    "37": "Fee Paid", "38": "Fee Paid Response",
    "19": "Item Status Update", "20": "Item Status Update Response",
    "01": "Block Patron", "15": "Hold", "16": "Hold Response",
    "97": "Request ACS Resend", "96": "Request SC Resend",
}

REQUEST_ACS_RESEND = "97"  # the SC asks the ACS to repeat its last response
REQUEST_SC_RESEND = "96"  # the ACS asks the SC to repeat its last request
RESEND_CODES = frozenset({REQUEST_ACS_RESEND, REQUEST_SC_RESEND})

FIELD_NAMES: dict[str, str] = {
    "AA": "patron_identifier", "AB": "item_identifier", "AC": "terminal_password",
    "AD": "patron_password", "AE": "personal_name", "AF": "screen_message", "AG": "print_line",
    "AH": "due_date", "AJ": "title_identifier", "AL": "blocked_card_msg", "AM": "library_name",
    "AN": "terminal_location", "AO": "institution_id", "AP": "current_location",
    "AQ": "permanent_location", "AS": "hold_items", "AT": "overdue_items", "AU": "charged_items",
    "AV": "fine_items", "AY": "sequence_number", "AZ": "checksum",
    "BD": "home_address", "BE": "email_address", "BF": "home_phone_number", "BG": "owner",
    "BH": "currency_type", "BI": "cancel", "BK": "transaction_id", "BL": "valid_patron",
    "BM": "renewed_items", "BN": "unrenewed_items", "BO": "fee_acknowledged", "BP": "start_item",
    "BQ": "end_item", "BR": "queue_position", "BS": "pickup_location", "BT": "fee_type",
    "BU": "recall_items", "BV": "fee_amount", "BW": "expiration_date", "BX": "supported_messages",
    "BY": "hold_type", "BZ": "hold_items_limit", "CA": "overdue_items_limit",
    "CB": "charged_items_limit", "CC": "fee_limit", "CD": "unavailable_hold_items",
    "CF": "hold_queue_length", "CG": "fee_identifier", "CH": "item_properties",
    "CI": "security_inhibit", "CJ": "recall_date", "CK": "media_type", "CL": "sort_bin",
    "CM": "hold_pickup_date", "CN": "login_user_id", "CO": "login_password", "CP": "location_code",
    "CQ": "valid_patron_password",
}

# Fields the 2.00 spec allows more than once in one message.
REPEATABLE_FIELDS = frozenset({"AF", "AG", "AS", "AT", "AU", "AV", "BU", "CD", "BM", "BN"})

# Identifier fields (barcodes, institution): where trailing-space stripping applies on receive.
ID_FIELDS = frozenset({"AA", "AB", "AO"})
