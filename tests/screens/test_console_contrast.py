"""The console's high-contrast mode: every page passes axe-core with WCAG AAA contrast
(7:1, ``color-contrast-enhanced``) and shows white and yellow on black; screenshots of
each page on a portrait screen (1080×1920)."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import axe_violations, describe
from .test_console_desk import PAGES, Desk, desk, desk_server  # noqa: F401 - fixtures


@pytest.mark.parametrize(("name", "path"), PAGES, ids=[n for n, _ in PAGES])
def test_page_passes_aaa_contrast_in_high_contrast(desk: Desk, shots: Any, name: str,  # noqa: F811
                                                    path: str) -> None:
    page = desk.page
    sep = "&" if "?" in path else "?"
    page.set_viewport_size({"width": 1080, "height": 1920})
    try:
        page.goto(f"{desk.base}{path}{sep}lang=zh&contrast=high")
        assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(0, 0, 0)"
        bad = axe_violations(page, enhanced_contrast=True)
        page.screenshot(path=str(shots / f"console-{name}-zh-high-contrast-1080x1920.png"))
        page.goto(f"{desk.base}{path}{sep}contrast=normal")
        page.screenshot(path=str(shots / f"console-{name}-zh-1080x1920.png"))
    finally:
        page.set_viewport_size({"width": 1920, "height": 1080})
    assert not bad, "axe-core found:\n" + describe(bad)


def test_normal_mode_also_meets_7_to_1_on_the_busiest_pages(desk: Desk) -> None:  # noqa: F811
    for path in ("/console", "/console/stats"):
        desk.page.goto(f"{desk.base}{path}?contrast=normal")
        bad = axe_violations(desk.page, enhanced_contrast=True)
        assert not bad, f"{path}: " + describe(bad)


def test_login_page_in_high_contrast(browser: Any, desk_server: str, shots: Any) -> None:  # noqa: F811
    ctx = browser.new_context(viewport={"width": 1080, "height": 1920}, locale="zh-CN")
    try:
        page = ctx.new_page()
        page.goto(f"{desk_server}/console/login?contrast=high")
        bad = axe_violations(page, enhanced_contrast=True)
        page.screenshot(path=str(shots / "console-login-zh-high-contrast-1080x1920.png"))
        assert not bad, describe(bad)
    finally:
        ctx.close()
