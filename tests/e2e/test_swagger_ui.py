"""Swagger UI in a real browser (Playwright driving Debian's Chromium) against the real
server, as a new user meets it: the page asks no host but the server for anything (no web
fonts, no validator badge), and the main flow -- create a topic, produce, subscribe,
consume, commit, seek, position, describe the group, close -- succeeds when each operation
is tried in that order with its default example ("Try it out", then "Execute"), the
consumer id from subscribe pasted where an operation asks for it. With API keys the key
goes in through the Authorize dialog first."""
from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import REPO_ROOT

SHOTS = REPO_ROOT / ".screenshots"
KEY = "swagger-ui-key-0123456789"

#: the flow, in order: (tag, operationId)
FLOW = [("topics", "createTopic"), ("records", "produce"), ("consumers", "subscribe"),
        ("consumers", "consume"), ("consumers", "commit"), ("consumers", "seek"),
        ("consumers", "position"), ("consumer-groups", "describeGroup"),
        ("consumers", "closeConsumer")]


def open_ui(page, server) -> None:
    page.goto(server.url("/swagger/"))
    page.locator(".opblock").first.wait_for()
    page.wait_for_load_state("networkidle")


def try_operation(page, tag: str, operation: str, params: dict | None = None) -> tuple:
    """Expand the operation, "Try it out" with its defaults (``params`` typed into the
    named path parameters), "Execute": ``(status, response body text)``."""
    block = page.locator(f"#operations-{tag}-{operation}")
    block.locator(".opblock-summary").first.click()
    block.locator(".try-out__btn").click()
    for name, value in (params or {}).items():
        block.locator(f'tr[data-param-name="{name}"] input').fill(value)
    block.locator(".execute").click()
    status = block.locator(".live-responses-table tr.response .response-col_status").first
    status.wait_for()
    body = block.locator(".live-responses-table tr.response .response-col_description pre").first
    text = body.inner_text() if body.count() else ""
    code = int(status.inner_text().strip())
    block.locator(".opblock-summary").first.click()  # fold it again
    return code, text


def run_flow(page) -> list:
    """Every step of FLOW with its example: ``[(operation, status, body)]``."""
    answers, consumer_id = [], None
    for tag, operation in FLOW:
        params = {"consumer_id": consumer_id} if consumer_id and operation not in (
            "createTopic", "produce", "subscribe", "describeGroup") else None
        code, text = try_operation(page, tag, operation, params)
        answers.append((operation, code, text))
        if operation == "subscribe" and 200 <= code < 300:
            consumer_id = json.loads(text)["consumer_id"]
    return answers


def test_the_page_asks_no_other_host_for_anything(server, page):
    open_ui(page, server)
    assert page.locator(".opblock").count() > 20
    assert page.problems == []  # the page fixture records every request to another host


def test_the_example_flow_succeeds_when_tried_in_order(server, page):
    open_ui(page, server)
    answers = run_flow(page)
    failed = [(op, code, text[:300]) for op, code, text in answers if not 200 <= code < 300]
    assert not failed, failed
    consumed = json.loads(answers[3][2])["records"]
    assert consumed, "consume with its example found none of the produced records"
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "swagger-flow.png"), full_page=False)
    assert page.problems == []


@pytest.mark.parametrize("keys", [KEY])
def test_the_flow_succeeds_with_an_api_key_given_in_the_authorize_dialog(server_factory, page,
                                                                         keys):
    server = server_factory(CONSUMER_API_API_KEYS=keys)
    open_ui(page, server)
    page.locator(".auth-wrapper .authorize").click()
    dialog = page.locator(".dialog-ux")
    dialog.locator("input").first.fill(KEY)
    dialog.locator("button.authorize").click()
    dialog.locator("button.btn-done").click()
    answers = run_flow(page)
    failed = [(op, code, text[:300]) for op, code, text in answers if not 200 <= code < 300]
    assert not failed, failed
    assert page.problems == []
