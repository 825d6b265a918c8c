"""`eval`: the figures and the confusion matrix a user reads, and the devset files it runs on."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from monitor.cli.triage import run_eval
from monitor.triage.complaint import CATEGORIES
from monitor.triage.evaluate import DEVSET_DIR, LabelError, metrics, read_devset, read_labelled

SIX = ("en", "da", "hr", "ro", "id", "zh")


def test_metrics_arithmetic():
    m = metrics(
        gold=[True, True, True, False, False, False], predicted=[True, True, False, True, False, False]
    )
    assert (m.tp, m.fn, m.fp, m.tn) == (2, 1, 1, 2)
    assert m.precision == pytest.approx(2 / 3) and m.recall == pytest.approx(2 / 3)
    assert m.f1 == pytest.approx(2 / 3) and m.accuracy == pytest.approx(4 / 6)


def test_eval_complaint_prints_figures_and_confusion_matrix(tmp_path: Path):
    path = tmp_path / "c.tsv"
    path.write_text(
        "label\ttext\n"
        "1\tmy order never arrived, 3 weeks and no refund. worst service ever!!! 😡\n"
        "1\tstill waiting for my order\n"
        "0\tlove the new jacket, fits perfectly ❤️\n"
        "0\tdo you ship to Ireland?\n",
        encoding="utf-8",
    )
    out = io.StringIO()
    assert run_eval(path=path, task="complaint", languages=SIX, stdout=out) == 0
    assert out.getvalue() == (
        f"task complaint: {path}\n"
        "precision 1.000  recall 1.000  F1 1.000  accuracy 1.000  (n=4)\n"
        "confusion matrix (rows = labelled, columns = predicted):\n"
        "           complaint      other\n"
        "complaint          2          0\n"
        "    other          0          2\n"
    ) + out.getvalue()[out.getvalue().index("reliability"):]
    table = out.getvalue().split("reliability of the complaint probability:\n")[1].splitlines()
    assert table[0] == "bin       mean predicted observed rate  count"
    assert sum(int(line.split()[-1]) for line in table[1:]) == 4


def test_reliability_table_bins_predictions_and_compares_with_what_happened():
    from monitor.triage.evaluate import format_reliability, reliability

    table = reliability(gold=[True, False, True, True, False], probabilities=[0.62, 0.65, 0.68, 0.95, 0.05])
    assert format_reliability(table) == (
        "bin       mean predicted observed rate  count\n"
        "0.0-0.1            0.050         0.000      1\n"
        "0.6-0.7            0.650         0.667      3\n"
        "0.9-1.0            0.950         1.000      1"
    )


def test_eval_negative_counts_neg_as_the_positive_class(tmp_path: Path):
    path = tmp_path / "n.tsv"
    path.write_text(
        "label\ttext\nneg\tworst service ever 😡\nneu\twhat time do you open?\npos\tlove it 😍\nneg\tmeh\n",
        encoding="utf-8",
    )
    out = io.StringIO()
    run_eval(path=path, task="negative", languages=SIX, stdout=out)
    text = out.getvalue()
    assert "precision 1.000  recall 0.500  F1 0.667  accuracy 0.750  (n=4)" in text
    assert "      neg          1          1" in text  # "meh" is missed
    assert "  neu/pos          0          2" in text


def test_bad_label_is_reported_with_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = tmp_path / "bad.tsv"
    path.write_text("label\ttext\n1\tfine\nmaybe\tunsure\n", encoding="utf-8")
    with pytest.raises(LabelError, match=r"bad.tsv:3: label 'maybe' is not one of 1/0 or neg/neu/pos"):
        read_labelled(path)
    assert run_eval(path=path, task="complaint", languages=SIX, stdout=io.StringIO()) == 2
    assert "bad.tsv:3: label 'maybe'" in capsys.readouterr().err


def test_devset_is_big_balanced_and_uses_the_fixed_categories():
    rows = read_devset()
    assert len(rows) >= 600
    for lang in SIX:
        mine = [r for r in rows if r.lang == lang]
        assert len(mine) >= 100
        kinds = {r.kind for r in mine}
        assert kinds == {"complaint", "negative", "question", "praise", "neutral", "spam"}
        share = sum(r.complaint for r in mine) / len(mine)
        assert 0.3 <= share <= 0.6
    assert {c for r in rows for c in r.categories} <= set(CATEGORIES)


def test_task_files_match_the_master_file():
    rows = read_devset()
    complaint = read_labelled(DEVSET_DIR / "complaint.tsv")
    negative = read_labelled(DEVSET_DIR / "negative.tsv")
    assert [t for _, t in complaint] == [r.text for r in rows]
    assert [g for g, _ in complaint] == [r.complaint for r in rows]
    assert [g for g, _ in negative] == [r.polarity == "neg" for r in rows]
    ro = read_labelled(DEVSET_DIR / "complaint_ro.tsv")
    assert [t for _, t in ro] == [r.text for r in rows if r.lang == "ro"]


def test_eval_with_rules_says_what_reaches_slack_and_what_is_answered_in_public(tmp_path: Path):
    """`eval --rules`: each labelled line replayed through rules.yaml as an X @mention of its own, as the
    backtest replays stored mentions: how many complaints and other posts reach Slack, by the rule that
    alerts, and how many would get a public reply by itself."""
    root = Path(__file__).resolve().parent.parent
    path = tmp_path / "c.tsv"
    path.write_text(
        "label\ttext\n"
        "1\t@nordlysshop the lamp arrived broken and nobody answers my emails. I want a refund now, worst shop ever 😡\n"
        "1\tstill waiting for my order\n"
        "0\tlove the new jacket, fits perfectly ❤️\n"
        "0\tdo you ship to Ireland?\n",
        encoding="utf-8",
    )
    out = io.StringIO()
    rules = str(root / "rules.yaml")
    assert run_eval(path=path, task="complaint", languages=SIX, stdout=out, rules=rules) == 0
    report = out.getvalue().split("X @mention from a customer of its own (no followers, not verified):\n")[1]
    assert report.splitlines() == [
        "reaches Slack: complaints 2 of 2 (100.0%), others 1 of 2 (50.0%) (false alarms)",
        "  possible-complaint           complaints      1   others      0",
        "  question                     complaints      0   others      1",
        "  urgent-complaint             complaints      1   others      0",
        "public reply by itself: complaints 1 of 2 (50.0%), others 0 of 2 (0.0%)",
    ]


def test_eval_rules_errors_are_one_clear_line_each(tmp_path: Path):
    path = tmp_path / "c.tsv"
    path.write_text("label\ttext\n1\tstill waiting for my order\n", encoding="utf-8")
    with pytest.raises(SystemExit) as missing:
        run_eval(path=path, task="complaint", languages=SIX, stdout=io.StringIO(), rules=str(tmp_path / "nope.yaml"))
    assert str(missing.value).startswith(f"{tmp_path / 'nope.yaml'}: no such file. Copy the default and edit it: cp ")
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nbrand: {name: x}\n", encoding="utf-8")
    with pytest.raises(SystemExit) as bad:
        run_eval(path=path, task="complaint", languages=SIX, stdout=io.StringIO(), rules=str(broken))
    assert str(bad.value).splitlines()[0] == f"eval: {broken} has errors, nothing was evaluated:"
    assert run_eval(path=path, task="negative", languages=SIX, stdout=io.StringIO(), rules=str(broken)) == 2
