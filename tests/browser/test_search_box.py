"""In a real browser: the list's search box answers as staff type (no Enter): two words in any order find the
account whose name holds both, and a search that matches nothing shows the empty state at once."""
import pytest
from playwright.sync_api import expect

from tests.conftest import browser_login

# SQLite only: what the browser does here does not depend on the database
# (the HTTP tests of the same views run on both)
pytestmark = [pytest.mark.browser, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]


@pytest.fixture
def shops(world, make):
    ids = {name: make.account(name=name) for name in ("Maple Bay Bakery", "Bayside Fish Bar", "Golden Bakery Lane",
                                                        "Copper Fox Salon")}
    for i in range(30):
        make.account(name=f"Quiet Anchor Cafe {i:02d}")
    return ids


def test_typing_two_words_shows_the_bakery_and_no_match_shows_the_empty_state(page, world, shops):
    browser_login(page, world.support.email)
    page.goto("/accounts")
    rows = page.get_by_test_id("account-row")
    expect(rows.first).to_be_visible()
    box = page.get_by_label("Search by name, email or account number")

    box.press_sequentially("bay bak", delay=40)  # typed, never submitted: the live search answers
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Maple Bay Bakery")
    expect(page.get_by_test_id("empty-list")).to_have_count(0)

    box.fill("")
    box.press_sequentially("zz", delay=40)
    expect(page.get_by_test_id("empty-list")).to_be_visible(timeout=3_000)
    expect(page.get_by_test_id("empty-list")).to_contain_text("No accounts match")
    expect(rows).to_have_count(0)
    expect(page.get_by_test_id("next-page")).to_have_count(0)  # nothing to keep looking for
