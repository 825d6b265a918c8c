"""Block Kit rendering of alerts, case lists and the App Home; the one place customer text is escaped.

Nothing here talks to Slack: these are pure functions from our plain data to the
JSON Slack expects, so the console notifier and the tests can use them too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connectors.platforms import PLATFORMS, is_private
from monitor import messages as m
from monitor.views import AlertView, OpenCaseLine, SilenceLine, ThreadLine

# Slack's published limits (Block Kit reference).
SECTION_TEXT_MAX = 3000
CONTEXT_TEXT_MAX = 2000
CONFIRM_TEXT_MAX = 300
FALLBACK_TEXT_MAX = 400  # the notification preview: short on purpose, Slack allows far more
MESSAGE_BLOCKS_MAX = 50
HOME_BLOCKS_MAX = 100

ACTION_CLAIM = "mm_claim"
ACTION_ACK = "mm_ack"
ACTION_REPLY = "mm_reply"
ACTION_SNOOZE = "mm_snooze"
ACTION_RESOLVE = "mm_resolve"
ACTION_MUTE = "mm_mute"
REPLY_MODAL_CALLBACK = "mm_reply_modal"
REPLY_INPUT_BLOCK = "mm_reply_text"
REPLY_INPUT_ACTION = "text"
REPLY_WHERE_BLOCK = "mm_reply_where"
REPLY_WHERE_ACTION = "where"
REPLY_WHERE_PUBLIC = "public"
REPLY_WHERE_DM = "dm"
METADATA_EVENT_TYPE = "mm_alert"

WORD_JOINER = "\u2060"  # invisible; splits "@here" so Slack never reads it as a broadcast
_BROADCAST = re.compile(r"@(?=(channel|here|everyone))", re.IGNORECASE)  # no word boundary: "@here0" too
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
# ESC sequences and other C0/C1 controls: harmless in Slack, hostile in a terminal.
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


# --------------------------------------------------------------------------- escaping


def strip_controls(text: str) -> str:
    """Drop control characters (terminal escapes) but keep newlines and tabs."""
    return CONTROL_CHARS.sub("", text)


def escape_text(text: str) -> str:
    """Make RAW customer text safe for mrkdwn: no pings, no links, no broken markup.

    Slack only turns `<!channel>`, `<@U..>`, `<#C..>`, `<!subteam^S..>` into mentions when
    they arrive with real angle brackets, so escaping `& < >` disarms all of them; bare
    "@channel"/"@here"/"@everyone" get an invisible word joiner in case a client or a future
    `link_names` setting would expand them."""
    text = CONTROL_CHARS.sub("", text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _BROADCAST.sub("@" + WORD_JOINER, text)


def escape_fit(text: str, *, limit: int, suffix: str = "") -> str:
    """escape_text, cut so the ESCAPED result (plus suffix when cut) fits `limit` characters.

    Cutting happens on the raw text, so an entity like `&amp;` is never split in half."""
    escaped = escape_text(text)
    if len(escaped) <= limit:
        return escaped
    raw = text
    while raw:
        over = len(escape_text(raw)) + len(suffix) - limit
        if over <= 0:
            break
        raw = raw[: len(raw) - max(1, over // 5)]  # an escaped char is at most 5 long
    return escape_text(raw.rstrip()) + suffix


def plain_fit(text: str, *, limit: int) -> str:
    """For plain_text fields (never parsed for mentions): only cut, with an ellipsis."""
    text = CONTROL_CHARS.sub("", text)
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def safe_url(url: str) -> str:
    """A link target that cannot break out of `<url|label>`; empty if not http(s)."""
    if not url.lower().startswith(("https://", "http://")):
        return ""
    return url.replace("|", "%7C").replace("<", "%3C").replace(">", "%3E").replace(" ", "%20")


def mention(who: str) -> str:
    """A Slack user (U…/W…) or user group (S…) id as a mention that pings them; anything else as given."""
    if who.startswith("S"):
        return f"<!subteam^{who}>"
    if who[:1] in ("U", "W"):
        return f"<@{who}>"
    return who


def user_ref(user_id: str) -> str:
    """`<@U123>` for a real Slack user id (it came from Slack, but check: it will ping)."""
    return f"<@{user_id}>" if _USER_ID.match(user_id) else escape_text(user_id)


def quote(text: str) -> str:
    """Blockquote every line, so customer text is visibly theirs."""
    return "\n".join(">" + line for line in text.split("\n"))


# --------------------------------------------------------------------------- time


@dataclass(frozen=True, slots=True)
class Urgency:
    emoji: str
    colour: str  # for renderers that can colour (console, attachments)
    name: str


GREEN = Urgency("🟢", "green", "plenty of time")
YELLOW = Urgency("🟡", "yellow", "half the time gone")
ORANGE = Urgency("🟠", "orange", "little time left")
RED = Urgency("🔴", "red", "overdue")
DONE = Urgency("✅", "green", "resolved")
NONE = Urgency("⚪", "white", "no target")


def urgency(*, time_left: timedelta | None, sla_total: timedelta | None = None) -> Urgency:
    """Badge for the time left: share of the SLA when known, else fixed minutes."""
    if time_left is None:
        return NONE
    if time_left <= timedelta(0):
        return RED
    if sla_total and sla_total > timedelta(0):
        share = time_left / sla_total
        return GREEN if share > 0.5 else YELLOW if share >= 0.25 else ORANGE
    # Without the total (lists of cases) a fixed scale reads the same way.
    return GREEN if time_left > timedelta(minutes=30) else YELLOW if time_left > timedelta(minutes=10) else ORANGE


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def format_duration(delta: timedelta) -> str:
    """27 min, 2 h 05 min, 3 d 4 h: rounded up to the minute, so 30 s left reads "1 min"."""
    minutes = max(0, -(-int(delta.total_seconds()) // 60))
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def format_clock(when: datetime, *, now: datetime, tz: str) -> str:
    """14:32 today, "Tue 24 Nov 09:00" another day, in the team's time zone."""
    local, local_now = when.astimezone(zone(tz)), now.astimezone(zone(tz))
    if local.date() == local_now.date():
        return local.strftime("%H:%M")
    return local.strftime("%a %d %b %H:%M")


def slack_date(when: datetime, *, fallback: str) -> str:
    """Slack's date formatting: each reader sees "today 14:32" / "Nov 22 14:32" in their own time
    zone; `fallback` shows where the client cannot format."""
    return f"<!date^{int(when.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def deadline_phrase(*, now: datetime, due: datetime | None, tz: str, resolved: bool = False) -> str:
    if due is None:
        return m.SLACK_DEADLINE_NONE
    clock = format_clock(due, now=now, tz=tz)
    if resolved:
        return m.SLACK_DEADLINE_DONE.format(due=clock)
    if due > now:
        return m.SLACK_DEADLINE_LEFT.format(due=clock, left=format_duration(due - now))
    return m.SLACK_DEADLINE_OVERDUE.format(late=format_duration(now - due), due=clock)


def view_urgency(view: AlertView) -> Urgency:
    if view.state == "resolved":
        return DONE
    if view.history:
        return NONE
    total = view.sla_seconds  # 0: no target length known, the fixed scale
    return urgency(time_left=view.time_left, sla_total=timedelta(seconds=total) if total else None)


# --------------------------------------------------------------------------- alert


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}


def _plain(text: str, *, limit: int = 75) -> dict[str, Any]:
    return {"type": "plain_text", "text": plain_fit(text, limit=limit), "emoji": True}


HANDLE_MAX = 100  # an author string is the customer's own choice: it never fills a block


def _handle(view_handle: str, platform: str) -> str:
    handle = view_handle or "unknown"
    if platform == "x" and not handle.startswith("@"):
        handle = "@" + handle
    return escape_fit(handle, limit=HANDLE_MAX, suffix="…")


def author_line(view: AlertView) -> str:
    verified = m.SLACK_VERIFIED_MARK if view.author_verified else ""
    handle = _handle(view.author_handle, view.platform)
    # Only X reports followers; "0 followers" on a Facebook person or a Messenger chat would be made up.
    followers = m.SLACK_FOLLOWERS.format(followers=f"{view.author_followers:,}") if view.platform == "x" else ""
    if view.author_name and view.author_name.lstrip("@") != view.author_handle.lstrip("@"):
        name = escape_fit(view.author_name, limit=100, suffix="…")
        return m.SLACK_AUTHOR_NAMED.format(name=name, handle=handle, verified=verified, followers=followers)
    return m.SLACK_AUTHOR.format(handle=handle, verified=verified, followers=followers)


def state_line(view: AlertView) -> str:
    parts: list[str] = []
    if view.state == "resolved":
        parts.append(m.SLACK_STATE_RESOLVED)
    elif view.state == "snoozed" and view.snoozed_until is not None:
        parts.append(m.SLACK_STATE_SNOOZED.format(
            until=format_clock(view.snoozed_until, now=view.now, tz=view.timezone)))
    elif view.state == "acknowledged":
        parts.append(m.SLACK_STATE_ACKNOWLEDGED)
    if view.assignee:
        parts.append(m.SLACK_STATE_CLAIMED.format(user=user_ref(view.assignee)))
    if view.auto_acknowledged_at is not None and view.state != "resolved":
        parts.append(m.SLACK_STATE_AUTO_ACK.format(
            at=format_clock(view.auto_acknowledged_at, now=view.now, tz=view.timezone)))
    elif view.ack_posted:
        parts.append(m.SLACK_STATE_ACK_POSTED)
    if view.breached and view.state != "resolved":
        parts.append(m.SLACK_BREACHED)
    return " · ".join(parts) or m.SLACK_STATE_OPEN


def _sentiment(view: AlertView) -> str:
    return m.SLACK_SENTIMENT_UNKNOWN if view.sentiment is None else f"{view.sentiment:+.2f}"


def _complaint(view: AlertView) -> str:
    cats = ", ".join(escape_text(c) for c in view.categories) or m.SLACK_NO_CATEGORIES
    return f"{view.complaint:.0%} · {cats}"


def ack_confirm(view: AlertView) -> dict[str, Any]:
    """The confirm dialog: shows the exact public text (plain_text, so nothing in it is parsed)."""
    return {
        "title": _plain(m.SLACK_ACK_CONFIRM_TITLE_DRY if view.dry_run else m.SLACK_ACK_CONFIRM_TITLE, limit=100),
        "text": _plain(view.ack_text, limit=CONFIRM_TEXT_MAX),
        "confirm": _plain(m.SLACK_ACK_CONFIRM_YES_DRY if view.dry_run else m.SLACK_ACK_CONFIRM_YES, limit=30),
        "deny": _plain(m.SLACK_ACK_CONFIRM_NO, limit=30),
    }


def snooze_value(*, case_id: int, choice: str) -> str:
    return f"{case_id}:{choice}"


def action_elements(view: AlertView) -> list[dict[str, Any]]:
    """The buttons a case offers in its current state (none once resolved)."""
    if view.state == "resolved":
        return []
    value = str(view.case_id)
    elements: list[dict[str, Any]] = []
    if not view.assignee:
        elements.append({"type": "button", "action_id": ACTION_CLAIM, "text": _plain(m.SLACK_BUTTON_CLAIM),
                         "value": value})
    grouped = view.grouped_count > 0
    private = is_private(view.kind)  # a Messenger chat has no public side to acknowledge on
    if not grouped and not private and view.ack_text and view.ack_mode != "off" and not view.ack_posted:
        elements.append({"type": "button", "action_id": ACTION_ACK, "text": _plain(m.SLACK_BUTTON_ACK),
                         "value": value, "style": "primary", "confirm": ack_confirm(view)})
    if not grouped:
        elements.append({"type": "button", "action_id": ACTION_REPLY, "text": _plain(m.SLACK_BUTTON_REPLY),
                         "value": value})
    elements.append({
        "type": "static_select", "action_id": ACTION_SNOOZE, "placeholder": _plain(m.SLACK_SNOOZE_PLACEHOLDER),
        "options": [{"text": _plain(label), "value": snooze_value(case_id=view.case_id, choice=choice)}
                    for choice, label in m.SLACK_SNOOZE_OPTIONS],
    })
    elements.append({"type": "button", "action_id": ACTION_RESOLVE, "text": _plain(m.SLACK_BUTTON_RESOLVE),
                     "value": value})
    elements.append({
        "type": "static_select", "action_id": ACTION_MUTE, "placeholder": _plain(m.SLACK_BUTTON_MUTE),
        "options": [{"text": _plain(label), "value": f"{view.case_id}:{choice}"}
                    for choice, label in m.SLACK_MUTE_OPTIONS],
    })
    return elements


def render_alert(view: AlertView) -> tuple[str, list[dict[str, Any]]]:
    """(fallback text, blocks) for one alert or grouped alert; both safe to send as they are."""
    badge = view_urgency(view).emoji
    resolved = view.state == "resolved"
    deadline = m.SLACK_DEADLINE_HISTORY if view.history else deadline_phrase(
        now=view.now, due=view.sla_due_at, tz=view.timezone, resolved=resolved)
    platform = escape_text(PLATFORMS[view.platform].label if view.platform in PLATFORMS else view.platform.capitalize())
    severity = escape_text(view.severity.upper())
    rule = escape_text(view.rule)
    author = _handle(view.author_handle, view.platform)

    mark = m.SLACK_SEVERITY_MARKS.get(view.severity, "")
    if view.grouped_count > 0:
        return render_group(view, badge=badge, deadline=deadline, rule=rule)
    headline = m.SLACK_HEADLINE.format(mark=mark, severity=severity, platform=platform,
                                       kind=escape_text(view.kind), author=author).strip()
    fallback_head = m.SLACK_ALERT_FALLBACK.format(mark=mark, severity=severity, platform=platform,
                                                  author=author, text="").lstrip()
    fallback = fallback_head + escape_fit(view.text, limit=max(40, FALLBACK_TEXT_MAX - len(fallback_head)),
                                          suffix="…")

    body_budget = SECTION_TEXT_MAX - len(view.text.split("\n")) - len(m.SLACK_TEXT_TRUNCATED) - 1
    body = quote(escape_fit(view.text, limit=max(200, body_budget), suffix=m.SLACK_TEXT_TRUNCATED))

    context = [author_line(view)]
    url = safe_url(view.url)
    if url:
        label = m.SLACK_OPEN_CONVERSATION if is_private(view.kind) else m.SLACK_OPEN_POST
        context.append(f"<{url}|{label}>")
    if view.mention_count > 1:
        context.append(m.SLACK_MENTION_COUNT.format(count=view.mention_count))

    blocks: list[dict[str, Any]] = [
        {"type": "section", "block_id": "mm_head", "text": _mrkdwn(
            f"{headline}\n*{m.SLACK_DEADLINE_BADGED.format(badge=badge, deadline=deadline)}*")},
        {"type": "section", "block_id": "mm_text", "text": _mrkdwn(body)},
        {"type": "context", "block_id": "mm_author", "elements": [_mrkdwn(" · ".join(context))]},
        {"type": "section", "block_id": "mm_facts", "fields": [
            _mrkdwn(m.SLACK_FIELD_LANGUAGE.format(lang=escape_text(view.lang))),
            _mrkdwn(m.SLACK_FIELD_SENTIMENT.format(sentiment=_sentiment(view))),
            _mrkdwn(m.SLACK_FIELD_COMPLAINT.format(complaint=_complaint(view))),
            _mrkdwn(m.SLACK_FIELD_RULE.format(rule=rule, severity=escape_text(view.severity))),
        ]},
    ]
    status = [state_line(view)] + [escape_fit(note, limit=300, suffix="…") for note in view.notes]
    blocks.append({"type": "context", "block_id": "mm_state",
                   "elements": [_mrkdwn(plain_fit(" · ".join(status), limit=CONTEXT_TEXT_MAX))]})
    if view.dry_run and view.ack_text and not resolved:
        dry = m.SLACK_DRY_RUN.format(text=escape_fit(view.ack_text, limit=1500, suffix="…"))
        blocks.append({"type": "context", "block_id": "mm_dry_run", "elements": [_mrkdwn(dry)]})
    elements = action_elements(view)
    if elements:
        blocks.append({"type": "actions", "block_id": f"mm_actions:{view.case_id}", "elements": elements})
    return fallback, blocks


GROUP_NEWEST = 10  # members a grouped message lists; all of them have their line in its thread
GROUP_LINE_TEXT = 160
SEVERITY_ORDER = ("low", "normal", "high", "critical")


def _rank(severity: str) -> int:
    return SEVERITY_ORDER.index(severity) if severity in SEVERITY_ORDER else 1


def group_line_text(line: CaseLine) -> str:
    state = ""
    if line.state == "resolved":
        state = " · " + m.SLACK_STATE_RESOLVED
    elif line.assignee:
        state = " · " + m.SLACK_STATE_CLAIMED.format(user=user_ref(line.assignee))
    return m.SLACK_GROUP_LINE.format(
        mark=m.SLACK_SEVERITY_MARKS.get(line.severity, ""), case_id=line.case_id,
        author=_handle(line.author_handle, line.platform), severity=escape_text(line.severity), state=state,
        text=escape_fit(" ".join(line.text.split()), limit=GROUP_LINE_TEXT, suffix="…"))


def render_group(view: AlertView, *, badge: str, deadline: str, rule: str) -> tuple[str, list[dict[str, Any]]]:
    """A grouped message: the count, the most severe mark, the newest members with their severity.
    Its thread holds one line per case with that case's buttons, so the message itself offers only Mute."""
    count = view.grouped_count
    worst = max((line.severity for line in view.members), key=_rank, default=view.severity)
    worst = view.severity if _rank(view.severity) > _rank(worst) else worst
    headline = m.plural(m.SLACK_GROUP_HEADLINE, count, mark=m.SLACK_SEVERITY_MARKS.get(worst, ""), rule=rule).strip()
    newest = view.members[:GROUP_NEWEST]
    lines = "\n".join(group_line_text(line) for line in newest)
    fallback_text = newest[0].text if newest else view.text
    fallback_head = m.plural(m.SLACK_GROUP_FALLBACK, count, badge=badge, rule=rule, text="")
    fallback = fallback_head + escape_fit(" ".join(fallback_text.split()),
                                          limit=max(40, FALLBACK_TEXT_MAX - len(fallback_head)), suffix="…")
    blocks: list[dict[str, Any]] = [
        {"type": "section", "block_id": "mm_head", "text": _mrkdwn(
            f"{headline}\n*{m.SLACK_DEADLINE_BADGED.format(badge=badge, deadline=deadline)}*")},
    ]
    if newest:
        body = m.plural(m.SLACK_GROUP_NEWEST, len(newest), shown=len(newest), lines=lines)
        blocks.append({"type": "section", "block_id": "mm_members",
                       "text": _mrkdwn(plain_fit(body, limit=SECTION_TEXT_MAX))})
    status = [m.plural(m.SLACK_GROUP_MORE, count - len(newest))] if count > len(newest) else []
    status += [escape_fit(note, limit=300, suffix="…") for note in view.notes]
    if status:
        blocks.append({"type": "context", "block_id": "mm_state",
                       "elements": [_mrkdwn(plain_fit(" · ".join(status), limit=CONTEXT_TEXT_MAX))]})
    if view.state != "resolved":
        blocks.append({"type": "actions", "block_id": f"mm_actions:{view.case_id}", "elements": [_mute(view)]})
    return fallback, blocks


def _mute(view: AlertView) -> dict[str, Any]:
    return {
        "type": "static_select", "action_id": ACTION_MUTE, "placeholder": _plain(m.SLACK_BUTTON_MUTE),
        "options": [{"text": _plain(label), "value": f"{view.case_id}:{choice}"}
                    for choice, label in m.SLACK_MUTE_OPTIONS],
    }


def member_elements(view: AlertView) -> list[dict[str, Any]]:
    """A grouped case's buttons in its group's thread: claim, acknowledge, reply, resolve, as on a single alert."""
    wanted = (ACTION_CLAIM, ACTION_ACK, ACTION_REPLY, ACTION_RESOLVE)
    return [e for e in action_elements(replace(view, grouped_count=0)) if e["action_id"] in wanted]


THREAD_LINES_PER_MESSAGE = (MESSAGE_BLOCKS_MAX - 2) // 2  # a line and its buttons are two blocks


def member_taken(view: AlertView) -> bool:
    """Whether a grouped case's line says more than its text: someone has it, or it moved on."""
    return bool(view.assignee) or view.state != "open"


def render_thread(lines: Sequence[ThreadLine]) -> tuple[str, list[dict[str, Any]]]:
    """Several thread notes as ONE message: a section per note, a member's buttons under its line.
    At most THREAD_LINES_PER_MESSAGE lines (the caller splits), within Block Kit's limits."""
    blocks: list[dict[str, Any]] = []
    for line in lines[:THREAD_LINES_PER_MESSAGE]:
        block_id = f"mm_line:{line.member.case_id}" if line.member else f"mm_note:{len(blocks)}"
        text = line.text
        if line.member is not None and member_taken(line.member):  # re-rendered after a claim, a resolve...
            text += "\n" + m.SLACK_MEMBER_STATE.format(state=state_line(line.member))
        blocks.append({"type": "section", "block_id": block_id,
                       "text": _mrkdwn(plain_fit(text, limit=SECTION_TEXT_MAX))})
        elements = member_elements(line.member) if line.member is not None else []
        if elements and line.member is not None:
            blocks.append({"type": "actions", "block_id": f"mm_actions:{line.member.case_id}", "elements": elements})
    members = [line.member.case_id for line in lines if line.member is not None]
    if members:
        cases = ", ".join(f"#{case_id}" for case_id in members)
        text = m.plural(m.SLACK_GROUP_MEMBERS_FALLBACK, len(members), cases=cases)
    else:
        text = "\n".join(line.text for line in lines)
    return plain_fit(text, limit=FALLBACK_TEXT_MAX * 10), blocks


def alert_metadata(*, case_id: int) -> dict[str, Any]:
    """Message metadata that lets find_by_metadata find the alert of a case after a crash."""
    return {"event_type": METADATA_EVENT_TYPE, "event_payload": {"case_id": str(case_id)}}


# --------------------------------------------------------------------------- reply modal


def reply_modal(*, case_id: int, author: str, platform: str, text: str, origin: str = "",
                dm_offered: bool = False, dm_open: bool = False, dm_reason: str = "") -> dict[str, Any]:
    """The Reply… modal; `origin` ("channel:ts") rides in private_metadata for the answer.  On a public case
    it offers "reply in DM" while the platform allows it, and says plainly why not when it does not."""
    intro = m.SLACK_REPLY_MODAL_INTRO.format(
        author=escape_text(author), platform=escape_text(platform),
        text=escape_fit(text, limit=1500, suffix="…").replace("\n", "\n>"))
    where: list[dict[str, Any]] = []
    if dm_offered and dm_open:
        options = [{"text": _plain(m.SLACK_REPLY_WHERE_PUBLIC, limit=75), "value": REPLY_WHERE_PUBLIC},
                   {"text": _plain(m.SLACK_REPLY_WHERE_DM, limit=75), "value": REPLY_WHERE_DM}]
        where.append({"type": "input", "block_id": REPLY_WHERE_BLOCK, "label": _plain(m.SLACK_REPLY_WHERE_LABEL, limit=2000),
                      "element": {"type": "radio_buttons", "action_id": REPLY_WHERE_ACTION, "options": options,
                                  "initial_option": options[0]}})
        if dm_reason:
            where.append({"type": "context", "elements": [
                _mrkdwn(escape_text(m.SLACK_REPLY_DM_NOTE.format(reason=dm_reason)))]})
    elif dm_offered and dm_reason:
        where.append({"type": "context", "elements": [
            _mrkdwn(escape_text(m.SLACK_REPLY_DM_CLOSED.format(reason=dm_reason)))]})
    return {
        "type": "modal",
        "callback_id": REPLY_MODAL_CALLBACK,
        "private_metadata": f"{case_id}|{origin}",
        "title": _plain(m.SLACK_REPLY_MODAL_TITLE_CHOICE if where and dm_open else m.SLACK_REPLY_MODAL_TITLE, limit=24),
        "submit": _plain(m.SLACK_REPLY_MODAL_SUBMIT, limit=24),
        "close": _plain(m.SLACK_REPLY_MODAL_CLOSE, limit=24),
        "blocks": [
            {"type": "section", "text": _mrkdwn(intro)},
            {"type": "input", "block_id": REPLY_INPUT_BLOCK,
             "label": _plain(m.SLACK_REPLY_MODAL_LABEL_CHOICE if dm_offered and dm_open else m.SLACK_REPLY_MODAL_LABEL,
                             limit=2000),
             "element": {"type": "plain_text_input", "action_id": REPLY_INPUT_ACTION, "multiline": True}},
            *where,
        ],
    }


# --------------------------------------------------------------------------- case lists


CaseLine = OpenCaseLine  # what a list shows of one open case


def sort_by_time_left(lines: Sequence[CaseLine]) -> list[CaseLine]:
    return sorted(lines, key=lambda c: (c.sla_due_at.timestamp() if c.sla_due_at else float("inf"), c.case_id))


def case_line_text(line: CaseLine, *, now: datetime, tz: str) -> str:
    left = None if line.sla_due_at is None else line.sla_due_at - now
    who = m.SLACK_CMD_LINE_WHO.format(user=user_ref(line.assignee)) if line.assignee else ""
    return m.SLACK_CMD_LINE.format(
        badge=urgency(time_left=left, sla_total=timedelta(seconds=line.sla_seconds) if line.sla_seconds else None
                      ).emoji, case_id=line.case_id, platform=escape_text(line.platform),
        author=_handle(line.author_handle, line.platform), rule=escape_text(line.rule),
        deadline=deadline_phrase(now=now, due=line.sla_due_at, tz=tz), who=who,
        text=escape_fit(" ".join(line.text.split()), limit=200, suffix="…"),
    )


def render_case_list(lines: Sequence[CaseLine], *, now: datetime, tz: str,
                     max_cases: int = 20) -> tuple[str, list[dict[str, Any]]]:
    """/mentions: open cases, most urgent first."""
    if not lines:
        return m.SLACK_CMD_NO_CASES, [{"type": "section", "text": _mrkdwn(m.SLACK_CMD_NO_CASES)}]
    ordered = sort_by_time_left(lines)
    header = m.plural(m.SLACK_CMD_HEADER, len(ordered))
    blocks: list[dict[str, Any]] = [{"type": "section", "text": _mrkdwn(header)}]
    blocks += [{"type": "section", "text": _mrkdwn(case_line_text(line, now=now, tz=tz))}
               for line in ordered[:max_cases]]
    if len(ordered) > max_cases:
        blocks.append({"type": "context", "elements": [_mrkdwn(m.SLACK_CMD_MORE.format(count=len(ordered) - max_cases))]})
    return header, blocks


def render_stats(stats: Mapping[str, str]) -> tuple[str, list[dict[str, Any]]]:
    """/mentions stats: today's figures, already formatted by the core."""
    lines = [m.SLACK_CMD_STATS_HEADER] + [
        m.SLACK_CMD_STATS_LINE.format(label=escape_text(k), value=escape_text(v)) for k, v in stats.items()]
    text = "\n".join(lines)
    return text, [{"type": "section", "text": _mrkdwn(plain_fit(text, limit=SECTION_TEXT_MAX))}]


def silence_line_text(line: SilenceLine, *, now: datetime, tz: str) -> str:
    comment = f" · {escape_fit(line.comment, limit=200, suffix='…')}" if line.comment else ""
    until = format_clock(line.until, now=now, tz=tz)
    if line.mute_id is None:
        return m.SLACK_MUTE_LINE_RULES.format(what=escape_text(line.label), until=until, comment=comment)
    return m.SLACK_MUTE_LINE.format(id=line.mute_id, what=escape_text(line.label), until=until,
                                    who=user_ref(line.created_by) if line.created_by else "-", comment=comment)


def render_mutes(lines: Sequence[SilenceLine], *, now: datetime, tz: str,
                 max_lines: int = 20) -> tuple[str, list[dict[str, Any]]]:
    """`/mentions mutes`: the silences in force, soonest to end first."""
    if not lines:
        return m.SLACK_MUTES_NONE, [{"type": "section", "text": _mrkdwn(m.SLACK_MUTES_NONE)}]
    header = m.plural(m.SLACK_MUTES_HEADER, len(lines))
    body = "\n".join(silence_line_text(line, now=now, tz=tz) for line in lines[:max_lines])
    return header, [{"type": "section", "text": _mrkdwn(header)},
                    {"type": "section", "text": _mrkdwn(plain_fit(body, limit=SECTION_TEXT_MAX))}]


def render_home(lines: Sequence[CaseLine], *, stats: Mapping[str, str], now: datetime, tz: str,
                max_cases: int = 40, silences: Sequence[SilenceLine] = ()) -> dict[str, Any]:
    """The App Home tab: today's KPIs, then open cases by time left (within Slack's 100 blocks)."""
    blocks: list[dict[str, Any]] = [{"type": "header", "text": _plain(m.SLACK_HOME_TITLE, limit=150)}]
    blocks.append({"type": "section", "text": _mrkdwn(f"*{m.SLACK_HOME_KPIS}*")})
    if stats:
        blocks.append({"type": "section", "fields": [
            _mrkdwn(f"*{escape_text(k)}*\n{escape_text(v)}") for k, v in list(stats.items())[:10]]})
    blocks.append({"type": "divider"})
    if silences:  # before the cases, so a long case list cannot push them past Slack's block limit
        blocks.append({"type": "section", "text": _mrkdwn(f"*{m.SLACK_HOME_MUTES}*")})
        blocks += render_mutes(silences, now=now, tz=tz)[1][1:]
        blocks.append({"type": "divider"})
    _, case_blocks = render_case_list(lines, now=now, tz=tz, max_cases=max_cases)
    blocks += case_blocks
    blocks.append({"type": "context", "elements": [_mrkdwn(m.SLACK_HOME_UPDATED.format(
        when=format_clock(now, now=now, tz=tz), tz=escape_text(tz)))]})
    return {"type": "home", "blocks": blocks[:HOME_BLOCKS_MAX]}
