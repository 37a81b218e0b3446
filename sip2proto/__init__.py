# ruff: noqa: F403, F405  (the package re-exports its modules' literal __all__ lists)
"""sip2proto: SIP2 2.00 (3M Standard Interchange Protocol) messages, codec and per-ILS profiles.

Sans-IO in the h11 manner: ``encode(message, profile) -> bytes``, ``decode(frame, profile)``
and the incremental ``Parser(profile).feed(data)``; no sockets, threads or clocks. The
server's ILS connector and the simulator's ILS emulator both stand on it. See docs/sip2.md.
"""

from .builders import *
from .codec import *
from .const import *
from .dates import *
from .errors import *
from .message import *
from .profile import *

__all__ = [  # builders, codec, const, dates, errors, message, profile — kept literal for linters
    "BLANK_DATE", "DATE_WIDTH", "FIELD_NAMES", "ID_FIELDS", "LAYOUTS", "MESSAGE_NAMES",
    "PROFILES", "REPEATABLE_FIELDS", "REQUEST_ACS_RESEND", "REQUEST_SC_RESEND", "RESEND_CODES",
    "SUMMARY_ITEMS",
    "ChecksumError", "EncodeError", "FieldError", "FixedSpec", "FramingError", "LocalSIP2Error",
    "Message", "Parser", "Profile", "ProfileError", "RemoteSIP2Error", "SIP2Error", "Sip2Error",
    "acs_status", "block_patron", "checkin", "checkin_response", "checkout", "checkout_response",
    "checksum", "decode", "encode", "end_patron_session", "end_session_response", "fee_paid",
    "fee_paid_response", "format_date", "hold", "hold_response", "item_information",
    "item_information_response", "item_status_update", "item_status_update_response",
    "load_profile", "login", "next_seq", "login_response", "parse_date", "patron_information",
    "patron_information_response", "patron_status", "patron_status_response", "profile_from_dict",
    "renew", "renew_all", "renew_all_response", "renew_response", "request_acs_resend",
    "request_sc_resend", "sc_status", "validate_fixed", "verify_checksum",
]
