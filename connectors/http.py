"""Shared HTTP plumbing for the SDK-based connectors: sandbox host rewriting, timeouts, secret redaction.

tweepy and facebook-sdk hardcode their platform hosts.  Mounting `PlatformAdapter` on the SDK's
requests.Session sends the same requests to a sandbox instead, and gives every request a timeout
(tweepy passes none).  `redact` and the log filter keep tokens out of logs and error messages:
Graph tokens travel in query strings, which urllib3 logs at DEBUG and requests puts in
ConnectionError texts; tweepy logs request headers (the bearer token) at DEBUG.
"""

from __future__ import annotations

import logging
import threading
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

REDACTED = "[redacted]"
_MIN_SECRET_LEN = 6  # shorter values would redact ordinary words
_secrets: set[str] = set()
_secrets_lock = threading.Lock()
# Loggers that may print URLs or headers of SDK requests.
# (A logger's filters see only records logged on that very logger, so children are listed.)
_SDK_LOGGERS = ("tweepy.client", "urllib3.connectionpool", "requests", "facebook", "connectors.x",
                "connectors.facebook", "connectors.http",
                # OAuth 1.0a signing logs the consumer key and access token at DEBUG
                "requests_oauthlib.oauth1_auth", "oauthlib.oauth1.rfc5849")


def register_secrets(*values: str) -> None:
    """Remember values that must never appear in a log record or an error message."""
    with _secrets_lock:
        _secrets.update(v for v in values if v and len(v) >= _MIN_SECRET_LEN)
    _install_filter()


def redact(text: str) -> str:
    with _secrets_lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is not ours to fix here
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


_filter = _RedactingFilter()


def _install_filter() -> None:
    for name in _SDK_LOGGERS:
        logger = logging.getLogger(name)
        if _filter not in logger.filters:
            logger.addFilter(_filter)


class PlatformAdapter(HTTPAdapter):
    """Sends requests meant for a platform host to `base_url` (when set) with a default timeout."""

    def __init__(self, *, base_url: str | None, timeout: float) -> None:
        super().__init__(max_retries=0)  # one attempt per call: retries belong to the core
        self.base_url = base_url.rstrip("/") if base_url else None
        self.timeout = timeout

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: Any = True, cert: Any = None, proxies: Any = None) -> requests.Response:
        if self.base_url and request.url:
            target = urlsplit(self.base_url)
            parts = urlsplit(request.url)
            request.url = urlunsplit((target.scheme, target.netloc, target.path + parts.path, parts.query, ""))
            proxies = {}  # the sandbox is on loopback: never through a proxy
        return super().send(request, stream=stream, timeout=timeout if timeout is not None else self.timeout,
                            verify=verify, cert=cert, proxies=proxies)


def mount_platform(session: requests.Session, *, hosts: tuple[str, ...], base_url: str | None,
                   timeout: float) -> None:
    """Route `hosts` (e.g. "https://api.twitter.com/") through a PlatformAdapter."""
    adapter = PlatformAdapter(base_url=base_url, timeout=timeout)
    for host in hosts:
        session.mount(host, adapter)
    if base_url:
        session.trust_env = False  # no proxy or .netrc for the loopback sandbox
