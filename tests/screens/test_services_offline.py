"""The reader-services pages with the network down (cabinet B behind its cut cable).

What a reader notices: "my loans" shows what this cabinet recorded and says the network is
down, renewing is not offered (and refused if asked, with what to do), and a 荐购 is plainly
not sent (and not kept), the typed ISBN still there to try later.
"""

from __future__ import annotations

from typing import Any

from lendbox.network_story import NetworkStory

from .services_fixtures import (
    assert_axe_clean,
    borrow_one,
    end_session,
    identify,
    recommendations_of,
    register,
    synced,
    t,
)


def test_offline_the_pages_say_so(page: Any, network: NetworkStory, shots: Any) -> None:
    """Cabinet B behind its cut cable: loans from its ledger, renew and 荐购 not possible."""
    assert network.relay is not None
    cab_b = network.cabinets[1]
    assert cab_b.kiosk is not None
    end_session(cab_b)
    url = cab_b.kiosk.url.rstrip("/")
    reader = register(network, "离线")
    identify(cab_b, reader)  # online: the cabinet caches the reader's grant
    book = borrow_one(cab_b, 2)
    end_session(cab_b)
    synced(cab_b)
    qr = reader.qr()
    network.relay.cut()
    try:
        c = cab_b.client()
        try:
            c.wait(lambda s: not s["online"], 20, "cabinet B offline")
            c.start_session("qr", qr)
            c.wait(lambda s: s["session"] is not None and s["session"]["phase"] == "active",
                   20, "reader identified offline")
        finally:
            c.close()
        page.goto(f"{url}/screen/loans")
        assert page.inner_text("#offline") == t("services.loans_offline", "zh")
        row = page.locator(f'li.loan[data-item="{book}"]')
        assert row.count() == 1 and row.locator("button").count() == 0  # no renew offline
        assert_axe_clean(page, f"{url}/screen/loans", shots, "loans-offline")
        renew = page.request.post(f"{url}/screen/loans/{book}/renew")
        assert renew.status == 409 and t("services.refused_offline", "zh") in renew.text()
        page.goto(f"{url}/screen/recommend")
        page.fill("#isbn", "9787020002207")
        page.click("#send")
        assert page.inner_text("#result") == t("services.recommend_offline", "zh")
        assert page.input_value("#isbn") == "9787020002207"
    finally:
        network.relay.mend()
        end_session(cab_b)
    assert recommendations_of(network, reader) == []
