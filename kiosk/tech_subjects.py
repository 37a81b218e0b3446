"""The part a diagnostic finding is about, in the technician page's language.

``drivers.diag`` names parts in a small English grammar ("door 7", "door 3, door 4",
"board 1 on rs485-1", "board 2 lock 5", "bus rs485-1", "reader feig-1 on rs485-2",
"antenna 3 (door 5)", "antenna 2 of board 1", "card reader", "camera"): the words a technician
and ``lendbox diag`` share. Rather than give findings a second, structured subject, the page
reads that grammar back here, so the CLI's output stays exactly as it is; a form this does not
know returns None and the page shows the English subject as before.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable

from drivers.diag import CAMERA, CARD_READER

from .messages import message

__all__ = ["SUBJECT_FORMS", "subject_html"]

_DOORS = r"door \d+(?:, door \d+)*"


def _doors(text: str, lang: str) -> str:
    sep = message("tech.subject.list_sep", lang)
    return sep.join(message("tech.subject.door", lang, {"n": n})
                    for n in re.findall(r"door (\d+)", text))


def _simple(key: str, *names: str) -> Callable[[re.Match[str], str], str]:
    def render(m: re.Match[str], lang: str) -> str:
        return message(key, lang, dict(zip(names, m.groups(), strict=True)))
    return render


def _antenna_doors(m: re.Match[str], lang: str) -> str:
    return message("tech.subject.antenna_doors", lang, {"n": m[1], "doors": _doors(m[2], lang)})


#: (pattern, renderer), tried in order; each pattern must match the whole subject.
SUBJECT_FORMS: list[tuple[re.Pattern[str], Callable[[re.Match[str], str], str]]] = [
    (re.compile(_DOORS), lambda m, lang: _doors(m[0], lang)),
    (re.compile(r"board (\d+) on (\S+)"), _simple("tech.subject.board_on", "board", "bus")),
    (re.compile(r"board (\d+) lock (\d+)"), _simple("tech.subject.board_lock", "board", "lock")),
    (re.compile(r"board (\d+) sensor (\d+)"),
     _simple("tech.subject.board_sensor", "board", "sensor")),
    (re.compile(r"board (\d+)"), _simple("tech.subject.board", "board")),
    (re.compile(r"bus (\S+)"), _simple("tech.subject.bus", "bus")),
    (re.compile(r"reader (.+) on (\S+)"), _simple("tech.subject.reader", "name", "bus")),
    (re.compile(rf"antenna (\d+) \(({_DOORS})\)"), _antenna_doors),
    (re.compile(r"antenna (\d+) of board (\d+)"),
     _simple("tech.subject.antenna_board", "n", "board")),
    (re.compile(re.escape(CARD_READER)), _simple("tech.subject.card_reader")),
    (re.compile(re.escape(CAMERA)), _simple("tech.subject.camera")),
]


def subject_html(subject: str, lang: str) -> str | None:
    """``subject`` (a finding's English subject) in ``lang``, HTML-escaped; None when it
    has a form this module does not know."""
    for pattern, render in SUBJECT_FORMS:
        m = pattern.fullmatch(subject)
        if m is not None:
            return html.escape(render(m, lang))
    return None
