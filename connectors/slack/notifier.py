"""Slack notifier on slack_sdk.WebClient: alerts, updates, threads, ephemerals, files.

One attempt per call, except short 429s, which slack_sdk retries itself (at most
`max_rate_limit_retries` times, only when Slack asks to wait a few seconds).  Every
SDK failure leaves as one of the error types of connectors.base.
"""

from __future__ import annotations

import http.client
import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, ClassVar

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError, SlackRequestError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from connectors.base import AuthFailed, BadPayload, PostedMessage, RateLimited, Refused, Transient
from connectors.slack import blocks as slack_blocks
from monitor import messages as msg
from monitor.clock import Clock
from monitor.views import AlertView, ThreadLine

log = logging.getLogger(__name__)

AUTH_ERRORS = frozenset({
    "invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive",
    "no_permission", "missing_scope", "not_allowed_token_type", "ekm_access_denied",
})
RATE_ERRORS = frozenset({"ratelimited", "rate_limited", "message_limit_exceeded"})
TRANSIENT_ERRORS = frozenset({"internal_error", "fatal_error", "service_unavailable", "request_timeout"})
MAX_WAIT_SECONDS = 2  # longer Retry-After: tell the core (a stop must not wait behind a sleep)
NON_JSON_PREFIX = "Received a response in a non-JSON format"  # how slack_sdk reports an unreadable body
HISTORY_PAGES = 5  # find_by_metadata looks at the newest 5 x 200 messages


class ShortRateLimitRetryHandler(RateLimitErrorRetryHandler):
    """slack_sdk's 429 handler, but only for waits the core would not want to schedule itself."""

    def __init__(self, *, max_retry_count: int = 2, max_wait_seconds: int = MAX_WAIT_SECONDS) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait_seconds = max_wait_seconds

    def _can_retry(self, *, state: RetryState, request: HttpRequest,
                   response: HttpResponse | None = None, error: Exception | None = None) -> bool:
        if response is None or response.status_code != 429:
            return False
        return _retry_after(response.headers) <= self.max_wait_seconds


def _retry_after(headers: Any) -> int:
    for name, value in (headers or {}).items():
        if name.lower() == "retry-after":
            value = value[0] if isinstance(value, list) else value
            try:
                return max(0, int(float(value)))
            except (TypeError, ValueError):
                return 60
    return 1


def api_base_url(base_url: str | None) -> str:
    """slack_sdk's base_url from either a server root (the sandbox's url) or an .../api/ url."""
    if not base_url:
        return WebClient.BASE_URL
    base = base_url.rstrip("/")
    return (base if base.endswith("/api") else base + "/api") + "/"


class SlackNotifier:
    """Posts what the core asks to a Slack workspace through the Web API."""

    name: ClassVar[str] = "slack"
    secret_names: ClassVar[tuple[str, ...]] = ("SLACK_BOT_TOKEN",)
    # Slack "Rate limits": chat.postMessage, about 1 message per second per channel, short bursts
    # allowed.  The outbox paces each channel to this (monitor.delivery.outbox.ChannelPacer).
    messages_per_second: float | None = 1.0
    burst: int = 10
    lines_per_message: int = slack_blocks.THREAD_LINES_PER_MESSAGE  # thread notes coalesced into one post

    def __init__(self, *, token: str, base_url: str | None = None, timeout: float = 10.0,
                 max_rate_limit_retries: int = 2, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        handlers: list[RetryHandler] = [ShortRateLimitRetryHandler(max_retry_count=max_rate_limit_retries)]
        # urllib takes a float timeout although slack_sdk's hint says int
        kwargs: dict[str, Any] = {"token": token, "timeout": timeout, "retry_handlers": handlers}
        if base_url:
            kwargs["base_url"] = api_base_url(base_url)
        self.client = WebClient(**kwargs)
        self._channel_ids: dict[str, str] = {}  # "#name" -> C..., learnt from posts or conversations.list

    def __repr__(self) -> str:  # the token must never reach a log line
        return f"SlackNotifier(base_url={self.client.base_url!r})"

    # ----------------------------------------------------------------- Notifier protocol

    def render_alert(self, view: AlertView) -> tuple[str, list[dict[str, Any]]]:
        return slack_blocks.render_alert(view)

    def render_thread(self, lines: Sequence[ThreadLine]) -> tuple[str, list[dict[str, Any]]]:
        """Several thread notes as one message (at most `lines_per_message`), members with their buttons."""
        return slack_blocks.render_thread(lines)

    def escape(self, text: str) -> str:
        """Customer text safe inside our mrkdwn: cannot ping, link or break markup."""
        return slack_blocks.escape_text(text)

    def post(self, *, channel: str, text: str, blocks: Sequence[dict[str, Any]] | None = None,
             thread_ts: str = "", metadata: dict[str, Any] | None = None,
             broadcast: bool = False) -> PostedMessage:
        """chat.postMessage; `metadata` is either Slack's {event_type, event_payload} or a bare
        payload, which is sent as an mm_alert event.  broadcast: a thread reply also shown in the channel."""
        args: dict[str, Any] = {"channel": channel, "text": text, "unfurl_links": False, "unfurl_media": False}
        if blocks:
            args["blocks"] = list(blocks)
        if thread_ts:
            args["thread_ts"] = thread_ts
            if broadcast:
                args["reply_broadcast"] = True
        if metadata:
            args["metadata"] = metadata if "event_type" in metadata else {
                "event_type": slack_blocks.METADATA_EVENT_TYPE,
                "event_payload": {k: str(v) for k, v in metadata.items()}}
        with _translated("chat.postMessage", channel, clock=self.clock):
            resp = self.client.chat_postMessage(**args)
            posted = PostedMessage(channel=str(resp.get("channel") or channel), ts=str(resp["ts"]))
        if channel.startswith("#"):
            self._channel_ids[channel] = posted.channel
        return posted

    def update(self, *, channel: str, ts: str, text: str,
               blocks: Sequence[dict[str, Any]] | None = None) -> None:
        with _translated("chat.update", channel, clock=self.clock):
            self.client.chat_update(channel=channel, ts=ts, text=text, blocks=list(blocks or []))

    def find_by_metadata(self, *, channel: str, key: str, value: str) -> PostedMessage | None:
        """Newest message in `channel` whose metadata payload has {key: value} (conversations.history)."""
        channel = self.channel_id(channel)  # conversations.history takes ids, rules.yaml may say "#name"
        cursor = ""
        with _translated("conversations.history", channel, clock=self.clock):
            for _ in range(HISTORY_PAGES):
                args: dict[str, Any] = {"channel": channel, "include_all_metadata": True, "limit": 200}
                if cursor:
                    args["cursor"] = cursor
                resp = self.client.conversations_history(**args)
                for message in resp.get("messages") or []:
                    payload = (message.get("metadata") or {}).get("event_payload") or {}
                    if str(payload.get(key, "")) == value and message.get("ts"):
                        return PostedMessage(channel=channel, ts=str(message["ts"]))
                cursor = ((resp.get("response_metadata") or {}).get("next_cursor")) or ""
                if not resp.get("has_more") or not cursor:
                    break
        return None

    def channel_id(self, channel: str) -> str:
        """The id of "#name" (conversations.list, remembered); ids and unknown names come back as given."""
        if not channel.startswith("#"):
            return channel
        if channel in self._channel_ids:
            return self._channel_ids[channel]
        cursor = ""
        try:
            with _translated("conversations.list", "", clock=self.clock):
                for _ in range(20):
                    resp = self.client.conversations_list(types="public_channel,private_channel",
                                                          exclude_archived=True, limit=1000, cursor=cursor or None)
                    for found in resp.get("channels") or []:
                        self._channel_ids["#" + str(found.get("name", ""))] = str(found.get("id", ""))
                    cursor = ((resp.get("response_metadata") or {}).get("next_cursor")) or ""
                    if channel in self._channel_ids or not cursor:
                        break
        except (Refused, BadPayload) as exc:
            # Slack accepts a name in some methods; better to try than to give up reconciliation.
            log.warning("could not look up the id of Slack channel %s: %s", channel, exc)
        return self._channel_ids.get(channel, channel)

    def permalink(self, *, channel: str, ts: str) -> str:
        """chat.getPermalink: a link to the message that opens it in Slack."""
        channel = self.channel_id(channel)
        with _translated("chat.getPermalink", channel, clock=self.clock):
            return str(self.client.chat_getPermalink(channel=channel, message_ts=ts).get("permalink") or "")

    def mention_user(self, user_id: str) -> str:
        """`<@U…>` for a person, `<!subteam^S…>` for a user group: Slack notifies them."""
        return slack_blocks.mention(user_id)

    def time_ref(self, when: datetime, *, fallback: str) -> str:
        """A time every reader sees in their own time zone (Slack's <!date^...> formatting)."""
        return slack_blocks.slack_date(when, fallback=fallback)

    def post_ephemeral(self, *, channel: str, user: str, text: str) -> None:
        with _translated("chat.postEphemeral", channel, clock=self.clock):
            self.client.chat_postEphemeral(channel=channel, user=user, text=text)

    def upload_files(self, *, channel: str, files: list[tuple[str, bytes]], title: str,
                     initial_comment: str) -> None:
        """files upload v2 (getUploadURLExternal + completeUploadExternal), all in one message."""
        uploads = [{"file": content, "filename": name, "title": title} for name, content in files]
        channel_id = self.channel_id(channel)  # files.completeUploadExternal takes ids, never "#names"
        if channel_id.startswith("#"):
            raise Refused(msg.SLACK_CHANNEL_UNKNOWN.format(channel=channel))
        channel = channel_id
        with _translated("files.uploadV2", channel, clock=self.clock):
            self.client.files_upload_v2(channel=channel, file_uploads=uploads, initial_comment=initial_comment)

    def channels(self) -> dict[str, tuple[str, bool]]:
        """Every channel the bot can see, "#name" -> (id, whether the bot is a member) (conversations.list)."""
        found: dict[str, tuple[str, bool]] = {}
        cursor = ""
        with _translated("conversations.list", "", clock=self.clock):
            for _ in range(20):
                resp = self.client.conversations_list(types="public_channel,private_channel",
                                                      exclude_archived=True, limit=1000, cursor=cursor or None)
                for channel in resp.get("channels") or []:
                    found["#" + str(channel.get("name", ""))] = (str(channel.get("id", "")),
                                                                bool(channel.get("is_member")))
                cursor = ((resp.get("response_metadata") or {}).get("next_cursor")) or ""
                if not cursor:
                    break
        self._channel_ids.update({name: channel_id for name, (channel_id, _) in found.items()})
        return found

    def check_auth(self) -> dict[str, str]:
        """auth.test: who the token is (team, bot user); raises AuthFailed when it is not valid."""
        with _translated("auth.test", "", clock=self.clock):
            resp = self.client.auth_test()
            return {k: str(resp.get(k, "")) for k in ("team", "team_id", "user", "user_id", "bot_id")}


def check_app_token(*, token: str, base_url: str | None = None, timeout: float = 10.0) -> None:
    """apps.connections.open with the app-level token: what Socket Mode does first (raises AuthFailed)."""
    kwargs: dict[str, Any] = {"token": token, "timeout": timeout}
    if base_url:
        kwargs["base_url"] = api_base_url(base_url)
    client = WebClient(**kwargs)
    with _translated("apps.connections.open", "", clock=Clock()):
        client.apps_connections_open(app_token=token)


@contextmanager
def _translated(method: str, channel: str, *, clock: Clock) -> Iterator[None]:
    """Turn whatever slack_sdk raised into a connectors.base error (never with the token in it)."""
    where = f"Slack {method}" + (f" in {channel}" if channel else "")
    try:
        yield
    except SlackApiError as exc:
        raise _from_api_error(exc, where, now=clock.now()) from None
    except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, resets, bad status lines
        raise Transient(f"{where}: network problem ({type(exc).__name__})") from None
    except json.JSONDecodeError:
        raise BadPayload(f"{where}: Slack answered something that is not JSON") from None
    except (SlackRequestError, SlackClientError) as exc:
        raise BadPayload(f"{where}: {type(exc).__name__}") from None
    except KeyError as exc:
        raise BadPayload(f"{where}: answer lacks {exc}") from None


def _from_api_error(exc: SlackApiError, where: str, *, now: datetime) -> Exception:
    resp = exc.response
    status = getattr(resp, "status_code", 0) or 0
    data = getattr(resp, "data", None)
    error = str(data.get("error", "")) if isinstance(data, dict) else ""
    if status == 429 or error in RATE_ERRORS:
        wait = _retry_after(getattr(resp, "headers", {}) or {})
        return RateLimited(f"{where}: rate limited for {wait} s", until=now + timedelta(seconds=wait))
    if status >= 500 or error in TRANSIENT_ERRORS:
        return Transient(f"{where}: Slack answered {status} {error}".rstrip())
    if error in AUTH_ERRORS or status == 401:
        return AuthFailed(f"{where}: the Slack token was refused ({error or status}); "
                          "check SLACK_BOT_TOKEN and the app's scopes")
    if not isinstance(data, dict) or error.startswith(NON_JSON_PREFIX):
        return BadPayload(f"{where}: Slack answered something that is not JSON (HTTP {status})")
    if error:
        return Refused(f"{where}: Slack refused it ({error})")
    return BadPayload(f"{where}: unexpected answer (HTTP {status})")
