"""Wording of the thread and channel notes, composed at delivery time from an outbox payload.

Payloads hold facts (ids, numbers), not sentences, so the words come from the
catalogue and customer text is escaped by the notifier that will post it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session

from monitor import messages as msg
from monitor.model import Case, Mention

QUOTE_LIMIT = 600


def slack_ref(who: str) -> str:
    """A Slack user (U…/W…) or user group (S…) id as a mention; anything else as given."""
    if who.startswith("S"):
        return f"<!subteam^{who}>"
    if who[:1] in ("U", "W"):
        return f"<@{who}>"
    return who


def humanize(delta: timedelta) -> str:
    seconds = int(abs(delta.total_seconds()))
    if seconds < 90:
        return f"{max(seconds, 0)} s" if seconds < 60 else "1 min"
    minutes = round(seconds / 60)
    if minutes < 120:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min" if minutes else f"{hours} h"
    return f"{hours // 24} d {hours % 24} h"


def clock(when: datetime | None, timezone: str) -> str:
    if when is None:
        return "-"
    return when.astimezone(ZoneInfo(timezone)).strftime("%H:%M")


def compose(
    session: Session, payload: dict[str, Any], *, escape: Callable[[str], str], now: datetime, timezone: str,
) -> str:
    note = payload.get("note", "")
    mention = session.get(Mention, payload["mention_id"]) if payload.get("mention_id") else None
    quote = ""
    author = ""
    if mention is not None:
        text = mention.text if len(mention.text) <= QUOTE_LIMIT else mention.text[:QUOTE_LIMIT] + "…"
        quote = escape(text)
        author = escape("@" + mention.author_handle if mention.author_handle else mention.author_name)
    if note == "followup":
        template = msg.THREAD_FOLLOWUP_ATTENTION if payload.get("broadcast") else msg.THREAD_FOLLOWUP
        return template.format(author=author, quote=quote)
    if note == "reopened":
        return msg.THREAD_REOPENED.format(author=author, quote=quote)
    if note == "group_member":
        return msg.THREAD_GROUP_MEMBER.format(case_id=payload.get("member_case_id"), author=author, quote=quote,
                                              platform=mention.platform if mention else "")
    if note == "responded_on_platform":
        ago = humanize(now - mention.created_at) + " ago" if mention and mention.created_at else ""
        return msg.THREAD_RESPONDED_ON_PLATFORM.format(platform=mention.platform if mention else "", ago=ago)
    if note in ("warning", "breach", "escalation"):
        case = session.get(Case, payload["case_id"])
        who = " ".join(slack_ref(w) for w in payload.get("who", []))
        if note == "warning":
            left = case.sla_due_at - now if case and case.sla_due_at else timedelta(0)
            return msg.THREAD_WARNING.format(who=who, left=humanize(left), percent=payload.get("percent", 75))
        if note == "breach":
            return msg.THREAD_BREACH.format(who=who, due=clock(case.sla_due_at if case else None, timezone))
        late = now - case.sla_due_at if case and case.sla_due_at else timedelta(0)
        link = ""
        if payload.get("permalink"):
            link = msg.ESCALATION_LINK.format(permalink=payload["permalink"])
        return msg.ESCALATION_POST.format(
            who=who, step=payload.get("step", 1), case_id=payload["case_id"], rule=case.rule if case else "",
            author=escape(case.author_handle) if case else "", platform=case.platform if case else "",
            late=humanize(late), link=link,
        ).strip()
    if note == "snooze_over":
        return msg.THREAD_SNOOZE_OVER
    if note in ("claimed", "acknowledged", "snoozed", "resolved"):
        template = {"claimed": msg.THREAD_CLAIMED, "acknowledged": msg.THREAD_ACKNOWLEDGED,
                    "snoozed": msg.THREAD_SNOOZED, "resolved": msg.THREAD_RESOLVED}[note]
        until = payload.get("until", "")
        if until:
            until = clock(datetime.fromisoformat(until), timezone)
        return template.format(user=slack_ref(payload.get("user", "")), until=until)
    if note == "reply_queued":
        return msg.THREAD_REPLY_QUEUED.format(user=slack_ref(payload.get("user", "")), text=escape(payload["text"]))
    if note == "ack_posted":
        dm = msg.THREAD_ACK_DM.format(link=payload["dm_link"]) if payload.get("dm_link") else ""
        return msg.THREAD_ACK_POSTED.format(lang=payload.get("lang", ""), text=escape(payload["text"]), dm=dm)
    if note == "private_posted":
        return msg.THREAD_PRIVATE_POSTED.format(kind=payload.get("kind", ""), text=escape(payload["text"]))
    if note == "would_post":
        return msg.THREAD_WOULD_POST.format(lang=payload.get("lang", ""), text=escape(payload["text"]))
    if note == "would_send_private":
        return msg.THREAD_WOULD_SEND_PRIVATE.format(text=escape(payload["text"]))
    if note == "ack_refused":
        return msg.THREAD_ACK_REFUSED.format(reason=escape(payload.get("reason", "")))
    if note == "private_refused":
        return msg.THREAD_PRIVATE_REFUSED.format(reason=escape(payload.get("reason", "")))
    if note == "ack_unknown":
        return msg.THREAD_ACK_UNKNOWN.format(platform=payload.get("platform", ""), link=payload.get("link", ""))
    if note == "ack_approval":
        return msg.THREAD_ACK_APPROVAL.format(reason=payload.get("reason", ""))
    if note == "ack_cooldown":
        return msg.THREAD_ACK_COOLDOWN.format(author=author, ago=payload.get("ago", ""))
    if note == "messenger_window":
        return msg.THREAD_MESSENGER_WINDOW
    if note == "spike":
        return msg.SPIKE_ALERT.format(count=payload["count"], window=payload["window"], mean=payload["mean"],
                                      sigma=payload["sigma"])
    return str(payload.get("text", ""))
