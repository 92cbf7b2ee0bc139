"""Log message templates: literal text with ``{expression}`` fields.

``"total={total} user={req.user_id}"`` compiles once, at placement, into
literal parts and sandboxed expressions; ``{{`` and ``}}`` are literal braces.
Braces nest, so ``{d['{']}`` and ``{ {'a': 1}['a'] }`` read as one field.

A field whose value is a secret (``{user.password}``: the sandbox returns
``Redacted``) shows ``<redacted>``; the values of the frame's sensitive-named
locals and whatever rendering a field redacts are masked wherever else they
appear in the line (``redact.EventSecrets``).

A hot log line keeps thousands of captured hits in the outbox between
drains, so a capture is small: a message without fields is one shared
string, masked once at compile time; one with fields a ``PendingMessage``
tuple of the parts, holding an ``EventSecrets`` only when the hit had one.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import CodeType
from typing import Any

from runtime_agent.capture import render
from runtime_agent.cost import new_budget
from runtime_agent.errors import ExpressionError
from runtime_agent.redact import REDACTED, EventSecrets, Redactor
from runtime_agent.sandbox import EvaluationFailure, Expression, Redacted, compile_expression

MAX_TEMPLATE_FIELDS = 32
MAX_TEMPLATE_LENGTH = 4096


class Template:
    """A compiled log template; ``render`` never raises."""

    def __init__(self, source: str, redactor: Redactor) -> None:
        if not isinstance(source, str) or not source.strip():
            raise ExpressionError("a log message is required, for example 'total={total}'")
        if len(source) > MAX_TEMPLATE_LENGTH:
            raise ExpressionError(
                f"log message is {len(source)} characters; the limit is {MAX_TEMPLATE_LENGTH}"
            )
        self.source = source
        self._redactor = redactor
        parts: list[str | Expression] = []
        for literal, field in _split(source):
            if literal:
                parts.append(literal)
            if field is not None:
                try:
                    parts.append(compile_expression(field, redactor=redactor))
                except ExpressionError as exc:
                    raise ExpressionError(f"in {{{field}}}: {exc}") from None
        if sum(1 for p in parts if not isinstance(p, str)) > MAX_TEMPLATE_FIELDS:
            raise ExpressionError(f"a log message may have at most {MAX_TEMPLATE_FIELDS} fields")
        self._parts = tuple(parts)
        #: A message without fields: the same finished text for every hit.
        self._constant: str | None = None
        if not any(type(p) is not str for p in parts):
            literal = "".join(p for p in parts if type(p) is str)
            self._constant = redactor.mask_text(literal, EventSecrets())

    def render(self, local_vars: Mapping[str, Any], global_vars: Mapping[str, Any]) -> str:
        """The message for one hit; fields that fail show why, in angle brackets."""
        return finish(self.capture(local_vars, global_vars))

    def capture(
        self,
        local_vars: Mapping[str, Any],
        global_vars: Mapping[str, Any],
        code: CodeType | None = None,
    ) -> str | PendingMessage:
        """The hit's line, or its values with the text built later (``finish``).

        Only immutable scalars are kept as they are; anything that could
        change after the hit is rendered now. Turning numbers into text and
        masking the line then happen off the host's hot path, when events
        are drained. ``code``: the hit frame's, whose sensitive-named locals
        are masked throughout the line. A message without fields names no
        value of the hit: its text is the same shared string every time.
        """
        if self._constant is not None:
            return self._constant
        secrets = self._redactor.event_secrets(code, local_vars)
        out: list[Any] = []
        work = new_budget()  # one evaluation budget for all the fields of a hit
        for part in self._parts:
            if type(part) is str:
                out.append(part)
                continue
            try:
                value = part.evaluate(local_vars, global_vars, work)
            except EvaluationFailure as exc:
                out.append(f"<{exc}>")
                continue
            if type(value) is Redacted:
                out.append(REDACTED)
            elif (t := type(value)) is str or t is int or t is float or t is bool or value is None:
                # Immutable scalars (tested by identity: hashing a class could
                # run its metaclass's __hash__): their text can wait.
                out.append(value)
            else:
                out.append(render(value, redactor=self._redactor, mask=False, secrets=secrets))
        # An empty EventSecrets (most hits) is not kept: text() makes its own.
        return PendingMessage((self._redactor, secrets if secrets else None, *out))


def finish(captured: str | PendingMessage) -> str:
    """The finished line of a ``Template.capture``."""
    return captured if type(captured) is str else captured.text()  # type: ignore[union-attr]


class PendingMessage(tuple):  # type: ignore[type-arg]
    """A log line's parts, turned into (masked) text on demand.

    ``(redactor, secrets or None, *parts)``: a tuple, because thousands wait
    in the outbox and a slotted object with a parts list costs twice the bytes.
    """

    __slots__ = ()

    def text(self) -> str:
        """The finished, masked line: patterns first, then every secret of the hit."""
        redactor: Redactor = self[0]
        secrets: EventSecrets | None = self[1]
        pieces = [p if type(p) is str else render(p, mask=False) for p in self[2:]]
        # A fresh set when the hit had none: what the patterns find is masked everywhere.
        return redactor.mask_text("".join(pieces), EventSecrets() if secrets is None else secrets)


def _split(source: str) -> list[tuple[str, str | None]]:
    """Literal text and field pairs; raises ExpressionError on unbalanced braces."""
    pieces: list[tuple[str, str | None]] = []
    literal: list[str] = []
    i, n = 0, len(source)
    while i < n:
        ch = source[i]
        if ch == "}":
            if source.startswith("}}", i):
                literal.append("}")
                i += 2
                continue
            raise ExpressionError(f"unmatched '}}' at column {i + 1}; write '}}}}' for a brace")
        if ch != "{":
            literal.append(ch)
            i += 1
            continue
        if source.startswith("{{", i):
            literal.append("{")
            i += 2
            continue
        end = _field_end(source, i)
        field = source[i + 1 : end].strip()
        if not field:
            raise ExpressionError(f"empty field '{{}}' at column {i + 1}; put an expression in it")
        pieces.append(("".join(literal), field))
        literal = []
        i = end + 1
    if literal:
        pieces.append(("".join(literal), None))
    return pieces


def _field_end(source: str, start: int) -> int:
    depth, quote, i = 0, "", start
    while i < len(source):
        ch = source[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ExpressionError(f"unclosed '{{' at column {start + 1}; write '{{{{' for a brace")
