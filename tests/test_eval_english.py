"""scripts/eval_english.py reads EmoBank's layout from a bare git mirror and prints Pearson r."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"

# Our own sentences in EmoBank's two files (id,split,V,A,D,text and id/document/category/subcategory).
ROWS = [
    ("a1", "test", 1.6, "This is the worst service I have ever had, I am furious.", "letters"),
    ("a2", "test", 4.4, "What a lovely, wonderful day at the seaside!", "blog"),
    ("a3", "train", 3.0, "The meeting is on Tuesday at noon.", "letters"),
    ("a4", "test", 2.2, "The parcel arrived broken and nobody answers.", "blog"),
    ("a5", "test", 3.9, "Thanks, the new one works great.", "letters"),
]


def _mirror(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    (work / "corpus").mkdir(parents=True)
    lines = ["id,split,V,A,D,text"] + [f'{i},{s},{v},3.0,3.0,"{t}"' for i, s, v, t, _ in ROWS]
    (work / "corpus" / "emobank.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    meta = ["id\tdocument\tcategory\tsubcategory"] + [f"{i}\tdoc\t{g}\t " for i, _, _, _, g in ROWS]
    (work / "corpus" / "meta.tsv").write_text("\n".join(meta) + "\n", encoding="utf-8")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-C", str(work)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "rows"], check=True)
    mirror = tmp_path / "mirror"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(mirror / "JULIELab+EmoBank" / "repo")], check=True)
    return mirror


@pytest.fixture()
def eval_english():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(SCRIPTS))
    try:
        import eval_english

        yield eval_english
    finally:
        sys.path.remove(str(SCRIPTS))


def test_prints_r_of_plain_vader_and_triage_on_the_chosen_split(tmp_path, capsys, eval_english) -> None:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    mirror = _mirror(tmp_path)
    assert eval_english.main(["--mirror", str(mirror), "--split", "test", "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "(test): 4 sentences, Pearson r with mean reader valence" in out
    result = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    test_rows = [r for r in ROWS if r[1] == "test"]
    vader = SentimentIntensityAnalyzer()
    expected = statistics.correlation([vader.polarity_scores(r[3])["compound"] for r in test_rows],
                                      [r[2] for r in test_rows])
    assert result["plain VADER"]["r"] == pytest.approx(expected, abs=1e-4)
    assert result["triage, hint en (X)"]["r"] == pytest.approx(expected, abs=1e-4)  # no emoji, links or handles
    assert result["rows"] == 4 and set(result["plain VADER"]["by_genre"]) == {"blog", "letters"}
    assert json.loads(out.strip().splitlines()[-1]) == result
