"""The SIP2 message: one frozen value for all 29 message types.

A message is its two-digit code, its fixed fields (name → raw text, in layout order), its
variable fields (code → raw text, in wire order, repeatable, unknown codes kept verbatim) and
its sequence number. Values stay text exactly as on the wire; ``dates.parse_date`` and the
builders convert.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from .const import FIELD_NAMES, LAYOUTS, MESSAGE_NAMES

__all__ = ["Message"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """One SIP2 message.

    Attributes:
        code: two digits, e.g. "11" (checkout).
        fixed: (name, raw text) pairs in the layout order of ``const.LAYOUTS[code]``.
        fields: (two-character code, value) pairs in wire order.
        seq: the AY sequence number 0–9, or None (no error detection, or a 96/97).
    """

    code: str
    fixed: tuple[tuple[str, str], ...] = ()
    fields: tuple[tuple[str, str], ...] = ()
    seq: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.code, str) or len(self.code) != 2:
            raise ValueError(f"code must be two characters, got {self.code!r}")
        if self.seq is not None and (not isinstance(self.seq, int) or not 0 <= self.seq <= 9):
            raise ValueError(f"seq must be 0-9 or None, got {self.seq!r}")
        for pair in (*self.fixed, *self.fields):
            if not (isinstance(pair, tuple) and len(pair) == 2
                    and isinstance(pair[0], str) and isinstance(pair[1], str)):
                raise ValueError(f"fixed and fields hold (str, str) pairs, got {pair!r}")

    @property
    def name(self) -> str:
        """The spec's name of the message type ("Checkout"), or "Unknown"."""
        return MESSAGE_NAMES.get(self.code, "Unknown")

    def get(self, code: str) -> str | None:
        """The first value of variable field ``code``, or None."""
        for c, v in self.fields:
            if c == code:
                return v
        return None

    def get_all(self, code: str) -> list[str]:
        """Every value of variable field ``code``, in wire order."""
        return [v for c, v in self.fields if c == code]

    def get_fixed(self, name: str) -> str | None:
        """The raw text of fixed field ``name``, or None."""
        for n, v in self.fixed:
            if n == name:
                return v
        return None

    def with_seq(self, seq: int | None) -> Message:
        """The same message with another sequence number."""
        return replace(self, seq=seq)

    def named(self) -> dict[str, Any]:
        """A JSON-ready view: fixed fields by name, variable fields by their spec name (unknown
        codes under the code itself); a field present more than once gives a list."""
        fields: dict[str, Any] = {}
        for c, v in self.fields:
            key = FIELD_NAMES.get(c, c)
            if key in fields:
                prev = fields[key]
                fields[key] = [*prev, v] if isinstance(prev, list) else [prev, v]
            else:
                fields[key] = v
        return {"code": self.code, "name": self.name, "fixed": dict(self.fixed),
                "fields": fields, "seq": self.seq}

    @property
    def known(self) -> bool:
        """Whether the code is one of the SIP2 2.00 self-service messages."""
        return self.code in LAYOUTS
