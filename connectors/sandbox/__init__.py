"""Loopback fakes of the X API v2, the Graph API and the Slack Web API (see server.py)."""

from connectors.sandbox.server import Sandbox, serve_forever

__all__ = ["Sandbox", "serve_forever"]
