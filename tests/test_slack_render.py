"""What an alert looks like in Slack (Block Kit) and on the console, and that customer text never pings."""

from __future__ import annotations

import io
import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from connectors.console import ConsoleNotifier
from connectors.slack import blocks as sb
from monitor.views import AlertView, OpenCaseLine

NOW = datetime(2026, 11, 23, 13, 5, tzinfo=UTC)  # 14:05 in Oslo (UTC+1 in November)
HOSTILE = "<!channel> <!here> <@U123> <#C1|general> <!subteam^S1> @channel @here @everyone Tom & Jerry"
PING = re.compile(r"<[!@#]")


def view(**changes: object) -> AlertView:
    base = AlertView(
        case_id=42, platform="x", kind="mention", author_handle="angry_anna", author_name="Anna A.",
        author_followers=12_345, author_verified=True, text="Your app ate my money. Fix it NOW",
        url="https://x.com/angry_anna/status/1", lang="en", sentiment=-0.81, complaint=0.93,
        categories=("billing", "outage"), rule="urgent-negative", severity="urgent", state="open",
        now=NOW, sla_due_at=NOW + timedelta(minutes=27), timezone="Europe/Oslo",
        ack_mode="approve", ack_text="Hi @angry_anna, sorry about this. Please DM us your order number.",
    )
    return replace(base, **changes)


def block(blocks: list[dict], block_id: str) -> dict:
    return next(b for b in blocks if b.get("block_id", "").startswith(block_id))


def all_text(blocks: list[dict]) -> list[str]:
    """Every string Slack would parse as mrkdwn or show, anywhere in the blocks."""
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("mrkdwn", "plain_text"):
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(blocks)
    return found


def test_hostile_text_is_shown_escaped_and_cannot_ping() -> None:
    text, blocks = sb.render_alert(view(text=HOSTILE, author_name="<!channel>", categories=("<!here>",)))
    wj = sb.WORD_JOINER
    expected = (f">&lt;!channel&gt; &lt;!here&gt; &lt;@U123&gt; &lt;#C1|general&gt; &lt;!subteam^S1&gt; "
                f"@{wj}channel @{wj}here @{wj}everyone Tom &amp; Jerry")
    assert block(blocks, "mm_text")["text"]["text"] == expected
    assert not PING.search(text)
    assert "@here" not in text and "@channel" not in text and "@everyone" not in text
    for shown in all_text(blocks):
        assert not PING.search(shown), shown
        assert not re.search(r"@(here|channel|everyone)", shown), shown


def test_headline_and_deadline_in_the_team_time_zone() -> None:
    text, blocks = sb.render_alert(view())
    head = block(blocks, "mm_head")["text"]["text"]
    assert head == "*URGENT* · X mention from @angry_anna\n*🟡 respond by 14:32, 27 min left*"
    assert text.startswith("URGENT X mention from @angry_anna: Your app ate my money")
    context = block(blocks, "mm_author")["elements"][0]["text"]
    assert context == "Anna A. (@angry_anna) ✓ verified · 12,345 followers · <https://x.com/angry_anna/status/1|Open the post>"
    fields = [f["text"] for f in block(blocks, "mm_facts")["fields"]]
    assert fields == ["*Language*\nen", "*Sentiment*\n-0.81", "*Complaint*\n93% · billing, outage",
                      "*Rule*\n`urgent-negative` (urgent)"]


def test_overdue_deadline_and_red_badge() -> None:
    _, blocks = sb.render_alert(view(sla_due_at=NOW - timedelta(minutes=12), breached=True))
    head = block(blocks, "mm_head")["text"]["text"]
    assert "\n*🔴 " in head
    assert head.endswith("*🔴 overdue by 12 min (was due 13:53)*")
    assert "response-time target missed, escalated" in block(blocks, "mm_state")["elements"][0]["text"]


def test_badge_follows_share_of_the_sla_when_known() -> None:
    total = timedelta(minutes=60)
    assert sb.urgency(time_left=timedelta(minutes=31), sla_total=total) is sb.GREEN
    assert sb.urgency(time_left=timedelta(minutes=30), sla_total=total) is sb.YELLOW
    assert sb.urgency(time_left=timedelta(minutes=15), sla_total=total) is sb.YELLOW
    assert sb.urgency(time_left=timedelta(minutes=14), sla_total=total) is sb.ORANGE
    assert sb.urgency(time_left=timedelta(0), sla_total=total) is sb.RED
    assert sb.urgency(time_left=None) is sb.NONE
    assert sb.urgency(time_left=timedelta(hours=2)) is sb.GREEN  # no total: fixed minutes


def test_durations_and_other_day_deadlines() -> None:
    assert sb.format_duration(timedelta(seconds=30)) == "1 min"
    assert sb.format_duration(timedelta(minutes=125)) == "2 h 05 min"
    assert sb.format_duration(timedelta(hours=50)) == "2 d 2 h"
    due = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    assert sb.deadline_phrase(now=NOW, due=due, tz="Europe/Oslo") == "respond by Tue 24 Nov 09:00, 18 h 55 min left"


def test_long_text_is_cut_inside_slack_limits_without_breaking_entities() -> None:
    _, blocks = sb.render_alert(view(text="&<" * 4000))
    body = block(blocks, "mm_text")["text"]["text"]
    assert len(body) <= sb.SECTION_TEXT_MAX
    assert body.endswith("… (shortened, open the post for the rest)")
    stripped = body[1:].removesuffix("… (shortened, open the post for the rest)")
    assert re.fullmatch(r"(&amp;&lt;)+(&amp;)?", stripped)


def test_buttons_carry_the_case_id_and_ack_confirms_the_exact_text() -> None:
    _, blocks = sb.render_alert(view())
    actions = block(blocks, "mm_actions")
    ids = [e["action_id"] for e in actions["elements"]]
    assert ids == ["mm_claim", "mm_ack", "mm_reply", "mm_snooze", "mm_resolve", "mm_mute"]
    buttons = {e["action_id"]: e for e in actions["elements"]}
    assert {buttons[i]["value"] for i in ("mm_claim", "mm_ack", "mm_reply", "mm_resolve")} == {"42"}
    assert buttons["mm_ack"]["text"]["text"] == "Acknowledge publicly"
    assert buttons["mm_ack"]["confirm"]["text"] == {
        "type": "plain_text", "emoji": True,
        "text": "Hi @angry_anna, sorry about this. Please DM us your order number."}
    assert [o["value"] for o in buttons["mm_snooze"]["options"]] == ["42:30", "42:60", "42:240", "42:tomorrow"]
    assert len(blocks) <= sb.MESSAGE_BLOCKS_MAX


def test_claimed_acknowledged_snoozed_and_resolved_states() -> None:
    _, blocks = sb.render_alert(view(assignee="U0CLAIMER", state="acknowledged", ack_posted=True))
    state = block(blocks, "mm_state")["elements"][0]["text"]
    assert state == "Acknowledged · Claimed by <@U0CLAIMER> · public acknowledgement posted"
    ids = [e["action_id"] for e in block(blocks, "mm_actions")["elements"]]
    assert ids == ["mm_reply", "mm_snooze", "mm_resolve", "mm_mute"]

    _, blocks = sb.render_alert(view(state="snoozed", snoozed_until=NOW + timedelta(hours=1)))
    assert block(blocks, "mm_state")["elements"][0]["text"] == "Snoozed until 15:05"

    text, blocks = sb.render_alert(view(state="resolved", assignee="U0CLAIMER"))
    assert not any(b["type"] == "actions" for b in blocks)
    assert block(blocks, "mm_state")["elements"][0]["text"] == "Resolved · Claimed by <@U0CLAIMER>"
    assert block(blocks, "mm_head")["text"]["text"].endswith("*✅ was due 14:32*")


def test_dry_run_says_what_would_be_posted() -> None:
    _, blocks = sb.render_alert(view(dry_run=True))
    dry = block(blocks, "mm_dry_run")["elements"][0]["text"]
    assert "would post (dry run)" in dry
    assert "“Hi @angry_anna, sorry about this. Please DM us your order number.”" in dry
    ack = next(e for e in block(blocks, "mm_actions")["elements"] if e["action_id"] == "mm_ack")
    assert ack["confirm"]["title"]["text"] == "Dry run: would post"


def test_grouped_message_counts_the_cases_and_leaves_the_buttons_to_each_case_in_its_thread() -> None:
    members = tuple(OpenCaseLine(case_id=50 - n, platform="x", author_handle=f"user{n}", text=f"broken lamp {n}",
                                 rule="urgent-negative", severity="critical" if n == 3 else "high",
                                 sla_due_at=NOW, assignee="U0AGENT" if n == 1 else "", state="open")
                    for n in range(12))
    text, blocks = sb.render_alert(view(grouped_count=14, notes=("in the last 2 min",), members=members))
    head = block(blocks, "mm_head")["text"]["text"]
    assert head.startswith("🚨 *14 similar mentions* for rule `urgent-negative`")  # the most severe member's mark
    assert text.startswith("🟡 14 similar mentions (urgent-negative): broken lamp 0")
    newest = block(blocks, "mm_members")["text"]["text"].split("\n")
    assert newest[:3] == ["*Newest 10:*", "❗ #50 @user0 (high): broken lamp 0",
                          "❗ #49 @user1 (high · Claimed by <@U0AGENT>): broken lamp 1"]
    assert newest[4] == "🚨 #47 @user3 (critical): broken lamp 3" and len(newest) == 11
    state = block(blocks, "mm_state")["elements"][0]["text"]
    assert "…and 4 more cases in the thread" in state and "in the last 2 min" in state
    assert [e["action_id"] for e in block(blocks, "mm_actions")["elements"]] == ["mm_mute"]
    assert len(blocks) <= 50 and all(len(b.get("text", {}).get("text", "")) <= 3000 for b in blocks)


def test_plurals_come_from_the_catalogue() -> None:
    from monitor import messages as m

    assert m.plural(m.SLACK_GROUP_MORE, 1) == "…and 1 more case in the thread"
    assert m.plural(m.SLACK_GROUP_MORE, 2) == "…and 2 more cases in the thread"
    assert m.plural(m.SLACK_CMD_HEADER, 1) == "*1 open case, most urgent first*"
    assert m.plural(m.SLACK_CMD_HEADER, 1200) == "*1,200 open cases, most urgent first*"


def test_thread_lines_of_a_storm_fit_block_kit_and_carry_each_case_s_buttons() -> None:
    from connectors.sandbox import block_kit
    from monitor.views import ThreadLine

    lines = [ThreadLine(text=f"❗ *#{n}* x @user{n} (high): " + "broken " * 400, member=view(case_id=n))
             for n in range(sb.THREAD_LINES_PER_MESSAGE)]
    text, blocks = sb.render_thread(lines)
    assert block_kit.problems(blocks) == []
    assert text.startswith("24 cases of a storm: #0, #1, #2")
    actions = [b for b in blocks if b["type"] == "actions"]
    assert [e["action_id"] for e in actions[7]["elements"]] == ["mm_claim", "mm_ack", "mm_reply", "mm_resolve"]
    assert {e["value"] for e in actions[7]["elements"]} == {"7"}


def test_link_cannot_break_out_of_its_brackets() -> None:
    _, blocks = sb.render_alert(view(url="https://x.com/a|<!channel>"))
    context = block(blocks, "mm_author")["elements"][0]["text"]
    assert "<https://x.com/a%7C%3C!channel%3E|Open the post>" in context
    _, blocks = sb.render_alert(view(url="javascript:alert(1)"))
    assert "Open the post" not in block(blocks, "mm_author")["elements"][0]["text"]


PIECES = st.sampled_from(["@", "here", "HERE", "channel", "everyone", "<", ">", "&", "!", "#", "^", " ", "a", "\n"])


@given(st.one_of(st.text(max_size=400), st.lists(PIECES, max_size=60).map("".join)))
def test_escaped_text_never_contains_markup_or_broadcasts(raw: str) -> None:
    out = sb.escape_text(raw)
    assert "<" not in out and ">" not in out
    assert not re.search(r"@(here|channel|everyone)", out, re.IGNORECASE)
    assert re.sub(r"&(amp|lt|gt);", "", out).count("&") == 0


@given(st.text(alphabet="ab&<>@ \n", max_size=600), st.integers(min_value=60, max_value=500))
def test_escape_fit_respects_the_limit(raw: str, limit: int) -> None:
    out = sb.escape_fit(raw, limit=limit, suffix="…")
    assert len(out) <= limit
    assert re.sub(r"&(amp|lt|gt);", "", out).count("&") == 0


Line = OpenCaseLine


def test_case_list_is_sorted_by_time_left_and_escaped() -> None:
    lines = [
        Line(1, "facebook", "Ola N", "slow refund", "complaint", "normal", NOW + timedelta(hours=3), "", "open"),
        Line(2, "x", "bob", "<!here> down again", "urgent", "urgent", NOW - timedelta(minutes=5), "U0AAA", "open"),
        Line(3, "x", "cy", "no target", "watch", "low", None, "", "open"),
    ]
    header, blocks = sb.render_case_list(lines, now=NOW, tz="UTC")
    assert header == "*3 open cases, most urgent first*"
    texts = [b["text"]["text"] for b in blocks[1:]]
    assert [t.split(" · ")[0] for t in texts] == ["🔴 #2", "🟢 #1", "⚪ #3"]
    assert texts[0] == ("🔴 #2 · x @bob · `urgent` · overdue by 5 min (was due 13:00) · <@U0AAA>\n"
                        ">&lt;!here&gt; down again")
    assert sb.render_case_list([], now=NOW, tz="UTC")[0] == "No open cases. Quiet for now. :sunny:"


def test_home_view_shows_kpis_and_cases() -> None:
    home = sb.render_home([Line(5, "x", "dee", "help", "urgent", "urgent", NOW + timedelta(minutes=8), "", "open")],
                          stats={"Alerts": "4", "Median first response": "11 min"}, now=NOW, tz="UTC")
    assert home["type"] == "home"
    shown = "\n".join(all_text(home["blocks"]))
    assert "*Median first response*\n11 min" in shown
    assert "🟠 #5 · x @dee · `urgent` · respond by 13:13, 8 min left" in shown
    assert len(home["blocks"]) <= sb.HOME_BLOCKS_MAX


def test_console_notifier_prints_the_same_facts_as_plain_text() -> None:
    out = io.StringIO()
    console = ConsoleNotifier(stream=out)
    text, blocks = console.render_alert(view(text="refund \x1b[31mNOW\x1b[0m <!channel>", assignee="U0CLAIMER"))
    assert blocks == []
    posted = console.post(channel="#alerts", text=text, metadata=sb.alert_metadata(case_id=42))
    printed = out.getvalue()
    assert "[#alerts]" in printed and "URGENT · x mention from @angry_anna" in printed
    assert "respond by 14:32, 27 min left" in printed
    assert "  > refund [31mNOW[0m <!channel>" in printed and "\x1b" not in printed
    assert "Claimed by U0CLAIMER" in printed
    assert "actions: Acknowledge publicly | Reply… | Snooze | Resolve | Mute 4 h" in printed
    assert console.find_by_metadata(channel="#alerts", key="case_id", value="42") == posted
    assert console.find_by_metadata(channel="#alerts", key="case_id", value="43") is None


def test_rendering_is_json_serialisable() -> None:
    text, blocks = sb.render_alert(view(text=HOSTILE))
    json.dumps({"text": text, "blocks": blocks})
