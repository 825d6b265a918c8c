"""Broken rules.yaml files: each must give exactly these messages, at exactly these places.

Community managers edit rules.yaml by hand; the text below is what they read,
so it is pinned word for word.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.rules import RulesError, load_rules, parse_rules

REPO = Path(__file__).resolve().parent.parent

BASE = """\
version: 1
brand:
  name: Nordlys Shop
  languages: [en, da]
sources:
  - {name: x-mentions, platform: x, kind: mention, every: 60s}
channels:
  alerts: "#cs-alerts"
templates:
  move_to_dm:
    en: "Hi @{author}, we have sent you a DM."
    da: "Hej @{author}, vi har sendt dig en besked."
rules:
  - name: urgent
    when: {complaint: {min: 0.6}}
    alert: {channel: alerts, severity: high, sla: 30m}
    acknowledge: {template: move_to_dm, mode: auto}
"""


def edit(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new, 1)



CASES = [
    pytest.param(
        edit("{channel: alerts,", "{chanel: alerts,"),
        ["rules.yaml:16:13: unknown key 'chanel' in rules[0].alert; did you mean 'channel'?"],
        id="misspelt-alert-key",
    ),
    pytest.param(
        BASE + "rule: []\n",
        ["rules.yaml:18:1: unknown key 'rule' in the top level of the file; did you mean 'rules'?"],
        id="unknown-top-level-key",
    ),
    pytest.param(
        edit("  languages: [en, da]\n", "  languages: [en, da]\n  colour: blue\n"),
        ["rules.yaml:5:3: unknown key 'colour' in brand"],
        id="unknown-key-no-suggestion",
    ),
    pytest.param(
        edit("version: 1\n", ""),
        ["rules.yaml:1:1: missing key 'version' in the top level of the file"],
        id="missing-version",
    ),
    pytest.param(
        edit("version: 1\n", "version: 2\n"),
        ['rules.yaml:1:10: version 2 is not supported; this mention-monitor reads version 1'],
        id="unsupported-version",
    ),
    pytest.param(
        BASE.split("rules:")[0],
        ["rules.yaml:1:1: missing key 'rules' in the top level of the file"],
        id="missing-rules",
    ),
    pytest.param(
        edit(", sla: 30m}", "}"),
        ["rules.yaml:16:5: missing key 'sla' in rules[0].alert"],
        id="missing-sla",
    ),
    pytest.param(
        edit("severity: high", "severity: urgent"),
        ["rules.yaml:16:40: rules[0].alert.severity: 'urgent' is not one of 'low', 'normal', 'high' or "
"'critical'"],
        id="bad-severity",
    ),
    pytest.param(
        edit("sla: 30m", "sla: 30 minutes"),
        ["rules.yaml:16:51: rules[0].alert.sla: '30 minutes' is not a duration; write a number and a unit, "
'like 90s, 30m, 2h or 1d'],
        id="duration-in-words",
    ),
    pytest.param(
        edit("every: 60s", "every: 60"),
        ['rules.yaml:6:59: sources[0].every: 60 has no unit; write it like 60s, 60m or 60h'],
        id="duration-without-unit",
    ),
    pytest.param(
        edit("sla: 30m", "sla: 0m"),
        ['rules.yaml:16:51: rules[0].alert.sla: must be longer than 0s'],
        id="zero-sla",
    ),
    pytest.param(
        edit("template: move_to_dm,", "template: move_to_dm2,"),
        ["rules.yaml:17:29: template 'move_to_dm2' used by rule 'urgent' is not defined; did you mean "
"'move_to_dm'?"],
        id="undefined-template",
    ),
    pytest.param(
        edit("{channel: alerts,", "{channel: vip,"),
        ["rules.yaml:16:22: channel 'vip' used by rule 'urgent' is not defined under channels; defined: "
'alerts'],
        id="undefined-channel",
    ),
    pytest.param(
        edit("{channel: alerts,", "{channel: alert,"),
        ["rules.yaml:16:22: channel 'alert' used by rule 'urgent' is not defined under channels; did you "
"mean 'alerts'?"],
        id="misspelt-channel-alias",
    ),
    pytest.param(
        BASE + "  - name: urgent\n    when: {all: []}\n    alert: {channel: alerts, sla: 2h}\n",
        ["rules.yaml:18:11: rule name 'urgent' is used twice (first at line 14); give each rule its own "
'name'],
        id="duplicate-rule-name",
    ),
    pytest.param(
        edit('da: "Hej @{author},', 'da: "Hej @{autor},'),
        ["rules.yaml:12:9: unknown variable '{autor}' in template 'move_to_dm' (da); known: {author}, "
'{brand}, {eta}, {agent}, {dm_link}'],
        id="unknown-template-variable",
    ),
    pytest.param(
        edit('en: "Hi @{author}, we', 'en: "Hi @{author}, {we'),
        ["rules.yaml:11:9: template 'move_to_dm' (en) has a '{' or '}' without its partner; write {{ or }} "
'for a literal brace'],
        id="stray-brace",
    ),
    pytest.param(
        edit('en: "Hi @{author}, we have sent you a DM."', 'en: "' + "Sorry! " * 41 + '"'),
        ["rules.yaml:11:9: template 'move_to_dm' (en) can reach 287 characters on X, over its limit of 280; "
'shorten it'],
        id="template-too-long-for-x",
    ),
    pytest.param(
        edit("when: {complaint: {min: 0.6}}", "when: {regex: '(late|slow'}"),
        ["rules.yaml:15:19: rules[0].when.regex: bad regular expression '(late|slow': missing ), "
'unterminated subpattern at position 0'],
        id="bad-regex",
    ),
    pytest.param(
        BASE + "business_hours: {timezone: Europe/Copenhagn}\n",
        ["rules.yaml:18:28: business_hours.timezone: unknown time zone 'Europe/Copenhagn'; did you mean "
"'Europe/Copenhagen'?"],
        id="bad-timezone",
    ),
    pytest.param(
        BASE + "business_hours: {hours: '8-18'}\n",
        ["rules.yaml:18:25: business_hours.hours: '8-18' is not an opening-hours range; write it like "
'"08:00-18:00"'],
        id="bad-opening-hours",
    ),
    pytest.param(
        BASE + "escalation: {warn_at: 75}\n",
        ['rules.yaml:18:23: escalation.warn_at: must be a fraction of the SLA between 0 and 1, like 0.75; '
'got 75 (write 0.75 for 75%)'],
        id="warn-at-outside-0-1",
    ),
    pytest.param(
        edit("    when: {complaint: {min: 0.6}}", "    when: {complaint: {min: 0.6}"),
        ["rules.yaml:16:5: YAML syntax error: expected ',' or '}', but got '<scalar>'"],
        id="yaml-syntax-error",
    ),
    pytest.param(
        edit("    when: {complaint: {min: 0.6}}\n", "    when: {complaint: {min: 0.6}}\n    when: {}\n"),
        ["rules.yaml:16:5: key 'when' appears twice in this mapping; keep only one"],
        id="duplicate-yaml-key",
    ),
    pytest.param(
        edit("  name: Nordlys Shop", "\tname: Nordlys Shop"),
        ["rules.yaml:3:1: YAML syntax error: found character '\\t' that cannot start any token"],
        id="tab-indent",
    ),
    pytest.param(
        edit("{complaint: {min: 0.6}}", "{followers: {min: '10k'}}"),
        ["rules.yaml:15:29: rules[0].when.followers.min: expected a whole number, got '10k'"],
        id="wrong-type-followers",
    ),
    pytest.param(
        edit("{complaint: {min: 0.6}}", "{sentiment: {min: 0.5, max: -0.5}}"),
        ['rules.yaml:15:23: rules[0].when.sentiment: min 0.5 is greater than max -0.5, so nothing can match'],
        id="range-min-above-max",
    ),
    pytest.param(
        edit("{complaint: {min: 0.6}}", "{categories_any: [refunds]}"),
        ["rules.yaml:15:29: rules[0].when.categories_any[0]: 'refunds' is not one of 'delivery', "
"'wrong_item', 'damaged', 'refund', 'billing', 'account', 'no_response', 'cancellation', "
"'churn_threat' or 'question'; did you mean 'refund'?"],
        id="unknown-category",
    ),
    pytest.param(
        edit("{complaint: {min: 0.6}}", "{complain: {min: 0.6}}"),
        ["rules.yaml:15:12: unknown key 'complain' in rules[0].when; did you mean 'complaint'?"],
        id="unknown-condition-key",
    ),
    pytest.param(
        edit("    acknowledge: {template: move_to_dm, mode: auto}\n", "    drop: true\n"),
        ["rules.yaml:14:5: rule 'urgent' drops the mention, so its alert would never happen; remove one of "
'them'],
        id="drop-with-alert",
    ),
    pytest.param(
        BASE + "  - name: nothing\n    when: {verified: true}\n",
        ["rules.yaml:18:5: rule 'nothing' does nothing; give it alert, acknowledge or drop: true"],
        id="rule-without-action",
    ),
    pytest.param(
        edit("{complaint: {min: 0.6}}", "{verified: 'yes'}"),
        ["rules.yaml:15:22: rules[0].when.verified: expected true or false, got 'yes'"],
        id="bool-as-text",
    ),
    pytest.param(
        edit("kind: mention, every: 60s}", "kind: search, every: 60s}"),
        ['rules.yaml:6:5: source \'x-mentions\' searches X but has no query; add one, like query: \'"your '
'brand" -is:retweet\''],
        id="search-without-query",
    ),
    pytest.param(
        edit("  - {name: x-mentions, platform: x, kind: mention, every: 60s}\n",
                             "  - {name: x-mentions, platform: x, kind: mention, every: 60s}\n"
                             "  - {name: x-mentions, platform: facebook, kind: comment, every: 60s}\n"),
        ["rules.yaml:7:12: source name 'x-mentions' is used twice (first at line 6); give each source its "
'own name'],
        id="duplicate-source",
    ),
    pytest.param(
        edit("{complaint: {min: 0.6}}", "{sources: [x-serach]}"),
        ["rules.yaml:15:22: source 'x-serach' used by rule 'urgent' is not defined under sources; defined: "
'x-mentions'],
        id="undefined-source-in-condition",
    ),
    pytest.param(
        edit('    en: "Hi @{author}, we have sent you a DM."\n', ""),
        ["rules.yaml:10:3: template 'move_to_dm' has no text in the default language 'en', which is used "
"when the mention's language has none; add one"],
        id="no-default-language-text",
    ),
    pytest.param(
        BASE + "slack: {approvers: [bob]}\n",
        ["rules.yaml:18:21: slack.approvers[0]: 'bob' is not a Slack user id (U.../W...) or user-group id "
"(S...); copy it from the person's or group's profile in Slack"],
        id="bad-slack-id",
    ),
    pytest.param(
        BASE + "escalation:\n  steps:\n    - {after: 30m, channel: alerts}\n    - {after: 5m, channel: alerts}\n",
        ['rules.yaml:21:15: escalation step 1 starts after 5m, earlier than the step before it (30m); list '
'the steps in time order'],
        id="escalation-steps-out-of-order",
    ),
    pytest.param(
        edit("we have sent you a DM.", "see https://nordlys.example/help"),
        ["rules.yaml:11:9: template 'move_to_dm' (en) contains a link, but acknowledgement.allow_urls is "
'false (on X a post with a link costs far more); remove the link or set allow_urls: true'],
        id="link-in-template",
    ),
    pytest.param(
        "",
        ['rules.yaml:1:1: the file is empty; copy the default rules.yaml and edit it'],
        id="empty-file",
    ),
    pytest.param(
        "- just\n- a list\n",
        ['rules.yaml:1:1: the file must be a mapping (version: 1, brand: ..., rules: ...), not a list'],
        id="not-a-mapping",
    ),
    pytest.param(
        edit('en: "Hi @{author}, we have', 'en: "Hi @{author]}, we have'),
        ["rules.yaml:11:9: unknown variable '{author]}' in template 'move_to_dm' (en); known: {author}, {brand}, "
         "{eta}, {agent}, {dm_link}"],
        id="template-field-not-exactly-a-variable",
    ),
    pytest.param(
        BASE + "business_hours: {timezone: Europe/Copenhagen, public_holidays: [DKK]}\n",
        ["rules.yaml:18:64: business_hours.public_holidays: 'DKK' is not a country the holiday calendar knows; "
         "did you mean 'DK'?"],
        id="unknown-holiday-country",
    ),
    pytest.param(
        BASE + "business_hours: {timezone: Europe/Copenhagen, holidays: [13-24]}\n",
        ["rules.yaml:18:58: business_hours.holidays[0]: '13-24' is not a date; write it like 2026-12-24, "
         "or 12-24 for every year"],
        id="bad-annual-holiday",
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_broken_file_reports_exact_messages(text: str, expected: list[str]) -> None:
    with pytest.raises(RulesError) as caught:
        parse_rules(text)
    assert caught.value.errors == expected


def test_table_covers_at_least_25_distinct_files() -> None:
    texts = {case.values[0] for case in CASES}
    assert len(texts) == len(CASES) >= 25


def test_the_base_file_itself_is_valid() -> None:
    ruleset = parse_rules(BASE)
    assert [rule.name for rule in ruleset.rules] == ["urgent"]


THREE_MISTAKES = """\
version: 1
brand:
  name: Nordlys Shop
channels:
  alerts: "#cs-alerts"
templates:
  move_to_dm:
    en: "Hi @{author}, we have sent you a DM."
rules:
  - name: urgent
    when: {complaint: {min: 0.6}}
    alert:
      chanel: alerts
      sla: half an hour
    acknowledge: {template: move_to_dm2, mode: auto}
"""


def test_three_mistakes_give_three_errors_in_line_order(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(THREE_MISTAKES, encoding="utf-8")
    with pytest.raises(RulesError) as caught:
        load_rules(path)
    assert caught.value.errors == [
        f"{path}:13:7: unknown key 'chanel' in rules[0].alert; did you mean 'channel'?",
        f"{path}:14:12: rules[0].alert.sla: 'half an hour' is not a duration; "
        "write a number and a unit, like 90s, 30m, 2h or 1d",
        f"{path}:15:29: template 'move_to_dm2' used by rule 'urgent' is not defined; did you mean 'move_to_dm'?",
    ]
    # str() is what the CLI prints: one error per line
    assert str(caught.value) == "\n".join(caught.value.errors)


def test_errors_name_the_file_given() -> None:
    with pytest.raises(RulesError) as caught:
        parse_rules("version: 1\n", filename="team/rules.yaml")
    assert caught.value.errors == [
        "team/rules.yaml:1:1: missing key 'brand' in the top level of the file",
        "team/rules.yaml:1:1: missing key 'rules' in the top level of the file",
    ]


def test_missing_file_is_a_rules_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(RulesError) as caught:
        load_rules(path)
    assert caught.value.errors == [f"{path}:1:1: cannot read this file: No such file or directory"]


def test_default_rules_yaml_loads_clean() -> None:
    ruleset = load_rules(REPO / "rules.yaml")
    assert ruleset.brand.name == "Nordlys Shop"
    assert ruleset.channel("vip") == "#cs-vip"
    assert ruleset.source("x-search").query == '"nordlys shop" -is:retweet -@nordlysshop'
    assert set(ruleset.templates["move_to_dm"]) == {"en", "da", "hr", "ro", "id", "zh"}


DEFAULT_TEXT = (REPO / "rules.yaml").read_text(encoding="utf-8")
JUNK = ["{", "}", "[", "]", ":", "\n", "-", '"', "'", "\t", "#", "!!int ", "&a [*a]", "*nope", "x: 1", "  "]


@settings(max_examples=60, deadline=None)
@given(position=st.integers(min_value=0, max_value=len(DEFAULT_TEXT)), junk=st.sampled_from(JUNK),
       cut=st.integers(min_value=0, max_value=5))
def test_a_damaged_default_file_never_crashes_the_loader(position: int, junk: str, cut: int) -> None:
    text = DEFAULT_TEXT[:position] + junk + DEFAULT_TEXT[position + cut:]
    try:
        parse_rules(text)
    except RulesError as exc:
        assert exc.errors
        last_line = text.count("\n") + 1
        for line in exc.errors:
            match = re.match(r"rules\.yaml:(\d+):(\d+): \S", line)
            assert match, line
            assert 1 <= int(match.group(1)) <= last_line + 1
