"""`mention-monitor triage` and `mention-monitor eval`: triage from the shell, and measure it.

mention-monitor triage < posts.txt            one JSON object per input line, in order
mention-monitor eval --task complaint FILE.tsv [--rules rules.yaml]
python -m monitor.cli.triage triage ...       the same, before monitor/cli/__init__.py wires it
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from monitor.model import Score

_LABELS = {"complaint": ("complaint", "other"), "negative": ("neg", "neu/pos")}


def score_json(score: Score) -> dict[str, Any]:
    """The public JSON shape of one triaged line."""
    return {
        "lang": score.lang,
        "sentiment": score.sentiment,
        "complaint": score.complaint,
        "is_complaint": score.is_complaint,
        "negative": score.negative,
        "categories": list(score.categories),
    }


def _languages(raw: str | None) -> list[str]:
    from monitor.triage.lexicon import SUPPORTED_LANGUAGES

    if not raw:
        return list(SUPPORTED_LANGUAGES)
    return [part.strip().lower() for part in raw.split(",") if part.strip()]


def run_triage(*, stdin: TextIO, stdout: TextIO, languages: Sequence[str], batch: int = 512) -> int:
    """Read one text per line, write one JSON object per line, in order (empty lines too)."""
    from monitor.triage import triage_many

    pending: list[str] = []

    def flush() -> None:
        for score in triage_many(pending, languages=languages):
            stdout.write(json.dumps(score_json(score), ensure_ascii=False) + "\n")
        stdout.flush()
        pending.clear()

    for line in stdin:
        pending.append(line.rstrip("\r\n"))
        if len(pending) >= batch:
            flush()
    if pending:
        flush()
    return 0


def run_eval(*, path: Path, task: str, languages: Sequence[str], stdout: TextIO, rules: str = "") -> int:
    from monitor.triage.evaluate import (
        LabelError,
        evaluate_file_scores,
        format_reliability,
        read_labelled,
        reliability,
    )

    if rules and task != "complaint":
        print("eval: --rules needs --task complaint (the rules decide on complaints, not on sentiment labels)",
              file=sys.stderr)
        return 2
    ruleset = _rules(rules) if rules else None
    try:
        result, gold, scores = evaluate_file_scores(path, task=task, languages=languages)
    except FileNotFoundError:
        print(f"eval: no such file: {path}", file=sys.stderr)
        return 2
    except LabelError as exc:
        print(f"eval: {exc}", file=sys.stderr)
        return 2
    positive, negative = _LABELS[task]
    stdout.write(f"task {task}: {path}\n{result.report(positive=positive, negative=negative)}\n")
    if task == "complaint":
        table = reliability(gold=gold, probabilities=[s.complaint for s in scores])
        stdout.write(f"reliability of the complaint probability:\n{format_reliability(table)}\n")
    if ruleset is not None:
        from monitor.cases.backtest import customer_outcomes

        texts = [text for _, text in read_labelled(path)]
        outcomes = customer_outcomes(texts, scores, ruleset=ruleset)
        stdout.write(format_rule_outcomes(outcomes, gold=gold, rules=rules))
    return 0


def format_rule_outcomes(outcomes: Sequence[Any], *, gold: Sequence[bool], rules: str) -> str:
    """Of the complaints and of the other posts: how many reach Slack (by the rule that alerts), and how
    many get a public reply by itself."""
    from collections import Counter

    complaints, others = sum(gold), len(gold) - sum(gold)
    alerted = Counter((o.alert[0], g) for o, g in zip(outcomes, gold, strict=True) if o.alert)
    replied = Counter(g for o, g in zip(outcomes, gold, strict=True) if o.auto_reply)

    def share(count: int, of: int) -> str:
        return f"{count} of {of} ({count / of:.1%})" if of else "0 of 0"

    def reached(complaint: bool) -> int:
        return sum(n for (_, g), n in alerted.items() if g == complaint)

    lines = [f"what {rules} does with each line as an X @mention from a customer of its own "
             "(no followers, not verified):",
             f"reaches Slack: complaints {share(reached(True), complaints)}, "
             f"others {share(reached(False), others)} (false alarms)"]
    for rule in sorted({rule for rule, _ in alerted}, key=lambda r: (-alerted[(r, True)] - alerted[(r, False)], r)):
        lines.append(f"  {rule:<28} complaints {alerted[(rule, True)]:>6}   others {alerted[(rule, False)]:>6}")
    lines.append(f"public reply by itself: complaints {share(replied[True], complaints)}, "
                 f"others {share(replied[False], others)}")
    return "\n".join(lines) + "\n"


def _cmd_triage(args: argparse.Namespace) -> int:
    return run_triage(stdin=sys.stdin, stdout=sys.stdout, languages=_languages(args.languages))


def _cmd_eval(args: argparse.Namespace) -> int:
    return run_eval(
        path=Path(args.file), task=args.task, languages=_languages(args.languages), stdout=sys.stdout,
        rules=args.rules or "",
    )


def _rules(path: str) -> Any:
    from monitor import messages as msg
    from monitor.cli.backtest import load_rules_or_exit

    return load_rules_or_exit(path, bad=msg.EVAL_RULES_BAD)


def register(subparsers: Any) -> None:
    """Add the `triage` and `eval` subcommands to the main parser's subparsers."""
    languages_help = "comma-separated ISO 639-1 codes to detect among (default: en,da,hr,ro,id,zh)"
    triage = subparsers.add_parser(
        "triage", help="triage one text per stdin line; one JSON object per line out"
    )
    triage.add_argument("--languages", help=languages_help)
    triage.set_defaults(func=_cmd_triage)

    evaluate = subparsers.add_parser("eval", help="precision, recall, F1 of triage on a labelled TSV file")
    evaluate.add_argument("--task", choices=("complaint", "negative"), required=True)
    evaluate.add_argument("file", help="TSV with a header, then label<TAB>text (1/0 or neg/neu/pos)")
    evaluate.add_argument("--languages", help=languages_help)
    evaluate.add_argument("--rules", metavar="RULES_YAML",
                          help="also say what this rules.yaml does with each line as an X @mention: how many "
                               "complaints and other posts reach Slack, and get a public reply by itself")
    evaluate.set_defaults(func=_cmd_eval)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitor.cli.triage")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
