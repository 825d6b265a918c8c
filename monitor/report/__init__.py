"""Reporting: KPIs as plain data, their rendering, charts and the scheduled digest."""
