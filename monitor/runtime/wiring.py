"""Builds a Daemon from settings and rules: which connector serves which source, where alerts go.

Connectors are imported here, lazily, so the core modules never import a platform SDK.
"""

from __future__ import annotations

import logging
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from monitor import messages as msg
from monitor.clock import Clock
from monitor.model import NewMention
from monitor.rules.schema import Ruleset
from monitor.runtime.daemon import Daemon
from monitor.runtime.poller import SourceBinding
from monitor.settings import Settings
from monitor.store import check_writable, create_schema, make_engine

if TYPE_CHECKING:
    from connectors.base import Notifier, PostedMessage, Source
    from connectors.console import ConsoleNotifier
    from connectors.facebook_webhook import WebhookServer
    from connectors.slack.notifier import SlackNotifier
    from connectors.wsgi import WsgiServer
    from monitor.runtime.socket_mode import SocketModeSupervisor

log = logging.getLogger(__name__)

SANDBOX_TOKEN = "sandbox-token-not-secret"


def build_sources(*, settings: Settings, ruleset: Ruleset, sandbox_url: str = "",
                  replay: str | None = None, clock: Clock | None = None) -> dict[str, SourceBinding]:
    if replay:
        from connectors.replay import ReplaySource

        name = f"replay:{Path(replay).name}"
        return {name: SourceBinding(name=name, platform="replay", kind="mention", query="",
                                    every=timedelta(seconds=2), connector=ReplaySource(path=replay))}
    bindings: dict[str, SourceBinding] = {}
    connectors: dict[str, Source | None] = {}
    for source in ruleset.sources:
        connector = connectors.get(source.platform)
        if connector is None and source.platform not in connectors:
            connector = connectors[source.platform] = _connector(source.platform, settings=settings,
                                                                 ruleset=ruleset, sandbox_url=sandbox_url,
                                                                 path=source.path, clock=clock)
        if connector is None:
            continue
        secret_env = next(iter(connector.platform.secret_names), "")
        bindings[source.name] = SourceBinding(name=source.name, platform=source.platform, kind=source.kind,
                                              query=source.query, every=source.every, connector=connector,
                                              secret_env=secret_env)
    return bindings


def _connector(platform: str, *, settings: Settings, ruleset: Ruleset, sandbox_url: str, path: str,
               clock: Clock | None = None) -> Source | None:
    def secret(value: SecretStr) -> str:
        return SANDBOX_TOKEN if sandbox_url else value.get_secret_value()

    if platform == "x":
        token = secret(settings.x_bearer_token)
        if not token:
            log.warning("X sources skipped: X_BEARER_TOKEN is not set")
            return None
        from connectors.x import XSource

        return XSource(bearer_token=token, user_id=ruleset.brand.x_user_id,
                       brand_handle=ruleset.brand.handles.x or "", api_key=secret(settings.x_api_key),
                       api_secret=secret(settings.x_api_secret), access_token=secret(settings.x_access_token),
                       access_token_secret=secret(settings.x_access_token_secret), base_url=sandbox_url or None,
                       clock=clock)
    if platform == "facebook":
        token = secret(settings.facebook_page_token)
        if not token:
            log.warning("Facebook sources skipped: FACEBOOK_PAGE_TOKEN is not set")
            return None
        from connectors.facebook import FacebookSource

        return FacebookSource(page_token=token, page_id=ruleset.brand.facebook_page_id, base_url=sandbox_url or None,
                              clock=clock)
    if platform == "replay":
        from connectors.replay import ReplaySource

        return ReplaySource(path=path)
    raise ValueError(f"no connector for platform {platform!r}")


def build_notifier(*, settings: Settings, sandbox_url: str = "", echo: bool = False,
                   clock: Clock | None = None) -> Notifier:
    token = SANDBOX_TOKEN if sandbox_url else settings.slack_bot_token.get_secret_value()
    if not token:
        from connectors.console import ConsoleNotifier

        return ConsoleNotifier(stream=sys.stdout)
    from connectors.slack.notifier import SlackNotifier

    # No slack_sdk retries of a 429: the outbox paces each channel itself, and a refusal must reach it
    # (monitor.delivery.outbox.ChannelPacer.hold), else after a restart every post is refused once and
    # slept off in turn, and a catch-up `run --once` goes on at Slack's pace until the backlog is empty.
    slack = SlackNotifier(token="xoxb-" + token if sandbox_url else token,
                          base_url=sandbox_url or settings.slack_api_url or None, clock=clock,
                          max_rate_limit_retries=0)
    slack.messages_per_second = settings.slack_rate if settings.slack_rate > 0 else None
    slack.burst = max(1, settings.slack_burst)
    if not echo:
        return slack
    from connectors.console import ConsoleNotifier

    return EchoNotifier(primary=slack, echo=ConsoleNotifier(stream=sys.stdout, remember=0))  # prints only


class EchoNotifier:
    """Posts through `primary` and prints the same messages on the console (the sandbox demo)."""

    name = "slack"

    def __init__(self, *, primary: SlackNotifier, echo: ConsoleNotifier) -> None:
        self.primary = primary
        self.echo = echo

    def __getattr__(self, item: str) -> Any:
        return getattr(self.primary, item)

    def post(self, **kwargs: Any) -> PostedMessage:
        posted = self.primary.post(**kwargs)
        try:
            self.echo.post(**kwargs)
        except Exception:  # the echo is a convenience; it must never block delivery
            log.debug("echo failed", exc_info=True)
        return posted


def build_daemon(*, settings: Settings, ruleset: Ruleset, rules_path: str, db_url: str | None = None,
                 sandbox_url: str = "", replay: str | None = None, dry_run: bool = False, echo: bool = False,
                 clock: Clock | None = None, notifier: Notifier | None = None, sources: dict[str, SourceBinding] | None = None,
                 worker: str = "") -> Daemon:
    engine = make_engine(db_url or settings.database_url)
    # The child keeps Alembic (~8 MB) out of a long-running daemon; a process that has imported it already
    # (`mention-monitor db upgrade` then run, a test session) saves nothing by it and would pay its ~1 s start.
    create_schema(engine, in_child="alembic" not in sys.modules)
    check_writable(engine)
    bindings = sources if sources is not None else build_sources(
        settings=settings, ruleset=ruleset, sandbox_url=sandbox_url, replay=replay, clock=clock)
    # Leases and outbox claims guard against a dead process, which dies on the wall clock: under a
    # fast clock (--clock-speed) they last as long in real seconds as they would otherwise.
    speed = clock.speed if clock is not None else 1.0
    return Daemon(engine=engine, rules_path=rules_path, ruleset=ruleset, sources=bindings,
                  notifier=notifier or build_notifier(settings=settings, sandbox_url=sandbox_url, echo=echo,
                                                      clock=clock),
                  clock=clock, dry_run=dry_run, worker=worker or settings.replica_id,
                  lease_ttl=timedelta(seconds=settings.lease_ttl * speed),
                  claim_ttl=timedelta(seconds=settings.claim_ttl * speed))



def _slack_app(daemon: Daemon, *, token: str, signing_secret: str, base_url: str | None = None) -> Any:
    from connectors.slack.app import build_app
    from monitor.cases.actions import CaseActions

    actions = CaseActions(engine=daemon.engine, rules=lambda: daemon.ruleset, clock=daemon.clock,
                          policies=daemon.policies, dry_run=daemon.dry_run, mention_user=daemon.notifier.mention_user)
    return build_app(token=token, actions=actions, signing_secret=signing_secret, base_url=base_url,
                     approvers=daemon.ruleset.slack.approvers, clock=daemon.clock)


def start_slack_app(daemon: Daemon, *, settings: Settings, base_url: str | None = None,
                    start: bool = True) -> SocketModeSupervisor:
    """Buttons, /mentions and App Home over Socket Mode (needs SLACK_APP_TOKEN; no public URL).

    Connects in the background and keeps trying while Slack cannot be reached (the supervisor's
    .close() stops it); `start=False` leaves the attempts to the caller (tests)."""
    from connectors.slack.app import connect_socket_mode
    from monitor.runtime.socket_mode import SocketModeSupervisor

    app = _slack_app(daemon, token=settings.slack_bot_token.get_secret_value(),
                     signing_secret=settings.slack_signing_secret.get_secret_value(), base_url=base_url)
    app_token = settings.slack_app_token.get_secret_value()
    metrics = daemon.metrics
    supervisor = SocketModeSupervisor(
        connect=lambda: connect_socket_mode(app, app_token=app_token, base_url=base_url), clock=daemon.clock,
        report=metrics.set_component if metrics is not None else None)
    return supervisor.start() if start else supervisor


SANDBOX_AGENT = "U0AGENT1"  # a team member who is not an approver, so the page can show a refusal too


def start_sandbox_slack_app(daemon: Daemon, *, sandbox_url: str) -> WsgiServer:
    """The interactive side for the sandbox: the Bolt app on a loopback Request URL, which the sandbox's
    page (sandbox_url + /slack) sends its signed clicks, Reply forms and /mentions to. stop() the result."""
    import json
    import secrets
    import urllib.request

    from connectors.slack.request_url import serve_request_url

    signing_secret = secrets.token_hex(16)  # this run's, shared by the sandbox and the app only
    app = _slack_app(daemon, token="xoxb-" + SANDBOX_TOKEN, signing_secret=signing_secret, base_url=sandbox_url)
    server = serve_request_url(app)
    approvers = daemon.ruleset.slack.approvers
    groups = {g: [f"U0{g.removeprefix('S0')[:7]}1"] for g in approvers if g.startswith("S")}  # one member each
    people = [u for u in approvers if not u.startswith("S")] + [m for ms in groups.values() for m in ms] + [SANDBOX_AGENT]

    def control(path: str, body: dict[str, Any]) -> None:
        urllib.request.urlopen(urllib.request.Request(f"{sandbox_url}{path}", data=json.dumps(body).encode(),
                                                      method="POST", headers={"Content-Type": "application/json"}),
                               timeout=10)

    try:
        if groups:
            control("/_sandbox/slack/usergroups", groups)
        control("/_sandbox/slack/app", {"url": server.request_url, "signing_secret": signing_secret, "users": people})
    except OSError:
        server.stop()
        raise
    return server


def start_facebook_webhook(daemon: Daemon, *, settings: Settings, port: int | None = None) -> WebhookServer | None:
    """Page webhooks (`feed`, `messages`) into the daemon's pipeline; None when off or unconfigured."""
    port = settings.facebook_webhook_port if port is None else port
    if not port:
        return None
    secret, verify = settings.facebook_app_secret.get_secret_value(), settings.facebook_verify_token.get_secret_value()
    if not secret or not verify:
        log.warning(msg.LOG_FB_WEBHOOK_NO_SECRET)
        return None
    from connectors.facebook_webhook import FacebookWebhook, WebhookServer

    by_kind = {b.kind: b for b in daemon.sources.values() if b.platform == "facebook"}
    if not by_kind:
        return None
    connector = next(iter(by_kind.values())).connector

    def deliver(kind: str, mentions: list[NewMention]) -> None:
        if kind in by_kind:
            daemon.ingest_pushed(by_kind[kind].name, mentions)

    app = FacebookWebhook(app_secret=secret, verify_token=verify, page_id=connector.page_id, deliver=deliver,
                          conversation_of=connector.conversation_of)
    server = WebhookServer(app, host=settings.facebook_webhook_host, port=max(0, port),  # -1: any free port (tests)
                           certfile=settings.facebook_webhook_cert, keyfile=settings.facebook_webhook_key).start()
    log.info(msg.LOG_FB_WEBHOOK_LISTENING, server.url)
    return server
