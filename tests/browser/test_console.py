"""The review console and the dashboard in a real browser (headless Chromium)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Page, expect
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from depdetect.settings import Settings
from schemas.tables import DecisionRow, ResultRow, ReviewClaimRow
from services.api.security.tokens import Role
from tests.api.support import read_decisions
from tests.browser.conftest import sign_in_with_keyboard

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

NewContext = Callable[[], Awaitable[BrowserContext]]
Tokens = Callable[..., dict[str, str]]


def _secret(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


SignedIn = Callable[..., Awaitable[tuple[str, Page]]]


@pytest.fixture
def signed_in(
    serve: Callable[[Settings], str],
    console_settings: Settings,
    new_context: NewContext,
    token_for: Tokens,
) -> SignedIn:
    """The app's base URL and a new page signed in (keyboard only) with a fresh token of
    ``role``; the app starts on the first call, after the test has written its rows."""
    started: list[str] = []

    async def open_page(role: Role, name: str | None = None) -> tuple[str, Page]:
        if not started:
            started.append(serve(console_settings))
        page = await (await new_context()).new_page()
        await sign_in_with_keyboard(page, started[0], _secret(token_for(role, name=name)))
        return started[0], page

    return open_page


def _item_url(base: str, result_id: int) -> re.Pattern[str]:
    """The item's page, whatever the query string (filters, what was just decided)."""
    return re.compile(rf"^{re.escape(base)}/console/items/{result_id}(\?.*)?$")


async def _arrived(page: Page, url: str | re.Pattern[str]) -> None:
    """Wait until ``page`` shows ``url`` and its keyboard shortcuts listen: the URL changes
    when the navigation commits, before the deferred console.js has run, and keys pressed
    in between are lost on a loaded machine."""
    await expect(page).to_have_url(url)
    await page.wait_for_load_state("domcontentloaded")


def _within_one_day(moment: datetime, span: timedelta) -> datetime:
    """``moment``, or the last minute of the day before when the ``span`` before it would
    cross midnight (UTC): a per-day cell must not split with the time the test runs at."""
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return moment if moment - span >= midnight else midnight - timedelta(minutes=1)


def _decisions(sessions: sessionmaker[Session]) -> list[tuple[int, str, str, str | None, int]]:
    with sessions() as session:
        return [
            (r.result_id, r.decision, r.moderator_id, r.note, r.revision)
            for r in session.scalars(select(DecisionRow).order_by(DecisionRow.id))
        ]


async def test_three_items_with_the_keyboard_alone(
    signed_in: SignedIn,
    console_settings: Settings,
    insert_result: Callable[..., int],
    sessions: sessionmaker[Session],
    artifacts: Path,
) -> None:
    now = datetime.now(UTC)
    low = insert_result(score=0.71, language="de", text="Ich kann nicht mehr schlafen.")
    high = insert_result(
        score=0.97, language="en", text="I feel like a burden to everyone around me."
    )
    middle = insert_result(
        score=0.88, language="es", text="Ya nada tiene sentido para mí.", classified_at=now
    )
    long_text = "I have been tired for weeks. " * 20
    insert_result(score=0.6, language="en", text=long_text)  # stays pending
    base, page = await signed_in(Role.MODERATOR, "alice")
    await _arrived(page, f"{base}/console/queue")
    await expect(page.locator("#summary")).to_contain_text("4 waiting")
    # Highest score first; the long text's preview says how much it leaves out.
    first_cells = page.locator("table.queue tbody tr td:first-child")
    await expect(first_cells.first).to_have_text(str(high))
    await expect(page.locator("table.queue")).to_contain_text("more characters: open the item")
    await page.screenshot(path=artifacts / "console-queue.png", full_page=True)

    await page.keyboard.press("s")  # start reviewing: the highest score is claimed and opened
    await _arrived(page, _item_url(base, high))
    await expect(page.locator("#text")).to_have_text("I feel like a burden to everyone around me.")
    await expect(page.locator(".facts")).to_contain_text("threshold 0.500")
    await page.screenshot(path=artifacts / "console-item.png", full_page=True)
    # Controls have names a screen reader announces, and Tab reaches the decisions.
    await expect(page.get_by_label("Note (optional")).to_be_editable()
    for name in ("Indicators confirmed", "No indicators", "Urgent: escalate now"):
        await expect(page.get_by_role("button", name=re.compile(name))).to_be_visible()
    await page.get_by_label("Note (optional").focus()
    await page.keyboard.press("Tab")
    await expect(
        page.get_by_role("button", name=re.compile("Indicators confirmed"))
    ).to_be_focused()
    await page.keyboard.press("Escape")  # nothing happens: focus is not in a field
    await page.keyboard.press("1")  # indicators confirmed, then straight to the next one

    await _arrived(page, _item_url(base, middle))
    await page.keyboard.press("n")  # into the note field
    await expect(page.get_by_label("Note (optional")).to_be_focused()
    await page.keyboard.type("talks of meaninglessness; no plan")
    await page.keyboard.press("Escape")
    await page.keyboard.press("2")

    await _arrived(page, _item_url(base, low))
    await page.keyboard.press("3")  # urgent: its event is published before the next page
    await expect(page.locator(".notice").first).to_contain_text(
        "the urgent escalation event is published"
    )
    assert _decisions(sessions) == [
        (high, "confirmed_indicators", "alice", None, 1),
        (middle, "not_indicators", "alice", "talks of meaninglessness; no plan", 1),
        (low, "escalated", "alice", None, 1),
    ]
    with sessions() as session:
        escalation = session.scalar(select(DecisionRow).where(DecisionRow.result_id == low))
        assert escalation is not None and escalation.event_published_at is not None
        # Every claim of a decided item is released.
        claimed = set(session.scalars(select(ReviewClaimRow.result_id)))
        assert not claimed & {high, middle, low}

    events = await read_decisions(console_settings.kafka, expected=3)
    assert sorted((e.result_id, e.decision.value, e.moderator_id) for _, e in events) == sorted(
        [
            (high, "confirmed_indicators", "alice"),
            (middle, "not_indicators", "alice"),
            (low, "escalated", "alice"),
        ]
    )
    # The urgent escalation stands out in the queue.
    await page.keyboard.press("q")
    await _arrived(page, re.compile(rf"^{re.escape(base)}/console/queue"))
    urgent = page.locator("section.urgent")
    await expect(urgent).to_contain_text(f"URGENT result {low}")
    await expect(page.locator("#summary")).to_contain_text("1 waiting")
    await page.screenshot(path=artifacts / "console-queue-after.png", full_page=True)


async def test_a_claimed_item_cannot_be_opened_by_a_second_moderator(
    signed_in: SignedIn,
    insert_result: Callable[..., int],
    sessions: sessionmaker[Session],
) -> None:
    item = insert_result(score=0.9, text="nobody understands me")
    other = insert_result(score=0.8, text="everything is grey")
    base, alice = await signed_in(Role.MODERATOR, "alice")
    _, bob = await signed_in(Role.MODERATOR, "bob")

    await alice.goto(f"{base}/console/items/{item}")
    await expect(alice.locator("#text")).to_have_text("nobody understands me")

    response = await bob.goto(f"{base}/console/items/{item}")
    assert response is not None and response.status == 409
    await expect(bob.locator("h1")).to_have_text("Someone else is reviewing this item")
    await expect(bob.locator("body")).not_to_contain_text("nobody understands me")
    # Bob's queue shows it as taken, and "start reviewing" gives him the other item.
    await bob.goto(f"{base}/console/queue")
    await expect(bob.locator("tr.claimed")).to_contain_text("in review: alice")
    await bob.keyboard.press("s")
    await _arrived(bob, _item_url(base, other))

    # Alice's claim runs out: the item is back, and Bob may open it.
    with sessions.begin() as session:
        session.execute(
            update(ReviewClaimRow)
            .where(ReviewClaimRow.result_id == item)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    response = await bob.goto(f"{base}/console/items/{item}")
    assert response is not None and response.status == 200
    await expect(bob.locator("#text")).to_have_text("nobody understands me")
    # Alice, whose claim Bob took over, can no longer decide on it.
    await alice.keyboard.press("1")
    await expect(alice.locator("h1")).to_have_text("The decision was not recorded")
    assert _decisions(sessions) == []


async def test_text_is_shown_as_text_never_as_html(
    signed_in: SignedIn,
    insert_result: Callable[..., int],
) -> None:
    hostile = '<script>window.pwned = 1</script><img src=x onerror="window.pwned=2"><b>bold</b>'
    item = insert_result(score=0.9, text=hostile)
    base, page = await signed_in(Role.MODERATOR)
    await expect(page.locator("table.queue")).to_contain_text("<script>window.pwned = 1</script>")
    await page.goto(f"{base}/console/items/{item}")
    await expect(page.locator("#text")).to_have_text(hostile)
    assert await page.locator("#text script, #text img, #text b").count() == 0
    assert await page.evaluate("typeof window.pwned") == "undefined"


async def test_a_post_without_the_csrf_token_is_refused(
    signed_in: SignedIn,
    insert_result: Callable[..., int],
    sessions: sessionmaker[Session],
) -> None:
    item = insert_result(score=0.9)
    base, page = await signed_in(Role.MODERATOR)
    await page.goto(f"{base}/console/items/{item}")
    post = """async ([url, fields]) => (await fetch(url, {
        method: "POST", body: new URLSearchParams(fields), redirect: "manual"})).status"""
    url = f"/console/items/{item}/decide"
    assert await page.evaluate(post, [url, {"decision": "escalated"}]) == 403
    assert await page.evaluate(post, [url, {"decision": "escalated", "csrf_token": "0" * 6}]) == 403
    assert await page.evaluate(post, ["/console/sign-out", {}]) == 403
    assert _decisions(sessions) == []
    # The page's own form, token included, works.
    await page.keyboard.press("2")
    await expect(page.locator(".notice").first).to_contain_text(f"Recorded for result {item}")
    assert [d[:2] for d in _decisions(sessions)] == [(item, "not_indicators")]


async def test_an_analyst_gets_the_dashboard_with_small_cells_suppressed(
    signed_in: SignedIn,
    insert_result: Callable[..., int],
    sessions: sessionmaker[Session],
    artifacts: Path,
) -> None:
    now = datetime.now(UTC)
    texts: list[str] = []

    def seed(n: int, language: str, days_ago: float, score: float, **values: Any) -> list[int]:
        ids = []
        start = _within_one_day(now - timedelta(days=days_ago), timedelta(minutes=n))
        for i in range(n):
            text = f"secret text {language} {days_ago} {i}"
            texts.append(text)
            ids.append(
                insert_result(
                    score=score + (i % 5) / 100,
                    language=language,
                    text=text,
                    classified_at=start - timedelta(minutes=i),
                    **values,
                )
            )
        return ids

    english = seed(14, "en", 0.2, 0.9)
    seed(12, "en", 1.2, 0.75)
    seed(11, "en", 9, 0.55)
    seed(3, "de", 0.2, 0.8)  # a small cell: must never be shown
    with sessions.begin() as session:
        # Moderators decided 12 English flags, 10 of them confirmed.
        for n, rid in enumerate(english[:12]):
            session.add(
                DecisionRow(
                    decision_id=f"d-{rid}",
                    result_id=rid,
                    revision=1,
                    decision="confirmed_indicators" if n < 10 else "not_indicators",
                    moderator_id="alice",
                    decided_at=now - timedelta(hours=1),
                    event_published_at=now,
                )
            )
            session.execute(
                update(ResultRow).where(ResultRow.id == rid).values(review_status="decided")
            )
    base, page = await signed_in(Role.ANALYST)
    await _arrived(page, f"{base}/dashboard")

    flags = page.locator("#flags-table")
    day = _within_one_day(now - timedelta(days=0.2), timedelta(minutes=14)).date().isoformat()
    await expect(flags.locator("tbody tr", has_text=f"{day}en")).to_contain_text("14")
    german = flags.locator("tbody tr", has_text="de")
    await expect(german).to_have_count(1)
    await expect(german.locator("td").nth(3)).to_have_text("<10")
    precision = page.locator("#precision-table tbody tr", has_text="en")
    await expect(precision).to_contain_text("83%")  # 10 of 12 judged
    await expect(
        page.locator("#precision-table tbody tr", has_text="de").locator("td").nth(2)
    ).to_have_text("<10")
    for name in ("flags", "drift", "precision", "reviews"):
        response = await page.request.get(f"{base}/dashboard/figures/{name}.svg")
        assert response.status == 200
        assert (await response.body()).lstrip().startswith(b"<?xml")
    html = await page.content()
    assert not any(text in html for text in texts), "the dashboard must never show a text"
    await page.screenshot(path=artifacts / "dashboard.png", full_page=True)

    response = await page.goto(f"{base}/console/queue")
    assert response is not None and response.status == 403
    await expect(page.locator("h1")).to_have_text("The review console is for moderators")
    await expect(page.locator("body")).not_to_contain_text("secret text")
    response = await page.goto(f"{base}/console/items/{english[13]}")
    assert response is not None and response.status == 403
