"""Prompt text or chat messages as token ids, through a Hugging Face tokenizer's chat template.

    >>> ids = prompt_ids(tokenizer, "Name a colour")                      # a user turn
    >>> ids = prompt_ids(tokenizer, [{"role": "user", "content": "Hi"}])   # a conversation

Shared by every adapter whose tokenizer is a transformers one (TransformersLM, LlamaCppLM),
so one prompt is the same ids under every engine.
"""

from __future__ import annotations

import uuid
from typing import Any

from .base import Prompt, check_prompt

__all__ = ["prompt_ids"]


def prompt_ids(tokenizer: Any, prompt: Prompt, *, chat_template: bool = True) -> list[int]:
    """Token ids of `prompt`: text or chat messages.

    With `chat_template` and a tokenizer that has one, text is a user turn
    and messages are the conversation, followed by the assistant's generation
    prompt; otherwise text is encoded plainly (with the tokenizer's own BOS)
    and messages are refused. Only the template's own markers become special
    tokens: special-token text inside a message (``"<|im_end|>"`` typed by a
    user) is encoded as ordinary text, so a prompt cannot forge a turn.
    """
    prompt = check_prompt(prompt)
    if chat_template and getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        return _chat_ids(tokenizer, messages)
    if not isinstance(prompt, str):
        raise ValueError("chat messages need a chat template, and this adapter has none (the tokenizer "
                         "has no chat_template, or chat_template=False): pass the prompt as a string")
    return _encode(tokenizer, prompt, specials=False, add_special_tokens=True)


def _chat_ids(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """The chat template's ids with every content encoded as plain text.

    The template is rendered once with a unique placeholder per content, to
    find its own text between the contents; that text is encoded with special
    tokens, the contents without. A template that changes contents beyond
    trimming is encoded whole, and refused if the contents add special tokens."""
    slots = [f"tetherslot{uuid.uuid4().hex}" for _ in messages]
    skeleton = _render(tokenizer, [{**m, "content": slot} for m, slot in zip(messages, slots)])
    rendered = _render(tokenizer, messages)
    pieces = _split_at(skeleton, slots)
    contents = _as_rendered(pieces, [m["content"] for m in messages], rendered) if pieces else None
    if contents is None:
        return _encode_checked(tokenizer, rendered, skeleton)
    ids = _encode(tokenizer, pieces[0], specials=True)
    for content, piece in zip(contents, pieces[1:]):
        ids += _encode(tokenizer, content, specials=False) + _encode(tokenizer, piece, specials=True)
    return ids


def _render(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def _encode(tokenizer: Any, text: str, *, specials: bool, add_special_tokens: bool = False) -> list[int]:
    """Ids of `text`; with `specials=False` special-token text is split into ordinary tokens."""
    if not text and not add_special_tokens:
        return []
    kwargs = {} if specials else {"split_special_tokens": True}
    out = tokenizer(text, add_special_tokens=add_special_tokens, **kwargs)["input_ids"]
    return [int(t) for t in out]


def _encode_checked(tokenizer: Any, rendered: str, skeleton: str) -> list[int]:
    """The whole rendering, encoded with special tokens, provided the contents added none."""
    ids = _encode(tokenizer, rendered, specials=True)
    special = _special_ids(tokenizer)
    if sum(t in special for t in ids) > sum(t in special for t in _encode(tokenizer, skeleton, specials=True)):
        raise ValueError("a message contains special-token text (e.g. '<|im_end|>') and this chat "
                         "template rewrites contents, so tether cannot encode it as plain text; "
                         "remove the special-token text from the message")
    return ids


def _special_ids(tokenizer: Any) -> set[int]:
    """Ids of the tokenizer's special tokens: the named ones (BOS, EOS, ...) and added tokens marked special."""
    ids = {int(i) for i in getattr(tokenizer, "all_special_ids", ())}
    added = getattr(tokenizer, "added_tokens_decoder", None) or {}
    return ids | {int(i) for i, t in added.items() if getattr(t, "special", False)}


def _split_at(text: str, slots: list[str]) -> list[str] | None:
    """`text` cut at each slot, in order (len(slots) + 1 pieces); None unless each slot is there once."""
    pieces, rest = [], text
    for slot in slots:
        if text.count(slot) != 1 or slot not in rest:
            return None
        head, rest = rest.split(slot, 1)
        pieces.append(head)
    return pieces + [rest]


def _as_rendered(pieces: list[str], contents: list[str], rendered: str) -> list[str] | None:
    """The contents as the template printed them (verbatim, or trimmed as some templates do), or None."""
    for shape in (lambda c: c, str.strip):
        shaped = [shape(c) for c in contents]
        if "".join(p + c for p, c in zip(pieces, shaped + [""])) == rendered:
            return shaped
    return None
