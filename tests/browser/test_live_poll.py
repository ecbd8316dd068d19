"""The live-poll example in real Chromium against ``fazt serve examples/``."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import NewPage, PageErrors
from tests.browser.pages import PollPage
from tests.browser.server import ExamplesServer

pytestmark = pytest.mark.browser

DEMO_ADMIN_CODE = "demo-admin"  # examples/live-poll/api/_lib/auth.js, demo only
RECONNECT_TIMEOUT_MS = 30_000


def test_a_vote_updates_every_viewer(examples_server: ExamplesServer, new_page: NewPage) -> None:
    url = examples_server.url("live-poll")
    viewer = PollPage(new_page("viewer")).open(url)  # not signed in: watches only
    voter = PollPage(new_page("voter")).open(url).sign_in("Vera")

    voter.vote("presence")

    expect(viewer.count("presence")).to_have_text("1")
    expect(voter.count("presence")).to_have_text("1")
    expect(viewer.page.locator("#total")).to_have_text("1")


def test_admin_announcement_reaches_every_page_and_admin_sees_votes(
    examples_server: ExamplesServer, new_page: NewPage
) -> None:
    url = examples_server.url("live-poll")
    viewer = PollPage(new_page("viewer")).open(url)
    admin = PollPage(new_page("admin")).open(url).sign_in("Ada", DEMO_ADMIN_CODE)
    voter = PollPage(new_page("voter")).open(url).sign_in("Vera")
    expect(admin.page.locator("#admin")).to_be_visible()
    expect(voter.page.locator("#admin")).to_be_hidden()

    voter.vote("redis")
    expect(
        admin.page.locator("#admin-feed li", has_text="Vera voted Redis fan-out")
    ).to_be_visible()

    admin.announce("Poll closes soon")
    for page in (viewer, admin, voter):
        expect(page.announcement).to_contain_text("Poll closes soon")


def test_votes_come_back_after_a_server_restart(
    examples_server: ExamplesServer, new_page: NewPage, page_errors: PageErrors
) -> None:
    # Refused reconnect attempts while the server is down are console errors.
    page_errors.allow("WebSocket connection to")
    url = examples_server.url("live-poll")
    viewer = PollPage(new_page("viewer")).open(url)
    voter = PollPage(new_page("voter")).open(url).sign_in("Vera")
    voter.vote("replay")
    expect(viewer.count("replay")).to_have_text("1")
    viewer.record_status_changes()

    examples_server.restart()  # the hub forgets everything; the pages do not

    viewer.expect_status("connected", RECONNECT_TIMEOUT_MS)
    voter.expect_status("connected", RECONNECT_TIMEOUT_MS)
    assert "reconnecting" in viewer.status_history()
    # The voter's page renewed its vote-replay subscription and asked for a recount.
    expect(viewer.count("replay")).to_have_text("1", timeout=RECONNECT_TIMEOUT_MS)
    expect(viewer.page.locator("#total")).to_have_text("1")


def test_one_vote_is_singular(examples_server: ExamplesServer, new_page: NewPage) -> None:
    url = examples_server.url("live-poll")
    viewer = PollPage(new_page("viewer")).open(url)
    expect(viewer.page.locator(".total")).to_have_text("0 votes")
    PollPage(new_page("vera")).open(url).sign_in("Vera").vote("presence")
    expect(viewer.page.locator(".total")).to_have_text("1 vote")
    PollPage(new_page("ben")).open(url).sign_in("Ben").vote("dm")
    expect(viewer.page.locator(".total")).to_have_text("2 votes")


def test_the_tally_drops_a_vote_when_its_voter_leaves(
    examples_server: ExamplesServer, new_page: NewPage
) -> None:
    url = examples_server.url("live-poll")
    viewer = PollPage(new_page("viewer")).open(url)  # not signed in: a guest in the audience
    voter_page = new_page("voter")
    voter = PollPage(voter_page).open(url).sign_in("Vera")
    expect(viewer.page.locator("#viewers")).to_have_text("2 people here")
    voter.vote("redis")
    expect(viewer.count("redis")).to_have_text("1")

    voter_page.close()  # the vote leaves with its connection

    expect(viewer.count("redis")).to_have_text("0")
    expect(viewer.page.locator(".total")).to_have_text("0 votes")
    expect(viewer.page.locator("#viewers")).to_have_text("1 person here")
