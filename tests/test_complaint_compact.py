"""The complaint model as the daemon reads it (issue #18): a compact copy of complaint.json in the cache
directory, built by a child process, scoring exactly as the JSON's weights do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from monitor.triage.complaint import MODEL_PATH, CompactWeights, LinearModel, compact_dir, model_from_json

ROOT = Path(__file__).resolve().parent.parent

_SCORE = """
import json, sys
from monitor.triage.complaint import load_model, folded_body
model = load_model()
folded = folded_body("my parcel never arrived and nobody answers my emails")
p, inputs = model.probability(text="", folded=folded, cue_total=0.0, sentiment=-0.4, lang="en")
print(json.dumps({"p": p, "inputs": inputs, "json_parsed": type(model.ngrams.weights).__name__}))
"""


def _score(cache: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", _SCORE], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "MENTION_MONITOR_CACHE": str(cache)})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def _from_json() -> dict:
    from monitor.triage.complaint import folded_body

    model = model_from_json(json.loads(MODEL_PATH.read_text(encoding="utf-8")))
    folded = folded_body("my parcel never arrived and nobody answers my emails")
    p, inputs = model.probability(text="", folded=folded, cue_total=0.0, sentiment=-0.4, lang="en")
    return {"p": p, "inputs": inputs}


def test_the_compact_copy_scores_exactly_as_the_json(tmp_path: Path) -> None:
    first = _score(tmp_path)  # builds the copy in a child process
    again = _score(tmp_path)  # reads it
    expected = _from_json()
    for out in (first, again):
        assert out == {**expected, "json_parsed": "CompactWeights"}
    built = compact_dir(MODEL_PATH)
    assert built is not None
    assert sorted(p.name for p in (tmp_path / "mention-monitor" / built.name).iterdir()) == [
        "meta.json", "negative.f64", "negative.marisa", "ngrams.f64", "ngrams.marisa"]


def test_a_broken_compact_copy_is_rebuilt(tmp_path: Path) -> None:
    built = compact_dir(MODEL_PATH)
    assert built is not None
    broken = tmp_path / "mention-monitor" / built.name
    broken.mkdir(parents=True)
    (broken / "meta.json").write_text('{"format": 1, "ngrams": {"intercept": 0, "features": 3}}', encoding="utf-8")
    (broken / "ngrams.marisa").write_bytes(b"\0" * 10)
    (broken / "ngrams.f64").write_bytes(b"\0" * 12)
    out = _score(tmp_path)
    assert out == {**_from_json(), "json_parsed": "CompactWeights"}
    assert json.loads((broken / "meta.json").read_text(encoding="utf-8"))["ngrams"]["features"] > 50_000


def test_an_unwritable_cache_reads_the_json_in_the_process(tmp_path: Path) -> None:
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("", encoding="utf-8")
    out = _score(blocker)  # the cache root is a file: nothing can be written under it
    assert out == {**_from_json(), "json_parsed": "dict"}


def test_compact_weights_read_as_the_dict_they_came_from() -> None:
    weights = {"w:late": 1.25, "w:late again": -0.5, " l": 0.1, "不好": 2.0}
    compact = CompactWeights.of(weights)
    assert dict(compact) == weights
    assert compact.get("w:on time", 0.0) == 0.0 and "w:late" in compact and len(compact) == 4
    plain = LinearModel(intercept=0.5, weights=weights)
    assert plain.to_json() == {"intercept": 0.5, "weights": weights}
    assert plain.contributions("late again") == LinearModel(intercept=0.5, weights=compact).contributions(
        "late again")
