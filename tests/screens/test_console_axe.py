"""axe-core on every console page in Chinese and in English (no serious or critical
finding), with a 1920×1080 screenshot of each; the login page too. High contrast and the
portrait screenshots are in test_console_contrast.py (each file stays under 40 s)."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import axe_violations, describe
from .test_console_desk import PAGES, Desk, desk, desk_server  # noqa: F401 - fixtures


@pytest.mark.parametrize(("name", "path"), PAGES, ids=[n for n, _ in PAGES])
def test_page_passes_axe_in_chinese_and_english(desk: Desk, shots: Any, name: str,  # noqa: F811
                                                 path: str) -> None:
    page = desk.page
    sep = "&" if "?" in path else "?"
    found = []
    for lang in ("zh", "en"):
        response = page.goto(f"{desk.base}{path}{sep}lang={lang}&contrast=normal")
        assert response is not None and response.status == 200
        assert page.get_attribute("html", "lang") == ("zh-CN" if lang == "zh" else "en")
        assert page.locator("main").count() == 1 and page.locator("h1").count() == 1
        bad = axe_violations(page)
        if bad:
            found.append(f"{lang}: {describe(bad)}")
        page.screenshot(path=str(shots / f"console-{name}-{lang}-1920x1080.png"))
    page.goto(f"{desk.base}/console?lang=zh")
    assert not found, "axe-core found:\n" + "\n".join(found)


def test_login_page_passes_axe(browser: Any, desk_server: str, shots: Any) -> None:  # noqa: F811
    ctx = browser.new_context(viewport={"width": 1920, "height": 1080}, locale="zh-CN")
    try:
        page = ctx.new_page()
        for query in ("", "?lang=en"):
            page.goto(f"{desk_server}/console/login{query}")
            bad = axe_violations(page)
            assert not bad, describe(bad)
        page.screenshot(path=str(shots / "console-login-en-1920x1080.png"))
    finally:
        ctx.close()
