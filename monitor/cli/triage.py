"""`mention-monitor triage` and `mention-monitor eval`: triage from the shell, and measure it.

mention-monitor triage < posts.txt            one JSON object per input line, in order
mention-monitor eval --task complaint FILE.tsv
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


def run_eval(*, path: Path, task: str, languages: Sequence[str], stdout: TextIO) -> int:
    from monitor.triage.evaluate import LabelError, evaluate_file_scores, format_reliability, reliability

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
    return 0


def _cmd_triage(args: argparse.Namespace) -> int:
    return run_triage(stdin=sys.stdin, stdout=sys.stdout, languages=_languages(args.languages))


def _cmd_eval(args: argparse.Namespace) -> int:
    return run_eval(
        path=Path(args.file), task=args.task, languages=_languages(args.languages), stdout=sys.stdout
    )


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
    evaluate.set_defaults(func=_cmd_eval)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitor.cli.triage")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
