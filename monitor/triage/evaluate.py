"""Measure triage against labelled TSV files: precision, recall, F1, accuracy, confusion matrix.

Task files have a header, then `label<TAB>text`; complaint labels are 1/0, negative
labels neg/neu/pos (neg is the positive class). The development set's master file
(data/devset/mentions.tsv) carries every label at once; `write_task_files` derives
the per-task and per-language files from it.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from monitor.model import Score

TASKS = ("complaint", "negative")
DEVSET_DIR = Path(__file__).resolve().parents[2] / "data" / "devset"
_TRUE = {"1", "true", "yes", "y", "neg", "negative", "complaint"}
_FALSE = {"0", "false", "no", "n", "neu", "neutral", "pos", "positive", "not_complaint", "-"}


class LabelError(ValueError):
    """A label in a TSV file that is neither a known positive nor a known negative."""


@dataclass(frozen=True, slots=True)
class Metrics:
    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def accuracy(self) -> float:
        total = self.tp + self.fp + self.fn + self.tn
        return (self.tp + self.tn) / total if total else 0.0

    def report(self, *, positive: str = "positive", negative: str = "other") -> str:
        width = max(len(positive), len(negative), 9)
        return "\n".join(
            [
                f"precision {self.precision:.3f}  recall {self.recall:.3f}  "
                f"F1 {self.f1:.3f}  accuracy {self.accuracy:.3f}  (n={self.tp + self.fp + self.fn + self.tn})",
                "confusion matrix (rows = labelled, columns = predicted):",
                f"{'':>{width}}  {positive:>{width}}  {negative:>{width}}",
                f"{positive:>{width}}  {self.tp:>{width}}  {self.fn:>{width}}",
                f"{negative:>{width}}  {self.fp:>{width}}  {self.tn:>{width}}",
            ]
        )


def metrics(*, gold: Sequence[bool], predicted: Sequence[bool]) -> Metrics:
    pairs = list(zip(gold, predicted, strict=True))
    return Metrics(
        tp=sum(g and p for g, p in pairs),
        fp=sum(p and not g for g, p in pairs),
        fn=sum(g and not p for g, p in pairs),
        tn=sum(not g and not p for g, p in pairs),
    )


def parse_label(raw: str, *, where: str) -> bool:
    label = raw.strip().lower()
    if label in _TRUE:
        return True
    if label in _FALSE:
        return False
    raise LabelError(f"{where}: label {raw!r} is not one of 1/0 or neg/neu/pos")


def read_labelled(path: Path) -> list[tuple[bool, str]]:
    """Rows of a task file (header skipped) as (label, text)."""
    rows = []
    with path.open(encoding="utf-8", newline="") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n")
            if number == 1 or not line.strip():
                continue
            label, sep, text = line.partition("\t")
            if not sep:
                raise LabelError(f"{path}:{number}: expected label<TAB>text")
            rows.append((parse_label(label, where=f"{path}:{number}"), text))
    return rows


@dataclass(frozen=True, slots=True)
class ReliabilityBin:
    low: float
    high: float
    mean_predicted: float
    observed: float
    count: int


def reliability(
    *, gold: Sequence[bool], probabilities: Sequence[float], bins: int = 10
) -> list[ReliabilityBin]:
    """Calibration by equal-width probability bins: mean predicted vs. observed positive rate."""
    members: list[list[tuple[bool, float]]] = [[] for _ in range(bins)]
    for g, p in zip(gold, probabilities, strict=True):
        members[min(int(p * bins), bins - 1)].append((g, p))
    out = []
    for index, inside in enumerate(members):
        if inside:
            out.append(
                ReliabilityBin(
                    low=index / bins,
                    high=(index + 1) / bins,
                    mean_predicted=sum(p for _, p in inside) / len(inside),
                    observed=sum(g for g, _ in inside) / len(inside),
                    count=len(inside),
                )
            )
    return out


def format_reliability(table: Sequence[ReliabilityBin]) -> str:
    lines = [f"{'bin':<9} {'mean predicted':>14} {'observed rate':>13} {'count':>6}"]
    for b in table:
        lines.append(f"{b.low:.1f}-{b.high:.1f}   {b.mean_predicted:14.3f} {b.observed:13.3f} {b.count:6d}")
    return "\n".join(lines)


def predict(score: Score, *, task: str) -> bool:
    if task == "complaint":
        return score.is_complaint
    if task == "negative":
        return score.negative
    raise ValueError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")


def evaluate_file(path: Path, *, task: str, languages: Sequence[str] | None = None) -> Metrics:
    return evaluate_file_scores(path, task=task, languages=languages)[0]


def evaluate_file_scores(
    path: Path, *, task: str, languages: Sequence[str] | None = None
) -> tuple[Metrics, list[bool], list[Score]]:
    """Metrics, the gold labels and the scores of one task file."""
    from monitor.triage import triage_many

    rows = read_labelled(path)
    scores = triage_many([text for _, text in rows], languages=languages)
    gold = [g for g, _ in rows]
    return metrics(gold=gold, predicted=[predict(s, task=task) for s in scores]), gold, scores


@dataclass(frozen=True, slots=True)
class DevRow:
    lang: str
    kind: str  # complaint, negative, question, praise, neutral, spam
    complaint: bool
    polarity: str  # neg, neu, pos
    categories: tuple[str, ...]
    text: str


def read_devset(path: Path = DEVSET_DIR / "mentions.tsv") -> list[DevRow]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [
            DevRow(
                lang=r["lang"],
                kind=r["kind"],
                complaint=r["complaint"] == "1",
                polarity=r["polarity"],
                categories=tuple(c for c in r["categories"].split(",") if c),
                text=r["text"],
            )
            for r in reader
        ]


def write_task_files(*, rows: Sequence[DevRow], out_dir: Path) -> list[Path]:
    """complaint.tsv, negative.tsv and <task>_<lang>.tsv, usable by `mention-monitor eval`."""
    written = []
    langs = sorted({r.lang for r in rows})
    for task in TASKS:
        for lang in [None, *langs]:
            subset = [r for r in rows if lang is None or r.lang == lang]
            path = out_dir / (f"{task}.tsv" if lang is None else f"{task}_{lang}.tsv")
            with path.open("w", encoding="utf-8", newline="") as handle:
                handle.write("label\ttext\n")
                for r in subset:
                    label = ("1" if r.complaint else "0") if task == "complaint" else r.polarity
                    handle.write(f"{label}\t{r.text}\n")
            written.append(path)
    return written


def per_language(*, rows: Sequence[DevRow], scores: Sequence[Score]) -> dict[str, dict[str, Metrics]]:
    """{lang or 'all': {task: Metrics}} for the devset rows and their scores."""
    out: dict[str, dict[str, Metrics]] = {}
    for lang in ["all", *sorted({r.lang for r in rows})]:
        picked = [(r, s) for r, s in zip(rows, scores, strict=True) if lang == "all" or r.lang == lang]
        out[lang] = {
            "complaint": metrics(
                gold=[r.complaint for r, _ in picked], predicted=[s.is_complaint for _, s in picked]
            ),
            "negative": metrics(
                gold=[r.polarity == "neg" for r, _ in picked], predicted=[s.negative for _, s in picked]
            ),
        }
    return out


def format_table(table: dict[str, dict[str, Metrics]]) -> str:
    lines = [f"{'lang':<5} {'task':<10} {'P':>6} {'R':>6} {'F1':>6} {'acc':>6}"]
    for lang, tasks in table.items():
        for task, m in tasks.items():
            lines.append(
                f"{lang:<5} {task:<10} {m.precision:6.3f} {m.recall:6.3f} {m.f1:6.3f} {m.accuracy:6.3f}"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m monitor.triage.evaluate [FILE]`: per-language table for a master-format file;
    `--write-task-files` regenerates data/devset/<task>[_<lang>].tsv from mentions.tsv."""
    import argparse

    from monitor.triage import SUPPORTED_LANGUAGES, triage_many

    parser = argparse.ArgumentParser(prog="python -m monitor.triage.evaluate", description=main.__doc__)
    parser.add_argument("file", nargs="?", type=Path, default=DEVSET_DIR / "mentions.tsv")
    parser.add_argument("--write-task-files", action="store_true")
    parser.add_argument("--errors", action="store_true", help="list the rows triage gets wrong")
    args = parser.parse_args(argv)
    rows = read_devset(args.file)
    if args.write_task_files:
        for path in write_task_files(rows=rows, out_dir=DEVSET_DIR):
            print(f"wrote {path}")
        return 0
    scores = triage_many([r.text for r in rows], languages=SUPPORTED_LANGUAGES)
    print(format_table(per_language(rows=rows, scores=scores)))
    if args.errors:
        for r, s in zip(rows, scores, strict=True):
            if r.complaint != s.is_complaint or (r.polarity == "neg") != s.negative:
                print(
                    f"{r.lang} gold c={int(r.complaint)} {r.polarity:<3} | got c={s.complaint:.2f} "
                    f"s={s.sentiment} {s.lang} | {r.text}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
