"""Deciding: ingest a page into cases, acknowledgement plans, the team's actions, SLA deadlines."""
