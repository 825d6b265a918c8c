"""What every benchmark shares: a synthetic mention stream, sandbox injection, machine facts, output.

The stream is built from the hand-written texts of examples/mentions.jsonl (six languages, both
platforms, complaints, praise, questions, spam, follow-ups), varied so that no two texts are equal
and the pipeline's caches and dedup see realistic input.  It is deterministic for a given seed.
"""

from __future__ import annotations

import json
import os
import platform
import random
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/x.py` from anywhere
    sys.path.insert(0, str(ROOT))

from connectors.replay import parse_line  # noqa: E402
from connectors.sandbox.seed import to_seed_item  # noqa: E402
from monitor.model import NewMention  # noqa: E402

if TYPE_CHECKING:
    from connectors.sandbox import Sandbox

EXAMPLES = ROOT / "examples" / "mentions.jsonl"
RULES = ROOT / "rules.yaml"
LANGUAGES = ("en", "da", "hr", "ro", "id", "zh")
BRAND_X_USER_ID = "1600000000000000001"
PAGE_ID = "104000000000001"

# Small per-language variations: what people add around the same complaint or question.
_OPENERS: dict[str, tuple[str, ...]] = {
    "en": ("", "", "hey ", "ugh, ", "seriously, ", "hi, ", "so "),
    "da": ("", "", "hej, ", "altså ", "seriøst, "),
    "hr": ("", "", "bok, ", "ozbiljno, ", "pozdrav, "),
    "ro": ("", "", "salut, ", "serios, ", "bună, "),
    "id": ("", "", "halo, ", "kak, ", "min, "),
    "zh": ("", "", "你好，", "说真的，", "请问，"),
}
_CLOSERS: dict[str, tuple[str, ...]] = {
    "en": ("", "", " 😡", " !!", " please", " thanks", " 🙏", " #fail", " ...", " 😞"),
    "da": ("", "", " 😡", " tak", " !!", " 🙏"),
    "hr": ("", "", " 😡", " hvala", " !!", " 🙏"),
    "ro": ("", "", " 😡", " mulțumesc", " !!", " 🙏"),
    "id": ("", "", " 😡", " makasih", " !!", " 🙏"),
    "zh": ("", "", " 😡", " 谢谢", "！！", " 🙏"),
}
_NUMBER = re.compile(r"\d+")


@dataclass(frozen=True, slots=True)
class Timed:
    """One generated mention and when it is posted, seconds after the start of the stream."""

    at_s: float
    record: dict[str, Any]  # our normalized JSONL form (examples/README.md)


def load_examples(path: Path = EXAMPLES) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _vary(text: str, lang: str, rng: random.Random) -> str:
    text = _NUMBER.sub(lambda m: str(max(1, int(m.group()) + rng.randint(-3, 9))) if len(m.group()) < 5
                       else m.group(), text)
    opener = rng.choice(_OPENERS.get(lang, ("",)))
    closer = rng.choice(_CLOSERS.get(lang, ("",)))
    if opener and not text.startswith("@"):
        text = opener + text[:1].lower() + text[1:]
    return text + closer + (f" #{rng.randint(1000, 99999)}" if rng.random() < 0.5 else "")


class Stream:
    """Generates mentions; ids grow with time as X and Graph ids do."""

    def __init__(self, *, seed: int, start: datetime, platforms: Sequence[str] = ("x", "facebook"),
                 include_brand_posts: bool = True, followup_share: float = 0.12) -> None:
        self.rng = random.Random(seed)
        self.start = start
        examples = [e for e in load_examples() if e["platform"] in platforms]
        if not include_brand_posts:
            examples = [e for e in examples if not e.get("from_brand")]
        self.examples = examples
        self.followup_share = followup_share
        self.seq = 0
        self.recent: list[dict[str, Any]] = []  # candidates for follow-ups

    def one(self, at_s: float) -> dict[str, Any]:
        rng = self.rng
        self.seq += 1
        n = self.seq
        when = self.start + timedelta(seconds=at_s)
        parent = None
        if self.recent and rng.random() < self.followup_share:
            parent = rng.choice(self.recent)
        example = rng.choice([e for e in self.examples if e["platform"] == parent["platform"]
                              and e["kind"] == parent["kind"]] or self.examples) if parent else rng.choice(
            self.examples)
        lang = example.get("lang_hint") or "en"
        text = _vary(example["text"], lang, rng)
        platform_name = example["platform"]
        kind = example["kind"]
        author_n = rng.randint(1, 40_000)
        author = dict(example["author"])
        if parent is not None:
            author = dict(parent["author"])
        elif not example.get("from_brand"):
            author.update(id=str(1_700_000_000_000_000_000 // 1000 + author_n), handle=f"{author['handle']}{author_n}",
                          followers=int(rng.lognormvariate(5, 2)), verified=rng.random() < 0.01)
        if platform_name == "x":
            external_id = str(1_900_000_000_000_000_000 + n * 1000)
            conversation = parent["conversation_id"] if parent else external_id
        elif kind == "message":
            external_id = f"m_{n:012d}"
            conversation = parent["conversation_id"] if parent else f"t_{author['id']}"
        else:
            post = parent["conversation_id"] if parent else f"{PAGE_ID}_{5_000 + n % 20}"
            external_id = f"{post.split('_')[-1]}_{300_000_000_000_000 + n}"
            conversation = post
        if platform_name == "x" and kind == "mention" and "@nordlysshop" not in text.lower():
            text = "@nordlysshop " + text
        record = {
            "platform": platform_name, "kind": kind, "external_id": external_id, "conversation_id": conversation,
            "parent_id": parent["external_id"] if parent and platform_name == "x" else "",
            "author": author, "text": text, "url": "", "lang_hint": lang if platform_name == "x" else "",
            "mentions_brand": bool(example.get("mentions_brand")), "from_brand": bool(example.get("from_brand")),
            "created_at": when.isoformat(),
        }
        if not record["from_brand"]:
            self.recent.append(record)
            if len(self.recent) > 200:
                self.recent.pop(0)
        return record

    def steady(self, n: int, *, rate_per_s: float) -> list[Timed]:
        """`n` mentions, evenly spaced."""
        return [Timed(i / rate_per_s, self.one(i / rate_per_s)) for i in range(n)]

    def day(self, *, total: int, bursts: int = 3, burst_share: float = 0.15) -> list[Timed]:
        """A bursty day: a diurnal Poisson stream (busy 08-22 UTC, quiet at night) plus a few
        storms (an outage or a viral complaint: many people within ~20 minutes)."""
        rng = self.rng
        hourly = [0.2, 0.15, 0.1, 0.1, 0.15, 0.3, 0.6, 1.0, 1.4, 1.6, 1.6, 1.5, 1.5, 1.5, 1.4, 1.4, 1.5, 1.6,
                  1.7, 1.8, 1.6, 1.2, 0.8, 0.4]
        base = int(total * (1 - burst_share))
        weights = [w / sum(hourly) for w in hourly]
        times: list[float] = []
        for hour, weight in enumerate(weights):
            count = round(base * weight)
            times += [hour * 3600 + rng.random() * 3600 for _ in range(count)]
        per_burst = (total - len(times)) // max(bursts, 1)
        for _ in range(bursts):
            centre = rng.uniform(8 * 3600, 21 * 3600)
            times += [min(86_399.0, max(0.0, rng.gauss(centre, 400))) for _ in range(per_burst)]
        while len(times) < total:
            times.append(rng.random() * 86_400)
        times.sort()
        return [Timed(t, self.one(t)) for t in times[:total]]


def to_new_mention(record: dict[str, Any]) -> NewMention:
    return parse_line(record, now=datetime.now(UTC))


def inject(sandbox: Sandbox, records: Iterable[dict[str, Any]]) -> None:
    """Hand mentions to the sandbox in bulk, as the control API would (posted at `created_at`)."""
    tweets: list[dict[str, Any]] = []
    comments: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    for record in records:
        stamped = dict(record)
        if record["platform"] == "x":
            # X's created_at format, to the millisecond, so the connector parses it back exactly
            stamped["created_at"] = datetime.fromisoformat(record["created_at"]).astimezone(UTC).strftime(
                "%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        item = to_seed_item(stamped, keep_times=True)
        payload = item.payload
        if item.platform == "x":
            if record.get("from_brand"):
                payload["author"] = {"id": sandbox.x.brand["id"]}
            tweets.append(payload)
        elif item.kind == "message":
            payload.pop("conversation_id", None)  # the Graph fake names threads itself, per person
            messages.append(payload)
        else:
            if record.get("from_brand"):
                payload["from"] = dict(sandbox.graph.page)
            payload["post_id"] = record["conversation_id"]
            comments.append(payload)
    if tweets:
        sandbox.add_tweets(tweets)
    if comments:
        sandbox.add_fb_comments(comments)
    if messages:
        sandbox.add_fb_messages(messages)


def machine() -> dict[str, Any]:
    """The facts BENCHMARKS.md records next to each figure."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gb = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu or platform.processor(), "ram_gb": ram_gb,
            "python": platform.python_version()}


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); NaN when there are no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-p * len(ordered) // 100))))
    return ordered[rank - 1]


def stage_timer(spent: dict[str, float]) -> Callable[[object, str, str], None]:
    """`timed(owner, name, label)`: wrap `owner.name` so the CPU time spent in it adds up in
    `spent[label]`; a name the owner lacks (an older tree: the same program measures before and
    after) is skipped."""

    def timed(owner: object, name: str, label: str) -> None:
        inner = getattr(owner, name, None)
        if inner is None:
            return

        def wrapper(*args: object, **kwargs: object) -> object:
            began = time.process_time()
            try:
                return inner(*args, **kwargs)
            finally:
                spent[label] = spent.get(label, 0.0) + time.process_time() - began

        setattr(owner, name, wrapper)

    return timed


def emit(result: dict[str, Any]) -> None:
    """The last line every benchmark prints: one JSON object."""
    print(json.dumps(result, ensure_ascii=False), flush=True)


def vm_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM of a process and VmRSS's parts, in kB: RssAnon (heap, stacks) and RssFile
    (memory-mapped files: libraries and the language model's tables, which the kernel can drop)."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            out[key] = int(value.split()[0])
    return out


def fast_rules(path: Path, *, every_s: float, source: Path = RULES) -> Path:
    """A copy of rules.yaml whose sources poll every `every_s` seconds (benchmarks cannot wait minutes)."""
    text = source.read_text(encoding="utf-8")
    # rules.yaml takes whole seconds; a sub-second loop interval (latency.py) polls faster than this anyway
    text = re.sub(r"every: (\d+)(s|m)\}", f"every: {max(1, round(every_s))}s}}", text)
    path.write_text(text, encoding="utf-8")
    return path
