"""The brand never posts an attacker's words: a customer's name is repeated only if it reads as a name."""

from __future__ import annotations

import pytest

from tests.test_acknowledge import fb_comment, make_daemon, replies
from tests.test_slack_flow import tweet

NEUTRAL_PUBLIC = "Hi, we're sorry to hear that. We've sent you a DM so we can sort it out."  # a private reply went out
NEUTRAL_PUBLIC_X = "Hi, we're sorry to hear that. Please send us a DM with your order number so we can sort it out."
NEUTRAL_PRIVATE = "Hi, this is the Nordlys Shop team about your comment. What is your order number?"

HOSTILE_NAMES = {
    "url": "Go to https://evil.example/login",
    "bare domain": "Visit evil.example now",
    "phone number": "Call +45 12345678 for refund",
    "digits run": "Support 80808080",
    "at everyone": "@everyone",
    "slack ping": "<!channel>",
    "right-to-left override": "Anna \u202eelpmaxe.live",
    "newline and spam": "Anna\nFree iPhones at evil dot example",
    "carriage return": "Anna\rRefunds here",
    "escape sequence": "\x1b[2J\x1b[31mAnna",
    "zero width": "An\u200bna",
    "nul then link": "Anna\x00evil.example",
    "tab": "Anna\tBerg",
    "300 characters": "A" * 300,
    "many words": "Free iPhones for the first fifty people",
    "emoji only": "\U0001f600\U0001f381",
    "markdown": "*Anna* _Berg_",
    "html": "<b>Anna</b>",
}
LEGIT_NAMES = ["Søren Hansen", "李明", "Ana-Maria O'Neil", "Nguyễn Văn An", "محمد علي", "J. R. Smith"]


@pytest.fixture
def fb_daemon(sandbox, db_url, simple_rules, simple_rules_file, clock):
    return make_daemon(sandbox, db_url, simple_rules, simple_rules_file, clock, names=("fb-comments",))


def post_and_deliver(sandbox, clock, daemon, names: list[str]) -> dict[str, dict[str, str]]:
    """Each name comments once; returns {comment id: {kind: text posted}}."""
    ids = {fb_comment(sandbox, clock, "The lamp arrived broken. I want a refund.", name=name,
                      person=f"71000000000{n:05d}"): name for n, name in enumerate(names)}
    for _ in range(3):
        daemon.poll("fb-comments")
        daemon.drain()
        clock.advance(60)
    posted: dict[str, dict[str, str]] = {cid: {} for cid in ids}
    for post in sandbox.fb_posts():
        posted[post["in_reply_to"]][post["kind"]] = post["text"]
    return posted


def test_hostile_display_names_are_never_posted_publicly_or_privately(sandbox, clock, fb_daemon):
    posted = post_and_deliver(sandbox, clock, fb_daemon, list(HOSTILE_NAMES.values()))
    assert len(posted) == len(HOSTILE_NAMES)
    for texts in posted.values():
        assert texts == {"comment_reply": NEUTRAL_PUBLIC, "private_reply": NEUTRAL_PRIVATE}


def test_real_names_in_any_script_are_still_addressed(sandbox, clock, fb_daemon):
    posted = post_and_deliver(sandbox, clock, fb_daemon, LEGIT_NAMES)
    by_name = dict(zip(LEGIT_NAMES, posted.values(), strict=True))
    for name, texts in by_name.items():
        assert texts["comment_reply"] == f"Hi {name}, we're sorry to hear that. We've sent you a DM so we can sort it out."
        assert texts["private_reply"].startswith(f"Hi {name}, this is the Nordlys Shop team")


def test_x_handle_is_used_only_if_it_is_a_valid_x_username(sandbox, db_url, simple_rules, simple_rules_file, clock):
    daemon = make_daemon(sandbox, db_url, simple_rules, simple_rules_file, clock)
    good = tweet(sandbox, clock, 1, "@nordlysshop lamp arrived broken", author="customer_42")
    bad = tweet(sandbox, clock, 2, "@nordlysshop lamp arrived broken", author="evil.example/\u202elogin")
    daemon.poll("x-mentions")
    daemon.drain()
    texts = {p["in_reply_to"]: p["text"] for p in replies(sandbox)}
    assert texts == {good: "Hi @customer_42, we're sorry to hear that. Please send us a DM with your order number "
                           "so we can sort it out.",
                     bad: NEUTRAL_PUBLIC_X}
