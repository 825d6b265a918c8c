"""XSource through tweepy against the sandbox: real payload shapes, reply rules, DMs, limits, gaps."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from connectors.base import AuthFailed, RateLimited, Refused, ReplyTarget
from connectors.sandbox import Sandbox
from connectors.x import XSource
from tests import sandbox_fixtures
from tests.sandbox_fixtures import BRAND_X_HANDLE, BRAND_X_USER_ID

sandbox = sandbox_fixtures.sandbox  # the shared fixture, as tests/conftest.py also offers it

FIXTURES = Path(__file__).parent / "fixtures" / "x"
DM_LINK = f"https://x.com/messages/compose?recipient_id={BRAND_X_USER_ID}"


def _source(box: Sandbox, *, user_auth: bool = True, page_size: int = 100) -> XSource:
    keys = dict(api_key="ck-test-0001", api_secret="cs-test-0001", access_token="at-test-0001",
                access_token_secret="as-test-0001") if user_auth else {}
    return XSource(bearer_token="bearer-test-0001", user_id=BRAND_X_USER_ID, brand_handle=BRAND_X_HANDLE,
                   base_url=box.url, timeout=2.0, page_size=page_size, clock=box.daemon_clock, **keys)


def _tweet(box: Sandbox, text: str, *, user_id: str = "4242", username: str = "kari") -> str:
    [tweet_id] = box.add_tweets([{"tweet": {"text": text}, "author": {"id": user_id, "username": username}}])
    return tweet_id


def _target(tweet_id: str, *, kind: str = "mention", author_id: str = "4242", mentions_brand: bool = True,
            conversation_id: str = "") -> ReplyTarget:
    return ReplyTarget(platform="x", kind=kind, external_id=tweet_id, author_id=author_id,
                       conversation_id=conversation_id or tweet_id, mentions_brand=mentions_brand)


def test_recorded_v2_payload_injected_through_control_api_is_stored_faithfully(sandbox: Sandbox) -> None:
    page = json.loads((FIXTURES / "mentions_page.json").read_text())
    users = {u["id"]: u for u in page["includes"]["users"]}
    items = [{"tweet": t, "author": users[t["author_id"]]} for t in page["data"]]
    answer = requests.post(f"{sandbox.url}/_sandbox/x/tweets", json=items, timeout=5)
    assert answer.status_code == 201

    result = _source(sandbox).fetch(kind="mention", cursor="")

    by_id = {m.external_id: m for m in result.mentions}
    assert sorted(by_id) == sorted(t["id"] for t in page["data"])
    for tweet in page["data"]:
        mention, user = by_id[tweet["id"]], users[tweet["author_id"]]
        assert mention.text == tweet["text"]
        assert mention.author.handle == user["username"] and mention.author.name == user["name"]
        assert mention.author.followers == user["public_metrics"]["followers_count"]
        assert mention.author.verified is user["verified"]
        assert mention.url == f"https://x.com/{user['username']}/status/{tweet['id']}"
        assert mention.created_at == datetime.fromisoformat(tweet["created_at"].replace("Z", "+00:00"))
        assert mention.conversation_id == tweet["conversation_id"]
        assert mention.lang_hint == tweet["lang"]
        assert mention.mentions_brand is True  # "@NordlysShop" counts too
    assert by_id["1790412334455667799"].parent_id == "1790412334455667788"
    assert by_id["1790409988776655443"].parent_id == ""
    assert json.loads(result.cursor)["since"] == page["meta"]["newest_id"]


def test_sandbox_answers_in_x_v2_shape(sandbox: Sandbox) -> None:
    _tweet(sandbox, "@nordlysshop where is my parcel")
    body = requests.get(f"{sandbox.url}/2/users/{BRAND_X_USER_ID}/mentions", timeout=5,
                        headers={"Authorization": "Bearer test"},
                        params={"expansions": "author_id", "user.fields": "public_metrics,verified",
                                "tweet.fields": "created_at", "max_results": 5}).json()
    assert set(body) == {"data", "includes", "meta"}
    assert set(body["data"][0]) == {"id", "text", "edit_history_tweet_ids", "created_at"}
    assert set(body["includes"]["users"][0]) == {"id", "name", "username", "public_metrics", "verified"}
    assert body["meta"] == {"newest_id": body["data"][0]["id"], "oldest_id": body["data"][0]["id"],
                            "result_count": 1}


def test_reply_to_post_that_does_not_mention_brand_gets_x_403_as_refused(sandbox: Sandbox) -> None:
    expected = json.loads((FIXTURES / "reply_forbidden.json").read_text())["detail"]
    tweet_id = _tweet(sandbox, "nordlys shop is the worst", user_id="777", username="stranger")
    with pytest.raises(Refused) as caught:
        _source(sandbox).reply_public(target=_target(tweet_id, kind="mention", author_id="777"), text="Sorry!")
    assert str(caught.value) == f"X refused the post: {expected}"
    assert sandbox.x_posts() == []


def test_keyword_hit_is_refused_before_any_request(sandbox: Sandbox) -> None:
    tweet_id = _tweet(sandbox, "nordlys shop lost my parcel")
    with pytest.raises(Refused, match="forbids automated replies"):
        _source(sandbox).reply_public(target=_target(tweet_id, kind="search", mentions_brand=False), text="Hi")
    assert "POST /2/tweets" not in sandbox.stats()["requests"]


def test_reply_is_posted_in_the_conversation_and_found_again(sandbox: Sandbox) -> None:
    tweet_id = _tweet(sandbox, "@nordlysshop my order 123 is late")
    other_id = _tweet(sandbox, "@nordlysshop also late", user_id="5151", username="ola")
    source = _source(sandbox)
    text = "Sorry about that! Please DM us your order number."

    result = source.reply_public(target=_target(tweet_id), text=text)

    [posted] = sandbox.x_posts()
    assert (posted["kind"], posted["in_reply_to"], posted["text"], posted["id"]) == \
        ("reply", tweet_id, text, result.external_id)
    assert result.url == f"https://x.com/{BRAND_X_HANDLE}/status/{result.external_id}"
    assert result.dm_link == DM_LINK
    assert source.find_reply(target=_target(tweet_id), text=text) == result
    assert source.find_reply(target=_target(other_id, author_id="5151"), text=text) is None
    # the brand's reply is not a mention of the brand
    assert result.external_id not in [m.external_id for m in source.fetch(kind="mention", cursor="").mentions]


def test_same_reply_twice_is_refused_as_duplicate(sandbox: Sandbox) -> None:
    first, second = _tweet(sandbox, "@nordlysshop hello"), _tweet(sandbox, "@nordlysshop hello again")
    source = _source(sandbox)
    source.reply_public(target=_target(first), text="We are on it")
    with pytest.raises(Refused, match="duplicate content"):
        source.reply_public(target=_target(second), text="We are on it")
    assert len(sandbox.x_posts()) == 1


def test_replies_need_user_context_credentials(sandbox: Sandbox) -> None:
    tweet_id = _tweet(sandbox, "@nordlysshop hello")
    with pytest.raises(AuthFailed, match="X_ACCESS_TOKEN"):
        _source(sandbox, user_auth=False).reply_public(target=_target(tweet_id), text="Hi")
    assert sandbox.x_posts() == []


def test_dm_only_to_someone_who_wrote_first(sandbox: Sandbox) -> None:
    source = _source(sandbox)
    tweet_id = _tweet(sandbox, "@nordlysshop hello")
    with pytest.raises(Refused, match="wrote to @nordlysshop first"):
        source.send_private(target=_target(tweet_id), text="Hi in private")
    dm = _target("dm-1", kind="dm", author_id="4242")
    with pytest.raises(Refused, match="cannot send messages to this user"):  # they never wrote to us in DM
        source.send_private(target=dm, text="Hi in private")
    [event_id] = sandbox.add_x_dms([{"text": "my order is late", "sender": {"id": "4242", "username": "per"}}])
    result = source.send_private(target=_target(event_id, kind="dm", author_id="4242"), text="Hi in private")
    [posted] = sandbox.x_posts()
    assert (posted["kind"], posted["recipient"], posted["text"]) == ("dm", "4242", "Hi in private")
    assert result.dm_link == DM_LINK and result.external_id == posted["id"]


def test_window_limit_raises_rate_limited_until_reset_then_recovers(sandbox: Sandbox) -> None:
    sandbox.configure(x_limits={"mentions": (2, 900)})
    source = _source(sandbox)
    first = source.fetch(kind="mention", cursor="")
    assert (first.quota.limit, first.quota.remaining) == (2, 1)
    source.fetch(kind="mention", cursor=first.cursor)
    with pytest.raises(RateLimited) as caught:
        source.fetch(kind="mention", cursor=first.cursor)
    assert caught.value.until == first.quota.reset_at
    sandbox.advance_clock(901)
    assert source.fetch(kind="mention", cursor=first.cursor).quota.remaining == 1


def test_more_than_800_new_mentions_warns_of_a_gap(sandbox: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    sandbox.configure(x_limits={"mentions": (100, 900)})
    source = _source(sandbox)
    _tweet(sandbox, "@nordlysshop first")
    cursor = source.fetch(kind="mention", cursor="").cursor
    sandbox.add_tweets([{"tweet": {"text": f"@nordlysshop number {n}"}, "author": {"id": "99"}} for n in range(850)])
    results = []
    with caplog.at_level(logging.WARNING, logger="connectors.x"):
        while True:
            result = source.fetch(kind="mention", cursor=cursor)
            cursor = result.cursor
            results.append(result)
            if not result.more:
                break
    assert sum(len(r.mentions) for r in results) == 800
    assert [r.gap_possible for r in results] == [False] * 7 + [True]
    assert "X keeps only the latest 800" in caplog.text


def test_a_small_backlog_is_no_gap(sandbox: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    source = _source(sandbox, page_size=5)
    _tweet(sandbox, "@nordlysshop first")
    cursor = source.fetch(kind="mention", cursor="").cursor
    for n in range(12):
        _tweet(sandbox, f"@nordlysshop more {n}")
    gaps = []
    while True:
        result = source.fetch(kind="mention", cursor=cursor)
        cursor, gaps = result.cursor, [*gaps, result.gap_possible]
        if not result.more:
            break
    assert gaps == [False, False, False] and "800" not in caplog.text


def test_created_at_is_utc_aware(sandbox: Sandbox) -> None:
    _tweet(sandbox, "@nordlysshop hi")
    [mention] = _source(sandbox).fetch(kind="mention", cursor="").mentions
    assert mention.created_at.tzinfo is not None and mention.created_at.utcoffset().total_seconds() == 0
    assert abs((sandbox.daemon_clock.now() - mention.created_at).total_seconds()) < 60


def test_search_cursor_older_than_seven_days_restarts_at_the_window_and_warns(
        sandbox: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    source = _source(sandbox)
    # the last post read is just inside the 7 days now, and no newer one was found since
    almost_a_week = datetime.fromtimestamp(sandbox.now() - 7 * 24 * 3600 + 30, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    sandbox.add_tweets({"tweet": {"text": "nordlys parcel one", "created_at": almost_a_week}})
    cursor = source.fetch(kind="search", cursor="", query="parcel").cursor
    assert set(json.loads(cursor)) == {"since", "since_at"}
    new_id = _tweet(sandbox, "nordlys parcel two")
    with caplog.at_level(logging.WARNING, logger="connectors.x"):
        result = source.fetch(kind="search", cursor=cursor, query="parcel")
    assert [m.external_id for m in result.mentions] == [new_id]
    assert result.gap_possible is True
    assert "older than the 7 days recent search covers" in caplog.text
    assert json.loads(result.cursor)["since"] == new_id


def test_direct_messages_drain_to_the_stored_id_and_our_own_dms_are_the_brands(sandbox: Sandbox) -> None:
    source = _source(sandbox, page_size=2)
    customer = {"id": "4242", "username": "kari", "name": "Kari N"}
    sandbox.add_x_dms([{"text": f"old {n}", "sender": customer} for n in range(3)])
    start = source.fetch(kind="dm", cursor="")  # a new source: the newest page, not a month of history
    assert ([m.text for m in start.mentions], start.more) == (["old 2", "old 1"], False)
    first = sandbox.add_x_dms([{"text": f"message {n}", "sender": customer} for n in range(3)])
    pages = []
    cursor = start.cursor
    for _ in range(4):
        result = source.fetch(kind="dm", cursor=cursor)
        cursor = result.cursor
        pages.append(([m.text for m in result.mentions], result.more))
        if not result.more:
            break
    assert pages == [(["message 2", "message 1"], True), (["message 0"], False)]  # newest first, X's order
    assert source.fetch(kind="dm", cursor=cursor).mentions == []  # nothing twice, across restarts too
    reply = source.send_private(target=_target(first[-1], kind="dm", author_id="4242"), text="We are on it")
    [ours] = source.fetch(kind="dm", cursor=cursor).mentions
    assert (ours.external_id, ours.text, ours.from_brand, ours.author.id) == \
        (reply.external_id, "We are on it", True, BRAND_X_USER_ID)
    assert ours.conversation_id == f"4242-{BRAND_X_USER_ID}"  # X's one-to-one id: the smaller user id first
    # a crash after posting: reconciliation finds the DM instead of sending it again
    found = source.find_reply(target=_target(first[-1], kind="dm", author_id="4242"), text="We are on it")
    assert found is not None and found.external_id == reply.external_id


def test_direct_messages_need_user_context(sandbox: Sandbox) -> None:
    sandbox.add_x_dms([{"text": "hello", "sender": {"id": "4242"}}])
    with pytest.raises(AuthFailed, match="X_ACCESS_TOKEN"):
        _source(sandbox, user_auth=False).fetch(kind="dm", cursor="")
    # X itself refuses an app-only bearer token on dm_events
    answer = requests.get(f"{sandbox.url}/2/dm_events", headers={"Authorization": "Bearer app-only"}, timeout=5)
    assert answer.status_code == 403 and answer.json()["title"] == "Unsupported Authentication"
