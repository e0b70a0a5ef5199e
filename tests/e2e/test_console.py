"""The web console in a real browser (Playwright driving Debian's Chromium, which the test
set-up installs) against the real server: every page loads without a console error and
shows what the API says; a topic is created and deleted through the page. Each page's
screenshot goes to ``.screenshots/`` (ignored) for a person to look at."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import REPO_ROOT

SHOTS = REPO_ROOT / ".screenshots"


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("no chromium here: `make test` installs it (deploy/install-test-packages.sh)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        found = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield found
        found.close()


@pytest.fixture
def page(browser):
    """A page at 1280x800 whose console errors and failed requests are collected (the test
    asserts there are none)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    found = context.new_page()
    found.problems = []
    found.on("console", lambda msg: msg.type == "error" and found.problems.append(msg.text))
    found.on("pageerror", lambda exc: found.problems.append(str(exc)))
    yield found
    context.close()


def shot(page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def test_overview_topics_and_groups_show_what_the_api_says(server, page):
    requests.post(server.url("/api/topics"), json={"name": "orders", "partitions": 3},
                  timeout=5).raise_for_status()
    requests.post(server.url("/api/topics/orders/records"), timeout=5, json={
        "records": [{"value": "aGk=", "partition": p} for p in (0, 1, 1)]}).raise_for_status()
    requests.post(server.url("/api/consumers/subscribe"), timeout=5,
                  json={"group_id": "billing", "topics": ["orders"]}).raise_for_status()

    page.goto(server.url("/console/"))
    cards = page.locator(".card")
    cards.filter(has_text="topics").get_by_text("1", exact=True).wait_for()
    assert cards.filter(has_text="partitions").locator(".value").inner_text() == "3"
    assert cards.filter(has_text="records kept").locator(".value").inner_text() == "3"
    page.get_by_role("cell", name="billing").wait_for()
    shot(page, "overview")

    page.get_by_role("link", name="Topics").click()
    row = page.get_by_role("row", name="orders")
    row.wait_for()
    assert row.locator("td").nth(1).inner_text() == "3"  # partitions
    assert row.locator("td").nth(2).inner_text() == "3"  # records
    shot(page, "topics")

    page.get_by_role("link", name="Consumer groups").click()
    page.get_by_role("cell", name="billing").wait_for()
    shot(page, "groups")
    assert page.problems == []


def test_a_topic_is_created_and_deleted_through_the_page(server, page):
    page.goto(server.url("/console/#/topics"))
    page.get_by_text("No topics yet").wait_for()
    page.get_by_label("topic name").fill("payments")
    page.get_by_label("partitions").fill("2")
    page.get_by_role("button", name="Create").click()
    page.get_by_role("row", name="payments").wait_for()
    assert [t["name"] for t in requests.get(server.url("/api/topics"), timeout=5).json()[
        "topics"]] == ["payments"]

    page.once("dialog", lambda dialog: dialog.accept("payments"))  # the typed confirmation
    page.get_by_role("button", name="delete topic payments").click()
    page.get_by_text("No topics yet").wait_for()
    assert requests.get(server.url("/api/topics"), timeout=5).json()["topics"] == []
    assert page.problems == []


def test_a_failing_create_shows_the_servers_error(server, page):
    requests.post(server.url("/api/topics"), json={"name": "taken", "partitions": 1},
                  timeout=5).raise_for_status()
    page.goto(server.url("/console/#/topics"))
    page.get_by_role("row", name="taken").wait_for()
    page.get_by_label("topic name").fill("taken")
    page.get_by_role("button", name="Create").click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "topic_exists" in alert.inner_text() and "409" in alert.inner_text()
    assert [p for p in page.problems if "409" not in p] == []  # the browser logs the 409
