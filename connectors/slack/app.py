"""Slack interactivity with slack-bolt: alert buttons, the Reply modal, /mentions, App Home, Socket Mode.

Handlers ack() first, then call the core's CaseActions; the core changes the case and
writes the chat.update through its outbox.  Here we only tell the clicking person,
ephemerally, when nothing happened or why not.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from slack_bolt import Ack, App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from connectors.slack import blocks as sb
from connectors.slack.notifier import ShortRateLimitRetryHandler, api_base_url
from monitor import messages as m
from monitor.clock import Clock

log = logging.getLogger(__name__)

GROUP_CACHE_SECONDS = 300.0
SNOOZE_TOMORROW_HOUR = 9


class Outcome(Protocol):
    ok: bool
    changed: bool
    message: str


class CaseActions(Protocol):
    """What the core (monitor.cases.actions.CaseActions) offers Slack; the handlers need nothing else."""

    def claim(self, *, case_id: int, user: str) -> Outcome: ...
    def acknowledge(self, *, case_id: int, user: str, authorised: bool, text: str | None = None) -> Outcome: ...
    def reply(self, *, case_id: int, user: str, authorised: bool, text: str, private: bool = False) -> Outcome: ...
    def private_window(self, *, case_id: int) -> Any: ...
    def snooze(self, *, case_id: int, user: str, minutes: int) -> Outcome: ...
    def resolve(self, *, case_id: int, user: str) -> Outcome: ...
    def open_cases(self) -> Sequence[Any]: ...
    def stats_today(self) -> dict[str, str]: ...
    def timezone(self) -> str: ...
    def mute_case(self, *, case_id: int, user: str, what: str) -> Outcome: ...
    def mute(self, *, user: str, text: str) -> Outcome: ...
    def unmute(self, *, user: str, text: str) -> Outcome: ...
    def silences(self) -> Sequence[Any]: ...


class Approvers:
    """Who may post publicly: listed user ids, or members of listed user groups (S...).

    Group members come from usergroups.users.list, cached for five minutes; when Slack
    cannot be asked, the answer is "no" (a public post is never made on a guess)."""

    def __init__(self, ids: Sequence[str], *, client: WebClient, ttl: float = GROUP_CACHE_SECONDS,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.users = frozenset(i for i in ids if not i.startswith("S"))
        self.groups = tuple(i for i in ids if i.startswith("S"))
        self.client, self.ttl, self.monotonic = client, ttl, monotonic
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def members(self, group: str) -> frozenset[str]:
        with self._lock:
            cached = self._cache.get(group)
            if cached and self.monotonic() - cached[0] < self.ttl:
                return cached[1]
        try:
            resp = self.client.usergroups_users_list(usergroup=group)
            found = frozenset(str(u) for u in resp.get("users") or [])
        except (SlackApiError, SlackClientError, OSError) as exc:
            log.warning("could not read members of Slack user group %s: %s", group, type(exc).__name__)
            return cached[1] if cached else frozenset()  # a stale list beats refusing everyone
        with self._lock:
            self._cache[group] = (self.monotonic(), found)
        return found

    def allows(self, user: str) -> bool:
        return user in self.users or any(user in self.members(g) for g in self.groups)


@dataclass(frozen=True, slots=True)
class _Click:
    case_id: int
    user: str
    channel: str
    value: str


def _click(body: dict[str, Any], action: dict[str, Any]) -> _Click | None:
    value = str((action.get("selected_option") or {}).get("value") or action.get("value") or "")
    channel = str((body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id") or "")
    try:
        case_id = int(value.partition(":")[0])
    except ValueError:
        return None
    return _Click(case_id=case_id, user=str(body["user"]["id"]), channel=channel, value=value)


def snooze_minutes(choice: str, *, now: datetime, tz: str) -> int:
    """Minutes for a snooze option: a number, or "tomorrow" = 09:00 next day in the team's zone."""
    if choice == "tomorrow":
        local = now.astimezone(sb.zone(tz))
        wake = (local + timedelta(days=1)).replace(hour=SNOOZE_TOMORROW_HOUR, minute=0, second=0, microsecond=0)
        return max(1, int((wake - local).total_seconds() // 60))
    return int(choice) if choice.isdigit() else 60


def build_app(*, token: str, actions: CaseActions, signing_secret: str = "", base_url: str | None = None,
              approvers: Sequence[str] = (), clock: Clock | None = None,
              process_before_response: bool = False) -> App:
    """The Bolt app answering our buttons, modal, /mentions and App Home.

    `process_before_response=True` runs each handler to the end before answering Slack
    (tests use it to see every effect once dispatch returns); Socket Mode keeps the default."""
    clock = clock or Clock()
    client = WebClient(token=token, base_url=api_base_url(base_url), retry_handlers=[ShortRateLimitRetryHandler()])
    # No auth.test while building: with Slack unreachable at start the daemon must still come up
    # (Bolt checks the token on the first event instead; Socket Mode's connect says what is wrong).
    app = App(client=client, signing_secret=signing_secret, process_before_response=process_before_response,
              name="mention-monitor", token_verification_enabled=False)
    allowed = Approvers(approvers, client=client)

    def tell(client: WebClient, click: _Click, text: str) -> None:
        if not click.channel:
            return
        try:
            client.chat_postEphemeral(channel=click.channel, user=click.user, text=text)
        except (SlackApiError, SlackClientError, OSError) as exc:
            log.warning("could not tell %s in %s: %s", click.user, click.channel, type(exc).__name__)

    def report(client: WebClient, click: _Click, outcome: Outcome) -> None:
        if not outcome.ok:
            tell(client, click, m.SLACK_ACTION_FAILED.format(message=outcome.message))
        elif not outcome.changed:
            tell(client, click, m.SLACK_NOTHING_CHANGED.format(message=outcome.message))

    def handler(run: Callable[[_Click, WebClient], None]) -> Callable[..., None]:
        def listener(ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
            ack()
            click = _click(body, action)
            if click is None:
                log.warning("button without a case id: %r", action.get("action_id"))
                return
            try:
                run(click, client)
            except Exception:  # the person must hear something; the log gets the detail
                log.exception("Slack action %s on case %s failed", action.get("action_id"), click.case_id)
                tell(client, click, m.SLACK_ACTION_FAILED.format(message="internal error, see the daemon log"))
        return listener

    def on_claim(click: _Click, client: WebClient) -> None:
        report(client, click, actions.claim(case_id=click.case_id, user=click.user))

    def on_ack(click: _Click, client: WebClient) -> None:
        if not allowed.allows(click.user):
            # Called anyway with authorised=False so the case's timeline records the refused attempt.
            actions.acknowledge(case_id=click.case_id, user=click.user, authorised=False)
            tell(client, click, m.SLACK_REFUSED_PUBLIC)
            return
        report(client, click, actions.acknowledge(case_id=click.case_id, user=click.user, authorised=True))

    def on_snooze(click: _Click, client: WebClient) -> None:
        choice = click.value.partition(":")[2] or "60"
        minutes = snooze_minutes(choice, now=clock.now(), tz=actions.timezone())
        report(client, click, actions.snooze(case_id=click.case_id, user=click.user, minutes=minutes))

    def on_resolve(click: _Click, client: WebClient) -> None:
        report(client, click, actions.resolve(case_id=click.case_id, user=click.user))

    def on_mute(click: _Click, client: WebClient) -> None:
        what = click.value.partition(":")[2] or "author"
        outcome = actions.mute_case(case_id=click.case_id, user=click.user, what=what)
        if outcome.ok and outcome.changed:
            tell(client, click, outcome.message)  # the confirmation: what, until when, how to lift it
        else:
            report(client, click, outcome)

    app.action(sb.ACTION_CLAIM)(handler(on_claim))
    app.action(sb.ACTION_ACK)(handler(on_ack))
    app.action(sb.ACTION_SNOOZE)(handler(on_snooze))
    app.action(sb.ACTION_RESOLVE)(handler(on_resolve))
    app.action(sb.ACTION_MUTE)(handler(on_mute))

    @app.action(sb.ACTION_REPLY)
    def on_reply(ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
        ack()
        click = _click(body, action)
        if click is None:
            return
        if not allowed.allows(click.user):
            tell(client, click, m.SLACK_REFUSED_PUBLIC)  # no text yet, so nothing for the core to record
            return
        line = next((c for c in actions.open_cases() if c.case_id == click.case_id), None)
        origin = f"{click.channel}:{(body.get('message') or {}).get('ts', '')}"
        window = actions.private_window(case_id=click.case_id)
        modal = sb.reply_modal(case_id=click.case_id, origin=origin,
                               author=line.author_handle if line else "", platform=line.platform if line else "",
                               text=line.text if line else "", dm_offered=window.offered, dm_open=window.open,
                               dm_reason=window.reason)
        try:
            client.views_open(trigger_id=body["trigger_id"], view=modal)
        except (SlackApiError, SlackClientError, OSError) as exc:
            log.warning("could not open the reply modal for case %s: %s", click.case_id, type(exc).__name__)
            tell(client, click, m.SLACK_ACTION_FAILED.format(message="Slack did not open the reply form"))

    @app.view(sb.REPLY_MODAL_CALLBACK)
    def on_reply_submit(ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        user = str(body["user"]["id"])
        case_part, _, origin = str(view.get("private_metadata", "")).partition("|")
        values = (view.get("state") or {}).get("values") or {}
        text = str(((values.get(sb.REPLY_INPUT_BLOCK) or {}).get(sb.REPLY_INPUT_ACTION) or {}).get("value") or "")
        where = ((values.get(sb.REPLY_WHERE_BLOCK) or {}).get(sb.REPLY_WHERE_ACTION) or {}).get("selected_option") or {}
        private = where.get("value") == sb.REPLY_WHERE_DM
        if not text.strip():
            ack(response_action="errors", errors={sb.REPLY_INPUT_BLOCK: m.SLACK_REPLY_EMPTY})
            return
        if not case_part.isdigit():
            ack(response_action="errors", errors={sb.REPLY_INPUT_BLOCK: m.SLACK_UNKNOWN_CASE})
            return
        case_id = int(case_part)
        if not allowed.allows(user):  # checked again: membership may have changed since the click
            actions.reply(case_id=case_id, user=user, authorised=False, text=text)
            ack(response_action="errors", errors={sb.REPLY_INPUT_BLOCK: m.SLACK_REFUSED_PUBLIC})
            return
        ack()
        click = _Click(case_id=case_id, user=user, channel=origin.partition(":")[0], value=str(case_id))
        try:
            report(client, click, actions.reply(case_id=case_id, user=user, authorised=True, text=text,
                                                private=private))
        except Exception:
            log.exception("reply on case %s failed", case_id)
            tell(client, click, m.SLACK_ACTION_FAILED.format(message="internal error, see the daemon log"))

    @app.command("/mentions")
    def on_command(ack: Ack, command: dict[str, Any]) -> None:
        text_in = str(command.get("text") or "").strip()
        word, _, rest = text_in.partition(" ")
        word = word.lower()
        user = str(command.get("user_id") or "")
        if word in ("mute", "unmute"):
            outcome = actions.mute(user=user, text=rest) if word == "mute" else actions.unmute(user=user, text=rest)
            ack(text=outcome.message, response_type="ephemeral")
            return
        if word == "mutes":
            text, blocks = sb.render_mutes(actions.silences(), now=clock.now(), tz=actions.timezone())
        elif word == "stats":
            text, blocks = sb.render_stats(actions.stats_today())
        elif word in ("", "list", "open"):
            text, blocks = sb.render_case_list(actions.open_cases(), now=clock.now(), tz=actions.timezone())
        else:
            text, blocks = m.SLACK_CMD_HELP, []
        # The answer rides on the ack itself: an ephemeral reply, no extra API call, no scope.
        ack(text=text, blocks=blocks or None, response_type="ephemeral")

    @app.event("app_home_opened")
    def on_home(event: dict[str, Any], client: WebClient) -> None:
        if event.get("tab", "home") != "home":
            return
        home = sb.render_home(actions.open_cases(), stats=actions.stats_today(), now=clock.now(),
                              tz=actions.timezone(), silences=actions.silences())
        client.views_publish(user_id=str(event["user"]), view=home)

    return app


SOCKET_MODE_AUTH_ERRORS = frozenset({"invalid_auth", "not_authed", "account_inactive", "token_revoked",
                                     "not_allowed_token_type"})


def connect_socket_mode(app: App, *, app_token: str, base_url: str | None = None) -> SocketModeHandler:
    """One attempt to connect over Socket Mode (SLACK_APP_TOKEN, xapp-...): no public URL needed.

    Returns the connected handler (call .close() to stop); once connected, slack-sdk reconnects by
    itself.  Raises AuthFailed when Slack refuses the app token, Transient when Slack cannot be
    reached; the core decides when to try again (monitor/runtime/socket_mode.py)."""
    from connectors.base import AuthFailed, Transient

    handler = SocketModeHandler(app, app_token=app_token, web_client=WebClient(base_url=api_base_url(base_url)))
    try:
        handler.connect()
    except SlackApiError as exc:
        handler.close()
        error = str(exc.response.get("error", "")) if exc.response is not None else ""
        if error in SOCKET_MODE_AUTH_ERRORS:
            raise AuthFailed(f"Slack refused SLACK_APP_TOKEN ({error})") from None
        raise Transient(f"Slack answered apps.connections.open with {error or 'an error'}") from None
    except (SlackClientError, OSError) as exc:  # URLError is an OSError: DNS, refused, timeout
        handler.close()
        raise Transient(f"Slack unreachable ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})") from None
    if not handler.client.is_connected():  # slack-sdk logs a failed WebSocket and returns: not connected
        handler.close()
        raise Transient("Slack gave a Socket Mode URL, but its WebSocket did not connect")
    return handler

