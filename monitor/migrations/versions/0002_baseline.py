"""Baseline: the schema of version 2 (case.backfilled_at included), the last one made by create_all.

On a fresh database this creates every table.  On a database an earlier release made (create_all,
with the `schema_version` marker 1 or 2) it adds what is missing (tables, indexes, nullable
columns), so that database ends up exactly here too; it then carries on with the later revisions.

The tables are written out as they were at version 2, not read from monitor.model, so that
this revision means the same thing after the models change.

Revision ID: 0002
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = None
branch_labels = None
depends_on = None

MARKER = "2"  # the setting row `schema_version` that releases before Alembic check
OLDER_MARKERS = frozenset({"1", "2"})


def baseline() -> sa.MetaData:
    metadata = sa.MetaData()
    sa.Table(
        "case", metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("platform", sa.String(), nullable=False),
        sa.Column("conversation_id", sa.String(), nullable=False),
        sa.Column("author_id", sa.String(), nullable=False),
        sa.Column("author_handle", sa.String(), nullable=False),
        sa.Column("first_mention_id", sa.Integer()),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("rule", sa.String(), nullable=False),
        sa.Column("severity", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("group_key", sa.String(), nullable=False),
        sa.Column("grouped_into", sa.Integer()),
        sa.Column("opened_at", sa.DateTime()),
        sa.Column("sla_seconds", sa.Integer(), nullable=False),
        sa.Column("sla_business_hours", sa.Boolean(), nullable=False),
        sa.Column("sla_due_at", sa.DateTime()),
        sa.Column("warned_at", sa.DateTime()),
        sa.Column("breached_at", sa.DateTime()),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column("assignee", sa.String(), nullable=False),
        sa.Column("claimed_at", sa.DateTime()),
        sa.Column("acknowledged_at", sa.DateTime()),
        sa.Column("first_response_at", sa.DateTime()),
        sa.Column("first_public_response_at", sa.DateTime()),
        sa.Column("moved_to_dm", sa.Boolean(), nullable=False),
        sa.Column("customer_dm_at", sa.DateTime()),
        sa.Column("ack_mode", sa.String(), nullable=False),
        sa.Column("ack_text", sa.String(), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("backfilled_at", sa.DateTime()),
        sa.Column("snoozed_until", sa.DateTime()),
        sa.Column("resolved_at", sa.DateTime()),
        sa.Column("last_mention_at", sa.DateTime()),
        sa.Column("mention_count", sa.Integer(), nullable=False),
        sa.Column("slack_channel", sa.String(), nullable=False),
        sa.Column("slack_ts", sa.String(), nullable=False),
        sa.Column("slack_rendered", sa.String(), nullable=False),
        sa.Index("ix_case_author_id", "author_id"),
        sa.Index("ix_case_conversation_id", "conversation_id"),
        sa.Index("ix_case_group_key", "group_key"),
        sa.Index("ix_case_group_window", "group_key", "opened_at"),
        sa.Index("ix_case_sla_due_at", "sla_due_at"),
        sa.Index("ix_case_state", "state"),
    )
    sa.Table(
        "cursor", metadata,
        sa.Column("source", sa.String(), primary_key=True),
        sa.Column("value", sa.String(), nullable=False),
        sa.Column("updated_at", sa.DateTime()),
    )
    sa.Table(
        "event", metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime()),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("detail", sa.JSON()),
        sa.Index("ix_event_case_id", "case_id"),
    )
    sa.Table(
        "lease", metadata,
        sa.Column("name", sa.String(), primary_key=True),
        sa.Column("holder", sa.String(), nullable=False),
        sa.Column("expires_at", sa.DateTime()),
    )
    sa.Table(
        "mention", metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("platform", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("external_id", sa.String(), nullable=False),
        sa.Column("conversation_id", sa.String(), nullable=False),
        sa.Column("parent_id", sa.String(), nullable=False),
        sa.Column("author_id", sa.String(), nullable=False),
        sa.Column("author_handle", sa.String(), nullable=False),
        sa.Column("author_name", sa.String(), nullable=False),
        sa.Column("author_followers", sa.Integer(), nullable=False),
        sa.Column("author_verified", sa.Boolean(), nullable=False),
        sa.Column("text", sa.String(), nullable=False),
        sa.Column("url", sa.String(), nullable=False),
        sa.Column("mentions_brand", sa.Boolean(), nullable=False),
        sa.Column("from_brand", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime()),
        sa.Column("fetched_at", sa.DateTime()),
        sa.Column("raw", sa.JSON()),
        sa.Column("lang", sa.String(), nullable=False),
        sa.Column("sentiment", sa.Float()),
        sa.Column("complaint", sa.Float(), nullable=False),
        sa.Column("categories", sa.JSON()),
        sa.Column("rule", sa.String(), nullable=False),
        sa.Column("case_id", sa.Integer()),
        sa.UniqueConstraint("platform", "external_id", name="uq_mention_platform_external"),
        sa.Index("ix_mention_author_id", "author_id"),
        sa.Index("ix_mention_case_id", "case_id"),
        sa.Index("ix_mention_conversation_id", "conversation_id"),
        sa.Index("ix_mention_created_at", "created_at"),
        sa.Index("ix_mention_platform", "platform"),
    )
    sa.Table(
        "mute", metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("author", sa.String(), nullable=False),
        sa.Column("keyword", sa.String(), nullable=False),
        sa.Column("rule", sa.String(), nullable=False),
        sa.Column("include_vip", sa.Boolean(), nullable=False),
        sa.Column("comment", sa.String(), nullable=False),
        sa.Column("created_by", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime()),
        sa.Column("until", sa.DateTime()),
        sa.Column("lifted_at", sa.DateTime()),
        sa.Column("lifted_by", sa.String(), nullable=False),
        sa.Index("ix_mute_until", "until"),
    )
    sa.Table(
        "mutedmention", metadata,
        sa.Column("mention_id", sa.Integer(), primary_key=True),
        sa.Column("at", sa.DateTime()),
        sa.Column("rule", sa.String(), nullable=False),
        sa.Column("silence", sa.String(), nullable=False),
        sa.Column("mute_id", sa.Integer()),
        sa.Index("ix_mutedmention_at", "at"),
    )
    sa.Table(
        "outbox", metadata,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("dedup_key", sa.String(), nullable=False),
        sa.Column("case_id", sa.Integer()),
        sa.Column("mention_id", sa.Integer()),
        sa.Column("author_id", sa.String(), nullable=False),
        sa.Column("platform", sa.String(), nullable=False),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("payload", sa.JSON()),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime()),
        sa.Column("next_attempt_at", sa.DateTime()),
        sa.Column("claimed_by", sa.String(), nullable=False),
        sa.Column("claimed_until", sa.DateTime()),
        sa.Column("sent_at", sa.DateTime()),
        sa.Column("result", sa.JSON()),
        sa.Column("error", sa.String(), nullable=False),
        sa.UniqueConstraint("dedup_key"),
        sa.Index("ix_outbox_author_id", "author_id"),
        sa.Index("ix_outbox_case_id", "case_id"),
        sa.Index("ix_outbox_due", "state", "next_attempt_at"),
        sa.Index("ix_outbox_reply_window", "kind", "platform", "created_at"),
    )
    sa.Table(
        "setting", metadata,
        sa.Column("key", sa.String(), primary_key=True),
        sa.Column("value", sa.String(), nullable=False),
    )
    sa.Table(
        "sourcehealth", metadata,
        sa.Column("source", sa.String(), primary_key=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("retry_at", sa.DateTime()),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_success_at", sa.DateTime()),
        sa.Column("last_error", sa.String(), nullable=False),
        sa.Column("operator_notified", sa.Boolean(), nullable=False),
        sa.Column("quota_remaining", sa.Integer()),
        sa.Column("quota_limit", sa.Integer()),
        sa.Column("quota_reset_at", sa.DateTime()),
        sa.Column("reads", sa.Integer(), nullable=False),
    )
    return metadata


def upgrade() -> None:
    bind = op.get_bind()
    metadata = baseline()
    inspector = sa.inspect(bind)
    existing = set(inspector.get_table_names())
    if "setting" in existing:
        found = bind.execute(sa.text("select value from setting where key = 'schema_version'")).scalar()
        if found is not None and found not in OLDER_MARKERS:
            raise RuntimeError(f"database schema version {found} is not one this release can upgrade")
    quote = bind.dialect.identifier_preparer.quote
    for table in metadata.sorted_tables:
        if table.name not in existing:
            table.create(bind)
            continue
        have = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in have:  # a release-1 database: case.backfilled_at
                if not column.nullable:  # an explicit check: the daemon runs with asserts stripped (-OO)
                    raise RuntimeError(f"{table.name}.{column.name} cannot be added in place")
                kind = column.type.compile(dialect=bind.dialect)
                bind.exec_driver_sql(f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(column.name)} {kind}")
        for index in table.indexes:
            index.create(bind, checkfirst=True)
    setting = metadata.tables["setting"]
    if bind.execute(sa.select(setting.c.key).where(setting.c.key == "schema_version")).first() is None:
        bind.execute(setting.insert().values(key="schema_version", value=MARKER))
    else:
        bind.execute(setting.update().where(setting.c.key == "schema_version").values(value=MARKER))


def downgrade() -> None:
    raise NotImplementedError("the baseline is not undone: restore a backup instead")
