"""Turn our normalized mentions JSONL (examples/mentions.jsonl) into sandbox payloads, released over time.

One JSON object per line: {"platform": "x|facebook", "kind": "mention|search|comment|message",
"external_id", "conversation_id", "parent_id", "author": {"id", "handle", "name", "followers",
"verified"}, "text", "url", "created_at"?, "lang_hint"?, "mentions_brand"?, "from_brand"?, "delay_s"?}.
`delay_s` is the pause before the item, counted from the previous one (default 3 s).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


class Sandbox(Protocol):
    """What seeding needs of the sandbox (server.py imports this module, never the other way)."""

    x: Any
    graph: Any

    def add_tweets(self, items: list[dict[str, Any]]) -> Any: ...

    def add_fb_messages(self, items: list[dict[str, Any]]) -> Any: ...

    def add_fb_comments(self, items: list[dict[str, Any]]) -> Any: ...

DEFAULT_DELAY_S = 3.0


class SeedError(ValueError):
    """A seed line cannot be used; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class SeedItem:
    delay_s: float
    platform: str  # "x" or "facebook"
    payload: dict[str, Any]  # what the control API takes for that platform and kind
    kind: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def load_seed(path: str | Path, *, keep_times: bool = False) -> list[SeedItem]:
    """Read a JSONL seed file.  Without keep_times, items are stamped when released (a live demo)."""
    items = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            record = json.loads(line)
            items.append(to_seed_item(record, keep_times=keep_times))
        except (ValueError, KeyError, TypeError) as exc:
            raise SeedError(f"{path}:{number}: cannot use this seed line ({exc})") from exc
    return items


def to_seed_item(record: dict[str, Any], *, keep_times: bool = False) -> SeedItem:
    platform, kind = record["platform"], record.get("kind", "")
    author = record.get("author") or {}
    created = {"created_at": record["created_at"]} if keep_times and record.get("created_at") else {}
    delay = float(record.get("delay_s", DEFAULT_DELAY_S))
    extra = {"from_brand": bool(record.get("from_brand")), "mentions_brand": bool(record.get("mentions_brand"))}
    if platform == "x":
        tweet: dict[str, Any] = {"text": record["text"], **created}
        if str(record.get("external_id", "")).isdigit():
            tweet["id"] = str(record["external_id"])
        if str(record.get("conversation_id", "")).isdigit():
            tweet["conversation_id"] = str(record["conversation_id"])
        if str(record.get("parent_id", "")).isdigit():
            tweet["referenced_tweets"] = [{"type": "replied_to", "id": str(record["parent_id"])}]
        if record.get("lang_hint"):
            tweet["lang"] = record["lang_hint"]
        user = {"id": str(author.get("id") or ""), "username": author.get("handle", ""),
                "name": author.get("name", ""), "verified": bool(author.get("verified", False)),
                "public_metrics": {"followers_count": int(author.get("followers", 0)), "following_count": 0,
                                   "tweet_count": 1, "listed_count": 0}}
        return SeedItem(delay, "x", {"tweet": tweet, "author": {k: v for k, v in user.items() if v != ""}},
                        kind or "mention", extra)
    if platform == "facebook":
        person = {"id": str(author.get("id") or ""), "name": author.get("name") or author.get("handle", "")}
        stamp = {"created_time": record["created_at"]} if created else {}
        if kind == "message":
            payload = {"from": person, "message": record["text"], **stamp}
            if record.get("conversation_id"):
                payload["conversation_id"] = str(record["conversation_id"])
            return SeedItem(delay, "facebook", payload, "message", extra)
        payload = {"message": record["text"], "from": person, **stamp}
        if record.get("external_id"):
            payload["id"] = str(record["external_id"])
        if record.get("parent_id"):
            payload["parent"] = {"id": str(record["parent_id"])}
        if record.get("conversation_id"):
            payload["post_id"] = str(record["conversation_id"])
        return SeedItem(delay, "facebook", payload, "comment", extra)
    raise ValueError(f"unknown platform {platform!r}; expected x or facebook")


def inject(sandbox: Sandbox, item: SeedItem) -> None:
    """Hand one seed item to the sandbox as the control API would."""
    if item.platform == "x":
        payload = json.loads(json.dumps(item.payload))
        tweet_id = payload["tweet"].get("id")
        if tweet_id and sandbox.x.tweets and int(tweet_id) <= max(sandbox.x.tweets):
            # X ids grow with time; an older id released now would sit below since_id cursors
            payload["tweet"].pop("id")
        handle = sandbox.x.brand["username"]
        if item.extra.get("from_brand"):
            payload["author"] = {"id": sandbox.x.brand["id"]}
        elif item.kind == "mention" and f"@{handle}".lower() not in payload["tweet"]["text"].lower():
            # a "mention" reaches the mentions timeline only if its text @mentions the brand
            payload["tweet"]["text"] = f"@{handle} {payload['tweet']['text']}"
        sandbox.add_tweets([payload])
    elif item.kind == "message":
        sandbox.add_fb_messages([item.payload])
    else:
        payload = dict(item.payload)
        if item.extra.get("from_brand"):
            payload["from"] = dict(sandbox.graph.page)
        sandbox.add_fb_comments([payload])


def release(sandbox: Sandbox, items: list[SeedItem], *, speed: float = 1.0,
            stop: threading.Event | None = None) -> None:
    """Inject items one after another, honouring their delays divided by `speed`."""
    stop = stop or threading.Event()
    for item in items:
        if stop.wait(max(0.0, item.delay_s) / max(speed, 1e-6)):
            return
        inject(sandbox, item)
