"""The web console in a real browser (Playwright driving Debian's Chromium, which the test
set-up installs) against the real server: every page loads without a console error and
shows what the API says; topics are created and deleted, records produced and browsed
(text, JSON, binary), new records followed, a group's lag charted and its offsets reset,
and with API keys the page asks for one and shows what it may not do. Each page's
screenshot goes to ``.screenshots/`` (ignored) for a person to look at."""
from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.e2e.conftest import REPO_ROOT
from tests.waiting import wait_until

SHOTS = REPO_ROOT / ".screenshots"


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
    assert cards.filter(has_text="live sessions").locator(".value").inner_text() == "1"
    assert cards.filter(has_text="on disk").locator(".value").inner_text().endswith(" B")
    page.get_by_role("cell", name="billing").wait_for()
    shot(page, "overview")

    page.get_by_role("link", name="Topics").click()
    row = page.get_by_role("row", name="orders")
    row.wait_for()
    assert row.locator("td").nth(1).inner_text() == "3"  # partitions
    assert row.locator("td").nth(2).inner_text().endswith(" B")  # size on disk
    assert row.locator("td").nth(3).inner_text() == "3"  # records
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


def call(srv, method, path, status=200, key=None, **kwargs):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    resp = requests.request(method, srv.url(path), timeout=5, headers=headers, **kwargs)
    assert resp.status_code == status, resp.text
    return resp.json()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_records_are_produced_through_the_form_and_browsed_as_text_json_and_hex(server, page):
    call(server, "POST", "/api/topics", 201, json={"name": "orders", "partitions": 1})
    page.goto(server.url("/console/#/produce/orders"))
    page.get_by_label("value type").select_option("json")
    page.get_by_label("value", exact=True).fill('{"id": 7, "items": [1, 2]}')
    page.get_by_role("textbox", name="key", exact=True).fill("user-7")
    page.get_by_label("headers").fill("trace: abc")
    page.get_by_role("button", name="Produce").click()
    page.get_by_text("Stored in partition 0 at offset 0").wait_for()
    page.get_by_label("value", exact=True).fill("not json")
    page.get_by_role("button", name="Produce").click()
    assert "not JSON" in page.get_by_role("alert").inner_text()
    shot(page, "produce")
    call(server, "POST", "/api/topics/orders/records", json={"records": [
        {"value": b64("plain text ✓".encode()), "partition": 0},
        {"value": b64(b"\xff\x00\xfe binary"), "partition": 0}]})

    page.goto(server.url("/console/#/topics/orders/records"))
    rows = page.locator("table.records tbody tr")
    rows.nth(2).wait_for()
    assert rows.count() == 3
    first = rows.nth(0).inner_text()
    assert '{"id":7,"items":[1,2]}' in first and "trace: abc" in first and '"user-7"' in first
    assert "plain text ✓" in rows.nth(1).inner_text()
    assert "ff 00 fe 20 62 69 6e" in rows.nth(2).inner_text()  # not UTF-8: hex, not garbled
    page.get_by_label("show values as").select_option("json")
    assert json.loads(rows.nth(0).locator("pre.value").nth(1).inner_text()) == {
        "id": 7, "items": [1, 2]}
    page.get_by_label("search the loaded records").fill("plain")
    assert rows.count() == 1 and "plain text" in rows.nth(0).inner_text()
    page.get_by_label("search the loaded records").fill("")
    page.get_by_label("records per page (N)").select_option("20")
    page.get_by_label("start at").select_option("newest")
    wait_until(lambda: rows.count() == 3, "the newest 20: all three")
    shot(page, "records")
    assert page.problems == []


def test_follow_mode_shows_a_record_another_client_produced(server, page):
    call(server, "POST", "/api/topics", 201, json={"name": "live", "partitions": 2})
    page.goto(server.url("/console/#/topics/live/records"))
    page.get_by_text("No records here").wait_for()
    page.get_by_label("partition").select_option("all")
    page.get_by_label("follow new records").check()
    # following is a consumer session of the page's own, waiting for records
    wait_until(lambda: any(s["waiting"] for s in call(server, "GET", "/api/consumers")[
        "sessions"]), "the page's consume waiting")
    call(server, "POST", "/api/topics/live/records", json={"records": [
        {"value": b64(b"tailed"), "partition": 1}]})
    page.get_by_text("tailed").wait_for(timeout=2000)  # woken by the produce, not polled
    [session] = call(server, "GET", "/api/consumers")["sessions"]
    assert session["group_id"].startswith("console-follow-") and session["manual"]
    assert session["assignment"] == {"live": [0, 1]}

    # a hidden tab stops following (its session is closed); shown again, it goes on
    page.evaluate("""() => {
        Object.defineProperty(document, "hidden", {value: true, configurable: true});
        document.dispatchEvent(new Event("visibilitychange"));
    }""")
    wait_until(lambda: call(server, "GET", "/api/consumers")["sessions"] == [],
               "the session closed")
    page.evaluate("""() => {
        Object.defineProperty(document, "hidden", {value: false, configurable: true});
        document.dispatchEvent(new Event("visibilitychange"));
    }""")
    wait_until(lambda: any(s["waiting"] for s in call(server, "GET", "/api/consumers")[
        "sessions"]), "following again")
    call(server, "POST", "/api/topics/live/records", json={"records": [
        {"value": b64(b"again"), "partition": 0}]})
    page.get_by_text("again").wait_for(timeout=2000)
    page.get_by_label("follow new records").uncheck()
    wait_until(lambda: call(server, "GET", "/api/consumers")["sessions"] == [],
               "unchecked: the session closed")
    assert page.get_by_text("tailed").count() == 1  # nothing shown twice
    assert [p for p in page.problems if "404" not in p] == []  # the closed session's poll


def test_a_groups_lag_is_shown_and_charted_and_its_offsets_reset_once_empty(server_factory, page):
    server = server_factory(CONSUMER_API_HISTORY_INTERVAL_MS="100")
    call(server, "POST", "/api/topics", 201, json={"name": "orders", "partitions": 2})
    call(server, "POST", "/api/topics/orders/records", json={"records": [
        {"value": b64(b"v"), "partition": p % 2} for p in range(10)]})
    call(server, "POST", "/api/consumer-groups/billing/offsets",
         json={"offsets": {"orders": {"0": 1, "1": 5}}})
    cid = call(server, "POST", "/api/consumers/subscribe",
               json={"group_id": "billing", "topics": ["orders"]})["consumer_id"]
    wait_until(lambda: sum("billing" in x["groups"] for x in call(
        server, "GET", "/api/metrics/history")["samples"]) >= 2, "two samples with the group")

    page.goto(server.url("/console/#/groups/billing"))
    lags = page.locator("td.lag")
    lags.nth(1).wait_for()
    assert [lags.nth(i).inner_text() for i in range(2)] == ["4", "0"]
    assert page.locator("svg polyline.series").count() == 1  # the lag chart is drawn
    assert "only while the group has no members" in page.inner_text("main")
    shot(page, "group")

    page.goto(server.url("/console/#/sessions"))
    page.get_by_role("cell", name=cid).wait_for()
    shot(page, "sessions")

    call(server, "DELETE", f"/api/consumers/{cid}")
    page.goto(server.url("/console/#/groups/billing"))
    page.get_by_label("reset to").select_option("latest")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Reset").click()
    wait_until(lambda: page.locator("td.lag").nth(0).inner_text() == "0", "the lag went to 0")
    assert committed(server, "billing") == [5, 5]

    page.get_by_label("reset to").select_option("explicit")
    page.get_by_label("new offset of orders partition 1").fill("2")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Reset").click()
    wait_until(lambda: page.locator("td.lag").nth(1).inner_text() == "3", "partition 1 lags 3")
    assert committed(server, "billing") == [5, 2]

    # a member joins after the page was drawn: the server refuses, the page says why
    call(server, "POST", "/api/consumers/subscribe", json={"group_id": "billing",
                                                          "topics": ["orders"]})
    page.get_by_label("reset to").select_option("earliest")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Reset").click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "group_not_empty" in alert.inner_text() and "409" in alert.inner_text()
    assert committed(server, "billing") == [5, 2]
    for n in (20, 60, 30):  # some traffic for the overview's chart
        seen = len(call(server, "GET", "/api/metrics/history")["samples"])
        call(server, "POST", "/api/topics/orders/records", json={"records": [
            {"value": b64(b"v"), "partition": 0}] * n})
        wait_until(lambda: len(call(server, "GET", "/api/metrics/history")["samples"]) > seen,
                   "a sample after the produce")
    page.goto(server.url("/console/"))
    page.locator("svg polyline.series.in").wait_for(state="attached")
    assert page.get_by_role("img", name="Lag per group, last hour").locator(
        "polyline.series").count() == 1  # billing's line
    shot(page, "overview-with-history")
    page.goto(server.url("/console/#/topics/orders"))
    page.get_by_role("heading", name="Groups reading it").wait_for()
    assert page.locator("svg.spark polyline").count() == 2  # one per partition
    assert page.get_by_role("cell", name="billing").count() == 1
    settings = page.locator("main table").nth(1).inner_text()
    assert "7 days" in settings and "no limit" in settings and "67.1 MB" in settings
    shot(page, "topic")
    assert [p for p in page.problems if "409" not in p] == []


def committed(server, group) -> list:
    return [o["committed_offset"] for o in call(server, "GET", f"/api/consumer-groups/{group}")[
        "offsets"]]


def test_with_api_keys_the_page_asks_for_one_and_shows_only_what_it_may_see(
        server_factory, tmp_path, page):
    keys = tmp_path / "keys.yml"
    keys.write_text("keys:\n"
                    "  - name: admin\n    key: admin-secret-1\n"
                    "    grants: [{topics: '*', rights: [admin]}, {groups: '*', rights: [admin]}]\n"
                    "  - name: reader\n    key: reader-secret-2\n"
                    "    grants: [{topics: 'public.*', rights: [read]}]\n", encoding="utf-8")
    server = server_factory(CONSUMER_API_API_KEYS_FILE=str(keys))
    for name in ("public.news", "private.pay"):
        call(server, "POST", "/api/topics", 201, key="admin-secret-1",
             json={"name": name, "partitions": 1})

    page.goto(server.url("/console/#/topics"))
    page.get_by_label("Key", exact=True).fill("reader-secret-2")
    page.get_by_role("button", name="Use key").click()
    page.get_by_role("row", name="public.news").wait_for()
    assert page.get_by_role("row", name="private.pay").count() == 0
    page.get_by_label("topic name").fill("public.new")
    page.get_by_role("button", name="Create").click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "may not do that" in alert.inner_text() and "403" in alert.inner_text()
    assert page.evaluate("sessionStorage.getItem('consumer-api-key')") == "reader-secret-2"
    assert page.evaluate("localStorage.length") == 0
    shot(page, "forbidden")
    assert [p for p in page.problems if "401" not in p and "403" not in p] == []


@pytest.mark.parametrize("route", ["", "topics", "topics/orders", "topics/orders/records",
                                   "produce", "groups", "groups/billing", "sessions"])
def test_every_page_fits_a_narrow_window(server, browser, route):
    if not call(server, "GET", "/api/topics")["topics"]:
        call(server, "POST", "/api/topics", 201, json={"name": "orders", "partitions": 1})
        call(server, "POST", "/api/consumer-groups/billing/offsets",
             json={"offsets": {"orders": {"0": 0}}})
    context = browser.new_context(viewport={"width": 390, "height": 800})
    narrow = context.new_page()
    errors = []
    narrow.on("pageerror", lambda exc: errors.append(str(exc)))
    narrow.goto(server.url(f"/console/#/{route}"))
    narrow.locator("main h1").wait_for()
    assert narrow.locator("main h1").inner_text() not in ("Not found", "Something went wrong")
    width = narrow.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"#/{route} is {width} px wide"
    shot(narrow, f"narrow-{route.replace('/', '-') or 'overview'}")
    context.close()
    assert errors == []


def test_the_pages_are_reached_with_the_keyboard(server, page):
    page.goto(server.url("/console/"))
    page.locator("main h1").wait_for()
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Topics":
            break
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Topics").wait_for()
    assert page.url.endswith("#/topics")


def test_a_long_value_is_cut_with_show_all_and_download(server, page):
    call(server, "POST", "/api/topics", 201, json={"name": "big", "partitions": 1})
    long_text = "x" * 4000 + "END"
    call(server, "POST", "/api/topics/big/records", json={"records": [
        {"value": b64(long_text.encode()), "partition": 0}]})
    page.goto(server.url("/console/#/topics/big/records"))
    value = page.locator("pre.value").nth(1)
    value.wait_for()
    assert value.inner_text().endswith("…") and "END" not in value.inner_text()
    assert page.get_by_role("link", name="Download").get_attribute("download") == "value.bin"
    page.get_by_role("button", name="Show all").click()
    assert value.inner_text() == long_text
    assert page.problems == []


def test_a_group_is_reset_to_a_time(server, page):
    call(server, "POST", "/api/topics", 201, json={"name": "events", "partitions": 1})
    new_year = 1767225600000  # 2026-01-01T00:00:00Z (the page's browser runs in UTC)
    call(server, "POST", "/api/topics/events/records", json={"records": [
        {"value": b64(b"v"), "partition": 0, "timestamp": new_year + delta}
        for delta in (-60_000, -1, 0, 60_000)]})
    call(server, "POST", "/api/consumer-groups/audit/offsets",
         json={"offsets": {"events": {"0": 4}}})
    page.goto(server.url("/console/#/groups/audit"))
    page.get_by_label("reset to").select_option("time")
    page.get_by_label("reset time").fill("2026-01-01T00:00")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Reset").click()
    wait_until(lambda: committed(server, "audit") == [2], "the group reset to offset 2")
    assert page.problems == []


def test_the_server_root_leads_to_the_console_and_it_to_swagger_ui(server, page):
    page.goto(server.url("/"))
    page.get_by_role("link", name="Topics").wait_for()
    assert urlsplit(page.url).path == "/console/"
    page.get_by_role("link", name="API (Swagger UI)").click()
    page.locator(".opblock").first.wait_for()
    assert urlsplit(page.url).path == "/swagger/"
    assert page.problems == []


def test_a_topic_page_charts_the_last_day_and_lists_the_busiest_keys(server, page):
    requests.post(server.url("/api/topics"), json={"name": "hot", "partitions": 2},
                  timeout=5).raise_for_status()
    now = int(time.time() * 1000)
    records = [{"key": b64(b"user-7"), "value": "", "timestamp": now - 3_600_000 * h}
               for h in (5, 0, 0, 0)]  # oldest first: each counts at its own time
    records += [{"value": "", "timestamp": now}, {"key": b64(b"\xff\x00"), "value": ""}]
    requests.post(server.url("/api/topics/hot/records"), json={"records": records},
                  timeout=5).raise_for_status()
    page.goto(server.url("/console/#/topics/hot"))
    page.get_by_role("heading", name="Records by time and by key").wait_for()
    chart = page.get_by_role("img", name="Records per 10 minutes in hot, last 24 hours")
    assert chart.locator("polyline.series").count() == 1
    rows = page.locator("table.keys tbody tr")
    assert rows.count() == 3
    assert [rows.nth(i).locator("td").all_inner_texts() for i in range(3)] == [
        ["user-7", "3", "60.0%"], ["(no key)", "1", "20.0%"], ["ff 00", "1", "20.0%"]]
    assert "5 records of the last hour, 3 keys" in page.locator("main").inner_text()
    shot(page, "topic-statistics")
    assert page.problems == []
