"""case.private_author_id: the id a customer has in private messages (a Facebook PSID), so that their
Messenger reply after a private reply continues the comment's case.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("case", sa.Column("private_author_id", sa.String(), nullable=True))
    op.create_index("ix_case_private_author_id", "case", ["private_author_id"])


def downgrade() -> None:
    op.drop_index("ix_case_private_author_id", table_name="case")
    op.drop_column("case", "private_author_id")
