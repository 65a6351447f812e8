"""The live page in a real browser (Debian's headless Chromium driven by Playwright)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.e2e_support import Setup, healthy, start, stop, writer
from tests.http_support import EventDb, make_event, running

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
pytestmark = pytest.mark.timeout(180)
# Playwright waits 5 s by default; a loaded machine can take longer to draw 6,000 rows.
expect.set_options(timeout=60_000)


@pytest_asyncio.fixture
async def browser() -> AsyncIterator[Browser]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"{CHROMIUM} is missing: apt-get install -y chromium (scripts/install.sh --test does it)"
        )
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=ARGS, timeout=60_000
        )
        try:
            yield browser
        finally:
            await browser.close()


def recent(minutes: float) -> str:
    moment = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=minutes)
    return moment.isoformat(sep=" ", timespec="microseconds")


async def row_ids(page: Page) -> list[int]:
    ids: list[str] = await page.eval_on_selector_all(
        "#events tr", "rows => rows.map(r => r.dataset.id)"
    )
    return [int(i) for i in ids]


async def test_history_then_live_newest_on_top(browser: Browser, event_db: EventDb) -> None:
    event_db.new_events(2, timestamp=recent(60 * 30))  # older than a day: not shown
    event_db.new_events(3, timestamp=recent(30), type="CREATE")
    async with running(event_db) as app:
        page = await browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.goto(app.url + "/")
        await expect(page.locator("#events tr")).to_have_count(3)
        assert await row_ids(page) == [5, 4, 3]
        await expect(page.locator("#status")).to_have_attribute("data-state", "live")

        app.commit(1, type="UPDATE", user_id="42", timestamp=recent(0))
        first = page.locator("#events tr").first
        await expect(first).to_have_attribute("data-id", "6")
        await expect(first.locator("td.type")).to_have_text("UPDATE")
        await expect(first.locator("td.table")).to_have_text("bhima.patient")
        await expect(first.locator("td.row")).to_have_text("6")
        await expect(first.locator("td.user")).to_have_text("42")
        await expect(first.locator("td.what")).to_contain_text('name: "old 6" → "patient 6"')

        app.commit(2, type="DELETE", table="visit")
        await expect(page.locator("#events tr").first).to_have_attribute("data-id", "8")
        assert await row_ids(page) == [8, 7, 6, 5, 4, 3]
        assert "patient 8" in await page.locator("#events tr").first.inner_text()
        assert errors == []


async def test_cascade_events_show_their_predicate(browser: Browser, event_db: EventDb) -> None:
    async with running(event_db) as app:
        page = await browser.new_page()
        await page.goto(app.url + "/")
        await expect(page.locator("#status")).to_have_attribute("data-state", "live")
        app.commit(1, type="DELETE", table="patient", timestamp=recent(0))
        data = {"action": "SET NULL", "where": {"patient_id": 1}, "set": {"patient_id": None}}
        cascade = make_event(2, table="invoice", type="DELETE", timestamp=recent(0))
        cascade = cascade._replace(
            type="CASCADE", row_id=None, data=json.dumps(data | {"cause": 1})
        )
        event_db.insert([cascade])
        app.hub.publish([cascade])
        first = page.locator("#events tr").first
        await expect(first).to_have_attribute("data-id", "2")
        await expect(first.locator("td.type")).to_have_text("CASCADE")
        await expect(first.locator("td.what")).to_contain_text("SET NULL where patient_id=1")
        await expect(first.locator("td.what")).to_contain_text("set patient_id=null")


async def test_filters_by_type_and_table(browser: Browser, event_db: EventDb) -> None:
    event_db.new_events(2, timestamp=recent(5), type="CREATE")
    event_db.new_events(2, timestamp=recent(5), type="UPDATE", table="visit")
    async with running(event_db) as app:
        page = await browser.new_page()
        await page.goto(app.url + "/")
        await expect(page.locator("#events tr")).to_have_count(4)

        await page.uncheck("input[value=CREATE]")
        await expect(page.locator("#events tr")).to_have_count(2)
        await expect(page.locator("#status")).to_have_attribute("data-state", "live")
        app.commit(1, type="CREATE")
        app.commit(1, type="UPDATE")
        await expect(page.locator("#events tr").first).to_have_attribute("data-id", "6")
        assert await row_ids(page) == [6, 4, 3]
        assert "type=UPDATE" in page.url  # the view can be bookmarked

        await page.fill("#table", "bhima.visit")
        await page.press("#table", "Enter")
        await expect(page.locator("#events tr")).to_have_count(2)
        assert await row_ids(page) == [4, 3]

        # Opening the bookmarked view shows the same.
        other = await browser.new_page()
        await other.goto(page.url)
        await expect(other.locator("#events tr")).to_have_count(2)
        assert await other.input_value("#table") == "bhima.visit"


async def test_thousands_of_rows(browser: Browser, event_db: EventDb) -> None:
    event_db.new_events(2000, timestamp=recent(10))
    async with running(event_db) as app:
        page = await browser.new_page()
        await page.goto(app.url + "/")
        await expect(page.locator("#events tr")).to_have_count(2000)
        await expect(page.locator("#status")).to_have_attribute("data-state", "live")
        for _ in range(40):
            app.commit(100, timestamp=recent(0))
        await expect(page.locator("#events tr").first).to_have_attribute("data-id", "6000")
        # At most MAX_ROWS stay on the page, the newest, in order.
        ids = await row_ids(page)
        assert ids == list(range(6000, 1000, -1))
        # Still answering input.
        await page.uncheck("input[value=DELETE]")
        await expect(page.locator("#status")).to_have_attribute("data-state", "live")


@pytest.mark.slow
async def test_the_page_follows_a_killed_and_restarted_daemon(browser: Browser, e2e: Setup) -> None:
    """As a user would: the page open, rows written, the daemon killed and started again."""
    rows = 200
    proc = start(e2e)
    try:
        await healthy(e2e, proc)
        page = await browser.new_page()
        await page.goto(e2e.url + "/")
        await expect(page.locator("#status")).to_have_attribute("data-state", "live")
        done = threading.Event()
        thread = writer(e2e, rows, done)
        await asyncio.sleep(0.8)
        stop(proc, signal.SIGKILL)
        await asyncio.sleep(1.0)  # writes go on while it is down
        proc = start(e2e)
        await healthy(e2e, proc)
        await asyncio.to_thread(thread.join, 120)
        expected = rows + rows // 3
        for _ in range(600):
            if len(e2e.event_ids()) >= expected:
                break
            await asyncio.sleep(0.1)
        await expect(page.locator("#events tr")).to_have_count(expected, timeout=60_000)
        assert await row_ids(page) == e2e.event_ids()[::-1]  # each once, newest on top
    finally:
        stop(proc)
