"""Public acknowledgements through the sandbox: the right language, platform rules, never twice."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, select

from monitor.model import Case, Event, Outbox, OutboxKind
from monitor.runtime.wiring import build_daemon, build_sources
from monitor.settings import Settings
from tests.test_slack_flow import thread, top_level, tweet


def make_daemon(sandbox, db_url, rules, rules_file, clock, *, names=("x-mentions",), dry_run=False):
    sandbox.configure(slack_burst=1000)
    settings = Settings(_env_file=None)
    sources = build_sources(settings=settings, ruleset=rules, sandbox_url=sandbox.url, clock=clock)
    sources = {k: v for k, v in sources.items() if k in names}
    return build_daemon(settings=settings, ruleset=rules, rules_path=str(rules_file), db_url=db_url,
                        sandbox_url=sandbox.url, clock=clock, sources=sources, worker="test", dry_run=dry_run)


def replies(sandbox):
    return [p for p in sandbox.x_posts() if p.get("kind") == "reply"]


def test_angry_danish_mention_gets_the_danish_reply_with_the_dm_handoff(sandbox, db_url, simple_rules,
                                                                         simple_rules_file, clock):
    daemon = make_daemon(sandbox, db_url, simple_rules, simple_rules_file, clock)
    first = tweet(sandbox, clock, 1, "@nordlysshop min lampe er stadig ikke kommet efter tre uger, og ingen svarer",
                  author="mettekj")
    daemon.poll("x-mentions")
    daemon.drain()
    posted = replies(sandbox)
    assert len(posted) == 1
    assert posted[0]["in_reply_to"] == first
    assert posted[0]["text"] == ("Hej @mettekj, det er vi kede af at høre. Send os en DM med dit ordrenummer, "
                                 "så løser vi det.")
    alert = top_level(sandbox)[0]
    notes = [m["text"] for m in thread(sandbox, alert["ts"])]
    assert any(n.startswith("Public acknowledgement posted (da)") and
               "DM hand-off: https://x.com/messages/compose?recipient_id=1600000000000000001" in n for n in notes)
    with Session(daemon.engine) as s:
        case = s.exec(select(Case)).one()
        # the bot's acknowledgement is no response by a person, and no DM came from the customer yet
        assert case.state == "open" and not case.moved_to_dm
        assert case.acknowledged_at is not None and case.first_response_at is None


def test_keyword_search_hit_is_never_answered_automatically_but_can_be_approved(sandbox, db_url, simple_rules,
                                                                              simple_rules_file, clock):
    daemon = make_daemon(sandbox, db_url, simple_rules, simple_rules_file, clock, names=("x-search",))
    tweet(sandbox, clock, 1, "ordered from nordlys and it arrived broken. never again", author="lurker")
    daemon.poll("x-search")
    daemon.drain()
    assert replies(sandbox) == []
    alert = top_level(sandbox)[0]
    buttons = {e["action_id"]: e for b in alert["blocks"] if b["type"] == "actions" for e in b["elements"]}
    assert "mm_ack" in buttons
    assert "Hi @lurker, we're sorry to hear that." in str(buttons["mm_ack"]["confirm"])
    notes = [m["text"] for m in thread(sandbox, alert["ts"])]
    assert notes == ["Needs approval before anything is posted publicly "
                     "(x does not allow automatic replies to search posts)."]


def test_one_acknowledgement_per_author_within_the_cooldown(sandbox, db_url, simple_rules, simple_rules_file, clock):
    daemon = make_daemon(sandbox, db_url, simple_rules, simple_rules_file, clock)
    tweet(sandbox, clock, 1, "@nordlysshop lamp arrived broken", author="anna")
    daemon.poll("x-mentions")
    daemon.drain()
    clock.advance(timedelta(hours=2))
    tweet(sandbox, clock, 2, "@nordlysshop and now the refund is refused?!", author="anna")  # new conversation
    daemon.poll("x-mentions")
    daemon.drain()
    assert len(replies(sandbox)) == 1
    with Session(daemon.engine) as s:
        cases = s.exec(select(Case).order_by(Case.id)).all()
        assert [c.ack_mode for c in cases] == ["auto", "off"]
    second_alert = top_level(sandbox)[1]
    notes = [m["text"] for m in thread(sandbox, second_alert["ts"])]
    assert notes == ["No automatic acknowledgement: @anna was already acknowledged 2 h ago."]


def test_the_same_customer_acknowledged_again_after_the_cooldown_gets_the_text_with_its_case_reference(
        sandbox, db_url, simple_rules, simple_rules_file, clock):
    """X refuses a text the account already posted: the second acknowledgement to one customer (after the
    24 h cooldown) would repeat the first word for word, so it goes out with its case's reference."""
    daemon = make_daemon(sandbox, db_url, simple_rules, simple_rules_file, clock)
    tweet(sandbox, clock, 1, "@nordlysshop lamp arrived broken", author="anna")
    daemon.poll("x-mentions")
    daemon.drain()
    clock.advance(timedelta(hours=25))
    second = tweet(sandbox, clock, 2, "@nordlysshop the new lamp arrived broken too?!", author="anna")
    daemon.poll("x-mentions")
    daemon.drain()
    words = "Hi @anna, we're sorry to hear that. Please send us a DM with your order number so we can sort it out."
    with Session(daemon.engine) as s:
        cases = s.exec(select(Case).order_by(Case.id)).all()
        assert [c.ack_mode for c in cases] == ["auto", "auto"]
        assert cases[1].acknowledged_at is not None
    posted = replies(sandbox)
    assert [p["text"] for p in posted] == [words, f"{words} (#{cases[1].id})"]
    assert posted[1]["in_reply_to"] == second
    notes = [m["text"] for m in thread(sandbox, top_level(sandbox)[1]["ts"])]
    assert any(n.startswith("Public acknowledgement posted (en)") and f"(#{cases[1].id})" in n for n in notes), notes


def test_cooldown_holds_within_one_fetched_page(sandbox, db_url, simple_rules, simple_rules_file, clock):
    """Two complaints by one author in two conversations, fetched in the same page: the ingest
    batches its outbox rows, and the second case must still see the first one's acknowledgement."""
    daemon = make_daemon(sandbox, db_url, simple_rules, simple_rules_file, clock)
    tweet(sandbox, clock, 1, "@nordlysshop lamp arrived broken", author="anna")
    tweet(sandbox, clock, 2, "@nordlysshop and the refund is refused?!", author="anna")
    daemon.poll("x-mentions")
    daemon.drain()
    assert len(replies(sandbox)) == 1
    with Session(daemon.engine) as s:
        assert [c.ack_mode for c in s.exec(select(Case).order_by(Case.id)).all()] == ["auto", "off"]
    notes = [m["text"] for alert in top_level(sandbox) for m in thread(sandbox, alert["ts"])]
    assert "No automatic acknowledgement: @anna was already acknowledged just now." in notes


def test_dry_run_shows_would_post_and_posts_nothing(sandbox, db_url, simple_rules, simple_rules_file, clock):
    daemon = make_daemon(sandbox, db_url, simple_rules, simple_rules_file, clock, dry_run=True)
    tweet(sandbox, clock, 1, "@nordlysshop the lamp arrived broken", author="anna")
    daemon.poll("x-mentions")
    daemon.drain()
    assert replies(sandbox) == []
    alert = top_level(sandbox)[0]
    notes = [m["text"] for m in thread(sandbox, alert["ts"])]
    assert notes == ["Dry run, would post publicly (en): “Hi @anna, we're sorry to hear that. "
                     "Please send us a DM with your order number so we can sort it out.”"]
    with Session(daemon.engine) as s:
        row = s.exec(select(Outbox).where(Outbox.kind == OutboxKind.REPLY_PUBLIC)).one()
        assert row.state == "sent" and row.result == {"dry_run": True}
        assert s.exec(select(Case)).one().first_public_response_at is None


def fb_comment(sandbox, clock, text: str, *, name: str = "Anna Berg", person: str = "7100000000000001") -> str:
    return sandbox.add_fb_comments([{
        "message": text, "from": {"id": person, "name": name},
        "created_time": clock.now().strftime("%Y-%m-%dT%H:%M:%S+0000"),
    }])[0]


def test_facebook_comment_gets_one_public_and_one_private_reply(sandbox, db_url, simple_rules, simple_rules_file,
                                                               clock):
    daemon = make_daemon(sandbox, db_url, simple_rules, simple_rules_file, clock, names=("fb-comments",))
    comment = fb_comment(sandbox, clock, "The lamp arrived broken. I want a refund.")
    for _ in range(3):
        daemon.poll("fb-comments")
        daemon.drain()
        clock.advance(60)
    posts = sandbox.fb_posts()
    assert [(p["kind"], p["in_reply_to"]) for p in posts] == [("comment_reply", comment), ("private_reply", comment)]
    assert posts[0]["text"] == "Hi Anna Berg, we're sorry to hear that. We've sent you a DM so we can sort it out."
    assert posts[1]["text"] == ("Hi Anna Berg, this is the Nordlys Shop team about your comment. "
                                "What is your order number?")
    alert = top_level(sandbox)[0]
    assert "Anna Berg" in str(alert["blocks"])
    with Session(daemon.engine) as s:
        assert not s.exec(select(Case)).one().moved_to_dm  # until the customer writes in private


def fb_comment_case_to_approve(sandbox, db_url, rules_file, clock):
    """An angry Facebook comment polled under rules that ask for approval: (daemon, comment id, actions, case id)."""
    from monitor.cases.actions import CaseActions
    from monitor.rules import parse_rules
    from tests.conftest import SIMPLE_RULES

    rules = parse_rules(SIMPLE_RULES.replace("mode: auto", "mode: approve"))
    daemon = make_daemon(sandbox, db_url, rules, rules_file, clock, names=("fb-comments",))
    comment = fb_comment(sandbox, clock, "Still waiting for my refund, third week now.")
    daemon.poll("fb-comments")
    daemon.drain()
    actions = CaseActions(engine=daemon.engine, rules=lambda: rules, clock=clock, policies=daemon.policies)
    with Session(daemon.engine) as s:
        case_id = s.exec(select(Case)).one().id
    return daemon, comment, actions, case_id


def test_facebook_private_reply_after_seven_days_is_refused_with_a_note(sandbox, db_url, simple_rules_file, clock):

    daemon, comment, actions, case_id = fb_comment_case_to_approve(sandbox, db_url, simple_rules_file, clock)
    assert sandbox.fb_posts() == []  # approve: nothing is posted until a person says so

    clock.advance(timedelta(days=8))  # the sandbox follows the test's clock
    outcome = actions.acknowledge(case_id=case_id, user="U0APPROVER1", authorised=True)
    assert outcome.ok and outcome.changed
    again = actions.acknowledge(case_id=case_id, user="U0APPROVER1", authorised=True)  # a double click
    assert again.ok and not again.changed
    daemon.drain()
    posts = sandbox.fb_posts()
    assert [(p["kind"], p["in_reply_to"]) for p in posts] == [("comment_reply", comment)]
    alert = top_level(sandbox)[0]
    notes = [m["text"] for m in thread(sandbox, alert["ts"])]
    refusals = [n for n in notes if n.startswith("The private message was not sent")]
    assert len(refusals) == 1 and "7 days" in refusals[0]


def test_a_reply_submitted_twice_is_posted_once_with_one_event_and_one_note(sandbox, db_url, simple_rules_file, clock):
    daemon, comment, actions, case_id = fb_comment_case_to_approve(sandbox, db_url, simple_rules_file, clock)
    text = "Sorry about the wait, we are looking at your refund now."
    first = actions.reply(case_id=case_id, user="U0APPROVER1", authorised=True, text=text)
    assert first.ok and first.changed
    daemon.drain()
    alert = top_level(sandbox)[0]
    notes_after_first = len(thread(sandbox, alert["ts"]))
    clock.advance(timedelta(seconds=5))
    again = actions.reply(case_id=case_id, user="U0APPROVER1", authorised=True, text=text)  # a double submit
    assert again.ok and not again.changed
    daemon.drain()
    posts = sandbox.fb_posts()
    assert [(p["kind"], p["in_reply_to"], p["text"]) for p in posts] == [("comment_reply", comment, text)]
    with Session(daemon.engine) as s:
        assert len(s.exec(select(Event).where(Event.kind == "reply_queued")).all()) == 1
    assert len(thread(sandbox, alert["ts"])) == notes_after_first


def test_messenger_answer_after_the_24_hour_window_is_explained_in_the_thread(sandbox, db_url, simple_rules_file,
                                                                             clock):
    from monitor.cases.actions import CaseActions
    from monitor.rules import parse_rules
    from tests.conftest import SIMPLE_RULES

    rules = parse_rules(SIMPLE_RULES.replace("mode: auto", "mode: approve"))
    daemon = make_daemon(sandbox, db_url, rules, simple_rules_file, clock, names=("fb-messages",))
    daemon.poll("fb-messages")  # the first poll starts from now: older inbox history is not alerted
    sandbox.add_fb_messages([{"from": {"id": "6200000000000001", "name": "Ion Popescu"},
                              "message": "Comanda mea nu a ajuns, vreau refund",
                              "created_time": int(sandbox.now())}])
    daemon.poll("fb-messages")
    daemon.drain()
    alert = top_level(sandbox)[0]
    clock.advance(timedelta(hours=25))
    actions = CaseActions(engine=daemon.engine, rules=lambda: rules, clock=clock, policies=daemon.policies)
    with Session(daemon.engine) as s:
        case_id = s.exec(select(Case)).one().id
    assert actions.acknowledge(case_id=case_id, user="U0APPROVER1", authorised=True).changed
    daemon.drain()
    assert [p for p in sandbox.fb_posts() if p["kind"] == "messenger"] == []
    with Session(daemon.engine) as s:  # in Messenger the acknowledgement is the private answer itself
        assert s.exec(select(Case)).one().ack_text.startswith("Hi Ion Popescu, this is the Nordlys Shop team")
    notes = [m["text"] for m in thread(sandbox, alert["ts"])]
    assert ("Messenger's 24-hour window for this conversation has closed, so the bot cannot answer it. "
            "Reply from the Page inbox with a message tag, or wait for the customer to write again.") in notes


def test_a_rate_limited_reply_waits_and_is_posted_once_without_becoming_unknown(sandbox, db_url, simple_rules,
                                                                                 simple_rules_file, clock):
    daemon = make_daemon(sandbox, db_url, simple_rules, simple_rules_file, clock)
    tid = tweet(sandbox, clock, 1, "@nordlysshop the lamp arrived broken", author="anna")
    sandbox.add_fault(platform="x", path="/2/tweets", method="POST", status=429, times=1)
    sandbox.add_fault(platform="x", path="/2/tweets/search", status=429, times=3)  # look-ups limited too
    daemon.poll("x-mentions")
    daemon.drain()
    for _ in range(3):
        clock.advance(timedelta(minutes=16))  # past the reset the 429 announced
        with Session(daemon.engine) as s:  # the retry is due in the outbox's own time
            for row in s.exec(select(Outbox).where(Outbox.state == "pending")).all():
                row.next_attempt_at = clock.now()
                s.add(row)
            s.commit()
        daemon.drain()
    assert [p["in_reply_to"] for p in replies(sandbox)] == [tid]
    with Session(daemon.engine) as s:
        row = s.exec(select(Outbox).where(Outbox.kind == OutboxKind.REPLY_PUBLIC)).one()
        assert row.state == "sent" and row.attempts == 2  # refused once by the rate limit, then posted


def test_replies_past_the_create_limit_wait_for_its_reset_without_refused_requests(
        sandbox, db_url, simple_rules, simple_rules_file, clock):
    """X answers each post with what is left of the create limit: after the last allowed reply the
    queued ones wait for the reset instead of each collecting a 429 (bench/economy.py counted 1,643)."""
    sandbox.configure(x_limits={"create_tweet": (2, 900)})
    daemon = make_daemon(sandbox, db_url, simple_rules, simple_rules_file, clock)
    ids = [tweet(sandbox, clock, n, "@nordlysshop the lamp arrived broken", author=f"customer{n}") for n in (1, 2, 3)]

    def creates() -> int:  # requests to X's create endpoint, refused ones included
        return sandbox.stats()["requests"]["POST /2/tweets"]

    daemon.poll("x-mentions")
    daemon.drain()
    assert len(replies(sandbox)) == 2
    assert creates() == 2, "no request the limit would refuse"
    with Session(daemon.engine) as s:
        waiting = s.exec(select(Outbox).where(Outbox.kind == OutboxKind.REPLY_PUBLIC, Outbox.state == "pending")).one()
        assert waiting.error.startswith("x reply limit reached: waiting until ")
        assert waiting.result == {"not_posted": True}
    clock.advance(timedelta(minutes=16))
    daemon.drain()
    assert sorted(p["in_reply_to"] for p in replies(sandbox)) == sorted(ids)
    assert creates() == 3


def test_a_spent_create_limit_holds_for_a_restarted_daemon_too(sandbox, db_url, simple_rules, simple_rules_file,
                                                                clock):
    """The limit's reset is kept in the database: after a restart, a new acknowledgement waits for it
    instead of asking X and collecting a 429."""
    sandbox.configure(x_limits={"create_tweet": (2, 900)})
    daemon = make_daemon(sandbox, db_url, simple_rules, simple_rules_file, clock)
    ids = [tweet(sandbox, clock, n, "@nordlysshop the lamp arrived broken", author=f"customer{n}") for n in (1, 2)]

    def creates() -> int:
        return sandbox.stats()["requests"]["POST /2/tweets"]

    daemon.poll("x-mentions")
    daemon.drain()
    assert creates() == 2 and len(replies(sandbox)) == 2  # X said: 0 left until the window resets
    daemon.engine.dispose()
    restarted = make_daemon(sandbox, db_url, simple_rules, simple_rules_file, clock)
    ids.append(tweet(sandbox, clock, 3, "@nordlysshop the lamp arrived broken", author="customer3"))
    clock.advance(timedelta(seconds=90))  # the mentions quota paces polls about a minute apart
    assert restarted.poll("x-mentions").status == "ok"
    restarted.drain()
    assert creates() == 2, "the restarted daemon knows the limit is spent: no refused request"
    with Session(restarted.engine) as s:
        waiting = s.exec(select(Outbox).where(Outbox.kind == OutboxKind.REPLY_PUBLIC, Outbox.state == "pending")).one()
        assert waiting.error.startswith("x reply limit reached: waiting until ")
    clock.advance(timedelta(minutes=16))
    restarted.drain()
    assert sorted(p["in_reply_to"] for p in replies(sandbox)) == sorted(ids)
    assert creates() == 3
    restarted.engine.dispose()
