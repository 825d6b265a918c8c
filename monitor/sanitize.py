"""Customer-controlled text the brand would repeat: addressed only if it looks like a name.

A display name or handle is chosen by whoever posted, so anything the brand posts
publicly with it in must not carry a link, a phone number, a ping, a control or
bidi character, a line break or a paragraph.  A value that does not look like a
name is dropped and the template's neutral greeting is used instead
("Hi {author}, we're sorry" -> "Hi, we're sorry").
"""

from __future__ import annotations

import re
import unicodedata

NAME_MAX_CHARS = 40
NAME_MAX_WORDS = 5
NAME_PUNCTUATION = frozenset("-'’.")  # Ana-Maria O'Neil, J. R. Smith
X_HANDLE = re.compile(r"[A-Za-z0-9_]{1,15}")  # X's own rule for @usernames
_DOMAIN_LIKE = re.compile(r"\w\.\w{2,}")  # evil.example, but not "J.R." initials
_PLACEHOLDER = re.compile(r"^\{author\}[ \t,]*|[ \t]*,?[ \t]*\{author\}")


def addressable_name(value: str | None) -> str:
    """`value` if it reads as a person's name, else "" (letters, spaces, - ' . only; short)."""
    if not value:
        return ""
    name = unicodedata.normalize("NFC", value)
    if name != name.strip() or "  " in name or len(name) > NAME_MAX_CHARS:
        return ""
    if len(name.split(" ")) > NAME_MAX_WORDS or _DOMAIN_LIKE.search(name):
        return ""
    letters = 0
    for char in name:
        category = unicodedata.category(char)
        if category[0] == "L":
            letters += 1
        elif category[0] == "M" and letters:  # combining marks (Devanagari, Thai, decomposed accents)
            continue
        elif char != " " and char not in NAME_PUNCTUATION:
            return ""  # digits, @, emoji, symbols, controls, bidi overrides, line breaks
    return name if letters else ""


def addressable_handle(handle: str | None) -> str:
    """"@handle" if it is a valid X username, else ""."""
    return f"@{handle}" if handle and X_HANDLE.fullmatch(handle) else ""


def neutral_greeting(text: str) -> str:
    """The template without its {author}: "Hi {author}, we're sorry" -> "Hi, we're sorry"."""
    return _PLACEHOLDER.sub("", text)
