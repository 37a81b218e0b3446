"""Bytes ↔ Message: checksum, ``encode``, ``decode`` and the incremental ``Parser``.

Theory of operation. A frame is ``<code><fixed part><field><delim>…[AY<n>]AZ<hex4><terminator>``.
The checksum is the two's complement of the 16-bit sum of the *encoded bytes* from the first
byte up to and including "AZ" (a sum over characters differs as soon as a non-ASCII name
appears). Fixed and variable fields are cut from the *decoded text*: in GB18030 a byte 0x7C
('|') can be the second byte of a Chinese character, so splitting bytes would be wrong. CR and
LF never occur inside a multi-byte character of UTF-8, GB18030 or cp850, so framing is on bytes.
"""

from __future__ import annotations

import re

from .const import FIELD_NAMES, ID_FIELDS, LAYOUTS, RESEND_CODES, FixedSpec
from .dates import BLANK_DATE, parse_date
from .errors import ChecksumError, EncodeError, FieldError, FramingError, SIP2Error
from .message import Message
from .profile import Profile

__all__ = ["checksum", "verify_checksum", "encode", "decode", "Parser", "validate_fixed", "next_seq"]

_DIGITS = frozenset("0123456789")
_TAIL = re.compile(rb"(?:AY([0-9])\|?)?AZ([0-9A-Fa-f]{4})\Z")


def checksum(data: bytes) -> str:
    """The SIP2 checksum of ``data`` (the frame's bytes up to and including "AZ"): four
    uppercase hex digits."""
    return f"{(-sum(data)) & 0xFFFF:04X}"


def verify_checksum(frame: bytes) -> bool:
    """Whether ``frame`` (terminator optional) ends with a correct ``AZxxxx``; False when it
    carries none."""
    body = frame.rstrip(b"\r\n")
    m = _TAIL.search(body)
    if m is None:
        return False
    end_az = m.start(2)
    return checksum(body[:end_az]) == m.group(2).decode("ascii").upper()


def next_seq(seq: int | None) -> int:
    """The sequence number after ``seq`` (0–9, wrapping; None starts at 0)."""
    return 0 if seq is None else (seq + 1) % 10


# --- encode -----------------------------------------------------------------------------------

def _check_fixed_value(spec: FixedSpec, value: str, profile: Profile | None) -> None:
    if len(value) != spec.width:
        raise EncodeError(f"{spec.name} must be {spec.width} characters, got {value!r}",
                          field=spec.name)
    kind = spec.kind
    ok: bool
    if kind == "date":
        if value == BLANK_DATE:
            ok = profile is None or profile.blank_dates_ok
            if not ok:
                raise EncodeError(f"{spec.name}: the profile does not allow a blank date",
                                  field=spec.name)
            return
        try:
            parse_date(value)
        except SIP2Error as exc:
            raise EncodeError(f"{spec.name}: {exc}", field=spec.name) from exc
        return
    if kind == "yn":
        ok = value in ("Y", "N")
    elif kind == "ynu":
        ok = value in ("Y", "N", "U")
    elif kind == "01":
        ok = value in ("0", "1")
    elif kind == "status":
        ok = value in ("0", "1", "2")
    elif kind == "hold_mode":
        ok = value in ("+", "-", "*")
    elif kind == "digits":
        ok = value.isascii() and value.isdigit()
    elif kind == "flags":
        ok = all(c in "Y " for c in value)
    elif kind == "version":
        ok = value.isascii() and value[0].isdigit() and value[1] == "." and value[2:].isdigit()
    elif kind == "alpha":
        ok = value.isascii() and value.isalpha() and value.isupper()
    else:  # text
        ok = value.isascii() and value.isprintable()
    if not ok:
        raise EncodeError(f"{spec.name}: {value!r} is not a valid {kind} value", field=spec.name)


def validate_fixed(code: str, fixed: tuple[tuple[str, str], ...], profile: Profile | None = None) -> None:
    """Check fixed fields against the layout of ``code`` (names, order, widths, kinds).

    Raises:
        EncodeError: naming the first offending field.
    """
    layout = LAYOUTS.get(code)
    if layout is None:
        raise EncodeError(f"unknown message code {code!r}", field="code")
    names = tuple(n for n, _ in fixed)
    expected = tuple(s.name for s in layout)
    if names != expected:
        raise EncodeError(f"message {code} needs fixed fields {expected}, got {names}", field="fixed")
    for spec, (_, value) in zip(layout, fixed, strict=True):
        _check_fixed_value(spec, value, profile)


def encode(message: Message, profile: Profile) -> bytes:
    """One frame for ``message``: fixed part, variable fields each closed by the delimiter,
    ``AY<seq>AZ<checksum>`` when the profile sends checksums, then the terminator.

    96/97 carry no AY (only AZ). Under a checksumming profile every other message needs a
    ``seq``; under "off" the seq is not sent.

    Raises:
        EncodeError: (a ValueError) naming the field: unknown code, a fixed field of the wrong
            width or kind, a value holding the delimiter, CR or LF, a field code not two
            printable ASCII characters, text not encodable in the profile's encoding, a
            missing seq.
    """
    validate_fixed(message.code, message.fixed, profile)
    delim = profile.field_delimiter
    enc = profile.encoding
    parts: list[bytes] = [message.code.encode("ascii"), "".join(v for _, v in message.fixed).encode("ascii")]
    institution = message.get("AO") if profile.institution_prefix_items else None
    for code, value in message.fields:
        name = FIELD_NAMES.get(code, code)
        if (len(code) != 2 or not code.isascii() or not code.isprintable() or delim in code):
            raise EncodeError(f"field code {code!r} is not two printable ASCII characters",
                              field=code)
        if code in ("AY", "AZ"):
            raise EncodeError("AY/AZ come from message.seq and the profile, not fields", field=code)
        for bad in (delim, "\r", "\n"):
            if bad in value:
                raise EncodeError(f"{name} ({code}) contains {bad!r}", field=code)
        if code == "AB" and institution is not None:
            value = f"{institution}{profile.item_prefix_separator}{value}"
        try:
            parts.append(code.encode("ascii") + value.encode(enc) + delim.encode("ascii"))
        except UnicodeEncodeError as exc:
            raise EncodeError(f"{name} ({code}) is not encodable in {enc}: {exc.reason}",
                              field=code) from exc
    data = b"".join(parts)
    if profile.sends_checksum:
        if message.code not in RESEND_CODES:
            if message.seq is None:
                raise EncodeError(f"profile {profile.name!r} sends checksums: set message.seq",
                                  field="seq")
            data += b"AY%d" % message.seq
        data += b"AZ"
        data += checksum(data).encode("ascii")
    return data + profile.terminator


# --- decode -----------------------------------------------------------------------------------

def _strip_terminator(frame: bytes, profile: Profile) -> bytes:
    if profile.lenient_terminator:
        body = frame.strip(b"\r\n")
        if b"\r" in body or b"\n" in body:
            raise FramingError("CR or LF inside a frame", frame)
        return body
    body = frame[: -len(profile.terminator)] if frame.endswith(profile.terminator) else frame
    if b"\r" in body or b"\n" in body:
        raise FramingError("CR or LF inside a frame (terminator does not match the profile?)",
                           frame)
    return body


def decode(frame: bytes, profile: Profile) -> Message:
    """The Message in one frame (its terminator optional).

    Lenient per the profile: see Profile. Never raises anything but SIP2Error subclasses.

    Raises:
        FramingError: empty frame, CR/LF inside it.
        ChecksumError: wrong AZ; missing AZ under checksum "on".
        FieldError: unknown message code, short fixed part, bad or blank date not tolerated,
            bytes not valid in the profile's encoding, a variable field shorter than its code.
    """
    if not isinstance(frame, (bytes, bytearray, memoryview)):
        raise FramingError(f"expected bytes, got {type(frame).__name__}")
    raw = bytes(frame)
    body = _strip_terminator(raw, profile)
    if not body:
        raise FramingError("empty frame", raw)
    seq: int | None = None
    m = _TAIL.search(body)
    if m is not None:
        if profile.checksum != "off":
            got = m.group(2).decode("ascii").upper()
            want = checksum(body[: m.start(2)])
            if got != want:
                raise ChecksumError(f"checksum {got} != computed {want}", raw)
        if m.group(1) is not None:
            seq = int(m.group(1))
        body = body[: m.start()]
    elif profile.checksum == "on":
        raise ChecksumError("frame has no AZ checksum and the profile requires one", raw)
    try:
        text = body.decode(profile.encoding, "replace" if profile.replace_undecodable else "strict")
    except UnicodeDecodeError as exc:
        raise FieldError(f"bytes not valid {profile.encoding}: {exc.reason} at {exc.start}",
                         raw) from exc
    code = text[:2]
    layout = LAYOUTS.get(code)
    if layout is None:
        raise FieldError(f"unknown message code {code!r}", raw)
    pos = 2
    fixed: list[tuple[str, str]] = []
    for spec in layout:
        value = text[pos: pos + spec.width]
        if len(value) != spec.width:
            raise FieldError(f"message {code}: fixed part too short at {spec.name}", raw)
        if spec.kind == "date":
            try:
                parse_date(value, profile)
            except FieldError as exc:
                raise FieldError(f"message {code}: {spec.name}: {exc}", raw) from exc
        fixed.append((spec.name, value))
        pos += spec.width
    fields: list[tuple[str, str]] = []
    for piece in text[pos:].split(profile.field_delimiter):
        if not piece:
            continue
        if len(piece) < 2:
            raise FieldError(f"message {code}: variable field {piece!r} shorter than its code", raw)
        fields.append((piece[:2], piece[2:]))
    if seq is None and fields and fields[-1][0] == "AY" and fields[-1][1] in _DIGITS:
        seq = int(fields.pop()[1])  # "…|AY3|" from a peer that numbers frames without checksums
    if profile.strip_trailing_spaces:
        fields = [(c, v.rstrip(" ") if c in ID_FIELDS else v) for c, v in fields]
    if profile.institution_prefix_items:
        inst = next((v for c, v in fields if c == "AO"), None)
        if inst is not None:
            prefix = inst + profile.item_prefix_separator
            fields = [(c, v[len(prefix):] if c == "AB" and v.startswith(prefix) else v)
                      for c, v in fields]
    return Message(code=code, fixed=tuple(fixed), fields=tuple(fields), seq=seq)


class Parser:
    """Incremental sans-IO decoder: bytes in, Messages (or the error for each bad frame) out.

    ``feed`` never raises for the bytes' content: a bad frame becomes a SIP2Error *in the
    returned list*, in stream order, and the parser goes on with the next frame (the caller
    answers a ChecksumError with 96/97). Split and merged TCP reads are equivalent to whole
    frames. The buffer is bounded by ``profile.max_frame``: a longer run without terminator is
    reported once as FramingError and discarded up to the next terminator.
    """

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self._buf = bytearray()
        self._discarding = False
        self.frames = 0
        self.errors = 0

    @property
    def pending(self) -> int:
        """Bytes received and not yet part of a whole frame."""
        return len(self._buf)

    def _next_frame(self) -> bytes | None:
        buf = self._buf
        if self.profile.lenient_terminator:
            cr, lf = buf.find(b"\r"), buf.find(b"\n")
            ends = [i for i in (cr, lf) if i >= 0]
            if not ends:
                return None
            i = min(ends)
            frame = bytes(buf[:i])
            del buf[: i + 1]
            return frame
        term = self.profile.terminator
        i = buf.find(term)
        if i < 0:
            return None
        frame = bytes(buf[:i])
        del buf[: i + len(term)]
        return frame

    def feed(self, data: bytes) -> list[Message | SIP2Error]:
        """Take received bytes; return the messages (and errors) of the frames they complete."""
        self._buf += data
        out: list[Message | SIP2Error] = []
        while True:
            frame = self._next_frame()
            if frame is None:
                break
            if self._discarding:
                self._discarding = False
                continue
            if not frame:
                continue  # an empty line between frames (CRLF under a lenient profile)
            try:
                out.append(decode(frame + self.profile.terminator, self.profile))
                self.frames += 1
            except SIP2Error as exc:
                self.errors += 1
                out.append(exc)
        if len(self._buf) > self.profile.max_frame:
            if not self._discarding:
                self.errors += 1
                out.append(FramingError(f"no terminator within {self.profile.max_frame} bytes",
                                        bytes(self._buf[:64])))
            self._discarding = True
            keep = len(self.profile.terminator) - 1
            del self._buf[: len(self._buf) - keep]
        return out
