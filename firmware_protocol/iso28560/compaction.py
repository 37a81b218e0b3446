"""ISO/IEC 15962 compaction schemes as used by ISO 28560-2, plus the ISIL compaction.

A data set's precursor names one of eight schemes (3 bits). Each function pair here turns a
value into compacted bytes and back; decoders raise :class:`BadCompaction` for bytes that no
encoder could have produced, never another exception.

Schemes (ISO/IEC 15962 / ISO 28560-2 7.4):

===  =================  ==========================================================
0    application        bytes as the application defines them (ISIL, type of usage)
1    integer            a digit string without leading zeros, as a big-endian integer
2    numeric            digits, 4 bits each (BCD), odd count padded with nibble 0xF
3    5-bit              ``@A-Z[\\]^_`` as the 5 low bits of their ASCII code
4    6-bit              space ``(``..``?`` ``@``..``_`` as the 6 low bits of ASCII
5    7-bit              printable US-ASCII, 7 bits each
6    octet              ISO/IEC 8859-1, one byte each
7    UTF-8              ISO/IEC 10646 as UTF-8
===  =================  ==========================================================

Padding of the last byte: 5-bit and 7-bit pad with 0 bits (the all-zero code, ``@``/NUL, is
therefore never encoded and a trailing one is dropped); 6-bit pads with the leading bits of
its end-of-transmission code 100001 (the published ISO 28560-2 example "QA268.L55" ends in
bits ``10``); numeric pads with nibble 0xF.

The ISIL compaction (owner library, OID 3, scheme 0) is a 5-bit/4-bit code with three sets
(upper case, lower case, numeric) switched by latch and shift codes, because ISILs mix cases,
digits and ``-``, ``:``, ``/``. It starts in the upper-case set and pads with 1 bits (a shift
code with nothing after it).
"""

from __future__ import annotations

from enum import IntEnum

from .errors import BadCompaction, TagEncodeError

__all__ = [
    "Scheme",
    "applicable_schemes",
    "best_scheme",
    "compact",
    "compact_isil",
    "expand",
    "expand_isil",
    "isil_compactable",
]


class Scheme(IntEnum):
    """Compaction scheme codes of the ISO 28560-2 precursor (bits 7..5)."""

    APPLICATION = 0
    INTEGER = 1
    NUMERIC = 2
    FIVE_BIT = 3
    SIX_BIT = 4
    SEVEN_BIT = 5
    OCTET = 6
    UTF8 = 7


_DIGITS = frozenset("0123456789")
_FIVE_BIT = frozenset(chr(c) for c in range(0x41, 0x60))  # A-Z [ \ ] ^ _  (not '@')
# 6-bit: ASCII 0x20..0x5F, minus codes 0x21..0x27, which the 6-bit table reserves for
# EOT / control use (EOT = 0x21 is the pad); see the module docstring.
_SIX_BIT = frozenset(chr(c) for c in range(0x20, 0x60) if not 0x21 <= c <= 0x27)
_SIX_EOT = 0b100001
_SEVEN_BIT = frozenset(chr(c) for c in range(0x20, 0x7F))


def _pack(codes: list[int], width: int, pad: int) -> bytes:
    """Concatenate ``width``-bit codes MSB first; fill the last byte with ``pad``'s top bits."""
    nbits = len(codes) * width
    value = 0
    for c in codes:
        value = (value << width) | c
    spare = -nbits % 8
    if spare:
        value = (value << spare) | (pad >> (width - spare) if spare <= width else 0)
    return value.to_bytes((nbits + spare) // 8, "big") if nbits else b""


def _unpack(data: bytes, width: int) -> list[int]:
    nbits = len(data) * 8
    value = int.from_bytes(data, "big")
    count = nbits // width
    return [(value >> (nbits - width * (i + 1))) & ((1 << width) - 1) for i in range(count)]


def applicable_schemes(text: str) -> list[Scheme]:
    """Every string scheme able to hold ``text`` exactly, in code order."""
    out: list[Scheme] = []
    chars = set(text)
    if text and chars <= _DIGITS:
        if text == "0" or not text.startswith("0"):
            out.append(Scheme.INTEGER)
        out.append(Scheme.NUMERIC)
    if chars <= _FIVE_BIT:
        out.append(Scheme.FIVE_BIT)
    if chars <= _SIX_BIT:
        out.append(Scheme.SIX_BIT)
    if chars <= _SEVEN_BIT:
        out.append(Scheme.SEVEN_BIT)
    if all(ord(c) <= 0xFF for c in text):
        out.append(Scheme.OCTET)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        pass
    else:
        out.append(Scheme.UTF8)
    return out


def best_scheme(text: str) -> Scheme:
    """The scheme giving the fewest bytes (ties go to the lower code), as 15962 encoders do.

    Raises:
        TagEncodeError: no scheme can hold the text (it is not valid Unicode).
    """
    schemes = applicable_schemes(text)
    if not schemes:
        raise TagEncodeError(f"cannot encode {text!r} in any compaction scheme")
    return min(schemes, key=lambda s: (len(compact(text, s)), int(s)))


def compact(text: str, scheme: Scheme) -> bytes:
    """Compact ``text`` with a string scheme (1..7).

    Raises:
        TagEncodeError: ``text`` has a character the scheme cannot hold.
    """
    if scheme not in applicable_schemes(text) or scheme == Scheme.APPLICATION:
        raise TagEncodeError(f"{text!r} cannot be compacted with scheme {Scheme(scheme).name}")
    if scheme == Scheme.INTEGER:
        n = int(text)
        return n.to_bytes(max(1, (n.bit_length() + 7) // 8), "big")
    if scheme == Scheme.NUMERIC:
        return _pack([int(c) for c in text], 4, 0xF)
    if scheme == Scheme.FIVE_BIT:
        return _pack([ord(c) & 0x1F for c in text], 5, 0)
    if scheme == Scheme.SIX_BIT:
        return _pack([ord(c) & 0x3F for c in text], 6, _SIX_EOT)
    if scheme == Scheme.SEVEN_BIT:
        return _pack([ord(c) for c in text], 7, 0)
    if scheme == Scheme.OCTET:
        return text.encode("latin-1")
    return text.encode("utf-8")


def expand(data: bytes, scheme: Scheme) -> str:
    """Decode compacted bytes of a string scheme (1..7) back to text.

    Raises:
        BadCompaction: the bytes break the scheme's rules.
    """
    if scheme == Scheme.INTEGER:
        if not data:
            raise BadCompaction("integer compaction with no bytes")
        return str(int.from_bytes(data, "big"))
    if scheme == Scheme.NUMERIC:
        nibbles = _unpack(data, 4)
        if nibbles and nibbles[-1] == 0xF:
            nibbles.pop()
        if any(n > 9 for n in nibbles):
            raise BadCompaction(f"numeric compaction holds a non-digit nibble: {data.hex()}")
        return "".join(str(n) for n in nibbles)
    if scheme == Scheme.FIVE_BIT:
        codes = _unpack(data, 5)
        if codes and codes[-1] == 0 and -(-(len(codes) - 1) * 5 // 8) == len(data):
            codes.pop()  # the zero pad filled a whole group
        if 0 in codes:
            raise BadCompaction(f"5-bit compaction holds the reserved code 0: {data.hex()}")
        return "".join(chr(0x40 | c) for c in codes)
    if scheme == Scheme.SIX_BIT:
        out = []
        for c in _unpack(data, 6):
            if c == _SIX_EOT:
                break
            ch = chr(c | 0x40) if c < 0x20 else chr(c)
            if ch not in _SIX_BIT:
                raise BadCompaction(f"6-bit compaction holds reserved code {c:#04x}")
            out.append(ch)
        return "".join(out)
    if scheme == Scheme.SEVEN_BIT:
        codes = _unpack(data, 7)
        if codes and codes[-1] == 0 and -(-(len(codes) - 1) * 7 // 8) == len(data):
            codes.pop()  # the zero pad filled a whole group
        if any(c < 0x20 or c == 0x7F for c in codes):
            raise BadCompaction(f"7-bit compaction holds a control code: {data.hex()}")
        return "".join(chr(c) for c in codes)
    if scheme == Scheme.OCTET:
        return data.decode("latin-1")
    if scheme == Scheme.UTF8:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadCompaction(f"invalid UTF-8: {data.hex()}") from exc
    raise BadCompaction(f"scheme {scheme} is not a string scheme")


# --- ISIL compaction -------------------------------------------------------------------------

_UPPER, _LOWER, _NUMERIC = 0, 1, 2
_WIDTH = {_UPPER: 5, _LOWER: 5, _NUMERIC: 4}
_SETS: dict[int, str] = {
    _UPPER: "-ABCDEFGHIJKLMNOPQRSTUVWXYZ:",
    _LOWER: "-abcdefghijklmnopqrstuvwxyz/",
    _NUMERIC: "0123456789-:",
}
# control codes per set: (latch, shift) to each other set
_CONTROL: dict[int, dict[int, tuple[int, int]]] = {
    _UPPER: {_LOWER: (28, 29), _NUMERIC: (30, 31)},
    _LOWER: {_UPPER: (28, 29), _NUMERIC: (30, 31)},
    _NUMERIC: {_UPPER: (12, 13), _LOWER: (14, 15)},
}
_ISIL_CHARS = frozenset("".join(_SETS.values()))


def isil_compactable(text: str) -> bool:
    """Whether every character of ``text`` is in the ISIL compaction's three sets."""
    return set(text) <= _ISIL_CHARS


def _home(ch: str) -> int:
    if ch.isdigit():
        return _NUMERIC
    if ch in _SETS[_LOWER] and ch != "-":
        return _LOWER
    return _UPPER


def compact_isil(text: str) -> bytes:
    """Compact an ISIL (``DE-705``, ``FI-He``) with the latch/shift ISIL code.

    Raises:
        TagEncodeError: a character outside ``A-Z a-z 0-9 - : /``.
    """
    if not isil_compactable(text):
        raise TagEncodeError(f"{text!r} has characters the ISIL compaction cannot hold")
    bits: list[tuple[int, int]] = []  # (code, width)
    mode = _UPPER
    for i, ch in enumerate(text):
        if ch in _SETS[mode]:
            bits.append((_SETS[mode].index(ch), _WIDTH[mode]))
            continue
        target = _home(ch)
        if ch == ":" and mode == _LOWER:
            target = _UPPER
        latch, shift = _CONTROL[mode][target]
        nxt = text[i + 1] if i + 1 < len(text) else None
        if nxt is not None and nxt in _SETS[target]:
            bits.append((latch, _WIDTH[mode]))
            mode = target
            bits.append((_SETS[mode].index(ch), _WIDTH[mode]))
        else:
            bits.append((shift, _WIDTH[mode]))
            bits.append((_SETS[target].index(ch), _WIDTH[target]))
    value, nbits = 0, 0
    for code, width in bits:
        value = (value << width) | code
        nbits += width
    spare = -nbits % 8
    value = (value << spare) | ((1 << spare) - 1)  # pad with 1 bits
    return value.to_bytes((nbits + spare) // 8, "big")


def expand_isil(data: bytes) -> str:
    """Decode ISIL-compacted bytes.

    Raises:
        BadCompaction: a code that is neither a character nor a latch/shift.
    """
    nbits = len(data) * 8
    value = int.from_bytes(data, "big")
    pos = 0
    latched = _UPPER
    shifted: int | None = None
    out: list[str] = []
    while True:
        mode = latched if shifted is None else shifted
        width = _WIDTH[mode]
        if pos + width > nbits:
            break
        code = (value >> (nbits - pos - width)) & ((1 << width) - 1)
        pos += width
        chars = _SETS[mode]
        if code < len(chars):
            out.append(chars[code])
            shifted = None
            continue
        for target, (latch, shift) in _CONTROL[mode].items():
            if code == latch:
                latched, shifted = target, None
                break
            if code == shift:
                shifted = target
                break
        else:
            raise BadCompaction(f"ISIL compaction holds unused code {code}")
    return "".join(out)
