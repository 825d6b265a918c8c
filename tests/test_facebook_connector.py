"""FacebookSource through facebook-sdk against the sandbox: Graph shapes, replies, private replies, windows."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
import requests

from connectors.base import RateLimited, Refused, ReplyTarget, Transient
from connectors.facebook import FacebookSource
from connectors.sandbox import Sandbox
from tests import sandbox_fixtures
from tests.sandbox_fixtures import PAGE_ID

sandbox = sandbox_fixtures.sandbox  # the shared fixture, as tests/conftest.py also offers it

FIXTURES = Path(__file__).parent / "fixtures" / "facebook"
TOKEN = "EAAGfacebookTestPageToken0042"


def _source(box: Sandbox, **kwargs: object) -> FacebookSource:
    return FacebookSource(page_token=TOKEN, page_id=PAGE_ID, base_url=box.url, timeout=2.0,
                          clock=box.daemon_clock, **kwargs)


def _graph_time(value: str) -> datetime:
    return datetime.fromisoformat(value[:-2] + ":" + value[-2:])


def _comment(box: Sandbox, text: str = "Where is my order?", person_id: str = "7011") -> ReplyTarget:
    [comment_id] = box.add_fb_comments([{"message": text, "from": {"id": person_id, "name": "Kari"}}])
    return ReplyTarget(platform="facebook", kind="comment", external_id=comment_id, author_id=person_id)


def test_recorded_comments_injected_through_control_api_are_stored_faithfully(sandbox: Sandbox) -> None:
    page = json.loads((FIXTURES / "comments_page.json").read_text())
    post_id = f"{PAGE_ID}_122101234567890123"
    answer = requests.post(f"{sandbox.url}/_sandbox/facebook/comments", timeout=5,
                           json=[{**c, "post_id": post_id} for c in page["data"]])
    assert answer.status_code == 201

    result = _source(sandbox).fetch(kind="comment", cursor="")

    assert [m.external_id for m in result.mentions] == [c["id"] for c in page["data"]]
    for mention, comment in zip(result.mentions, page["data"], strict=True):
        assert mention.text == comment["message"]
        assert (mention.author.id, mention.author.name) == (comment["from"]["id"], comment["from"]["name"])
        assert mention.created_at == _graph_time(comment["created_time"])
        assert mention.conversation_id == post_id
        assert mention.url == f"https://www.facebook.com/{post_id}?comment_id={comment['id']}"
    assert result.mentions[1].parent_id == page["data"][0]["id"]
    assert result.mentions[0].parent_id == ""


def test_recorded_messages_injected_through_control_api_are_stored_faithfully(sandbox: Sandbox) -> None:
    page = json.loads((FIXTURES / "messages_page.json").read_text())
    answer = requests.post(f"{sandbox.url}/_sandbox/facebook/messages", timeout=5,
                           json=[{**m, "conversation_id": "t_10160000000000001"} for m in page["data"]])
    assert answer.status_code == 201
    [mention] = _source(sandbox).fetch(kind="message", cursor="").mentions
    [message] = page["data"]
    assert (mention.external_id, mention.text) == (message["id"], message["message"])
    assert (mention.author.id, mention.author.name) == (message["from"]["id"], message["from"]["name"])
    assert mention.created_at == _graph_time(message["created_time"])
    assert mention.conversation_id == "t_10160000000000001" and not mention.from_brand


def test_private_reply_once_per_comment(sandbox: Sandbox) -> None:
    source, target = _source(sandbox), _comment(sandbox)
    result = source.send_private(target=target, text="We sent you a message")
    with pytest.raises(Refused, match="once per comment"):
        source.send_private(target=target, text="We sent you a message")
    [posted] = sandbox.fb_posts()
    assert (posted["kind"], posted["in_reply_to"], posted["recipient"], posted["text"], posted["id"]) == \
        ("private_reply", target.external_id, sandbox.fb_psid("7011"), "We sent you a message", result.external_id)
    # Graph answers with the person's Messenger id, not the id their comment carries
    assert result.recipient_id == sandbox.fb_psid("7011") != "7011"


def test_private_reply_refused_after_seven_days(sandbox: Sandbox) -> None:
    source, target = _source(sandbox), _comment(sandbox)
    sandbox.advance_clock(7 * 24 * 3600 + 60)
    with pytest.raises(Refused, match="within 7 days"):
        source.send_private(target=target, text="Sorry for the wait")
    assert sandbox.fb_posts() == []


def test_messenger_reply_only_within_24_hours(sandbox: Sandbox) -> None:
    source = _source(sandbox)
    sandbox.add_fb_messages([{"from": {"id": "7300", "name": "Per"}, "message": "Refund please"}])
    target = ReplyTarget(platform="facebook", kind="message", external_id="m_1", author_id="7300")
    source.send_private(target=target, text="Looking into it")
    sandbox.advance_clock(25 * 3600)
    with pytest.raises(Refused) as caught:
        source.send_private(target=target, text="Any news?")
    assert str(caught.value).startswith("Messenger allows a Page to answer only within 24 hours")
    assert "2018278" in str(caught.value)
    assert [(p["kind"], p["recipient"], p["text"]) for p in sandbox.fb_posts()] == [("messenger", "7300", "Looking into it")]


def test_public_comment_reply_is_posted_and_found_again(sandbox: Sandbox) -> None:
    source, target = _source(sandbox), _comment(sandbox)
    other = _comment(sandbox, "me too", person_id="7012")
    result = source.reply_public(target=target, text="Sorry! Check your inbox.")
    [posted] = sandbox.fb_posts()
    assert (posted["kind"], posted["in_reply_to"], posted["text"]) == \
        ("comment_reply", target.external_id, "Sorry! Check your inbox.")
    assert source.find_reply(target=target, text="Sorry! Check your inbox.") == result
    assert source.find_reply(target=other, text="Sorry! Check your inbox.") is None
    # the Page's own reply comes back flagged as the brand's
    mentions = source.fetch(kind="comment", cursor="").mentions
    assert [m.from_brand for m in mentions if m.external_id == result.external_id] == [True]


def test_messenger_message_has_no_public_reply(sandbox: Sandbox) -> None:
    target = ReplyTarget(platform="facebook", kind="message", external_id="m_1", author_id="7300")
    with pytest.raises(Refused, match="no public reply"):
        _source(sandbox).reply_public(target=target, text="hi")


def test_business_use_case_usage_becomes_quota_and_throttling_rate_limits(sandbox: Sandbox) -> None:
    sandbox.configure(graph_calls_per_hour=10)
    source = _source(sandbox)
    _comment(sandbox)
    result = source.fetch(kind="comment", cursor="")  # feed + one post's comments = 2 calls of 10
    assert (result.quota.limit, result.quota.remaining) == (100, 80)
    with pytest.raises(RateLimited, match="too many calls to this Page"):
        for _ in range(10):
            source.fetch(kind="comment", cursor=result.cursor)


def test_api_version_is_configurable_and_used_in_paths(sandbox: Sandbox) -> None:
    source = _source(sandbox, api_version="v19.0")
    sandbox.add_fault(platform="facebook", path="/v19.0/", status=500)
    with pytest.raises(Transient):
        source.fetch(kind="comment", cursor="")
    assert source.fetch(kind="comment", cursor="").mentions == []


def test_token_not_in_sandbox_paging_links(sandbox: Sandbox) -> None:
    for n in range(3):
        _comment(sandbox, f"c{n}")
    post_id = next(iter(sandbox.graph.posts))
    body = requests.get(f"{sandbox.url}/v21.0/{post_id}/comments", timeout=5,
                        params={"access_token": TOKEN, "limit": 1}).json()
    assert "next" in body["paging"] and TOKEN not in json.dumps(body)


def test_a_burst_across_many_posts_and_conversations_is_read_in_full() -> None:
    """More active posts and conversations between two polls than one listing page (25) holds."""
    from connectors.facebook import FacebookSource
    from connectors.sandbox import Sandbox

    with Sandbox() as sandbox:
        source = FacebookSource(page_token="tok", page_id=sandbox.graph.page["id"], base_url=sandbox.url)
        first_c = source.fetch(kind="comment", cursor="")
        first_m = source.fetch(kind="message", cursor="")
        sandbox.advance_clock(60)
        for n in range(40):
            sandbox.add_fb_comments([{"message": f"comment {n}", "post_id": f"104000000000001_{900 + n}",
                                      "from": {"id": f"71{n:04d}", "name": f"C {n}"}}])
            sandbox.add_fb_messages([{"message": f"message {n}", "from": {"id": f"62{n:04d}", "name": f"M {n}"}}])
        seen: dict[str, set[str]] = {"comment": set(), "message": set()}
        for kind, cursor in (("comment", first_c.cursor), ("message", first_m.cursor)):
            for _ in range(20):
                result = source.fetch(kind=kind, cursor=cursor)
                seen[kind] |= {m.external_id for m in result.mentions}
                cursor = result.cursor
                if not result.more:
                    break
        assert len(seen["comment"]) == 40
        assert len(seen["message"]) == 40
