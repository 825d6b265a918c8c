"""Slack: the notifier (slack-sdk), interactivity (slack-bolt) and Block Kit rendering."""
