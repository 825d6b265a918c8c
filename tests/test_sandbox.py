"""The sandbox itself: control API, X search syntax, faults, clock, stats, Graph paging, Slack via slack_sdk, seed."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from connectors.sandbox import Sandbox
from connectors.sandbox.seed import SeedError, load_seed
from monitor.clock import SettableClock
from tests import sandbox_fixtures
from tests.sandbox_fixtures import BRAND_X_USER_ID, PAGE_ID

sandbox = sandbox_fixtures.sandbox  # the shared fixture, as tests/conftest.py also offers it

SEARCH = "/2/tweets/search/recent"
AUTH = {"Authorization": "Bearer sandbox-test"}


def _post(box: Sandbox, path: str, payload: object) -> requests.Response:
    return requests.post(box.url + path, json=payload, timeout=5)


def _get(box: Sandbox, path: str, **params: object) -> requests.Response:
    return requests.get(box.url + path, params=params, headers=AUTH, timeout=5)


def _search(box: Sandbox, query: str) -> list[str]:
    body = _get(box, SEARCH, query=query).json()
    return sorted(t["text"] for t in body.get("data", []))


@pytest.fixture
def slack(sandbox: Sandbox) -> WebClient:
    return WebClient(token="xoxb-sandbox-test", base_url=sandbox.url + "/api/")


# ---------------------------------------------------------------------- X


def test_control_api_tweets_get_defaults_and_reach_mentions_only_if_they_mention_the_brand(sandbox: Sandbox) -> None:
    answer = _post(sandbox, "/_sandbox/x/tweets", [
        {"tweet": {"text": "@nordlysshop broken zipper"}, "author": {"id": "11", "username": "kari"}},
        {"tweet": {"text": "nordlysshop is fine I guess"}, "author": {"id": "12", "username": "ola"}},
    ])
    assert answer.status_code == 201
    first, second = answer.json()["ids"]
    assert int(second) > int(first)
    body = _get(sandbox, f"/2/users/{BRAND_X_USER_ID}/mentions",
                **{"tweet.fields": "created_at,conversation_id,lang"}).json()
    [tweet] = body["data"]
    assert tweet["id"] == first and tweet["conversation_id"] == first and tweet["lang"] == "en"
    assert tweet["edit_history_tweet_ids"] == [first] and tweet["created_at"].endswith("Z")


def test_search_query_subset(sandbox: Sandbox) -> None:
    sandbox.add_tweets([
        {"tweet": {"text": "Nordlys Shop lost my parcel"}, "author": {"id": "1", "username": "kari"}},
        {"tweet": {"text": "RT @kari: Nordlys Shop lost my parcel"}, "author": {"id": "2", "username": "ola"}},
        {"tweet": {"text": "@NordlysShop refund please"}, "author": {"id": "3", "username": "per"}},
        {"tweet": {"text": "shop lost in the nordlys"}, "author": {"id": "4", "username": "anne"}},
        {"tweet": {"text": "We love our customers"}, "author": {"id": BRAND_X_USER_ID}},
    ])
    assert _search(sandbox, '"nordlys shop" -is:retweet') == ["Nordlys Shop lost my parcel"]
    assert _search(sandbox, "nordlys lost") == ["Nordlys Shop lost my parcel", "RT @kari: Nordlys Shop lost my parcel",
                                                "shop lost in the nordlys"]
    assert _search(sandbox, "@nordlysshop OR customers") == ["@NordlysShop refund please", "We love our customers"]
    assert _search(sandbox, "(parcel OR refund) -from:kari -is:retweet") == ["@NordlysShop refund please"]
    assert _search(sandbox, "from:nordlysshop") == ["We love our customers"]
    assert _get(sandbox, SEARCH, query="(unbalanced").status_code == 400


def test_search_reaches_back_seven_days_only(sandbox: Sandbox) -> None:
    sandbox.add_tweets({"tweet": {"text": "old parcel complaint"}})
    sandbox.advance_clock(7 * 24 * 3600 + 1)
    sandbox.add_tweets({"tweet": {"text": "new parcel complaint"}})
    assert _search(sandbox, "parcel") == ["new parcel complaint"]


def test_x_rate_limit_headers_and_429_until_reset(sandbox: Sandbox) -> None:
    sandbox.configure(x_limits={"search": (2, 900)})
    first = _get(sandbox, SEARCH, query="x")
    reset = int(first.headers["x-rate-limit-reset"])
    assert (first.headers["x-rate-limit-limit"], first.headers["x-rate-limit-remaining"]) == ("2", "1")
    assert 899 <= reset - sandbox.now() <= 900
    assert _get(sandbox, SEARCH, query="x").status_code == 200
    limited = _get(sandbox, SEARCH, query="x")
    assert limited.status_code == 429 and limited.json()["title"] == "Too Many Requests"
    assert limited.headers["x-rate-limit-remaining"] == "0" and int(limited.headers["x-rate-limit-reset"]) == reset
    requests.post(sandbox.url + "/_sandbox/clock", json={"advance_s": 900}, timeout=5)
    assert _get(sandbox, SEARCH, query="x").status_code == 200


def test_faults_hit_the_next_n_matching_requests(sandbox: Sandbox) -> None:
    assert _post(sandbox, "/_sandbox/faults", {"platform": "x", "path": "/2/tweets/search", "status": 503,
                                               "times": 2}).status_code == 201
    mentions = _get(sandbox, f"/2/users/{BRAND_X_USER_ID}/mentions")
    assert mentions.status_code == 200  # other paths are untouched
    assert [_get(sandbox, SEARCH, query="a").status_code for _ in range(3)] == [503, 503, 200]
    _post(sandbox, "/_sandbox/faults", {"platform": "x", "path": "/2/", "body": "malformed"})
    broken = _get(sandbox, SEARCH, query="a")
    assert broken.status_code == 200
    with pytest.raises(ValueError):
        broken.json()
    _post(sandbox, "/_sandbox/faults", {"platform": "x", "path": "/2/", "delay_s": 0.5})
    with pytest.raises(requests.Timeout):
        requests.get(sandbox.url + SEARCH, params={"query": "a"}, headers=AUTH, timeout=0.2)
    assert _post(sandbox, "/_sandbox/faults", {"platform": "myspace", "status": 500}).status_code == 400


def test_x_reads_need_a_token(sandbox: Sandbox) -> None:
    answer = requests.get(sandbox.url + SEARCH, params={"query": "a"}, timeout=5)
    assert answer.status_code == 401 and answer.json()["title"] == "Unauthorized"


def test_expired_token_faults_use_each_platform_error(sandbox: Sandbox, slack: WebClient) -> None:
    for platform in ("x", "facebook", "slack"):
        sandbox.add_fault(platform=platform, status=401)
    x = _get(sandbox, SEARCH, query="a")
    assert x.status_code == 401 and x.json()["title"] == "Unauthorized"
    graph = _get(sandbox, f"/v21.0/{PAGE_ID}/feed", access_token="t").json()["error"]
    assert (graph["type"], graph["code"], graph["error_subcode"]) == ("OAuthException", 190, 463)
    assert graph["message"].startswith("Error validating access token: Session has expired")
    with pytest.raises(SlackApiError) as caught:
        slack.auth_test()
    assert caught.value.response["error"] == "invalid_auth"


def test_stats_count_requests_and_served_items_and_reset_clears(sandbox: Sandbox) -> None:
    [tweet_id] = sandbox.add_tweets({"tweet": {"text": "@nordlysshop hi"}})
    for _ in range(2):
        _get(sandbox, f"/2/users/{BRAND_X_USER_ID}/mentions")
    stats = _get(sandbox, "/_sandbox/stats").json()
    assert stats["requests"] == {"GET /2/users/:id/mentions": 2}
    assert stats["served"] == {tweet_id: 2}
    assert _post(sandbox, "/_sandbox/reset", {}).json() == {"ok": True}
    assert _get(sandbox, "/_sandbox/stats").json() == {"requests": {}, "served": {}}
    assert "data" not in _get(sandbox, f"/2/users/{BRAND_X_USER_ID}/mentions").json()


def test_posts_by_the_bot_are_listed(sandbox: Sandbox) -> None:
    assert _get(sandbox, "/_sandbox/x/posts").json() == []
    assert _get(sandbox, "/_sandbox/facebook/posts").json() == []


# ---------------------------------------------------------------------- Graph


def test_graph_cursor_paging_follows_next_links(sandbox: Sandbox) -> None:
    ids = sandbox.add_fb_comments([{"message": f"c{n}", "from": {"id": "1", "name": "A"}} for n in range(5)])
    post_id = next(iter(sandbox.graph.posts))
    seen: list[str] = []
    page = _get(sandbox, f"/v21.0/{post_id}/comments", access_token="t", limit=2).json()
    while True:
        seen += [c["id"] for c in page["data"]]
        assert set(page["paging"]["cursors"]) == {"before", "after"}
        if "next" not in page["paging"]:
            break
        page = requests.get(page["paging"]["next"], params={"access_token": "t"}, timeout=5).json()
    assert seen == ids


def test_graph_inbox_paging_lists_every_conversation_active_in_the_same_millisecond(
        sandbox: Sandbox, clock: SettableClock) -> None:
    """Conversations whose activity times round to the same millisecond: the inbox's order and its
    cursors agree, so paging one at a time lists each (a bulk of messages once hid some)."""
    sandbox.add_fb_messages([{"from": {"id": "65009", "name": "Q"}, "message": "an older conversation"}])
    clock.advance(10)
    now = clock.now().timestamp()
    people = [{"id": f"6500{n}", "name": f"P{n}"} for n in range(4)]
    # later conversations active a fraction of a millisecond earlier than older ones
    sandbox.add_fb_messages([{"from": p, "message": "hi", "created_time": now + 0.0004 - n * 0.0001}
                             for n, p in enumerate(people)])
    seen: list[str] = []
    page = _get(sandbox, f"/v21.0/{PAGE_ID}/conversations", access_token="t", limit=1, fields="id,updated_time").json()
    while True:
        seen += [c["id"] for c in page["data"]]
        if "next" not in page.get("paging", {}):
            break
        page = requests.get(page["paging"]["next"], params={"access_token": "t"}, timeout=5).json()
    assert sorted(seen) == sorted(sandbox.graph.conversations)


def test_graph_headers_errors_and_conversations(sandbox: Sandbox) -> None:
    sandbox.add_fb_messages({"from": {"id": "7300", "name": "Per"}, "message": "hei"})
    answer = _get(sandbox, f"/v21.0/{PAGE_ID}/conversations", access_token="t", platform="messenger",
                  fields="id,updated_time,participants")
    usage = json.loads(answer.headers["X-Business-Use-Case-Usage"])[PAGE_ID][0]
    assert set(usage) == {"type", "call_count", "total_cputime", "total_time", "estimated_time_to_regain_access"}
    [conv] = answer.json()["data"]
    assert conv["participants"]["data"][0] == {"id": "7300", "name": "Per"}
    missing = _get(sandbox, "/v21.0/999/comments", access_token="t")
    assert missing.status_code == 400 and missing.json()["error"]["code"] == 100
    no_token = requests.get(f"{sandbox.url}/v21.0/{PAGE_ID}/feed", timeout=5).json()["error"]
    assert no_token["type"] == "OAuthException"


# ---------------------------------------------------------------------- Slack


def test_slack_post_update_ephemeral_and_metadata_round_trip(sandbox: Sandbox, slack: WebClient) -> None:
    assert slack.auth_test()["user_id"] == "U0SANDBOX1"
    metadata = {"event_type": "mention_case", "event_payload": {"case_id": 42}}
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Angry customer*"}}]
    posted = slack.chat_postMessage(channel="C0ALERTS", text="Angry customer", blocks=blocks, metadata=metadata)
    slack.chat_postMessage(channel="C0ALERTS", text="thread note", thread_ts=posted["ts"])
    slack.chat_update(channel="C0ALERTS", ts=posted["ts"], text="Angry customer (claimed)")
    slack.chat_postEphemeral(channel="C0ALERTS", user="U123", text="only you")

    history = slack.conversations_history(channel="C0ALERTS", include_all_metadata=True)["messages"]
    assert [(m["text"], m.get("metadata")) for m in history] == [("Angry customer (claimed)", metadata)]
    replies = slack.conversations_replies(channel="C0ALERTS", ts=posted["ts"])["messages"]
    assert [m["text"] for m in replies] == ["Angry customer (claimed)", "thread note"]
    log = _get(sandbox, "/_sandbox/slack/messages").json()
    assert [(m["op"], m["text"], m["thread_ts"]) for m in log] == [
        ("post", "Angry customer", ""), ("post", "thread note", posted["ts"]),
        ("update", "Angry customer (claimed)", ""), ("ephemeral", "only you", "")]
    assert log[0]["blocks"] == blocks and log[0]["metadata"] == metadata


def test_slack_channel_rate_limit_answers_429_with_retry_after(sandbox: Sandbox, slack: WebClient) -> None:
    sandbox.configure(slack_burst=3)
    for n in range(3):
        slack.chat_postMessage(channel="C0ALERTS", text=f"m{n}")
    with pytest.raises(SlackApiError) as caught:
        slack.chat_postMessage(channel="C0ALERTS", text="one too many")
    assert caught.value.response.status_code == 429
    assert caught.value.response.headers["Retry-After"] in ("1", ["1"])
    slack.chat_postMessage(channel="C0OTHER", text="another channel is fine")
    sandbox.advance_clock(1)
    slack.chat_postMessage(channel="C0ALERTS", text="after waiting")
    assert [m["text"] for m in sandbox.slack_messages()][-2:] == ["another channel is fine", "after waiting"]


def test_slack_file_upload_v2_and_views_publish(sandbox: Sandbox, slack: WebClient) -> None:
    posted = slack.chat_postMessage(channel="C0REPORTS", text="Weekly report")
    slack.files_upload_v2(channel="C0REPORTS", content=b"x" * 1234, filename="report.png", title="Week 20",
                          initial_comment="Here it is", thread_ts=posted["ts"])
    last = sandbox.slack_messages()[-1]
    assert (last["text"], last["thread_ts"], last["files"][0]["title"], last["files"][0]["length"]) == \
        ("Here it is", posted["ts"], "Week 20", 1234)
    view = {"type": "home", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "3 open cases"}}]}
    assert slack.views_publish(user_id="U123", view=view)["ok"]
    assert sandbox.slack_views()[0]["blocks"] == view["blocks"]


# ---------------------------------------------------------------------- seed


def test_seed_is_released_over_time(sandbox: Sandbox, tmp_path: Path) -> None:
    seed = tmp_path / "mentions.jsonl"
    lines = [
        {"platform": "x", "kind": "mention", "external_id": "x-1", "author": {"id": "11", "handle": "kari",
         "name": "Kari", "followers": 50}, "text": "my parcel is late", "delay_s": 0},
        {"platform": "facebook", "kind": "comment", "external_id": "", "author": {"id": "71", "name": "Ola"},
         "text": "Where is my refund?", "delay_s": 0.5},
        {"platform": "facebook", "kind": "message", "author": {"id": "73", "name": "Per"}, "text": "hei",
         "conversation_id": "t_1", "delay_s": 0.5},
    ]
    seed.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    items = load_seed(seed)
    assert [(i.platform, i.kind) for i in items] == [("x", "mention"), ("facebook", "comment"),
                                                     ("facebook", "message")]
    thread = sandbox.play(items, speed=10)
    thread.join(timeout=5)
    [tweet] = _get(sandbox, f"/2/users/{BRAND_X_USER_ID}/mentions").json()["data"]
    assert tweet["text"] == "@nordlysshop my parcel is late"
    assert [c["message"] for c in sandbox.graph.comments.values()] == ["Where is my refund?"]
    assert [m["message"] for m in sandbox.graph.messages.values()] == ["hei"]


def test_seed_plays_in_order_with_delays(sandbox: Sandbox, tmp_path: Path) -> None:
    seed = tmp_path / "s.jsonl"
    seed.write_text(json.dumps({"platform": "x", "kind": "search", "author": {"id": "1"}, "text": "a",
                                "delay_s": 0.4}) + "\n")
    started = time.monotonic()
    sandbox.play(load_seed(seed), speed=2).join(timeout=5)
    assert 0.15 <= time.monotonic() - started < 1.5
    assert len(sandbox.x.tweets) == 1


def test_bad_seed_line_names_file_and_line(tmp_path: Path) -> None:
    seed = tmp_path / "bad.jsonl"
    seed.write_text('{"platform": "x", "text": "ok", "author": {}}\n{"platform": "myspace", "text": "?"}\n')
    with pytest.raises(SeedError, match=r"bad.jsonl:2: .*unknown platform 'myspace'"):
        load_seed(seed)
