"""`explain --source` and `explain --id`: why the rules decided what they did, for a text or a stored mention."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from monitor.cases import pipeline
from monitor.cli import main
from monitor.model import Author, NewMention

ROOT = Path(__file__).resolve().parents[1]
RULES = str(ROOT / "rules.yaml")


def _store(engine, ruleset, clock, *, source: str, kind: str, text: str) -> int:  # type: ignore[no-untyped-def]
    mention = NewMention(platform="x", kind=kind, external_id="1861000000000000001", text=text,
                         author=Author(id="77", handle="lamp_lars", followers=230), created_at=clock.now(),
                         url="https://x.com/lamp_lars/status/1861000000000000001")
    result = pipeline.ingest(engine, source=source, batch=[mention], cursor=None, ruleset=ruleset, now=clock.now())
    [mention_id] = result.stored_ids
    return mention_id


def test_explain_text_with_source_checks_the_rules_source_condition(capsys: pytest.CaptureFixture[str]) -> None:
    text = "the lamp I got from nordlys shop is lovely"
    main(["explain", "--rules", RULES, "--text", text, "--json"])
    unknown = json.loads(capsys.readouterr().out)
    search_rule = next(r for r in unknown["rules"] if r["name"] == "search-hits-need-approval")
    assert search_rule["matched"] is False
    assert "source not known, so not in [x-search]" in search_rule["reasons"]

    main(["explain", "--rules", RULES, "--text", text, "--source", "x-search", "--json"])
    known = json.loads(capsys.readouterr().out)
    search_rule = next(r for r in known["rules"] if r["name"] == "search-hits-need-approval")
    assert (known["platform"], known["kind"], known["source"]) == ("x", "search", "x-search")
    assert search_rule == {"name": "search-hits-need-approval", "matched": True, "tried": True,
                           "reasons": ["kind 'search' in [search]", "source 'x-search' in [x-search]"]}


def test_explain_unknown_source_names_the_close_one(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["explain", "--rules", RULES, "--text", "hi", "--source", "x-serch"])
    assert stop.value.code == 1
    assert capsys.readouterr().err == (
        "explain: rules.yaml has no source 'x-serch'. Did you mean 'x-search'? "
        "Sources: x-mentions, x-search, x-own, x-dms, fb-comments, fb-messages.\n")


def test_explain_id_uses_the_stored_mention_its_source_and_triage(engine, db_url, ruleset, clock,  # type: ignore[no-untyped-def]
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    text = "ordered from nordlys shop, the lamp arrived broken and nobody answers. I want a refund"
    mention_id = _store(engine, ruleset, clock, source="x-search", kind="search", text=text)
    before = _fingerprint(db_url)
    assert main(["explain", "--rules", RULES, "--db", db_url, "--id", str(mention_id)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        f"mention #{mention_id} · x search by @lamp_lars · source x-search · {clock.now():%Y-%m-%d %H:%M} UTC\n"
        f"  {text}\n"
        "stored rule 'urgent-complaint' (triage as stored when it arrived)\n")
    assert "MATCH search-hits-need-approval\n        kind 'search' in [search]\n" \
           "        source 'x-search' in [x-search]\n" in out
    assert "MATCH urgent-complaint" in out
    assert _fingerprint(db_url) == before  # read only

    main(["explain", "--rules", RULES, "--db", db_url, "--id", str(mention_id), "--json"])
    shown = json.loads(capsys.readouterr().out)
    assert shown["mention"]["stored_rule"] == "urgent-complaint"
    assert shown["mention"]["author"] == "@lamp_lars"
    assert shown["source"] == "x-search"
    assert [r["name"] for r in shown["rules"] if r["matched"]] == ["search-hits-need-approval", "urgent-complaint"]


def test_explain_id_not_stored_says_so(engine, db_url, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as stop:
        main(["explain", "--rules", RULES, "--db", db_url, "--id", "404"])
    assert stop.value.code == 1
    assert capsys.readouterr().err == f"explain: no stored mention #404 in {db_url}.\n"


def _fingerprint(db_url: str) -> str:
    if not db_url.startswith("sqlite"):
        return ""
    return hashlib.sha256(Path(db_url.removeprefix("sqlite:///")).read_bytes()).hexdigest()
