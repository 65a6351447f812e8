"""The live page behind a login, in a real browser (Debian's headless Chromium): nothing
shown before signing in, the session in an HttpOnly cookie, only the granted table, and
signing out."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from tests.access_support import fill, hospital
from tests.http_support import EventDb, running
from tests.integration.test_page import browser, recent  # noqa: F401  (browser: the fixture)

pytestmark = pytest.mark.timeout(180)
expect.set_options(timeout=60_000)


async def test_sign_in_see_the_granted_table_sign_out(
    browser: Browser,  # noqa: F811
    event_db: EventDb,
    tmp_path: Path,
) -> None:
    creds = hospital(tmp_path)
    fill(event_db)
    async with running(event_db, auth=creds.settings()) as app:
        context = await browser.new_context()
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.goto(app.url + "/")
        await expect(page.locator("#login")).to_be_visible()
        await expect(page.locator("#status")).to_have_attribute("data-state", "signed-out")
        assert await page.locator("#events tr").count() == 0

        await page.fill("#token", "not-a-token")
        await page.click("#login button[type=submit]")
        await expect(page.locator("#login-error")).to_be_visible()

        await page.fill("#token", creds.tokens["ward-screen"])
        await page.click("#login button[type=submit]")
        await expect(page.locator("#events tr")).to_have_count(3)
        await expect(page.locator("#status")).to_have_attribute("data-state", "live")
        await expect(page.locator("#logout")).to_be_visible()
        tables = await page.locator("#events td.table").all_inner_texts()
        assert set(tables) == {"hosp.patient_visit"}

        now = recent(0)
        app.commit(2, schema="hosp", table="invoice", timestamp=now)
        marker = app.commit(1, schema="hosp", table="patient_visit", timestamp=now)[0]
        await expect(page.locator("#events tr").first).to_have_attribute("data-id", str(marker.id))
        assert set(await page.locator("#events td.table").all_inner_texts()) == {
            "hosp.patient_visit"
        }

        (cookie,) = await context.cookies()
        assert cookie["name"] == "cdc_session" and cookie["httpOnly"]
        assert cookie["sameSite"] == "Strict"
        assert cookie["value"] != creds.tokens["ward-screen"]
        assert await page.evaluate("document.cookie") == ""  # out of the page's scripts' reach

        await page.reload()  # the session goes on
        await expect(page.locator("#events tr")).to_have_count(4)

        await page.click("#logout")
        await expect(page.locator("#login")).to_be_visible()
        assert await page.locator("#events tr").count() == 0
        await page.reload()
        await expect(page.locator("#login")).to_be_visible()
        await expect(page.locator("#status")).to_have_attribute("data-state", "signed-out")
        assert errors == []
        await context.close()
