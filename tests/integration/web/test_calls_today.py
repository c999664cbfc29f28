"""The page's count of today's XPM calls says whose count the 'left' is, so the two figures make sense."""

from __future__ import annotations

from tests.integration.web.conftest import Page
from xpm_sync.sync import policy, runner


def test_before_any_call_the_count_is_ours_and_after_one_it_is_xpms(page: Page):
    page.xpm.connect()
    assert "0 made; 5,000 of 5,000 left by the count here" in page.get("/xpm/").text
    runner.pull("staff", policy.Request(store_url=page.xpm.store_url, run_id="manual__calls"))
    html = page.get("/xpm/").text
    assert "1 made; 4,999 of 5,000 left by XPM&#39;s count (a refused call is not counted)" in html
