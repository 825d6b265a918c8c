"""English sentiment against human ratings: Pearson r of triage and of plain VADER (issue #13).

    python scripts/eval_english.py [--mirror /work/.mirror] [--split test|all] [--json out.json]

The human ratings are EmoBank's (JULIELab/EmoBank, CC BY-SA 4.0, data/DATA.md): about 10,000
English sentences (news headlines of SemEval-2007 Task 14, blogs, letters, fiction, essays,
travel guides, newspapers), each rated by five readers for valence on a 1-5 scale. No model
here is trained or tuned on EmoBank: it is read only by this script, so every row is held out.
The set is not tweets: it is the public, human-rated English text we may use, since the VADER
paper's tweets are reserved for the project's independent evaluation.

Four scores of each sentence are correlated with its mean valence:
- plain VADER: `polarity_scores(text)["compound"]` on the raw text, as a user of VADER gets it;
- triage's English scorer (`sentiment(text, lang="en")`): cleaned text, our emoji table;
- triage with X's language hint `en`, as a tweet arrives (a short post may still be read as
  another language when langid is all but certain);
- triage with no hint, as a Facebook comment arrives: language detection's misses count here.
Prints the r of each (overall and per genre) and, as its last line, one JSON object.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from triage_corpora import DEFAULT_MIRROR  # noqa: E402

from monitor.triage import SUPPORTED_LANGUAGES, triage_many  # noqa: E402
from monitor.triage.sentiment import sentiment  # noqa: E402

REPOSITORY = "JULIELab/EmoBank"


def _show(git_dir: Path, commit: str, path: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(git_dir), "show", f"{commit}:{path}"], check=True, capture_output=True, text=True
    ).stdout


def load(mirror: Path, *, split: str) -> tuple[str, list[tuple[str, float, str]]]:
    """(commit, [(sentence, mean valence, genre)]) of EmoBank's `corpus/emobank.csv`."""
    root = mirror / REPOSITORY.replace("/", "+") / "repo"
    git_dir = root / ".git" if (root / ".git").is_dir() else root
    commit = subprocess.run(
        ["git", "--git-dir", str(git_dir), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    genres = {
        row["id"]: row["category"]
        for row in csv.DictReader(io.StringIO(_show(git_dir, commit, "corpus/meta.tsv")), delimiter="\t")
    }
    rows = []
    for row in csv.DictReader(io.StringIO(_show(git_dir, commit, "corpus/emobank.csv"))):
        text = (row["text"] or "").strip()
        if text and (split == "all" or row["split"] == split):
            rows.append((text, float(row["V"]), genres.get(row["id"], "other")))
    return commit, rows


def pearson(xs: list[float], ys: list[float]) -> float:
    n = len(xs)
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    cov = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    var_x = sum((x - mean_x) ** 2 for x in xs)
    var_y = sum((y - mean_y) ** 2 for y in ys)
    return cov / math.sqrt(var_x * var_y) if var_x and var_y else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", type=Path, default=DEFAULT_MIRROR)
    parser.add_argument("--split", choices=("test", "dev", "train", "all"), default="all",
                        help="EmoBank's own split to read (none of it is used for training here)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    commit, rows = load(args.mirror, split=args.split)
    texts = [text for text, _, _ in rows]
    human = [valence for _, valence, _ in rows]
    analyzer = SentimentIntensityAnalyzer()
    languages = list(SUPPORTED_LANGUAGES)
    scores = {
        "plain VADER": [analyzer.polarity_scores(text)["compound"] for text in texts],
        "triage, English scorer": [sentiment(text, lang="en")[0] or 0.0 for text in texts],
        "triage, hint en (X)": [
            s.sentiment or 0.0
            for s in triage_many(texts, lang_hints=["en"] * len(texts), languages=languages, explain=False)
        ],
        "triage, no hint": [
            s.sentiment or 0.0 for s in triage_many(texts, languages=languages, explain=False)
        ],
    }
    by_genre: dict[str, list[int]] = defaultdict(list)
    for index, (_, _, genre) in enumerate(rows):
        by_genre[genre].append(index)

    print(f"EmoBank {commit[:12]} ({args.split}): {len(rows)} sentences, Pearson r with mean reader valence")
    header = f"{'':26}{'all':>8}" + "".join(f"{g[:10]:>11}" for g in sorted(by_genre))
    print(header)
    result: dict[str, object] = {"source": REPOSITORY, "commit": commit, "split": args.split, "rows": len(rows)}
    for name, values in scores.items():
        overall = pearson(values, human)
        per = {g: pearson([values[i] for i in idx], [human[i] for i in idx]) for g, idx in sorted(by_genre.items())}
        print(f"{name:26}{overall:8.3f}" + "".join(f"{r:11.3f}" for r in per.values()))
        result[name] = {"r": round(overall, 4), "by_genre": {g: round(r, 4) for g, r in per.items()}}
    print("genre sizes: " + ", ".join(f"{g} {len(idx)}" for g, idx in sorted(by_genre.items())))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
