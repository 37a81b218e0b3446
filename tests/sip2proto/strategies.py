"""Hypothesis strategies for SIP2 messages that a given profile can carry unchanged."""

from __future__ import annotations

from datetime import datetime, timezone

from hypothesis import strategies as st

from sip2proto import BLANK_DATE, ID_FIELDS, LAYOUTS, RESEND_CODES, FixedSpec, Message, Profile, format_date

KNOWN_CODES = ["AA", "AB", "AC", "AD", "AE", "AF", "AG", "AH", "AJ", "AO", "AP", "AQ", "AS", "AU",
               "BE", "BF", "BG", "BM", "BX", "CH", "CK", "CN", "CO", "CP"]
CHINESE_NAMES = ["张三", "李四", "王小明", "欧阳娜娜", "图书馆", "《红楼梦》"]

_naive = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2199, 12, 31))
dates = st.one_of(
    _naive.map(lambda d: d.replace(microsecond=0)),
    _naive.map(lambda d: d.replace(microsecond=0, tzinfo=timezone.utc)),
)


def fixed_value(spec: FixedSpec, profile: Profile) -> st.SearchStrategy[str]:
    w, kind = spec.width, spec.kind
    if kind == "date":
        s = dates.map(format_date)
        return st.one_of(s, st.just(BLANK_DATE)) if profile.blank_dates_ok else s
    choices = {"yn": "YN", "ynu": "YNU", "01": "01", "status": "012", "hold_mode": "+-*"}
    if kind in choices:
        return st.sampled_from(choices[kind])
    if kind == "digits":
        return st.text("0123456789", min_size=w, max_size=w)
    if kind == "flags":
        return st.text("Y ", min_size=w, max_size=w)
    if kind == "version":
        return st.tuples(*[st.sampled_from("0123456789")] * 3).map(lambda t: f"{t[0]}.{t[1]}{t[2]}")
    if kind == "alpha":
        return st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=w, max_size=w)
    return st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=w, max_size=w)


def field_value(profile: Profile, code: str) -> st.SearchStrategy[str]:
    excluded = profile.field_delimiter + "\r\n"
    chars = st.characters(codec=profile.encoding, exclude_characters=excluded,
                          exclude_categories=["Cs"])
    text = st.text(chars, max_size=24)
    if profile.encoding.replace("-", "").lower() in ("utf8", "gb18030"):
        text = st.one_of(text, st.sampled_from(CHINESE_NAMES),
                         st.lists(st.sampled_from(CHINESE_NAMES + ["A", " ", "0"]), max_size=5).map("".join))
    if profile.strip_trailing_spaces and code in ID_FIELDS:
        text = text.filter(lambda v: not v.endswith(" "))
    return text


def field_codes() -> st.SearchStrategy[str]:
    unknown = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=2, max_size=2).filter(
        lambda c: c not in ("AY", "AZ"))
    return st.one_of(st.sampled_from(KNOWN_CODES), unknown)


@st.composite
def messages(draw: st.DrawFn, profile: Profile, code: str | None = None) -> Message:
    """A message any encoder under ``profile`` must round-trip exactly."""
    if code is None:
        code = draw(st.sampled_from(sorted(LAYOUTS)))
    fixed = tuple((spec.name, draw(fixed_value(spec, profile))) for spec in LAYOUTS[code])
    fields: list[tuple[str, str]] = []
    if code not in RESEND_CODES:
        for fcode in draw(st.lists(field_codes(), max_size=8)):
            fields.append((fcode, draw(field_value(profile, fcode))))
    seq = None
    if profile.sends_checksum and code not in RESEND_CODES:
        seq = draw(st.integers(0, 9))
    return Message(code=code, fixed=fixed, fields=tuple(fields), seq=seq)
