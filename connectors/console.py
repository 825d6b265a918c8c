"""Console notifier: the same alert as readable plain text on a stream (the offline demo).

It keeps what it "posted" in memory, so updates, threads and crash reconciliation
(find_by_metadata) behave like Slack's.
"""

from __future__ import annotations

import sys
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, TextIO

from connectors.base import PostedMessage
from connectors.slack import blocks as sb
from monitor import messages as m
from monitor.views import AlertView, ThreadLine

_BUTTON_LABELS = {
    sb.ACTION_CLAIM: m.SLACK_BUTTON_CLAIM, sb.ACTION_ACK: m.SLACK_BUTTON_ACK, sb.ACTION_REPLY: m.SLACK_BUTTON_REPLY,
    sb.ACTION_SNOOZE: m.SLACK_SNOOZE_PLACEHOLDER, sb.ACTION_RESOLVE: m.SLACK_BUTTON_RESOLVE,
    sb.ACTION_MUTE: m.SLACK_BUTTON_MUTE,
}


def plain(text: str) -> str:
    """Customer text for a terminal: control characters (ANSI escapes) removed, nothing else."""
    return sb.strip_controls(text)


def render_alert_text(view: AlertView) -> str:
    """The alert as lines of plain text, the same facts as the Slack message."""
    badge = sb.view_urgency(view)
    resolved = view.state == "resolved"
    deadline = sb.deadline_phrase(now=view.now, due=view.sla_due_at, tz=view.timezone, resolved=resolved)
    handle = view.author_handle if view.platform != "x" or view.author_handle.startswith("@") \
        else "@" + view.author_handle
    verified = m.SLACK_VERIFIED_MARK if view.author_verified else ""
    if view.grouped_count > 0:
        head = f"{badge.emoji} " + m.plural(m.SLACK_GROUP_HEADLINE, view.grouped_count, rule=view.rule,
                                            mark=m.SLACK_SEVERITY_MARKS.get(view.severity, "")).strip()
    else:
        head = m.SLACK_HEADLINE.format(mark=m.SLACK_SEVERITY_MARKS.get(view.severity, ""),
                                       severity=view.severity.upper(), platform=view.platform,
                                       kind=view.kind, author=plain(handle)).strip()
    sentiment = m.SLACK_SENTIMENT_UNKNOWN if view.sentiment is None else f"{view.sentiment:+.2f}"
    cats = ", ".join(view.categories) or m.SLACK_NO_CATEGORIES
    lines = [
        m.CONSOLE_RULE,
        head.replace("*", "").replace("`", ""),
        f"  {badge.emoji} {deadline}",
        *("  > " + plain(line) for line in view.text.splitlines() or [""]),
        "  " + m.SLACK_AUTHOR.format(handle=plain(handle), verified=verified, followers=m.SLACK_FOLLOWERS.format(
            followers=f"{view.author_followers:,}") if view.platform == "x" else ""),
    ]
    if view.url:
        lines.append(f"  {plain(view.url)}")
    lines.append(f"  lang {view.lang} · sentiment {sentiment} · complaint {view.complaint:.0%} ({plain(cats)})"
                 f" · rule {view.rule} ({view.severity})")
    state = sb.state_line(view).replace("*", "")
    for user in {view.assignee} - {""}:
        state = state.replace(sb.user_ref(user), user)
    lines.append("  " + state)
    lines += ["  " + plain(note) for note in view.notes]
    if view.dry_run and view.ack_text and not resolved:
        lines.append("  " + m.SLACK_DRY_RUN.format(text=plain(view.ack_text)).replace("*", ""))
    buttons = [_BUTTON_LABELS[e["action_id"]] for e in sb.action_elements(view)]
    if buttons:
        lines.append("  " + m.CONSOLE_BUTTONS.format(buttons=" | ".join(buttons)))
    return "\n".join(lines)


@dataclass
class _Sent:
    channel: str
    ts: str
    text: str
    thread_ts: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


class ConsoleNotifier:
    """Prints alerts instead of sending them; same protocol as SlackNotifier."""

    name: ClassVar[str] = "console"
    secret_names: ClassVar[tuple[str, ...]] = ()
    messages_per_second: float | None = None  # a terminal takes any pace
    burst: int = 1
    lines_per_message: int = 1  # a terminal prints each thread note on its own

    def __init__(self, *, stream: TextIO | None = None, remember: int = 1000) -> None:
        self.stream = stream if stream is not None else sys.stdout
        # The newest messages only (updates and find_by_metadata look there): a daemon that runs
        # for weeks must not keep every message it ever printed.
        self.sent: deque[_Sent] = deque(maxlen=remember)
        self._lock = threading.Lock()
        self._seq = 0

    def __repr__(self) -> str:
        return f"ConsoleNotifier(sent={len(self.sent)})"

    def _next_ts(self) -> str:
        self._seq += 1
        return f"{1_700_000_000 + self._seq}.{self._seq:06d}"

    def _write(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def render_alert(self, view: AlertView) -> tuple[str, list[dict[str, Any]]]:
        """(plain text, no blocks): the console shows the text as it is."""
        return render_alert_text(view), []

    def render_thread(self, lines: Sequence[ThreadLine]) -> tuple[str, list[dict[str, Any]]]:
        """The notes as plain lines, no blocks."""
        return "\n".join(line.text for line in lines), []

    def time_ref(self, when: datetime, *, fallback: str) -> str:
        """A terminal shows the time as the message catalogue wrote it."""
        return fallback

    def mention_user(self, user_id: str) -> str:
        """A terminal pings nobody: the id as @U0AGENT, readable in the printed line."""
        return f"@{plain(user_id)}" if user_id[:1] in ("U", "W", "S") else plain(user_id)

    def permalink(self, *, channel: str, ts: str) -> str:
        """A printed message has no link."""
        return ""

    def escape(self, text: str) -> str:
        """A terminal needs no markup escaping, only its control characters removed."""
        return plain(text)

    def post(self, *, channel: str, text: str, blocks: Sequence[dict[str, Any]] | None = None,
             thread_ts: str = "", metadata: dict[str, Any] | None = None,
             broadcast: bool = False) -> PostedMessage:
        with self._lock:
            ts = self._next_ts()
            payload = dict((metadata or {}).get("event_payload", metadata or {}))
            self.sent.append(_Sent(channel=channel, ts=ts, text=text, thread_ts=thread_ts, metadata=payload))
            prefix = m.CONSOLE_THREAD.format(ts=thread_ts) + "\n" if thread_ts else ""
            self._write(f"{prefix}[{channel}] {text}")
        return PostedMessage(channel=channel, ts=ts)

    def update(self, *, channel: str, ts: str, text: str, blocks: Sequence[dict[str, Any]] | None = None) -> None:
        with self._lock:
            for sent in self.sent:
                if sent.channel == channel and sent.ts == ts:
                    sent.text = text
            self._write(f"{m.CONSOLE_UPDATED.format(ts=ts)}\n[{channel}] {text}")

    def find_by_metadata(self, *, channel: str, key: str, value: str) -> PostedMessage | None:
        with self._lock:
            for sent in reversed(self.sent):
                if sent.channel == channel and str(sent.metadata.get(key, "")) == value:
                    return PostedMessage(channel=channel, ts=sent.ts)
        return None

    def post_ephemeral(self, *, channel: str, user: str, text: str) -> None:
        with self._lock:
            self._write(f"[{channel}] " + m.CONSOLE_EPHEMERAL.format(user=user, text=text))

    def upload_files(self, *, channel: str, files: list[tuple[str, bytes]], title: str,
                     initial_comment: str) -> None:
        names = ", ".join(f"{name} ({len(content):,} bytes)" for name, content in files)
        with self._lock:
            self._write(m.CONSOLE_FILES.format(channel=channel, names=names, title=title))
            if initial_comment:
                self._write(f"  {initial_comment}")
