"""Stored mentions as the rules see them: MentionFacts from a Mention row, read back without writing.

The triage Score is stored beside each mention, so nothing is triaged again: the facts are the
ones the pipeline evaluated when the mention arrived (monitor/cases/pipeline.py `_facts`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from monitor.model import Mention
from monitor.rules.match import MentionFacts

__all__ = ["StoredMention", "facts_of", "read_mention", "read_period"]

_COLUMNS = ("id", "platform", "kind", "source", "external_id", "conversation_id", "author_id", "author_handle",
            "author_name", "author_followers", "author_verified", "text", "url", "mentions_brand", "from_brand",
            "created_at", "lang", "sentiment", "complaint", "categories", "rule", "case_id")


@dataclass(frozen=True, slots=True)
class StoredMention:
    """The columns of a Mention row that the rules and a backtest look at (no raw payload)."""

    id: int
    platform: str
    kind: str
    source: str
    external_id: str
    conversation_id: str
    author_id: str
    author_handle: str
    author_name: str
    author_followers: int
    author_verified: bool
    text: str
    url: str
    mentions_brand: bool
    from_brand: bool
    created_at: datetime | None
    lang: str
    sentiment: float | None
    complaint: float
    categories: tuple[str, ...]
    rule: str  # the rule that decided it when it was stored
    case_id: int | None

    @property
    def author(self) -> str:
        return f"@{self.author_handle}" if self.author_handle else (self.author_name or self.author_id)


def facts_of(row: StoredMention) -> MentionFacts:
    return MentionFacts(
        platform=row.platform, kind=row.kind, text=row.text, lang=row.lang, sentiment=row.sentiment,
        complaint=row.complaint, categories=row.categories, followers=row.author_followers,
        verified=row.author_verified, mentions_brand=row.mentions_brand, from_brand=row.from_brand,
        source=row.source,
    )


def _select() -> sa.Select[tuple[object, ...]]:
    table = Mention.__table__
    return sa.select(*(table.c[name] for name in _COLUMNS))


def _row(values: sa.Row[tuple[object, ...]]) -> StoredMention:
    data = dict(zip(_COLUMNS, values, strict=True))
    data["categories"] = tuple(data["categories"] or ())
    data["author_verified"] = bool(data["author_verified"])
    data["mentions_brand"] = bool(data["mentions_brand"])
    data["from_brand"] = bool(data["from_brand"])
    return StoredMention(**data)  # type: ignore[arg-type]


def read_mention(engine: Engine, *, mention_id: int) -> StoredMention | None:
    with engine.connect() as conn:
        found = conn.execute(_select().where(Mention.__table__.c.id == mention_id)).first()
    return _row(found) if found is not None else None


def read_period(engine: Engine, *, since: datetime, until: datetime, chunk: int = 5000) -> Iterator[StoredMention]:
    """Every mention created in [since, until), oldest first, read in chunks (keyset on id)."""
    table = Mention.__table__
    query = _select().where(table.c.created_at >= since, table.c.created_at < until) \
        .order_by(table.c.created_at, table.c.id)
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=chunk).execute(query)
        for values in result:
            yield _row(values)
