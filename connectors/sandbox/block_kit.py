"""The Block Kit limits Slack enforces on chat.postMessage / chat.update, answered as `invalid_blocks`.

Figures from Slack's Block Kit reference (docs.slack.dev/reference/block-kit): a message has at
most 50 blocks; a section's text is 1..3,000 characters and its fields at most 10 of 2,000; a
context has at most 10 elements; a header's plain text at most 150; an actions block at most 25
elements; a button's text at most 75, its value 2,000 and its url 3,000; action_id and block_id
at most 255; a confirm dialog's title 100, text 300, confirm/deny 30.
"""

from __future__ import annotations

from typing import Any

MESSAGE_BLOCKS = 50


def _text(obj: Any) -> str:
    return str(obj.get("text", "")) if isinstance(obj, dict) else ""


def _over(problems: list[str], where: str, value: str, limit: int) -> None:
    if len(value) > limit:
        problems.append(f"must be less than {limit + 1} characters [json-pointer:{where}]")


def problems(blocks: Any) -> list[str]:
    """Slack's `errors` list for these blocks (empty when Slack would accept them)."""
    if not isinstance(blocks, list):
        return ["must be an array [json-pointer:/blocks]"]
    found: list[str] = []
    if len(blocks) > MESSAGE_BLOCKS:
        found.append(f"must provide no more than {MESSAGE_BLOCKS} items [json-pointer:/blocks]")
    for n, block in enumerate(blocks):
        at = f"/blocks/{n}"
        if not isinstance(block, dict):
            found.append(f"must be an object [json-pointer:{at}]")
            continue
        _over(found, f"{at}/block_id", str(block.get("block_id", "")), 255)
        kind = block.get("type")
        if kind == "section":
            if "text" in block:
                text = _text(block["text"])
                if not text:
                    found.append(f"must be more than 0 characters [json-pointer:{at}/text/text]")
                _over(found, f"{at}/text/text", text, 3000)
            _texts(found, f"{at}/fields", block.get("fields") or [], items=10, chars=2000)
        elif kind == "context":
            _texts(found, f"{at}/elements", block.get("elements") or [], items=10, chars=3000)
        elif kind == "header":
            _over(found, f"{at}/text/text", _text(block.get("text")), 150)
        elif kind == "actions":
            elements = block.get("elements") or []
            if len(elements) > 25:
                found.append(f"must provide no more than 25 items [json-pointer:{at}/elements]")
            for i, element in enumerate(elements):
                _element(found, f"{at}/elements/{i}", element)
    return found


def _texts(found: list[str], at: str, objects: list[Any], *, items: int, chars: int) -> None:
    """A list of text objects: at most `items` of them, each at most `chars` long."""
    if len(objects) > items:
        found.append(f"must provide no more than {items} items [json-pointer:{at}]")
    for i, obj in enumerate(objects):
        _over(found, f"{at}/{i}/text", _text(obj), chars)


def _element(found: list[str], at: str, element: Any) -> None:
    if not isinstance(element, dict):
        return
    _over(found, f"{at}/action_id", str(element.get("action_id", "")), 255)
    if element.get("type") == "button":
        _over(found, f"{at}/text/text", _text(element.get("text")), 75)
        _over(found, f"{at}/value", str(element.get("value", "")), 2000)
        _over(found, f"{at}/url", str(element.get("url", "")), 3000)
    confirm = element.get("confirm")
    if isinstance(confirm, dict):
        for key, limit in (("title", 100), ("text", 300), ("confirm", 30), ("deny", 30)):
            _over(found, f"{at}/confirm/{key}/text", _text(confirm.get(key)), limit)
