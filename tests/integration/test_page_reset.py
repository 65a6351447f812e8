"""The live page after a reset frame: it reads the last day again instead of showing a
history with a hole in it."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

from tests.http_support import EventDb, running
from tests.integration.test_page import browser, recent, row_ids

pytestmark = pytest.mark.timeout(180)
__all__ = ["browser"]  # the fixture


async def test_the_page_reloads_the_day_after_a_reset(browser: Browser, event_db: EventDb) -> None:
    event_db.new_events(3, timestamp=recent(30))
    async with running(event_db) as app:
        page = await browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.goto(app.url + "/")
        await expect(page.locator("#events tr")).to_have_count(3)
        await expect(page.locator("#status")).to_have_attribute("data-state", "live")
        # While the page's stream is away, more is committed and the oldest are pruned:
        # it comes back with a Last-Event-ID the table no longer holds.
        event_db.new_events(5, timestamp=recent(1))
        with event_db.conn.cursor() as cur:
            cur.execute(f"DELETE FROM `{event_db.name}`.event WHERE id < 6")
        for sub in list(app.hub._subscriptions):
            sub.end("test")
        await expect(page.locator("#events tr")).to_have_count(3)
        await expect(page.locator("#events tr").first).to_have_attribute("data-id", "8")
        assert await row_ids(page) == [8, 7, 6]  # the day as the table holds it now
        await expect(page.locator("#status")).to_have_attribute("data-state", "live")
        app.commit(1, timestamp=recent(0))
        await expect(page.locator("#events tr").first).to_have_attribute("data-id", "9")
        assert errors == []
