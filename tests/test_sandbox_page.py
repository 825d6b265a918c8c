"""The sandbox's Slack page in a real headless browser (Debian's chromium + chromium-driver, driven by Selenium).

The page sends what Slack would (signed block_actions, view_submission, slash commands) to the real
Bolt app on its loopback Request URL; the daemon runs its scheduler in-process against the sandbox.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session, select

from monitor import messages as m
from monitor.model import Case
from monitor.runtime.wiring import build_daemon, build_sources, start_sandbox_slack_app
from monitor.settings import Settings
from tests.test_slack_flow import tweet

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"  # given explicitly: Selenium Manager must never download a driver
WAIT_S = 10.0  # per step; each takes about a second (the page reads the sandbox once a second)


def _browser_or_skip() -> None:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if not missing:
        return
    reason = (f"{' and '.join(missing)} not installed: apt-get install chromium chromium-driver "
              "(.ci/run does) to test the sandbox's page in a browser")
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI needs the browser test: {reason}")
    pytest.skip(reason)


@pytest.fixture
def browser() -> Iterator[object]:
    _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-extensions", "--no-first-run", "--window-size=1400,1000"):
        options.add_argument(flag)
    # The browser is a program of its own, like Slack: it keeps the real clock when the tests run
    # under libfaketime (.ci/faketime-run), whose preload Chromium and chromedriver do not survive.
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD" and not k.startswith(("FAKETIME", "DONT_FAKE"))}
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER, env=env), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def demo(sandbox, simple_rules, simple_rules_file, clock, tmp_path: Path):
    """What `run --sandbox` starts: the daemon (scheduler running) and the Bolt app the page talks to."""
    sandbox.configure(slack_burst=1000, x_limits={"mentions": (100_000, 900)})
    settings = Settings(_env_file=None)
    sources = {k: v for k, v in build_sources(settings=settings, ruleset=simple_rules, sandbox_url=sandbox.url,
                                              clock=clock).items() if k in ("x-mentions", "x-own")}
    daemon = build_daemon(settings=settings, ruleset=simple_rules, rules_path=str(simple_rules_file),
                          db_url=f"sqlite:///{tmp_path / 'mm.db'}", sandbox_url=sandbox.url, clock=clock,
                          sources=sources, worker="test")
    tweet(sandbox, clock, 1, "@nordlysshop where is my parcel? it is late")  # an alert, no automatic reply
    daemon.poll("x-mentions")
    daemon.drain()
    app = start_sandbox_slack_app(daemon, sandbox_url=sandbox.url)
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()
        app.stop()
        daemon.engine.dispose()


def test_a_person_claims_replies_and_asks_for_stats_on_the_sandbox_page(sandbox, demo, browser):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    # The page redraws the channel whenever the record changes (a countdown edit, a thread note), so
    # elements are looked up afresh each time and a redraw between finding and using one is retried.
    wait = WebDriverWait(browser, WAIT_S, ignored_exceptions=(StaleElementReferenceException,))

    def text(css: str) -> str:
        return " ".join(e.text for e in browser.find_elements(By.CSS_SELECTOR, css))

    def shows(css: str, *words: str) -> None:
        wait.until(lambda _: all(w in text(css) for w in words), f"{css} never showed {words}")

    def click(css: str) -> None:
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, css).click() or True, f"could not click {css}")

    browser.get(sandbox.page_url)
    shows("#messages .message", "where is my parcel? it is late")
    assert browser.find_element(By.ID, "user").get_attribute("value") == "U0APPROVER1"

    click("#messages button[data-action-id='mm_claim']")
    shows(".thread", m.THREAD_CLAIMED.format(user="@U0APPROVER1"))
    shows("#messages", "Claimed by @U0APPROVER1")

    click("#messages button[data-action-id='mm_reply']")
    shows("#modal", "where is my parcel? it is late")
    click("#modal-submit")  # empty: the app refuses it beside the input
    shows("#modal [data-error-for]", m.SLACK_REPLY_EMPTY)
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#modal textarea").send_keys(
        "So sorry, Anna! The carrier has it; it reaches you tomorrow.") or True)
    click("#modal-submit")
    wait.until(lambda d: not d.find_element(By.ID, "modal-backdrop").is_displayed(), "the modal stayed open")
    shows("#x-posts", "it reaches you tomorrow.")
    posted = sandbox.x_posts()
    assert [(p["kind"], p["in_reply_to"]) for p in posted] == [("reply", "1900000000000000001")]
    assert posted[0]["text"] == "So sorry, Anna! The carrier has it; it reaches you tomorrow."

    browser.find_element(By.ID, "command").send_keys("/mentions stats\n")
    shows(".message.ephemeral", "Today so far", "Only visible to you")

    click("#channels button[data-channel='__home']")  # the app's Home tab: an app_home_opened event
    shows(".message.home", "where is my parcel? it is late", m.SLACK_HOME_KPIS)


# --------------------------------------------------------------------------- without a browser


def test_the_sandbox_signs_as_slack_does_and_the_app_refuses_another_secret(sandbox, demo_unstarted):
    from slack_sdk.signature import SignatureVerifier

    from connectors.sandbox.slack_client import signature

    body, stamp = "payload=%7B%22type%22%3A%22block_actions%22%7D", "1700000000"
    assert signature(secret="s3cret", timestamp=stamp, body=body) == \
        SignatureVerifier("s3cret").generate_signature(timestamp=stamp, body=body)

    alert = next(msg for msg in sandbox.slack_messages() if msg["op"] == "post" and not msg["thread_ts"])
    link = sandbox.slack_client.link
    sandbox.connect_slack_app(url=link.url, signing_secret="not-the-apps-secret", users=link.users)
    refused = sandbox.slack_client.press(user="U0APPROVER1", channel=alert["channel"], ts=alert["ts"],
                                         action_id="mm_claim", block_id=f"mm_actions:{_case_id(alert)}")
    assert refused == {"status": 401}
    with Session(demo_unstarted.engine) as s:
        assert s.exec(select(Case)).one().assignee in (None, "")  # refused before any listener ran
    sandbox.connect_slack_app(url=link.url, signing_secret=link.signing_secret, users=link.users)
    answered = sandbox.slack_client.command(user="U0AGENT1", channel=alert["channel"], text="/mentions stats")
    assert answered == {"status": 200}
    shown = [msg for msg in sandbox.slack_messages() if msg["op"] == "ephemeral"]
    assert [msg["recipient"] for msg in shown] == ["U0AGENT1"] and "Today so far" in shown[0]["text"]


def test_views_open_takes_a_trigger_once_like_slack(sandbox):
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError

    client = WebClient(token="xoxb-sandbox", base_url=f"{sandbox.url}/api/")
    modal = {"type": "modal", "title": {"type": "plain_text", "text": "Reply"},
             "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "hello"}}]}
    with pytest.raises(SlackApiError) as made_up:
        client.views_open(trigger_id="123.456.abc", view=modal)
    assert made_up.value.response["error"] == "invalid_trigger_id"
    trigger = sandbox.slack.issue_trigger(user="U0APPROVER1", channel="cs-alerts")
    opened = client.views_open(trigger_id=trigger, view=modal)
    assert opened["view"]["title"]["text"] == "Reply"
    with pytest.raises(SlackApiError) as again:
        client.views_open(trigger_id=trigger, view=modal)
    assert again.value.response["error"] == "exchanged_trigger_id"
    state = sandbox.slack_client.state(user="U0APPROVER1")
    assert state["modal"]["id"] == opened["view"]["id"]
    assert sandbox.slack_client.state(user="U0AGENT1")["modal"] is None  # a modal is its opener's only


def _case_id(alert: dict) -> str:
    return next(b["block_id"] for b in alert["blocks"] if b["type"] == "actions").partition(":")[2]


@pytest.fixture
def demo_unstarted(sandbox, simple_rules, simple_rules_file, clock, tmp_path: Path):
    """The daemon with its Slack app on the sandbox, one alert posted, scheduler not started."""
    settings = Settings(_env_file=None)
    sources = {k: v for k, v in build_sources(settings=settings, ruleset=simple_rules, sandbox_url=sandbox.url,
                                              clock=clock).items() if k == "x-mentions"}
    daemon = build_daemon(settings=settings, ruleset=simple_rules, rules_path=str(simple_rules_file),
                          db_url=f"sqlite:///{tmp_path / 'mm.db'}", sandbox_url=sandbox.url, clock=clock,
                          sources=sources, worker="test")
    tweet(sandbox, clock, 1, "@nordlysshop where is my parcel? it is late")
    daemon.poll("x-mentions")
    daemon.drain()
    app = start_sandbox_slack_app(daemon, sandbox_url=sandbox.url)
    try:
        yield daemon
    finally:
        app.stop()
        daemon.engine.dispose()
