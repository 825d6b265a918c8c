"""What the team and the customer are told must be true (issue #15): KPIs, replies, attribution, history."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, select

from monitor.model import Case
from monitor.report.kpis import build_report
from monitor.report.render import to_dict
from tests.test_acknowledge import fb_comment, make_daemon, replies
from tests.test_slack_flow import thread, top_level, tweet


def latest(sandbox, ts: str) -> str:
    """The alert as Slack shows it now: its last post or update, as text."""
    versions = [m for m in sandbox.slack_messages() if m.get("ts") == ts and m["op"] in ("post", "update")]
    return str(versions[-1]["blocks"])


def report_of(daemon, clock) -> dict:
    with Session(daemon.engine) as s:
        return to_dict(build_report(s, since=clock.now() - timedelta(days=1),
                                       until=clock.now() + timedelta(seconds=1)))


def test_an_automatic_acknowledgement_is_not_a_first_response_and_the_countdown_runs_on(
        sandbox, db_url, simple_rules, simple_rules_file, clock):
    daemon = make_daemon(sandbox, db_url, simple_rules, simple_rules_file, clock, names=("x-mentions", "x-own"))
    tweet(sandbox, clock, 1, "@nordlysshop my lamp arrived broken", author="anna")
    daemon.poll("x-mentions")
    daemon.drain()
    assert len(replies(sandbox)) == 1  # the bot acknowledged publicly
    clock.advance(timedelta(seconds=30))
    daemon.poll("x-own")  # the bot's own reply comes back from the brand's timeline: still no person
    daemon.drain()
    alert = top_level(sandbox)[0]
    assert "acknowledged automatically at 10:00, no person has answered yet" in latest(sandbox, alert["ts"])

    clock.advance(timedelta(minutes=39, seconds=30))  # nobody answered; 10 min past the 30 min target
    daemon.sweep()
    daemon.drain()
    shown = latest(sandbox, alert["ts"])
    assert "overdue by 10 min (was due 10:30)" in shown
    assert "acknowledged automatically at 10:00" in shown
    assert any("target was missed" in m["text"] for m in thread(sandbox, alert["ts"]))

    kpis = report_of(daemon, clock)
    assert kpis["first_response"]["answered"] == 0
    assert kpis["auto_acknowledgement"]["cases"] == 1
    assert kpis["sla"]["overall"] == {"name": "all", "met": 0, "missed": 1, "percent": 0.0}
    assert kpis["cases"]["moved_to_dm"] == 0


def test_moved_to_dm_counts_a_customer_who_wrote_in_private_after_the_hand_off(
        sandbox, db_url, simple_rules, simple_rules_file, clock):
    daemon = make_daemon(sandbox, db_url, simple_rules, simple_rules_file, clock,
                         names=("fb-comments", "fb-messages"))
    fb_comment(sandbox, clock, "The lamp arrived broken. I want a refund.")
    daemon.poll("fb-comments")
    daemon.drain()
    assert [p["kind"] for p in sandbox.fb_posts()] == ["comment_reply", "private_reply"]
    assert report_of(daemon, clock)["cases"]["moved_to_dm"] == 0  # a DM sent is not a customer in DM

    clock.advance(timedelta(minutes=5))
    psid = sandbox.fb_psid("7100000000000001")  # in Messenger she has another id: the private reply's recipient_id
    sandbox.add_fb_messages([{"message": "Order 4411, thanks", "from": {"id": psid, "name": "Anna Berg"},
                              "created_time": clock.now().strftime("%Y-%m-%dT%H:%M:%S+0000")}])
    daemon.poll("fb-messages")
    daemon.drain()
    kpis = report_of(daemon, clock)
    assert kpis["cases"]["moved_to_dm"] == 1
    with Session(daemon.engine) as s:
        [comment_case] = s.exec(select(Case)).all()  # the Messenger answer continues the comment's case
        assert comment_case.customer_dm_at == clock.now()
        assert comment_case.private_author_id == psid and comment_case.mention_count == 2
    assert kpis["handoff"]["handed_off"] == 1 and kpis["handoff"]["median_seconds_to_first_dm"] == 300.0
    alert = [m for m in sandbox.slack_messages() if m["op"] == "post" and not m["thread_ts"]]
    assert len(alert) == 1, "the Messenger answer must not open a second alert"
    [note] = [m for m in sandbox.slack_messages() if m["op"] == "post" and "Order 4411" in m["text"]]
    assert note["thread_ts"] == alert[0]["ts"] and note["text"].startswith("🔒 private message from Anna Berg")
    assert not note.get("reply_broadcast"), "private text stays in the thread"


def test_the_public_x_reply_says_what_its_link_does_because_no_dm_is_sent(sandbox, db_url, simple_rules,
                                                                        simple_rules_file, clock):
    daemon = make_daemon(sandbox, db_url, simple_rules, simple_rules_file, clock)
    tweet(sandbox, clock, 1, "@nordlysshop my lamp arrived broken", author="anna")
    daemon.poll("x-mentions")
    daemon.drain()
    assert [p["kind"] for p in sandbox.x_posts()] == ["reply"]  # no direct message went out
    assert replies(sandbox)[0]["text"] == ("Hi @anna, we're sorry to hear that. Please send us a DM with your "
                                           "order number so we can sort it out.")


def test_the_default_rules_never_tell_an_x_customer_a_dm_was_sent(ruleset):
    from monitor.cases.acknowledge import template_for
    from monitor.model import Mention

    on_x = Mention(platform="x", kind="mention", external_id="1", lang="en")
    name = template_for(ruleset, template="move_to_dm", mention=on_x, dm_sent=False)
    assert all("sent you" not in text and "sendt dig" not in text for text in ruleset.templates[name].values())


def test_a_brand_reply_on_a_facebook_post_answers_only_the_comment_it_replies_to(sandbox, db_url, simple_rules,
                                                                                simple_rules_file, clock):
    daemon = make_daemon(sandbox, db_url, simple_rules, simple_rules_file, clock, names=("fb-comments",))
    people = {"Karen": ("7100000000000011", "Where is my order? It is late."),
              "Ana": ("7100000000000012", "The invoice is wrong."),
              "Elena": ("7100000000000013", "My lamp arrived broken.")}  # Elena's gets the bot's reply too
    comments = {name: fb_comment(sandbox, clock, text, name=name, person=person)
                for name, (person, text) in people.items()}
    daemon.poll("fb-comments")
    daemon.drain()
    alerts = {name: next(a for a in top_level(sandbox) if name in str(a["blocks"])) for name in people}

    clock.advance(timedelta(seconds=20))
    sandbox.add_fb_comments([{"message": "Karen, we're on it: your parcel leaves today.",
                              "from": {"id": "104000000000001", "name": "Nordlys Shop"},
                              "parent": {"id": comments["Karen"]},
                              "created_time": clock.now().strftime("%Y-%m-%dT%H:%M:%S+0000")}])
    daemon.poll("fb-comments")
    daemon.drain()

    def answered(name: str) -> bool:
        return any(m["text"].startswith("The brand answered on facebook") for m in thread(sandbox, alerts[name]["ts"]))

    assert [answered(name) for name in people] == [True, False, False]
    with Session(daemon.engine) as s:
        firsts = {c.author_handle: c.first_response_at for c in s.exec(select(Case))}
    assert firsts == {"Karen": clock.now(), "Ana": None, "Elena": None}


def test_backfilled_history_counts_in_reports_but_never_breaches_or_escalates(sandbox, db_url, simple_rules,
                                                                             simple_rules_file, clock):
    from monitor.cli.report import backfill

    daemon = make_daemon(sandbox, db_url, simple_rules, simple_rules_file, clock)
    tweet(sandbox, clock, 1, "@nordlysshop where is my parcel? it is late", offset_s=-2 * 86400)
    backfill(engine=daemon.engine, ruleset=simple_rules, bindings=daemon.sources,
             since=clock.now() - timedelta(days=3), now=clock.now())
    for _ in range(3):  # then `run`: its sweeps and deliveries
        daemon.sweep()
        daemon.drain()
        clock.advance(timedelta(minutes=31))
    alert = top_level(sandbox)[0]
    assert "from history (backfill): no response-time countdown" in latest(sandbox, alert["ts"])
    assert "overdue" not in latest(sandbox, alert["ts"])
    assert not [m for m in thread(sandbox, alert["ts"]) if "missed" in m["text"] or "left to answer" in m["text"]]
    assert top_level(sandbox, "cs-escalations") == []
    with Session(daemon.engine) as s:
        kpis = to_dict(build_report(s, since=clock.now() - timedelta(days=7), until=clock.now()))
    assert kpis["cases"]["opened"] == 1 and kpis["cases"]["breaches"] == 0


def test_a_messenger_customer_gets_a_message_answer_and_the_alert_offers_no_public_acknowledgement(
        sandbox, db_url, simple_rules, simple_rules_file, clock):
    daemon = make_daemon(sandbox, db_url, simple_rules, simple_rules_file, clock, names=("fb-messages",))
    sandbox.add_fb_messages([{"message": "My lamp arrived broken, I want a refund",
                              "from": {"id": "7100000000000021", "name": "Mia Holm"},
                              "created_time": clock.now().strftime("%Y-%m-%dT%H:%M:%S+0000")}])
    daemon.poll("fb-messages")
    daemon.drain()
    assert [(p["kind"], p["text"]) for p in sandbox.fb_posts()] == [
        ("messenger", "Hi Mia Holm, this is the Nordlys Shop team. Could you send us your order number? "
                    "We'll sort it out here.")]
    alert = top_level(sandbox)[0]
    shown = latest(sandbox, alert["ts"])
    buttons = [e["action_id"] for b in alert["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert "mm_ack" not in buttons
    assert "followers" not in shown and "Open the post" not in shown
    assert "|Open the conversation in the Page inbox>" in shown
    from monitor.cases.actions import CaseActions

    actions = CaseActions(engine=daemon.engine, rules=lambda: daemon.ruleset, clock=clock, policies=daemon.policies)
    with Session(daemon.engine) as s:
        case_id = s.exec(select(Case)).one().id
    assert actions.reply(case_id=case_id, user="U0AGENT", authorised=True, text="Sending a new lamp today.").ok
    daemon.drain()
    assert sandbox.fb_posts()[-1]["kind"] == "messenger" and sandbox.fb_posts()[-1]["text"] == "Sending a new lamp today."


def test_a_snooze_note_shows_its_day_and_each_readers_own_time(sandbox, db_url, simple_rules, simple_rules_file,
                                                               clock):
    from monitor.cases.actions import CaseActions

    daemon = make_daemon(sandbox, db_url, simple_rules, simple_rules_file, clock)
    tweet(sandbox, clock, 1, "@nordlysshop where is my parcel? it is late")
    daemon.poll("x-mentions")
    daemon.drain()
    actions = CaseActions(engine=daemon.engine, rules=lambda: daemon.ruleset, clock=clock)
    assert actions.snooze(case_id=1, user="U0AGENT", minutes=24 * 60).changed
    daemon.drain()
    until = int((clock.now() + timedelta(days=1)).timestamp())
    notes = [m["text"] for m in thread(sandbox, top_level(sandbox)[0]["ts"])]
    assert f"<@U0AGENT> snoozed this case until <!date^{until}^{{date_short_pretty}} {{time}}|Wed 25 Nov 10:00>." in notes


def test_severity_has_its_own_mark_and_the_dot_only_tells_the_time_left():
    from dataclasses import replace

    from connectors.slack.blocks import render_alert
    from tests.test_slack_render import view

    text, blocks = render_alert(replace(view(), severity="critical", sla_seconds=1800))  # 27 of 30 min left
    head = blocks[0]["text"]["text"]
    assert head.startswith("🚨 *CRITICAL* · X mention from @angry_anna\n*🟢 respond by 14:32")
    assert text.startswith("🚨 CRITICAL X mention from @angry_anna: ")


def test_a_dot_env_file_is_read_for_local_runs(tmp_path, monkeypatch, capsys, simple_rules_file):
    from monitor.cli import main

    monkeypatch.delenv("MENTION_MONITOR_RULES", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(f"MENTION_MONITOR_RULES={simple_rules_file}\n", encoding="utf-8")
    assert main(["check-rules"]) == 0
    assert capsys.readouterr().out.startswith(f"{simple_rules_file}: OK")


def test_version_and_explain_choices_and_source(capsys):
    import json

    import pytest

    from monitor.cli import main
    from tests.conftest import ROOT

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("mention-monitor 0.")
    with pytest.raises(SystemExit):
        main(["explain", "--text", "hi", "--platform", "twitter"])
    assert "invalid choice: 'twitter' (choose from 'x', 'facebook', 'replay')" in capsys.readouterr().err
    assert main(["explain", "--rules", str(ROOT / "rules.yaml"), "--text", "nordlys lamp is nice", "--kind", "search",
                 "--source", "x-search", "--json"]) == 0
    traces = {t["name"]: t["matched"] for t in json.loads(capsys.readouterr().out)["rules"]}
    assert traces["search-hits-need-approval"] is True  # `sources: [x-search]` can now be explained


def test_the_wheel_ships_the_default_rules_and_the_demo_stream(tmp_path):
    import shutil
    import subprocess
    import sys
    import zipfile

    import pytest

    from tests.conftest import ROOT

    for name in ("pyproject.toml", "README.md", "rules.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    for name in ("monitor", "connectors", "examples"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", "dist", "."],
                           cwd=tmp_path, capture_output=True, text=True, timeout=300)
    if built.returncode != 0 and "bdist_wheel" not in built.stderr and "setuptools" in built.stderr:
        pytest.skip(f"cannot fetch the build backend here: {built.stderr[-200:]}")
    assert built.returncode == 0, built.stderr
    names = zipfile.ZipFile(next((tmp_path / "dist").glob("*.whl"))).namelist()
    assert "mention_monitor-0.1.0.data/data/share/mention-monitor/rules.yaml" in names
    assert "mention_monitor-0.1.0.data/data/share/mention-monitor/examples/mentions.jsonl" in names


def test_a_brand_comment_on_the_post_itself_answers_a_commenter_only_while_just_one_waits(
        sandbox, db_url, simple_rules, simple_rules_file, clock):
    daemon = make_daemon(sandbox, db_url, simple_rules, simple_rules_file, clock, names=("fb-comments",))
    brand = {"id": "104000000000001", "name": "Nordlys Shop"}

    def brand_comment_on_the_post(text: str) -> None:  # no parent: it answers the post, not a comment
        sandbox.add_fb_comments([{"message": text, "from": brand,
                                  "created_time": clock.now().strftime("%Y-%m-%dT%H:%M:%S+0000")}])

    def firsts() -> dict[str, object]:
        with Session(daemon.engine) as s:
            return {c.author_handle: c.first_response_at for c in s.exec(select(Case))}

    fb_comment(sandbox, clock, "Where is my order? It is late.", name="Karen", person="7100000000000011")
    daemon.poll("fb-comments")
    daemon.drain()
    clock.advance(timedelta(seconds=20))
    brand_comment_on_the_post("We're on it: every late parcel leaves today.")
    daemon.poll("fb-comments")
    daemon.drain()
    answered_at = clock.now()
    assert firsts() == {"Karen": answered_at}  # only Karen waited: the reply is hers

    # five wait now: a reply to the post answers none of them (the page reads only the first few waiting)
    people = ("Ana", "Elena", "Mette", "Ivan", "Dewi")
    for n, name in enumerate(people):
        fb_comment(sandbox, clock, "The invoice is wrong and nobody answers.", name=name, person=f"71000000000001{n}")
    daemon.poll("fb-comments")
    daemon.drain()
    clock.advance(timedelta(seconds=20))
    brand_comment_on_the_post("Thanks everyone, we read every comment.")
    daemon.poll("fb-comments")
    daemon.drain()
    assert firsts() == {"Karen": answered_at, **{name: None for name in people}}
