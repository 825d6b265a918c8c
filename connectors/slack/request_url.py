"""Slack's HTTP mode: the Bolt app behind a Request URL, which Slack (or the sandbox's page) POSTs to, signed.

Bolt checks each request's X-Slack-Signature against the signing secret before any listener runs.
"""

from __future__ import annotations

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

from connectors.wsgi import WsgiServer

EVENTS_PATH = "/slack/events"  # Bolt's default path for events, actions, commands and views


def serve_request_url(app: App, *, host: str = "127.0.0.1", port: int = 0) -> WsgiServer:
    """Serve `app` over HTTP; the Request URL is the returned server's `.url` + EVENTS_PATH."""
    server = WsgiServer(SlackRequestHandler(app, path=EVENTS_PATH), host=host, port=port, name="slack-request-url")
    server.request_url = server.url + EVENTS_PATH  # type: ignore[attr-defined]
    return server.start()
