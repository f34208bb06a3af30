"""The typed errors tether raises.

Every error names what went wrong and where, so a caller can catch the family
(`TetherError`), the kind of input at fault (`SpecError` for a regex, grammar or
schema; `VocabularyError`), or a precise kind.

    >>> try: tether.regex(r"(a)\\1")
    ... except tether.UnsupportedPattern as e: print(e.construct, e.location.offset)
    backreference 3

Errors about a user's specification carry a `Location`: a character offset for a
regex, a rule with line and column for a grammar, a JSON pointer for a schema.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Location",
    "TetherError",
    "SpecError",
    "InvalidPattern",
    "UnsupportedPattern",
    "EmptyLanguage",
    "GrammarError",
    "InvalidSchema",
    "UnsupportedSchema",
    "SQLSchemaError",
    "ConstraintTooLarge",
    "TokenRejected",
    "InvalidState",
    "VocabularyError",
    "VocabularyMismatch",
    "ContextLengthExceeded",
    "GenerationFailed",
]


@dataclass(frozen=True)
class Location:
    """Where in the user's input a problem is; every field is optional.

    offset: 0-based character offset into the source text (a regex position).
    line, column: 1-based, for multi-line sources (grammars).
    rule: the grammar rule or terminal being compiled.
    pointer: a JSON pointer into a schema (``/properties/age``).
    """

    offset: int | None = None
    line: int | None = None
    column: int | None = None
    rule: str | None = None
    pointer: str | None = None

    def __str__(self) -> str:
        parts = []
        if self.pointer is not None:
            parts.append(f"at {self.pointer or '/'}")
        if self.rule is not None:
            parts.append(f"in rule {self.rule!r}")
        if self.line is not None:
            parts.append(f"line {self.line}" + (f", column {self.column}" if self.column is not None else ""))
        if self.offset is not None and self.line is None:
            parts.append(f"at position {self.offset}")
        return " ".join(parts)


class TetherError(Exception):
    """Base class of every error tether raises on purpose."""


class SpecError(TetherError, ValueError):
    """A constraint specification (regex, grammar, schema, SQL) that cannot be compiled as written.

    `source` is the text (or a short description) of the specification, `location`
    where in it the problem is, `reason` what the problem is.
    """

    def __init__(self, reason: str, *, source: str | None = None, location: Location | None = None):
        self.reason = reason
        self.source = source
        self.location = location or Location()
        where = str(self.location)
        text = f"{self.describe()}{' ' + where if where else ''}: {reason}"
        if source is not None:
            shown = source if len(source) <= 200 else source[:200] + f"... ({len(source):,} characters)"
            text += f" in {shown!r}"
        super().__init__(text)

    def describe(self) -> str:
        return "invalid specification"


class InvalidPattern(SpecError):
    """A regex that does not parse (as Python's `re` would also refuse it)."""

    def __init__(self, pattern: str, position: int | None, reason: str):
        self.pattern = pattern
        self.position = position
        super().__init__(reason, source=pattern, location=Location(offset=position))

    def describe(self) -> str:
        return "invalid regex"


class UnsupportedPattern(SpecError):
    """A valid regex that uses a construct outside the regular subset (backreference, lookaround, ...)."""

    def __init__(self, pattern: str, position: int, construct: str):
        self.pattern = pattern
        self.position = position
        self.construct = construct
        super().__init__(f"{construct} (only regular constructs can be compiled to an automaton)",
                         source=pattern, location=Location(offset=position))

    def describe(self) -> str:
        return "unsupported regex construct"


class EmptyLanguage(SpecError):
    """A specification that matches no string at all, so nothing could ever be generated."""

    def describe(self) -> str:
        return "empty language"


class GrammarError(SpecError):
    """A grammar (Lark, GBNF, or one built from a schema) that cannot be compiled: it does not
    parse, refers to an undefined rule or terminal, has a rule that derives no string, or uses a
    terminal that cannot be generated (`%declare`). `location` names the rule and line/column."""

    def describe(self) -> str:
        return "invalid grammar"


class InvalidSchema(SpecError):
    """A JSON Schema (or Python type) that is not a valid schema: a keyword with a value of the
    wrong kind, a `$ref` that names nothing. `location.pointer` is the JSON pointer of the keyword."""

    def describe(self) -> str:
        return "invalid JSON Schema"


class UnsupportedSchema(SpecError):
    """A valid JSON Schema that uses a keyword tether cannot enforce exactly (a remote `$ref`, a
    `pattern` with a backreference, `not` of a schema that cannot be complemented, ...).

    `keyword` names it and `location.pointer` is its JSON pointer. ``lenient=True`` drops such
    keywords instead (with a warning), at the price of outputs that may fail validation.
    """

    def __init__(self, keyword: str, reason: str, *, pointer: str = "", source: str | None = None):
        self.keyword = keyword
        self.detail = reason  # the reason without the keyword
        super().__init__(f"{keyword!r}: {reason}", source=source, location=Location(pointer=pointer))

    def describe(self) -> str:
        return "unsupported JSON Schema keyword"


class SQLSchemaError(SpecError):
    """A database schema for `tether.sql` that cannot be used: a DDL statement SQLite refuses
    (the message names its line), a database path that does not exist or is no SQLite
    database, a schema without any table or view."""

    def describe(self) -> str:
        return "invalid SQL schema"


class ConstraintTooLarge(TetherError):
    """Compiling or running a constraint would exceed a resource limit (see `tether.Limits`).

    `stage` names the step that stopped (parsing, building automaton states, ...),
    `size` the figure it reached and `limit` the bound, both in `unit`.
    """

    def __init__(self, stage: str, size: float, limit: float, *, unit: str = "",
                 limit_name: str | None = None, hint: str | None = None):
        self.stage = stage
        self.size = size
        self.limit = limit
        self.unit = unit
        self.limit_name = limit_name
        u = f" {unit}" if unit else ""
        advice = hint or (f"raise tether.Limits({limit_name}=...)" if limit_name else "raise the limit in tether.Limits")
        super().__init__(f"{stage}: {_figure(size)}{u} exceeds the limit of {_figure(limit)}{u} ({advice})")


def _figure(x: float) -> str:
    return f"{x:,.2f}" if isinstance(x, float) else f"{x:,}"


class TokenRejected(TetherError, ValueError):
    """`advance` was asked to consume a token the constraint does not allow in that state."""

    def __init__(self, state: object, token_id: int, token: bytes | None):
        self.state = state
        self.token_id = token_id
        self.token = token
        super().__init__(f"token {token_id} ({token!r}) is not allowed in state {state!r}")


class InvalidState(TetherError, ValueError):
    """A value passed as a state that no `initial`/`advance` of this constraint produced."""


class VocabularyError(TetherError, ValueError):
    """A vocabulary that cannot be read, or one that does not fit the model or constraint it meets."""


class VocabularyMismatch(VocabularyError):
    """A constraint compiled for one vocabulary met a model (or another constraint) with a different one."""


class ContextLengthExceeded(TetherError, ValueError):
    """A prompt, or a prompt plus `max_tokens`, that does not fit the model's context window.

    `prompt_tokens` is the prompt's length in tokens, `max_tokens` the generation budget and
    `context_length` the most positions the model can attend to. Samplers raise it before
    generating; a model adapter raises it with ``max_tokens=0`` for a prefix that is too long.
    """

    def __init__(self, prompt_tokens: int, max_tokens: int, context_length: int):
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        self.context_length = context_length
        if max_tokens == 0:
            text = (f"a prefix of {prompt_tokens:,} tokens exceeds the model's context of "
                    f"{context_length:,} tokens")
        elif prompt_tokens >= context_length:
            than = "more than" if prompt_tokens > context_length else "as many as"
            text = (f"the prompt has {prompt_tokens:,} tokens, {than} the model's context of "
                    f"{context_length:,} tokens, leaving no room for max_tokens={max_tokens:,}; "
                    f"shorten the prompt")
        else:
            room = context_length - prompt_tokens
            text = (f"the prompt's {prompt_tokens:,} tokens + max_tokens={max_tokens:,} exceed the model's "
                    f"context of {context_length:,} tokens; pass max_tokens={room:,} or less, "
                    f"or shorten the prompt")
        super().__init__(text)


class GenerationFailed(TetherError):
    """A generation that ended without a complete member of the language: it ran out of tokens
    (INCOMPLETE) or no token was allowed (DEAD). Raised where a caller asked for a value, never
    a half object.

    `status` is the `tether.Status`, `text` the partial output, `generation` the whole `Generation`.
    """

    def __init__(self, generation: object, what: str = "the generation"):
        self.generation = generation
        self.status = getattr(generation, "status", None)
        self.text = getattr(generation, "text", "")
        status = getattr(self.status, "value", self.status)
        tokens = len(getattr(generation, "token_ids", ()) or ())
        hint = " (raise max_tokens)" if status == "incomplete" else ""
        shown = self.text if len(self.text) <= 200 else self.text[:200] + "..."
        super().__init__(f"{what} ended {status} after {tokens} tokens{hint}: {shown!r}")
