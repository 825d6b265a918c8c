"""case: the alert's columns lose Slack's name (the core knows no Slack): slack_channel -> alert_channel,
slack_ts -> alert_ref (the notifier's reference to the message: Slack's ts), slack_rendered ->
countdown_step (the countdown label the alert was last rendered with).  Renamed in place: rows stay.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

RENAMES = (("slack_channel", "alert_channel"), ("slack_ts", "alert_ref"), ("slack_rendered", "countdown_step"))


def upgrade() -> None:
    for old, new in RENAMES:
        op.alter_column("case", old, new_column_name=new, existing_type=sa.String(), existing_nullable=False)


def downgrade() -> None:
    for old, new in RENAMES:
        op.alter_column("case", new, new_column_name=old, existing_type=sa.String(), existing_nullable=False)
