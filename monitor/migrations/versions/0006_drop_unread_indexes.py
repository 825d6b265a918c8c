"""Indexes no query reads, dropped: every ingest paid for them on each row it inserted.

mention: `platform` (the unique (platform, external_id) index serves a platform's look-ups),
`conversation_id` and `author_id` (no query finds mentions by either; cases are found by their own
columns).  case: `group_key` (the first column of `ix_case_group_window`, which storm control searches).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

DROPPED = (
    ("mention", "ix_mention_platform", ["platform"]),
    ("mention", "ix_mention_conversation_id", ["conversation_id"]),
    ("mention", "ix_mention_author_id", ["author_id"]),
    ("case", "ix_case_group_key", ["group_key"]),
)


def upgrade() -> None:
    for table, name, _ in DROPPED:
        op.drop_index(name, table_name=table)


def downgrade() -> None:
    for table, name, columns in DROPPED:
        op.create_index(name, table, columns)
