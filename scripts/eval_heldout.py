"""Figures for docs/triage.md: triage and plain VADER on the held-out public split.

    python scripts/eval_heldout.py [--mirror /work/.mirror] [--json out.json] [--low 0.3 --high 0.9]
                                   [--alert-sentiment] [--by-source] [--original-sources]

The held-out split (20% of the rows, chosen by a hash of the text: scripts/triage_corpora.py)
is never used for training or calibration. Each post is triaged with its language as the
platform hint, as X sends it. Prints per language and task precision, recall and F1,
the reliability table of the complaint probability, and the two rule thresholds' rates
(by default the thresholds that scripts/train_complaint.py chose on the calibration split,
as the default rules.yaml uses them), the ROC AUC of the complaint probability, and the
best recall at <= 20% false alarms for reference (that threshold is read off the held-out
split itself, so it is a measure of ranking, never a setting). With --by-source, also
negative P/R/F1 and the alert rule's recall and false alarms per source corpus, and over the
rows written to a company (customer queries and reviews, the closest to posts addressed to a
brand). Then the whole of rules.yaml (--rules): each post replayed as an X @mention, as
`mention-monitor eval --rules` does, what reaches Slack by any rule (a question's alert, a language
it cannot score, too) and what gets a public reply by itself.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from triage_corpora import DEFAULT_MIRROR, ORIGINAL_SOURCES, Row, load  # noqa: E402

from monitor.cases.backtest import customer_outcomes  # noqa: E402
from monitor.model import Score  # noqa: E402
from monitor.rules import load_rules  # noqa: E402
from monitor.triage import SUPPORTED_LANGUAGES, triage_many  # noqa: E402
from monitor.triage.complaint import MODEL_PATH  # noqa: E402
from monitor.triage.evaluate import format_reliability, metrics, reliability  # noqa: E402


def _rates(alerted: list[bool], gold: list[bool]) -> tuple[float, float]:
    """(share of complaints alerted, share of non-complaints alerted)."""
    positives = sum(gold)
    hit = sum(a for a, g in zip(alerted, gold, strict=True) if g)
    false = sum(a for a, g in zip(alerted, gold, strict=True) if not g)
    return hit / positives, false / (len(gold) - positives)


def _auc(gold: list[bool], probabilities: list[float]) -> float:
    """ROC AUC by ranks (ties share their mean rank)."""
    order = sorted(range(len(gold)), key=lambda i: probabilities[i])
    ranks = [0.0] * len(gold)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and probabilities[order[end + 1]] == probabilities[order[start]]:
            end += 1
        for k in range(start, end + 1):
            ranks[order[k]] = (start + end) / 2 + 1
        start = end + 1
    positives = sum(gold)
    negatives = len(gold) - positives
    rank_sum = sum(r for r, g in zip(ranks, gold, strict=True) if g)
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", type=Path, default=DEFAULT_MIRROR)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    chosen = json.loads(MODEL_PATH.read_text(encoding="utf-8")).get("thresholds", {})
    parser.add_argument("--low", type=float, default=chosen.get("alert", 0.5), help="alert threshold on complaint")
    parser.add_argument("--high", type=float, default=chosen.get("auto", 0.9), help="auto-reply threshold")
    parser.add_argument("--alert-sentiment", action=argparse.BooleanOptionalAction,
                        default=chosen.get("alert_with_sentiment", True),
                        help="the alert rule also takes sentiment <= -0.05")
    parser.add_argument("--no-hint", action="store_true", help="triage without the language hint")
    parser.add_argument("--by-source", action="store_true", help="also negative P/R/F1 per source corpus")
    parser.add_argument("--rules", type=Path, default=Path(__file__).resolve().parent.parent / "rules.yaml",
                        help="the rules.yaml whose whole decision is also measured (default: the shipped one)")
    parser.add_argument(
        "--original-sources", action="store_true",
        help="only the first three corpora (the 14,278 held-out rows earlier releases were measured on)",
    )
    args = parser.parse_args(argv)
    rows, commits = load(args.mirror, sources=ORIGINAL_SOURCES if args.original_sources else None)
    held = [r for r in rows if r.split == "heldout"]
    started = time.perf_counter()
    scores = triage_many(
        [r.text for r in held],
        lang_hints=None if args.no_hint else [r.lang for r in held],
        languages=SUPPORTED_LANGUAGES,
    )
    elapsed = time.perf_counter() - started
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    vader = SentimentIntensityAnalyzer()
    plain = [vader.polarity_scores(r.text)["compound"] < -0.05 for r in held]
    out: dict = {"commits": commits, "rows": len(held), "figures": {}}
    print(f"held-out rows {len(held)}; triage {1e6 * elapsed / len(held):.0f} us/post")
    print(f"{'lang':<5} {'task':<10} {'n':>6} {'pos':>5}  {'triage P/R/F1':>20}  {'VADER P/R/F1':>20}")
    for lang in ["all", *SUPPORTED_LANGUAGES]:
        picked = [i for i, r in enumerate(held) if lang == "all" or r.lang == lang]
        for task in ("negative", "complaint"):
            idx = [i for i in picked if task == "complaint" or held[i].negative is not None]
            if not idx:
                continue
            gold = [bool(held[i].negative if task == "negative" else held[i].complaint) for i in idx]
            ours = [scores[i].negative if task == "negative" else scores[i].is_complaint for i in idx]
            m, v = metrics(gold=gold, predicted=ours), metrics(gold=gold, predicted=[plain[i] for i in idx])
            out["figures"][f"{lang}/{task}"] = {
                "n": len(idx), "positives": sum(gold),
                "triage": [round(m.precision, 3), round(m.recall, 3), round(m.f1, 3)],
                "vader": [round(v.precision, 3), round(v.recall, 3), round(v.f1, 3)],
            }
            print(
                f"{lang:<5} {task:<10} {len(idx):>6} {sum(gold):>5}  "
                f"{m.precision:6.3f} {m.recall:6.3f} {m.f1:6.3f}  {v.precision:6.3f} {v.recall:6.3f} {v.f1:6.3f}"
            )
    if args.by_source:
        out["by_source"] = _by_source(held, scores)
    gold = [r.complaint for r in held]
    table = reliability(gold=gold, probabilities=[s.complaint for s in scores])
    print("\nreliability of the complaint probability (held-out):")
    print(format_reliability(table))
    out["reliability"] = [[b.low, b.high, round(b.mean_predicted, 3), round(b.observed, 3), b.count] for b in table]
    alert = [s.complaint >= args.low or (args.alert_sentiment and s.negative) for s in scores]
    # rules.yaml's urgent-complaint: complaint >= high, or >= high - 0.1 with a damaged/refund/churn category
    auto = [
        s.complaint >= args.high
        or (s.complaint >= args.high - 0.1 and bool({"damaged", "refund", "churn_threat"} & set(s.categories)))
        for s in scores
    ]
    (alert_recall, alert_false), (auto_recall, auto_false) = _rates(alert, gold), _rates(auto, gold)
    if args.by_source:
        out["alert_by_source"] = _alert_by_source(held, alert, title="alert rule")
    ruleset = load_rules(args.rules)
    replayed = customer_outcomes([r.text for r in held], scores, ruleset=ruleset)
    slack, public = [o.alert is not None for o in replayed], [bool(o.auto_reply) for o in replayed]
    (slack_recall, slack_false), (public_recall, public_false) = _rates(slack, gold), _rates(public, gold)
    print(f"\nall of {args.rules} (each post an X @mention from a customer of its own, as `mention-monitor eval "
          f"--rules` replays it): reaches Slack: recall {slack_recall:.3f}, false alarms {slack_false:.3f}; "
          f"public reply by itself: recall {public_recall:.3f}, non-complaints {public_false:.4f}")
    out["rules"] = {"file": str(args.rules), "slack_recall": round(slack_recall, 4),
                    "slack_false_alarm": round(slack_false, 4), "public_recall": round(public_recall, 4),
                    "public_on_non_complaints": round(public_false, 4)}
    if args.by_source:
        out["rules"]["by_source"] = _alert_by_source(held, slack, title=f"all of {args.rules}", replied=public)
    rates = {
        "alert_recall": alert_recall, "alert_false_alarm": alert_false,
        "auto_recall": auto_recall, "auto_on_non_complaints": auto_false,
    }
    print(
        f"\nalert rule (complaint >= {args.low}{' or sentiment <= -0.05' if args.alert_sentiment else ''}): recall {rates['alert_recall']:.3f}, "
        f"false alarms {rates['alert_false_alarm']:.3f} of non-complaints"
    )
    print(
        f"auto-reply rule (complaint >= {args.high}, or >= {args.high - 0.1:.2f} with damaged/refund/churn_threat): recall {rates['auto_recall']:.3f}, "
        f"non-complaints auto-replied {rates['auto_on_non_complaints']:.4f}"
    )
    auc = _auc(gold, [s.complaint for s in scores])
    point = max(
        (
            (recall, t / 100)
            for t in range(1, 100)
            for recall, false in [_rates([s.complaint >= t / 100 for s in scores], gold)]
            if false <= 0.20
        ),
        default=(0.0, 1.0),
    )
    print(f"ranking: AUC {auc:.4f}; best recall at <= 20% false alarms {point[0]:.3f} (complaint >= {point[1]})")
    rates["auc"], rates["recall_at_fa_0.20"] = auc, point[0]
    out["thresholds"] = {"low": args.low, "high": args.high, "alert_sentiment": args.alert_sentiment, **{k: round(v, 4) for k, v in rates.items()}}
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return 0


def _source(row: Row) -> str:
    """A row's source corpus, SmSA's train and valid rows together (both are posts and reviews)."""
    return "smsa" if row.source.startswith("smsa") else row.source


def _by_source(held: list[Row], scores: list[Score]) -> dict[str, list[float]]:
    """Negative P/R/F1 per source."""
    figures: dict[str, list[float]] = {}
    print("\nnegative by source (held-out):")
    for name in sorted({_source(r) for r in held if r.negative is not None}):
        idx = [i for i, r in enumerate(held) if r.negative is not None and _source(r) == name]
        gold = [bool(held[i].negative) for i in idx]
        m = metrics(gold=gold, predicted=[scores[i].negative for i in idx])
        figures[name] = [len(idx), sum(gold), round(m.precision, 3), round(m.recall, 3), round(m.f1, 3)]
        print(f"{name:<16} {len(idx):>6} {sum(gold):>5}  {m.precision:6.3f} {m.recall:6.3f} {m.f1:6.3f}")
    return figures


# The rows written to a company (customer-service queries, product and service reviews): what the issue's
# target means by "non-complaints addressed to the brand"; subtitle lines and general tweets are not.
TO_A_COMPANY = ("banking77", "smsa", "casa-train", "casa-valid", "amazon-zh")


def _alert_by_source(held: list[Row], alert: list[bool], *, title: str,
                     replied: list[bool] | None = None) -> dict[str, list[float]]:
    """Recall and false alarms of `alert` per source, and over the rows written to a company (and with
    `replied`, the share of non-complaints answered in public by itself)."""
    groups = {name: [i for i, r in enumerate(held) if _source(r) == name] for name in sorted({_source(r) for r in held})}
    groups["written to a company"] = [i for i, r in enumerate(held) if _source(r) in TO_A_COMPANY]
    figures: dict[str, list[float]] = {}
    print(f"\n{title} by source (held-out; written to a company: {', '.join(TO_A_COMPANY)}):")
    print(f"{'source':<22} {'complaints':>10} {'recall':>7} {'others':>7} {'false alarms':>12}"
          + (f" {'public replies to others':>25}" if replied else ""))
    for name, idx in groups.items():
        complaints = [i for i in idx if held[i].complaint]
        others = [i for i in idx if not held[i].complaint]
        recall = sum(alert[i] for i in complaints) / len(complaints) if complaints else float("nan")
        false = sum(alert[i] for i in others) / len(others) if others else float("nan")
        figures[name] = [len(complaints), round(recall, 3), len(others), round(false, 3)]
        line = f"{name:<22} {len(complaints):>10} {recall:>7.3f} {len(others):>7} {false:>12.3f}"
        if replied:
            public = sum(replied[i] for i in others) / len(others) if others else float("nan")
            figures[name].append(round(public, 4))
            line += f" {public:>25.4f}"
        print(line)
    return figures


if __name__ == "__main__":
    raise SystemExit(main())
