"""Replay source: our normalized JSONL, one mention per line, read like a platform page by page.

The cursor is the number of lines already stored, so a restart resumes where the
last stored page ended.  Used by `mention-monitor run --replay FILE` and tests.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from connectors.base import BadPayload, FetchResult, Refused, ReplyResult, ReplyTarget
from connectors.platforms import REPLAY, Platform
from monitor.model import Author, NewMention

PAGE_SIZE = 50


class ReplaySource:
    platform: ClassVar[Platform] = REPLAY
    name: ClassVar[str] = REPLAY.name
    kinds: ClassVar[frozenset[str]] = frozenset(REPLAY.kinds)
    auto_reply_kinds: ClassVar[frozenset[str]] = REPLAY.auto_reply_kinds
    max_reply_length: ClassVar[int] = REPLAY.template_limit
    requires_brand_mention: ClassVar[bool] = REPLAY.requires_brand_mention
    private_reply_kinds: ClassVar[frozenset[str]] = REPLAY.private_reply_kinds
    secret_names: ClassVar[tuple[str, ...]] = REPLAY.secret_names

    def __init__(self, *, path: str | Path, page_size: int = PAGE_SIZE, now: datetime | None = None) -> None:
        self.path = Path(path)
        self.page_size = page_size
        self._now = now

    def __repr__(self) -> str:
        return f"ReplaySource(path={str(self.path)!r})"

    def fetch(self, *, kind: str = "", cursor: str = "", query: str = "") -> FetchResult:
        start = int(cursor or 0)
        lines = self.path.read_text(encoding="utf-8").splitlines()
        page = lines[start:start + self.page_size]
        mentions = []
        for offset, line in enumerate(page, start=start + 1):
            if not line.strip():
                continue
            try:
                mentions.append(parse_line(json.loads(line), now=self._now or datetime.now(UTC)))
            except (ValueError, KeyError, TypeError) as exc:
                raise BadPayload(f"{self.path.name}:{offset}: {exc}") from exc
        end = start + len(page)
        return FetchResult(mentions=mentions, cursor=str(end), more=end < len(lines), reads=1 if page else 0)

    def reply_public(self, *, target: ReplyTarget, text: str) -> ReplyResult:
        raise Refused("a replayed file cannot be replied to")

    def send_private(self, *, target: ReplyTarget, text: str) -> ReplyResult:
        raise Refused("a replayed file cannot be replied to")

    @property
    def dm_link(self) -> str:
        return ""  # a replayed file has no inbox

    def backfill_cursor(self, *, since: datetime) -> str:
        return "0"  # a file has no time index: read it from the start

    def find_reply(self, *, target: ReplyTarget, text: str) -> ReplyResult | None:
        return None

    def check_auth(self) -> dict[str, str]:
        return {"name": str(self.path)}  # a file has no credentials: it is who it is


def parse_line(obj: dict[str, Any], *, now: datetime) -> NewMention:
    """One line of our normalized JSONL into a NewMention (missing created_at: now)."""
    author = obj.get("author") or {}
    created = obj.get("created_at")
    created_at = datetime.fromisoformat(created.replace("Z", "+00:00")) if created else now
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=UTC)
    text = obj["text"]
    if not isinstance(text, str):
        raise TypeError("text must be a string")
    return NewMention(
        platform=str(obj["platform"]),
        kind=str(obj.get("kind", "mention")),
        external_id=str(obj["external_id"]),
        text=text,
        author=Author(
            id=str(author.get("id", "")), handle=str(author.get("handle", "")), name=str(author.get("name", "")),
            followers=int(author.get("followers", 0) or 0), verified=bool(author.get("verified", False)),
        ),
        created_at=created_at,
        conversation_id=str(obj.get("conversation_id") or obj["external_id"]),
        parent_id=str(obj.get("parent_id") or ""),
        url=str(obj.get("url") or ""),
        lang_hint=str(obj.get("lang_hint") or ""),
        mentions_brand=bool(obj.get("mentions_brand", False)),
        from_brand=bool(obj.get("from_brand", False)),
        raw=obj,
    )
