"""Thread and channel notes: every NoteKind has a payload type and words, and a stored payload reads back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session

from connectors.base import Refused
from connectors.slack.blocks import mention
from monitor.delivery import notes
from monitor.model import Case, Mention
from monitor.store import create_schema, make_engine

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)

SAMPLES: dict[notes.NoteKind, notes.Note] = {
    notes.NoteKind.FOLLOWUP: notes.Followup(mention_id=1, broadcast=True),
    notes.NoteKind.REOPENED: notes.Reopened(mention_id=1),
    notes.NoteKind.GROUP_MEMBER: notes.GroupMember(member_case_id=7, mention_id=1),
    notes.NoteKind.RESPONDED_ON_PLATFORM: notes.RespondedOnPlatform(mention_id=1),
    notes.NoteKind.WARNING: notes.SlaWarning(case_id=1, who=["U0ONCALL"], percent=75),
    notes.NoteKind.BREACH: notes.Breach(case_id=1, who=["S0TEAM"]),
    notes.NoteKind.ESCALATION: notes.Escalation(case_id=1, step=2, who=["U0LEAD"], permalink="https://slack.example/p1"),
    notes.NoteKind.SNOOZE_OVER: notes.SnoozeOver(case_id=1),
    notes.NoteKind.CLAIMED: notes.team_action("claimed", user="U0AGENT"),
    notes.NoteKind.ACKNOWLEDGED: notes.team_action("acknowledged", user="U0AGENT", text="Sorry!"),
    notes.NoteKind.SNOOZED: notes.team_action("snoozed", user="U0AGENT", until=(NOW + timedelta(hours=1)).isoformat()),
    notes.NoteKind.RESOLVED: notes.team_action("resolved", user="U0AGENT"),
    notes.NoteKind.REPLY_QUEUED: notes.ReplyQueued(user="U0AGENT", text="We are on it"),
    notes.NoteKind.ACK_POSTED: notes.AckPosted(text="Sorry to hear that", lang="en", dm_link="https://x.com/messages/1"),
    notes.NoteKind.PRIVATE_POSTED: notes.PrivatePosted(text="Hi Anna", platform="facebook"),
    notes.NoteKind.WOULD_POST: notes.WouldPost(text="Sorry to hear that", lang="en"),
    notes.NoteKind.WOULD_SEND_PRIVATE: notes.WouldSendPrivate(text="Hi Anna"),
    notes.NoteKind.ACK_REFUSED: notes.AckRefused(reason="X refused the reply"),
    notes.NoteKind.PRIVATE_REFUSED: notes.PrivateRefused(reason="older than 7 days"),
    notes.NoteKind.ACK_UNKNOWN: notes.AckUnknown(platform="x", link="https://x.com/anna/status/1"),
    notes.NoteKind.ACK_EXPIRED: notes.AckExpired(due="2026-11-24T09:30:00+00:00", platform="x", text="Sorry!",
                                                held="2026-11-25T08:00:00+00:00"),
    notes.NoteKind.RULES_REFUSED: notes.RulesRefused(errors=["rules.yaml:3:1: bad"], more=2),
    notes.NoteKind.ACK_APPROVAL: notes.AckApproval(reason="the rule asks for approval"),
    notes.NoteKind.ACK_COOLDOWN: notes.AckCooldown(mention_id=1, ago="2 h"),
    notes.NoteKind.MESSENGER_WINDOW: notes.MessengerWindow(),
    notes.NoteKind.SPIKE: notes.Spike(count=40, window="15 min", mean=3.0, sigma=1.5),
    notes.NoteKind.TEXT: notes.Text(text="The rules file was reloaded."),
}


@pytest.fixture
def session(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'notes.db'}")
    create_schema(engine)
    with Session(engine) as s:
        s.add(Mention(id=1, platform="x", kind="mention", external_id="1", author_handle="anna",
                      text="Where is my <order>?", created_at=NOW - timedelta(minutes=20)))
        s.add(Case(id=1, platform="x", conversation_id="1", rule="urgent", author_handle="anna", sla_due_at=NOW + timedelta(minutes=10)))
        s.commit()
        yield s
    engine.dispose()


def test_every_note_kind_has_a_payload_type_a_renderer_and_a_sample():
    assert set(notes.PAYLOAD_TYPES) == set(notes.NoteKind)
    assert set(notes.RENDERERS) == set(notes.NoteKind)
    assert set(SAMPLES) == set(notes.NoteKind)


@pytest.mark.parametrize("kind", list(notes.NoteKind), ids=str)
def test_every_note_kind_renders_words_from_its_stored_payload(session, kind):
    payload = SAMPLES[kind].payload()
    assert payload["note"] == kind
    assert notes.parse(payload) == SAMPLES[kind]  # what the outbox stores reads back as the same note
    text = notes.compose(session, payload, escape=lambda t: t.replace("<", "&lt;"), mention_user=mention, now=NOW, timezone="UTC")
    assert text.strip()
    assert "{" not in text  # every placeholder was filled


def test_customer_text_in_a_note_is_escaped_and_people_are_mentioned(session):
    text = notes.compose(session, notes.Followup(mention_id=1).payload(), escape=lambda t: t.replace("<", "&lt;"), mention_user=mention,
                         now=NOW, timezone="UTC")
    assert "&lt;order>" in text and "<order>" not in text
    warning = notes.compose(session, SAMPLES[notes.NoteKind.WARNING].payload(), escape=str, mention_user=mention, now=NOW, timezone="UTC")
    assert "<@U0ONCALL>" in warning


def test_a_note_of_unknown_kind_is_refused_instead_of_posting_an_empty_message(session):
    with pytest.raises(Refused, match="'gossip'"):
        notes.compose(session, {"note": "gossip"}, escape=str, mention_user=mention, now=NOW, timezone="UTC")


def test_rows_stored_before_typed_notes_still_read():
    assert notes.parse({"text": "ops text"}) == notes.Text(text="ops text")  # operator notes had no "note" key
    assert notes.parse({"note": "private_posted", "text": "Hi", "kind": "facebook"}) == \
        notes.PrivatePosted(text="Hi", platform="facebook")


def test_people_are_named_the_notifiers_way_slack_pings_them_the_console_prints_them(session):
    import io

    from connectors.console import ConsoleNotifier
    from connectors.slack.notifier import SlackNotifier

    slack = SlackNotifier(token="xoxb-test", base_url="http://127.0.0.1:9/api/")
    console = ConsoleNotifier(stream=io.StringIO())
    breach = SAMPLES[notes.NoteKind.BREACH].payload()
    claimed = SAMPLES[notes.NoteKind.CLAIMED].payload()
    for notifier, team, agent in ((slack, "<!subteam^S0TEAM>", "<@U0AGENT>"), (console, "@S0TEAM", "@U0AGENT")):
        said = [notes.compose(session, payload, escape=notifier.escape, mention_user=notifier.mention_user, now=NOW,
                              timezone="UTC") for payload in (breach, claimed)]
        assert team in said[0] and said[1].startswith(f"{agent} claimed"), said
    assert "<" not in notes.compose(session, breach, escape=console.escape, mention_user=console.mention_user,
                                    now=NOW, timezone="UTC")
