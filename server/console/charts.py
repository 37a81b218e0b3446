"""Charts drawn on the server as inline SVG: a heat map, horizontal bars, a line.

Why SVG from Python instead of a chart library in the browser: nothing to download or
vendor, the page works with JavaScript off, a chart prints as sharply as text, and each
chart is an ``<svg role="img">`` with a ``<title>`` and a ``<desc>`` (its text alternative)
followed by the same numbers as a table for screen readers and spreadsheets. Colours come
from CSS classes (``console.css``), so the high-contrast mode recolours the charts too.
Every label passed in must already be HTML-escaped text; numbers are formatted here.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

__all__ = ["bars", "heatmap", "line", "shade"]

_ids = itertools.count(1)
LEVELS = 6  # heat classes .heat-0 (nothing) … .heat-5 (the maximum)


def shade(value: float, top: float) -> int:
    """The heat class 0..5 of ``value`` on a scale whose maximum is ``top`` (0 only for 0)."""
    if value <= 0 or top <= 0:
        return 0
    return max(1, min(LEVELS - 1, round(value / top * (LEVELS - 1))))


def _head(title: str, desc: str, width: float, height: float, css: str) -> tuple[str, str]:
    n = next(_ids)
    return (f'<svg class="chart {css}" role="img" aria-labelledby="chart-t{n} chart-d{n}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" width="100%" '
            f'preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">'
            f'<title id="chart-t{n}">{title}</title><desc id="chart-d{n}">{desc}</desc>'), "</svg>"


def heatmap(title: str, desc: str, rows: Sequence[str], cols: Sequence[str],
            values: Sequence[Sequence[float]]) -> str:
    """``values[r][c]`` as a grid of shaded cells, row labels left, column labels on top."""
    label_w, cell_w, cell_h, top = 110.0, 34.0, 22.0, 22.0
    width = label_w + cell_w * len(cols) + 4
    height = top + cell_h * len(rows) + 4
    peak = max((v for row in values for v in row), default=0)
    head, tail = _head(title, desc, width, height, "heatmap")
    parts = [head]
    for c, label in enumerate(cols):
        parts.append(f'<text class="axis" x="{label_w + c * cell_w + cell_w / 2:.0f}" y="15" '
                     f'text-anchor="middle">{label}</text>')
    for r, label in enumerate(rows):
        y = top + r * cell_h
        parts.append(f'<text class="axis" x="{label_w - 6:.0f}" y="{y + 15:.0f}" '
                     f'text-anchor="end">{label}</text>')
        for c, value in enumerate(values[r]):
            parts.append(f'<rect class="heat-{shade(value, peak)}" x="{label_w + c * cell_w:.0f}" '
                         f'y="{y:.0f}" width="{cell_w - 2:.0f}" height="{cell_h - 2:.0f}">'
                         f'<title>{label} {cols[c]}: {value:g}</title></rect>')
    parts.append(tail)
    return "".join(parts)


def bars(title: str, desc: str, data: Sequence[tuple[str, float | None, str]],
         top: float | None = None) -> str:
    """One horizontal bar per (label, value, shown text); ``None`` values draw no bar."""
    label_w, bar_w, row_h, text_w = 200.0, 520.0, 30.0, 110.0
    peak = top if top is not None else max((v or 0 for _, v, _ in data), default=0)
    height = row_h * max(1, len(data)) + 6
    head, tail = _head(title, desc, label_w + bar_w + text_w, height, "bars")
    parts = [head]
    for i, (label, value, shown) in enumerate(data):
        y = 3 + i * row_h
        parts.append(f'<text class="axis" x="{label_w - 8:.0f}" y="{y + 19:.0f}" '
                     f'text-anchor="end">{label}</text>')
        length = 0.0 if not value or peak <= 0 else bar_w * min(1.0, value / peak)
        parts.append(f'<rect class="bar" x="{label_w:.0f}" y="{y + 3:.0f}" '
                     f'width="{max(length, 0):.1f}" height="{row_h - 8:.0f}"/>')
        parts.append(f'<text class="value" x="{label_w + length + 6:.1f}" y="{y + 19:.0f}">'
                     f'{shown}</text>')
    parts.append(tail)
    return "".join(parts)


def line(title: str, desc: str, points: Sequence[tuple[str, float]]) -> str:
    """A line over evenly spaced points, with the first, middle and last labels below."""
    left, width, height, bottom = 50.0, 760.0, 200.0, 30.0
    peak = max((v for _, v in points), default=0) or 1
    n = len(points)
    head, tail = _head(title, desc, left + width + 20, height + bottom + 10, "line")
    parts = [head,
             f'<line class="grid" x1="{left}" y1="{height}" x2="{left + width}" y2="{height}"/>',
             f'<text class="axis" x="{left - 6}" y="{height}" text-anchor="end">0</text>',
             f'<text class="axis" x="{left - 6}" y="14" text-anchor="end">{peak:g}</text>']

    def xy(i: int, v: float) -> tuple[float, float]:
        x = left + (width * i / (n - 1) if n > 1 else width / 2)
        return x, height - (height - 10) * v / peak

    coords = [xy(i, v) for i, (_, v) in enumerate(points)]
    if coords:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        parts.append(f'<polyline class="trend" points="{path}"/>')
        for (x, y), (label, v) in zip(coords, points, strict=True):
            parts.append(f'<circle class="dot" cx="{x:.1f}" cy="{y:.1f}" r="4">'
                         f'<title>{label}: {v:g}</title></circle>')
        for i in sorted({0, n // 2, n - 1}):
            parts.append(f'<text class="axis" x="{coords[i][0]:.1f}" y="{height + 20}" '
                         f'text-anchor="middle">{points[i][0]}</text>')
    parts.append(tail)
    return "".join(parts)
