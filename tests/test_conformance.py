"""One conformance suite, run against every Source through the sandbox and the real SDKs.

Each case says how to build the source, how to inject one item into the fake platform and
which request path serves its items; the tests are the same for all of them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.base import AuthFailed, BadPayload, ConnectorError, RateLimited, Source, Transient
from connectors.facebook import FacebookSource
from connectors.sandbox import Sandbox
from connectors.x import XSource
from tests import sandbox_fixtures
from tests.sandbox_fixtures import BRAND_X_HANDLE, BRAND_X_USER_ID, PAGE_ID

sandbox = sandbox_fixtures.sandbox  # the shared fixture, as tests/conftest.py also offers it

X_BEARER = "AAAAAAAAAAAAAAAAAAAAAconformanceBearer0001"
X_SECRETS = ("consumerKeyConf01", "consumerSecretConf01", "accessTokenConf01", "accessSecretConf01")
FB_TOKEN = "EAAGconformancePageToken0001ZZ"
POST_ID = f"{PAGE_ID}_900000000000001"
CONVERSATION_ID = "t_900000000000777"


@dataclass(frozen=True)
class Case:
    id: str
    kind: str
    platform: str
    secrets: tuple[str, ...]
    items_path: str  # request path prefix that serves this kind's items (fault target)
    min_page: int  # smallest page the platform accepts for this kind
    build: Callable[..., Any]
    inject: Callable[[Sandbox, int, float], dict[str, Any]]  # -> what a user should see stored
    query: str = ""
    # no since_id (X's dm_events): the newest item already stored is read again where a drain ends,
    # and the connector drops it itself
    boundary_read: bool = False


def _x_source(box: Sandbox, *, timeout: float = 2.0, page_size: int = 100) -> XSource:
    return XSource(bearer_token=X_BEARER, user_id=BRAND_X_USER_ID, brand_handle=BRAND_X_HANDLE,
                   api_key=X_SECRETS[0], api_secret=X_SECRETS[1], access_token=X_SECRETS[2],
                   access_token_secret=X_SECRETS[3], base_url=box.url, timeout=timeout, page_size=page_size,
                   clock=box.daemon_clock)


def _fb_source(box: Sandbox, *, timeout: float = 2.0, page_size: int = 100) -> FacebookSource:
    return FacebookSource(page_token=FB_TOKEN, page_id=PAGE_ID, base_url=box.url, timeout=timeout,
                          page_size=page_size, clock=box.daemon_clock)


def _x_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _fb_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def _inject_tweet(text: str) -> Callable[[Sandbox, int, float], dict[str, Any]]:
    def inject(box: Sandbox, n: int, epoch: float) -> dict[str, Any]:
        author = {"id": f"55{n:04d}", "username": f"customer{n}", "name": f"Customer {n}",
                  "public_metrics": {"followers_count": 100 + n}, "verified": n % 2 == 0}
        [tweet_id] = box.add_tweets([{"tweet": {"text": text.format(n=n), "created_at": _x_time(epoch)},
                                      "author": author}])
        return {"id": tweet_id, "text": text.format(n=n), "author_id": author["id"], "author_name": author["name"],
                "url": f"https://x.com/customer{n}/status/{tweet_id}"}
    return inject


def _inject_dm(box: Sandbox, n: int, epoch: float) -> dict[str, Any]:
    sender = {"id": f"56{n:04d}", "username": f"customer{n}", "name": f"Customer {n}"}
    [event_id] = box.add_x_dms([{"text": f"order {n} never came", "sender": sender, "created_at": _x_time(epoch)}])
    return {"id": event_id, "text": f"order {n} never came", "author_id": sender["id"], "author_name": sender["name"],
            "url": f"https://x.com/messages/{BRAND_X_USER_ID}-{sender['id']}"
            if int(BRAND_X_USER_ID) < int(sender["id"]) else f"https://x.com/messages/{sender['id']}-{BRAND_X_USER_ID}"}


def _inject_comment(box: Sandbox, n: int, epoch: float) -> dict[str, Any]:
    if POST_ID not in box.graph.posts:
        box.graph.add_post(post_id=POST_ID, message="Spring collection is here")
    person = {"id": f"71{n:06d}", "name": f"Commenter {n}"}
    [comment_id] = box.add_fb_comments([{"message": f"Where is order {n}?", "from": person, "post_id": POST_ID,
                                         "created_time": _fb_time(epoch)}])
    return {"id": comment_id, "text": f"Where is order {n}?", "author_id": person["id"], "author_name": person["name"],
            "url": f"https://www.facebook.com/{POST_ID}?comment_id={comment_id}"}


def _inject_message(box: Sandbox, n: int, epoch: float) -> dict[str, Any]:
    person = {"id": "7300000000001", "name": "Messenger Customer"}
    [message_id] = box.add_fb_messages([{"conversation_id": CONVERSATION_ID, "from": person,
                                         "message": f"Refund {n} please", "created_time": _fb_time(epoch)}])
    return {"id": message_id, "text": f"Refund {n} please", "author_id": person["id"], "author_name": person["name"],
            "url": "https://business.facebook.com/latest/inbox/messenger"}


CASES = [
    Case("x-mention", "mention", "x", (X_BEARER, *X_SECRETS), f"/2/users/{BRAND_X_USER_ID}/mentions", 5,
         _x_source, _inject_tweet("@nordlysshop parcel {n} is lost")),
    Case("x-search", "search", "x", (X_BEARER, *X_SECRETS), "/2/tweets/search/recent", 10,
         _x_source, _inject_tweet("the nordlys parcel {n} is lost"), query='"nordlys parcel" -is:retweet'),
    Case("x-dm", "dm", "x", (X_BEARER, *X_SECRETS), "/2/dm_events", 1, _x_source, _inject_dm, boundary_read=True),
    Case("facebook-comment", "comment", "facebook", (FB_TOKEN,), f"/{POST_ID}/comments", 1,
         _fb_source, _inject_comment),
    Case("facebook-message", "message", "facebook", (FB_TOKEN,), f"/{CONVERSATION_ID}/messages", 1,
         _fb_source, _inject_message),
]


@pytest.fixture(params=CASES, ids=[c.id for c in CASES])
def case(request: pytest.FixtureRequest) -> Case:
    return request.param


def _fetch(source: Source, case: Case, cursor: str = ""):
    return source.fetch(kind=case.kind, cursor=cursor, query=case.query)


def _primed(box: Sandbox, source: Source, case: Case) -> tuple[str, dict[str, Any]]:
    """One item injected and fetched: the cursor a running monitor would hold."""
    first = case.inject(box, 0, box.now() - 120)
    result = _fetch(source, case)
    assert [m.external_id for m in result.mentions if not m.from_brand] == [first["id"]]
    return result.cursor, first


def test_source_protocol(sandbox: Sandbox, case: Case) -> None:
    source = case.build(sandbox)
    assert isinstance(source, Source)
    assert case.kind in source.kinds
    assert source.name == case.platform


def test_success_stores_author_text_url_and_time(sandbox: Sandbox, case: Case) -> None:
    epoch = int(sandbox.now()) - 300
    expected = case.inject(sandbox, 7, epoch)
    result = _fetch(case.build(sandbox), case)
    [mention] = result.mentions
    assert mention.platform == case.platform and mention.kind == case.kind
    assert mention.external_id == expected["id"]
    assert mention.text == expected["text"]
    assert (mention.author.id, mention.author.name) == (expected["author_id"], expected["author_name"])
    assert mention.url.startswith(expected["url"])
    assert mention.created_at == datetime.fromtimestamp(epoch, UTC)
    assert result.more is False and result.cursor
    assert result.quota.remaining is not None


def test_empty_page(sandbox: Sandbox, case: Case) -> None:
    source = case.build(sandbox)
    result = _fetch(source, case)
    assert result.mentions == [] and result.more is False
    again = _fetch(source, case, result.cursor)
    assert again.mentions == []


def test_pagination_reads_each_item_exactly_once(sandbox: Sandbox, case: Case) -> None:
    """Each item is delivered once; a source that re-reads a window behind its cursor (Facebook's
    overlap reads, `rereads_s`) may hand back items already delivered, which the core drops by id."""
    source = case.build(sandbox, page_size=case.min_page)
    rereads = getattr(source, "rereads_s", 0) > 0
    cursor, first = _primed(sandbox, source, case)
    count = case.min_page * 2 + 1  # three pages
    injected = [case.inject(sandbox, n, sandbox.now() - 60 + n)["id"] for n in range(1, count + 1)]
    sandbox.advance_clock(1)  # the next poll comes at least a second later (Graph's times are whole seconds)
    got: list[str] = []
    mores = []
    for _ in range(10):
        result = _fetch(source, case, cursor)
        cursor = result.cursor  # the core stores each page with its cursor
        got += [m.external_id for m in result.mentions]
        mores.append(result.more)
        if not result.more:
            break
    assert mores[0] is True and mores[-1] is False
    delivered = {first["id"], *got}
    if rereads:
        assert set(got) - {first["id"]} == set(injected)
    else:
        assert sorted(got) == sorted(injected)
    # restart: a new source object with the stored cursor delivers nothing new
    assert {m.external_id for m in _fetch(case.build(sandbox, page_size=case.min_page), case, cursor).mentions} \
        <= (delivered if rereads else set())
    late = case.inject(sandbox, 99, sandbox.now())
    sandbox.advance_clock(1)
    again = [m.external_id for m in _fetch(source, case, cursor).mentions]
    assert [i for i in again if i not in delivered] == [late["id"]]
    if not rereads:
        assert again == [late["id"]]
    served = sandbox.stats()["served"]
    most = 3 if rereads else 2 if case.boundary_read else 1  # reads that go back over items behind the cursor
    assert all(1 <= served.get(i, 0) <= most for i in [first["id"], *injected, late["id"]]), served


def _fault(box: Sandbox, case: Case, **fault: Any) -> None:
    box.add_fault(platform=case.platform, path=case.items_path, **fault)


def test_rate_limited_carries_reset_time(sandbox: Sandbox, case: Case) -> None:
    source = case.build(sandbox)
    cursor, first = _primed(sandbox, source, case)
    case.inject(sandbox, 1, sandbox.now())
    _fault(sandbox, case, status=429)
    with pytest.raises(RateLimited) as caught:
        _fetch(source, case, cursor)
    until = caught.value.until
    now = sandbox.daemon_clock.now()  # the one clock the sandbox and the connector share
    assert now < until <= now + timedelta(minutes=16)
    # nothing was lost: after the limit, the item is read (overlap reads may bring the first again)
    assert len([m for m in _fetch(source, case, cursor).mentions if m.external_id != first["id"]]) == 1


@pytest.mark.parametrize("status", [500, 503])
def test_server_error_is_transient(sandbox: Sandbox, case: Case, status: int) -> None:
    _fault(sandbox, case, status=status)
    source = case.build(sandbox)
    case.inject(sandbox, 1, sandbox.now())
    with pytest.raises(Transient):
        _fetch(source, case)


def test_timeout_is_transient(sandbox: Sandbox, case: Case) -> None:
    source = case.build(sandbox, timeout=0.3)
    case.inject(sandbox, 1, sandbox.now())
    _fault(sandbox, case, delay_s=1.0)
    started = time.monotonic()
    with pytest.raises(Transient, match="timed out"):
        _fetch(source, case)
    assert time.monotonic() - started < 0.9


def test_malformed_body_is_bad_payload_and_nothing_returned(sandbox: Sandbox, case: Case) -> None:
    source = case.build(sandbox)
    cursor, first = _primed(sandbox, source, case)
    case.inject(sandbox, 1, sandbox.now())
    _fault(sandbox, case, body="malformed")
    with pytest.raises(BadPayload):
        _fetch(source, case, cursor)
    # the cursor the core still holds reads the item once the platform recovers
    assert len([m for m in _fetch(source, case, cursor).mentions if m.external_id != first["id"]]) == 1


def test_expired_token_is_auth_failed(sandbox: Sandbox, case: Case) -> None:
    source = case.build(sandbox)
    case.inject(sandbox, 1, sandbox.now())
    sandbox.add_fault(platform=case.platform, path="", status=401)
    with pytest.raises(AuthFailed):
        _fetch(source, case)


def test_secrets_absent_from_repr_logs_and_errors(sandbox: Sandbox, case: Case,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # urllib3 logs URLs (Graph token) and tweepy headers at DEBUG
    for sdk in ("urllib3", "tweepy", "requests_oauthlib", "slack_sdk"):  # `run` in-process quietens them
        caplog.set_level(logging.DEBUG, logger=sdk)
    source = case.build(sandbox)
    case.inject(sandbox, 1, sandbox.now())
    texts = [repr(source), str(vars(source).get("user_id", ""))]
    assert _fetch(source, case).mentions
    for fault in ({"status": 401}, {"status": 500}, {"status": 429}, {"body": "malformed"}):
        sandbox.add_fault(platform=case.platform, path="", **fault)
        with pytest.raises(ConnectorError) as caught:
            _fetch(source, case)
        texts.append(str(caught.value))
    sandbox.stop()  # connection refused: requests puts the full URL in its error text
    with pytest.raises(Transient) as caught:
        _fetch(source, case)
    texts.append(str(caught.value))
    assert caplog.records, "the SDKs should have logged their requests at DEBUG"
    everything = "\n".join(texts) + caplog.text
    for secret in case.secrets:
        assert secret not in everything
