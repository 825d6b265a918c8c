"""case: an index on (channel, opened_at) for storm control's channel budget, which counts a channel's
recent alerts on every page; without it SQLite and PostgreSQL read every case ever opened (SCAN case).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_case_channel_window", "case", ["channel", "opened_at"])


def downgrade() -> None:
    op.drop_index("ix_case_channel_window", table_name="case")
