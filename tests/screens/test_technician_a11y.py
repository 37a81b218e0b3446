"""Every technician page in Debian's Chromium: axe-core clean in Chinese, English and high
contrast (WCAG AAA 7:1), with screenshots at 1080×1920 and 1920×1080."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kiosk.messages import message

from . import technician_kit
from .technician_kit import PASSWORD, TechCabinet, assert_axe_clean, wait_idle

tech_cabinet = technician_kit.tech_cabinet  # the module's fixture

PAGES = ["/tech/login", "/tech", "/tech/doors", "/tech/inventory?door=3", "/tech/selftest"]


@pytest.mark.parametrize("variant", ["zh", "en", "high"])
def test_every_technician_page_passes_axe(browser: Any, tech_cabinet: TechCabinet,
                                          shots: Path, variant: str) -> None:
    cab = tech_cabinet
    wait_idle(cab)
    size = {"width": 1080, "height": 1920} if variant != "en" else {"width": 1920, "height": 1080}
    ctx = browser.new_context(viewport=size, locale="zh-CN")
    try:
        page = ctx.new_page()
        query = {"zh": "lang=zh", "en": "lang=en", "high": "contrast=high"}[variant]
        page.goto(f"{cab.url}/tech/login?{query}")
        for path in PAGES:
            if path != "/tech/login" and "/tech/login" in page.url:
                page.fill("#password", PASSWORD)
                page.click("#login")
                page.wait_for_url("**/tech")
            page.goto(f"{cab.url}{path}")
            assert page.get_attribute("html", "lang") == ("en" if variant == "en" else "zh-CN")
            assert_axe_clean(page, enhanced_contrast=variant == "high")
            name = path.strip("/").split("?")[0].replace("/", "-")
            w, h = size["width"], size["height"]
            page.screenshot(path=str(shots / f"{name}-{variant}-{w}x{h}.png"), full_page=True)
    finally:
        ctx.close()


def test_without_a_password_the_pages_say_how_to_set_one(page: Any, cabinet: Any) -> None:
    """The lead's stand-alone cabinet has no [technician] section."""
    page.goto(f"{cabinet.url}/tech/doors")
    assert "/tech/login" in page.url
    assert page.inner_text("#no-password") == message("tech.no_password", "zh")
    assert "lendbox kiosk technician-password --config" in page.inner_text(".command")
    assert page.locator("#password").count() == 0
    assert_axe_clean(page)
    answer = page.request.post(f"{cabinet.url}/tech/login", form={"password": "anything at all"})
    assert answer.status == 403
