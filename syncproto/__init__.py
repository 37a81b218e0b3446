"""syncproto: the versioned cabinet↔server sync messages and their signing rules.

The only code kiosk/ and server/ share (DESIGN.md): pydantic models (``messages``), signed
credit grants and card hashing (``grants``), the dynamic QR token of the electronic reader
card (``qrtoken``) and the signature on every cabinet request (``signing``).
"""

from . import grants, qrtoken, signing
from .grants import *  # noqa: F403
from .grants import __all__ as _grants_all
from .messages import *  # noqa: F403
from .messages import __all__ as _messages_all
from .qrtoken import *  # noqa: F403
from .qrtoken import __all__ as _qrtoken_all
from .signing import *  # noqa: F403
from .signing import __all__ as _signing_all

__all__ = [*_messages_all, *_grants_all, *_qrtoken_all, *_signing_all,
           "grants", "qrtoken", "signing"]
