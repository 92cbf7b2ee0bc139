"""Redaction: secrets never leave the process.

One ``Redactor`` per engine is the single source of truth for "is this name
sensitive" (:meth:`Redactor.is_sensitive`) and "mask this text"
(:meth:`Redactor.mask_text`): capture, templates, snapshots and the
expression sandbox all ask it.

By name
    The rule of :mod:`runtime_agent.redact_names` (whole names, plural and
    compound forms, header and environ keys; its docstring states what it
    hides and the price paid), over the built-in names plus the service
    owner's ``RUNTIME_AGENT_REDACT`` (comma-separated names).

By value
    :meth:`Redactor.mask_text` replaces with ``<redacted>``:

    - the value after a sensitive label, under the same name rule:
      ``password=...``, ``"api_key": "..."``, ``Authorization: Basic ...``,
      ``'auth': {...}`` (a bracketed value to its closing bracket), the
      header pairs of ``str()`` of a header list (``('Authorization',
      '...')``, ``(b'cookie', b'...')``), every pair of a ``Cookie`` /
      ``Set-Cookie`` value, and in URLs also ``?key=``, ``&sig=``, ``&code=``
      (``X-Amz-Signature=``, ``X-Amz-Credential=``, ``access_token=`` follow
      from the name rule);
    - payment card numbers: 13 to 19 digits, unbroken or grouped by single
      spaces, dashes or dots as cards are printed (4-4-4-4, 4-4-4-4-3, 4-6-5,
      4-6-4, 4-4-4-1), whose first digit is 2 to 6 (the card networks: this
      keeps epoch-millisecond timestamps, which start with 1, out), which
      pass the Luhn check and do not follow a decimal point (a float's digits);
    - ``Bearer <token>``; a JWT (``eyJ...eyJ...``); a PEM or PGP private key
      block (to the end of the text when the block is cut); the password in
      a URL (``postgres://user:pw@host``);
    - the other credentials an ``Authorization`` header carries, wherever
      they were copied: ``Basic <base64>`` when it decodes to
      ``user:password``, and ``Token``, ``ApiKey``/``Api-Key``,
      ``Negotiate``, ``NTLM`` followed by 16 or more characters mixing
      letters and digits (so ``Basic authentication failed`` and ``token
      expired`` stay); the scheme names as clients write them (``Basic``,
      ``basic``, ``Token``, ``token``, ``ApiKey``, ``Api-Key``, ``Negotiate``,
      ``NTLM``), not every casing;
    - vendor key formats: Slack (``xox[abposr]-``, ``xapp-``), GitHub
      (``ghp_ gho_ ghu_ ghs_ ghr_`` + 36, ``github_pat_``), Stripe
      (``sk_live_ rk_live_ sk_test_ rk_test_``, ``whsec_``), Google
      (``AIza`` + 35), AWS access key ids (``AKIA``/``ASIA`` + 16), OpenAI
      and Anthropic (``sk-``, ``sk-proj-``, ``sk-ant-``... + 20 or more
      characters with upper and lower case and a digit), GitLab
      (``glpat-``), npm (``npm_`` + 36), PyPI (``pypi-AgEIcHlwaS5vcmc...``),
      Hugging Face (``hf_`` + 34), SendGrid (``SG.<22>.<43>``);
    - AWS secret access keys: 40 characters of base64 alphabet, mixed case
      and a digit, *only* in text that also holds an AWS access key id (a
      bare 40-character string is as likely a hash or an id); next to a
      label (``aws_secret_access_key=``, ``"SecretAccessKey": ``) the label
      rule masks it anyway;
    - whatever the owner's patterns match (``RUNTIME_AGENT_REDACT_PATTERNS``:
      Python regular expressions separated by ``;;``, chosen because neither a
      comma nor a newline survives every way environment variables are set).

Secrets that travel
    Within one event (a snapshot, a log line), a value redacted anywhere, by
    name or by value, is masked wherever else it appears, whole or inside
    another string: :class:`EventSecrets`. It is seeded with the values of
    the hit frame's sensitive-named locals (their names are found once per
    code object). Only values of at least :data:`MIN_TRAVEL_LENGTH`
    characters travel, so a short ``pin = "12"`` does not blank every ``12``
    of the event; ints travel as their decimal text and hide equal ints.

Status and error texts
    What the agent says about an action goes out through the same
    :meth:`Redactor.mask_text`: every state message, the reason a failing
    condition or metric shows (with the failing hit's secrets, so
    ``key 'hunter2...' not found`` does not name the value of a ``password``
    local), a snapshot's watch errors (``EventSecrets.scrub``), and the
    channel's placement and ``get_source`` errors, which may quote an
    exception from the host's code (``actions.Host.mask``, ``channel``).

Cost: text shorter than 13 characters is returned at once (when the owner
has no patterns); otherwise cheap substring checks decide whether any
regular expression runs at all (see ``benchmarks/bench_redact.py``).

The owner's controls are read only here, inside the process, so no remote
caller can lift them.
"""

from __future__ import annotations

import binascii
import itertools
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from types import CodeType
from typing import Any

from runtime_agent import introspect
from runtime_agent.redact_names import (
    BUILTIN_NAMES,
    SENSITIVE_PREFIXES,
    SENSITIVE_SUFFIXES,
    is_sensitive_name,
    is_url_param_name,
    normalise,
)

_FRAME_LOCALS = introspect.FRAME_LOCALS

REDACTED = "<redacted>"
NAMES_ENV = "RUNTIME_AGENT_REDACT"
PATTERNS_ENV = "RUNTIME_AGENT_REDACT_PATTERNS"
PATTERN_SEPARATOR = ";;"
#: Shorter values do not travel: a two-digit pin would blank every "12".
MIN_TRAVEL_LENGTH = 6

_LOG = logging.getLogger("runtime_agent.redact")
_MAX_CACHED_NAMES = 10_000
_MAX_CACHED_CODES = 4096

# Cards: unbroken, or grouped the way cards are printed; an optional trailing
# group lets "4111 1111 1111 1111 12" be found and the card part masked.
_CARD = re.compile(
    # The first digit comes first and the boundary is checked behind it, so the
    # engine can skip from digit to digit (twice as fast as a leading lookbehind).
    # No word character, dash or decimal point before: "0.4111111111111111" is a float.
    r"[0-9](?<![\w.-][0-9])"
    r"(?:[0-9]{12,18}"
    r"|[0-9]{3}(?:[ .-][0-9]{4}){2}[ .-][0-9]{1,4}(?:[ .-][0-9]{1,3})?"
    r"|[0-9]{3}[ .-][0-9]{6}[ .-][0-9]{4,5})"
    r"(?![\w-])"
)
_GROUP = re.compile(r"[0-9]+")
_DIGITS = b"0123456789"
_MIN_CARD_DIGITS = 13
_MAX_CARD_DIGITS = 19
_CARD_FIRST_DIGITS = "23456"

# Tokens. Each pattern starts with a literal (so the regex engine skips ahead
# fast) and runs only when its trigger substring is in the text: a log line
# holding none of them costs a few substring searches.
_BEARER = re.compile(r"(?i)bearer\s+(?!<redacted>)[a-z0-9._~+/=-]{8,}")
# A bounded header, so text of repeated "eyJ" cannot make the search quadratic.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,1024}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_AWS_KEY_ID = re.compile(r"(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])")
# 40 base64 characters standing alone, with both cases and a digit (so a hex
# SHA-1 or a word run is not one); only looked for next to a key id.
_AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
_PEM = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
    r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\Z)"
)
# The password in a URL's user info: scheme://user:password@host.
_USERINFO = re.compile(r"(://[^\s:/@]{0,256}:)(?!<redacted>)([^\s/@]+)(?=@)")
_SLACK = re.compile(r"(?<![A-Za-z0-9])(?:xox[abposr]|xapp)-[0-9A-Za-z-]{10,250}")
_GITHUB = re.compile(r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_\w{22,244})")
_STRIPE = re.compile(r"(?<![A-Za-z0-9_])(?:[sr]k_(?:live|test)_[0-9A-Za-z]{10,247}|whsec_\w{20,})")
_GOOGLE = re.compile(r"AIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])")
# OpenAI and Anthropic keys; the masker asks for both cases and a digit, so a
# kebab-case name after "sk-" is not one.
_SK_DASH = re.compile(r"sk-(?<![A-Za-z0-9_-]sk-)[A-Za-z0-9_-]{20,400}(?![A-Za-z0-9_-])")
# Keys known by a prefix alone: GitLab, npm, PyPI (a macaroon whose base64
# starts with "pypi.org"), Hugging Face, SendGrid. The lookaheads on first
# letters let the engine skip ahead.
_PREFIXED = re.compile(
    r"(?=[gnphS])(?<![A-Za-z0-9_.-])(?:glpat-[0-9A-Za-z_-]{20,250}|npm_[A-Za-z0-9]{36}"
    r"|pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}|hf_[A-Za-z0-9]{34,40}"
    r"|SG\.[\w-]{22}\.[\w-]{43})(?![A-Za-z0-9_-])"
)
# Credentials after an HTTP auth scheme other than Bearer (see the docstring);
# the masker tells a credential from the words of a sentence. One pattern per
# scheme, each starting with a literal found by a substring test first, so the
# engine jumps from one occurrence to the next instead of trying every
# position; past Basic, a credential holds a digit, so "token refreshed" fails
# in the engine without calling the masker.
_SCHEMES: tuple[tuple[str, re.Pattern[str], bool], ...] = tuple(
    (
        literal + " ",
        re.compile(
            literal
            + behind
            + r"[ \t]+(?!<redacted>)"
            + ("" if literal == "asic" else r"(?=[A-Za-z._~+/=-]{0,4096}[0-9])")
            + r"([A-Za-z0-9._~+/=-]{8,4096})(?![A-Za-z0-9._~+/=-])"
        ),
        literal == "asic",
    )
    for literal, behind in (
        ("asic", r"(?<=[Bb]asic)(?<![\w-][Bb]asic)"),
        ("oken", r"(?<=[Tt]oken)(?<![\w-][Tt]oken)"),
        ("Key", r"(?:(?<=[Aa]piKey)(?<![\w-][Aa]piKey)|(?<=Api-Key)(?<![\w-]Api-Key))"),
        ("egotiate", r"(?<=Negotiate)(?<![\w-]Negotiate)"),
        ("NTLM", r"(?<![\w-]NTLM)"),
    )
)
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
#: Shortest credential after Token, ApiKey, Negotiate or NTLM.
_MIN_SCHEME_CREDENTIAL = 16

# Labels: "name=", "name: ", "'name': ", "'name', " (a header pair). They are
# found in the *reversed* text, where each starts with its separator: the
# regex engine then skips from separator to separator instead of trying a
# label at every character (5x cheaper on an ordinary log line).
_REV_LABEL = re.compile(r"[:=][ \t]{0,3}['\"]?([\w$@.-]{1,64})")
_REV_PAIR = re.compile(r",['\"]([\w$@.-]{1,64})")
# An unquoted value: an optional auth scheme, then up to a quote, separator or
# closing bracket ("Trade(password=x)").
_BARE_VALUE = re.compile(
    r"(?i:(?:bearer|basic|digest|token|negotiate|ntlm|apikey|aws4-hmac-sha256)[ \t]+)?"
    r"[^\s\"',;&)\]}>]+"
)
# A Cookie header's value: every "; name=value" pair after the first.
_COOKIE_VALUE = re.compile(r"[^\s\"',;&)\]}>]+(?:;[ \t]*[^\s\"',;&)\]}>=]+=[^\s\"',;&)\]}>]*)*")
_BRACKETED = re.compile(r"'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\"|[\[\](){}]")
_CLOSING = {"[": "]", "(": ")", "{": "}"}
_MAX_LABEL_VALUE = 8192
#: No built-in pattern matches fewer characters (a 13-digit card number).
_SHORTEST_SECRET = 13

Record = Callable[[str], None]


def _digit_count(text: str) -> int:
    raw = text.encode("utf-8", "surrogatepass")
    return len(raw) - len(raw.translate(None, _DIGITS))


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum that every payment card number passes (``digits``: ASCII digits)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def looks_like_card(digits: str) -> bool:
    """13 to 19 ASCII digits that a card network could have issued and that pass Luhn."""
    return (
        _MIN_CARD_DIGITS <= len(digits) <= _MAX_CARD_DIGITS
        and digits[0] in _CARD_FIRST_DIGITS
        and luhn_valid(digits)
    )


class Redactor:
    """Decides which names are sensitive, and masks sensitive values inside text.

    ``extra_names`` are added to the built-in names (normalised the same way);
    ``extra_patterns`` are Python regular expressions whose matches are
    masked. A pattern that does not compile, or that matches empty text
    (which would mask between every character), raises ``ValueError``.
    """

    def __init__(self, extra_names: Iterable[str] = (), extra_patterns: Iterable[str] = ()) -> None:
        self.owner_names = frozenset(
            normalise(n) for n in extra_names if isinstance(n, str) and n.strip()
        )
        self.names = BUILTIN_NAMES | self.owner_names
        self._extra: list[re.Pattern[str]] = []
        for pattern in extra_patterns:
            if not pattern:
                continue
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"redaction pattern {pattern!r} is not a valid regular expression: {exc}"
                ) from None
            if compiled.search("") is not None:
                raise ValueError(
                    f"redaction pattern {pattern!r} matches empty text; it would mask everything"
                )
            self._extra.append(compiled)
        self._cache: dict[str, bool] = {}
        # Labels met in text and found not sensitive, kept reversed as they are found.
        self._plain_labels: set[str] = set()
        self._code_names: dict[int, tuple[CodeType, tuple[str, ...]]] = {}
        #: Text shorter than this is never changed by :meth:`mask_text`.
        self.shortest_secret = 0 if self._extra else _SHORTEST_SECRET

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Redactor:
        """The built-in rules plus ``RUNTIME_AGENT_REDACT`` and ``RUNTIME_AGENT_REDACT_PATTERNS``.

        ``RUNTIME_AGENT_REDACT`` holds comma-separated names;
        ``RUNTIME_AGENT_REDACT_PATTERNS`` regular expressions separated by
        ``;;``. A pattern that does not compile is left out with a warning on
        the ``runtime_agent.redact`` logger rather than keeping the service
        from starting; ``Redactor(...)`` raises for it instead.
        """
        env = os.environ if environ is None else environ
        names = [n.strip() for n in env.get(NAMES_ENV, "").split(",") if n.strip()]
        patterns = []
        for pattern in env.get(PATTERNS_ENV, "").split(PATTERN_SEPARATOR):
            pattern = pattern.strip()
            if not pattern:
                continue
            try:
                cls((), [pattern])
            except ValueError as exc:
                _LOG.warning("%s: ignored: %s", PATTERNS_ENV, exc)
                continue
            patterns.append(pattern)
        return cls(names, patterns)

    # -- names -----------------------------------------------------------------

    def is_sensitive(self, name: object) -> bool:
        """Whether a variable, field, key, header or label of this name is redacted.

        A str subclass is read as its plain string, so its own ``lower``,
        ``__hash__`` or ``__eq__`` never run; bytes (an ASGI header name, a
        POSIX ``os.environ`` key) are read as latin-1. Anything else is not a
        name, so it is not sensitive.
        """
        kind = type(name)
        if kind is not str:
            if kind is bytes:
                name = bytes.decode(name, "latin-1")  # type: ignore[arg-type]
            elif issubclass(kind, str):
                name = str.__str__(name)  # type: ignore[arg-type]  # the C copy: no user code
            else:
                return False
        known = self._cache.get(name)  # type: ignore[arg-type]
        if known is None:
            known = is_sensitive_name(name, self.names, self.owner_names)  # type: ignore[arg-type]
            if len(self._cache) < _MAX_CACHED_NAMES:
                self._cache[name] = known  # type: ignore[index]
        return known

    def sensitive_locals(self, code: CodeType) -> tuple[str, ...]:
        """The sensitive names among a code object's variables (found once per code object)."""
        entry = self._code_names.get(id(code))
        if entry is not None and entry[0] is code:
            return entry[1]
        names = tuple(
            n
            for n in (*code.co_varnames, *code.co_cellvars, *code.co_freevars)
            if self.is_sensitive(n)
        )
        if len(self._code_names) >= _MAX_CACHED_CODES:
            self._code_names.clear()
        # The code object is kept with its names, so its id cannot be reused meanwhile.
        self._code_names[id(code)] = (code, names)
        return names

    def event_secrets(
        self, code: CodeType | None = None, f_locals: Mapping[str, Any] | None = None
    ) -> EventSecrets:
        """A new set of travelling secrets, seeded with ``code``'s sensitive locals."""
        secrets = EventSecrets()
        if code is None or f_locals is None:
            return secrets
        names = self.sensitive_locals(code)
        if not names:
            return secrets
        kind = type(f_locals)
        if issubclass(kind, dict):
            get: Callable[[Any], Any] = partial(dict.get, f_locals)  # never an overridden get
        elif kind is _FRAME_LOCALS:
            get = f_locals.get  # 3.13's C proxy of the frame
        else:
            return secrets  # a namespace of application code: never read
        for name in names:
            try:
                value = get(name)
            except Exception:  # the seed is best effort
                continue
            if value is not None:
                secrets.add_value(value)
        return secrets

    # -- values ----------------------------------------------------------------

    def mask_text(self, text: str, secrets: EventSecrets | None = None) -> str:
        """``text`` with every sensitive-looking value replaced by ``<redacted>``.

        With ``secrets``, what is masked here joins it, and the secrets it
        already holds are masked too.
        """
        record = secrets.add if secrets is not None else None
        for pattern in self._extra:
            text = _sub(pattern, text, record)
        if len(text) >= _SHORTEST_SECRET:
            text = self._mask_patterns(text, record)
        if secrets is not None and secrets:
            text = secrets.mask(text)
        return text

    def _mask_patterns(self, text: str, record: Record | None) -> str:
        # Labels first: an Authorization value may be a Bearer token or a JWT.
        if "=" in text or ":" in text or "'," in text or '",' in text:
            text = self._mask_labels(text, record)
        if "earer" in text or "EARER" in text:
            text = _sub(_BEARER, text, record)
        if "eyJ" in text:
            text = _sub(_JWT, text, record)
        if "AKIA" in text or "ASIA" in text:
            masked = _sub(_AWS_KEY_ID, text, record)
            if masked is not text:  # a key id: a secret key may stand next to it
                text = _AWS_SECRET.sub(_aws_secret_masker(record), masked)
        if "PRIVATE KEY" in text:
            text = _sub(_PEM, text, record)
        if "://" in text and "@" in text:
            text = _sub(_USERINFO, text, record, group=2)
        if "xox" in text or "xapp-" in text:
            text = _sub(_SLACK, text, record)
        if "gh" in text and "_" in text:
            text = _sub(_GITHUB, text, record)
        if "_live_" in text or "_test_" in text or "whsec_" in text:
            text = _sub(_STRIPE, text, record)
        if "AIza" in text:
            text = _sub(_GOOGLE, text, record)
        # Grouped by the character every prefix holds: a line with no dash or
        # underscore (most of them) pays one search instead of five.
        dash, under = "-" in text, "_" in text
        if dash and "sk-" in text:
            text = _SK_DASH.sub(_mixed_key_masker(record), text)
        if (
            (dash and ("glpat-" in text or "pypi-" in text))
            or (under and ("npm_" in text or "hf_" in text))
            or "SG." in text
        ):
            text = _sub(_PREFIXED, text, record)
        if (
            "asic " in text
            or "oken " in text
            or "Key " in text
            or "egotiate " in text
            or "NTLM " in text
        ):
            for literal, scheme, basic in _SCHEMES:
                if literal in text:
                    text = scheme.sub(_scheme_masker(record, basic), text)
        if _digit_count(text) >= _MIN_CARD_DIGITS:
            text = _CARD.sub(_card_masker(record), text)
        return text

    def _mask_labels(self, text: str, record: Record | None) -> str:
        """Mask the value after every label whose name is sensitive."""
        rev = text[::-1]
        pairs = "'," in text or '",' in text
        found = _REV_LABEL.findall(rev)
        if pairs:
            found += _REV_PAIR.findall(rev)
        plain = self._plain_labels
        if not found or plain.issuperset(found):
            return text  # the common case: every label seen before, none sensitive
        in_url = "?" in text or "&" in text
        for label in found:
            if label in plain:
                continue
            name = label[::-1]
            if self.is_sensitive(name) or (in_url and is_url_param_name(name)):
                return self._mask_label_values(text, rev, pairs, record)
            if len(plain) < _MAX_CACHED_NAMES and not is_url_param_name(name):
                plain.add(label)
        return text

    def _mask_label_values(self, text: str, rev: str, pairs: bool, record: Record | None) -> str:
        n = len(text)
        spots: list[tuple[int, int, str]] = []  # (label start, after the separator, name)
        matches = list(_REV_LABEL.finditer(rev))
        if pairs:
            matches += _REV_PAIR.finditer(rev)
        for match in matches:
            low, high = match.span(1)
            name = rev[low:high][::-1]
            start = n - high
            in_url = start > 0 and text[start - 1] in "?&;" and is_url_param_name(name)
            if not (in_url or self.is_sensitive(name)):
                continue
            spots.append((start, n - match.start(), name))
        out: list[str] = []
        last = 0
        for start, after, name in sorted(spots):
            if start < last:  # inside a value masked already ("token=token=...")
                continue
            while after < n and after - start < 256 and text[after] in " \t":
                after += 1
            span = _value_span(text, after, normalise(name).endswith("cookie"))
            if span is None:
                continue
            begin, end = span
            if record is not None:
                record(text[begin:end])
            out.append(text[last:begin])
            out.append(REDACTED)
            last = end
        if not out:
            return text
        out.append(text[last:])
        return "".join(out)


def _sub(pattern: re.Pattern[str], text: str, record: Record | None, group: int = 0) -> str:
    """``pattern``'s matches (or their ``group``) masked; each recorded when asked.

    ``re.sub`` returns ``text`` itself when nothing matched.
    """
    if group == 0 and record is None:
        return pattern.sub(REDACTED, text)

    def replace(match: re.Match[str]) -> str:
        if record is not None:
            record(match.group(group))
        if group == 0:
            return REDACTED
        return match.group(0)[: match.start(group) - match.start()] + REDACTED

    return pattern.sub(replace, text)


def _aws_secret_masker(record: Record | None) -> Callable[[re.Match[str]], str]:
    def mask(match: re.Match[str]) -> str:
        # Both cases and a digit: a hex SHA-1 or a run of one word is not a secret key.
        text = match.group(0)
        if text.isupper() or text.islower() or not any(c.isdigit() for c in text):
            return text
        if record is not None:
            record(text)
        return REDACTED

    return mask


def _mixed(text: str) -> bool:
    """Upper and lower case letters and a digit: the mark of a random key, not a word."""
    return not text.isupper() and not text.islower() and any(c.isdigit() for c in text)


def _mixed_key_masker(record: Record | None) -> Callable[[re.Match[str]], str]:
    def mask(match: re.Match[str]) -> str:
        text = match.group(0)
        if not _mixed(text[3:]):
            return text
        if record is not None:
            record(text)
        return REDACTED

    return mask


def _is_basic_credential(text: str) -> bool:
    """Whether ``text`` is base64 of ``user:password`` (what ``Basic`` carries)."""
    if _BASE64.fullmatch(text) is None:
        return False
    try:
        raw = binascii.a2b_base64(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return False
    user, colon, _ = raw.partition(b":")
    return bool(colon) and all(32 <= b < 127 for b in user)


def _scheme_masker(record: Record | None, basic: bool) -> Callable[[re.Match[str]], str]:
    def mask(match: re.Match[str]) -> str:
        credential = match.group(1)
        if basic:
            if not _is_basic_credential(credential):
                return match.group(0)
        elif len(credential) < _MIN_SCHEME_CREDENTIAL or not (
            any(c.isdigit() for c in credential) and any(c.isalpha() for c in credential)
        ):
            return match.group(0)
        if record is not None:
            record(credential)
        return match.group(0)[: match.start(1) - match.start()] + REDACTED

    return mask


def _value_span(text: str, i: int, cookie: bool) -> tuple[int, int] | None:
    """Where the value after a label starts and ends; None when there is none to mask."""
    n = len(text)
    if i >= n or text.startswith(REDACTED, i):
        return None
    ch = text[i]
    if ch == "b" and i + 1 < n and text[i + 1] in "'\"":
        i += 1
        ch = text[i]
    if ch in "'\"":
        if text.startswith(REDACTED, i + 1):
            return None
        end = i + 1
        while True:
            end = text.find(ch, end)
            if end == -1:
                return i + 1, n  # cut text: mask to its end
            backslashes = 0
            while text[end - 1 - backslashes] == "\\":
                backslashes += 1
            if not backslashes % 2:
                return (i + 1, end) if end > i + 1 else None
            end += 1
    if ch in _CLOSING:
        return i, _bracket_end(text, i)
    match = (_COOKIE_VALUE if cookie else _BARE_VALUE).match(text, i)
    return match.span() if match is not None else None


def _bracket_end(text: str, i: int) -> int:
    """The end of the bracketed value at ``i`` (quotes respected), or of the text."""
    depth = 0
    limit = min(len(text), i + _MAX_LABEL_VALUE)
    for token in _BRACKETED.finditer(text, i, limit):
        piece = token.group(0)
        if piece in _CLOSING:
            depth += 1
        elif len(piece) == 1:
            depth -= 1
            if depth == 0:
                return token.end()
    return len(text)


def _card_masker(record: Record | None) -> Callable[[re.Match[str]], str]:
    def mask_card(match: re.Match[str]) -> str:
        text = match.group(0)
        groups = list(_GROUP.finditer(text))
        masked = text
        if looks_like_card("".join(g.group(0) for g in groups)):
            masked = REDACTED
        # A card next to another number ("4111 1111 1111 1111 12"): the card is
        # every group but the last, or every group but the first.
        elif len(groups) > 2:
            if looks_like_card("".join(g.group(0) for g in groups[:-1])):
                masked = REDACTED + text[groups[-2].end() :]
            elif looks_like_card("".join(g.group(0) for g in groups[1:])):
                masked = text[: groups[1].start()] + REDACTED
        if record is not None and masked is not text:
            record(text)
        return masked

    return mask_card


# ------------------------------------------------------------------------------
# Secrets that travel within one event


_NOTHING: frozenset[Any] = frozenset()


class EventSecrets:
    """The values redacted so far in one event, to be masked wherever else they appear.

    Bounded: at most :data:`MAX_SECRETS` values of :data:`MIN_TRAVEL_LENGTH`
    to :data:`MAX_SECRET_LENGTH` characters. Reading a value never runs
    application code (exact builtin types only, through their C methods).
    """

    MAX_SECRETS = 64
    MAX_SECRET_LENGTH = 4096
    #: Items of a container redacted by name that travel with it.
    MAX_ITEMS = 16

    __slots__ = ("_numbers", "_ordered", "_values")

    def __init__(self) -> None:
        # Most events redact nothing: the sets are made on the first secret
        # (a log line on a hot path keeps thousands of these until drained).
        self._values: set[str] | frozenset[str] = _NOTHING
        self._ordered: list[str] = []  # longest first, so a secret's part never masks first
        self._numbers: set[int] | frozenset[int] = _NOTHING

    def __bool__(self) -> bool:
        return bool(self._ordered)

    def __contains__(self, text: object) -> bool:
        return text in self._values

    def add(self, text: str) -> None:
        """Remember one redacted string."""
        if type(text) is not str:
            return
        if not MIN_TRAVEL_LENGTH <= len(text) <= self.MAX_SECRET_LENGTH:
            return
        if text in self._values or text in REDACTED or len(self._values) >= self.MAX_SECRETS:
            return
        if type(self._values) is frozenset:
            self._values = set()
        self._values.add(text)  # type: ignore[union-attr]
        self._ordered.append(text)
        self._ordered.sort(key=len, reverse=True)

    def add_value(self, value: object) -> None:
        """Remember a value redacted by name: text, bytes, an int, or a container's items."""
        if self._add_scalar(value):
            return
        kind = type(value)
        if kind is dict:
            items: Iterable[Any] = dict.values(value)  # type: ignore[arg-type]
        elif kind is list or kind is tuple or kind is set or kind is frozenset:
            items = kind.__iter__(value)  # type: ignore[attr-defined]
        else:
            return  # an object: its fields are redacted with it, but too varied to travel
        for item in itertools.islice(items, self.MAX_ITEMS):
            self._add_scalar(item)

    def _add_scalar(self, value: object) -> bool:
        kind = type(value)
        if kind is str:
            self.add(value)  # type: ignore[arg-type]
        elif kind is bytes or kind is bytearray:
            raw = bytes(value[: self.MAX_SECRET_LENGTH])  # type: ignore[index]
            if raw.isascii():
                self.add(raw.decode("ascii"))
        elif kind is int:
            if -(10**19) < value < 10**19:  # type: ignore[operator]
                digits = int.__repr__(value)  # type: ignore[arg-type]
                if len(digits.lstrip("-")) >= MIN_TRAVEL_LENGTH:
                    if type(self._numbers) is frozenset:
                        self._numbers = set()
                    self._numbers.add(value)  # type: ignore[arg-type, union-attr]
                    self.add(digits.lstrip("-"))
        elif issubclass(kind, str):
            self.add(str.__str__(value))  # type: ignore[arg-type]
        else:
            return False
        return True

    def mask(self, text: str) -> str:
        """``text`` with every remembered secret replaced by ``<redacted>``."""
        for secret in self._ordered:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def hides_number(self, value: object) -> bool:
        """Whether ``value`` is an int equal to a remembered one."""
        return type(value) is int and value in self._numbers

    def scrub(self, node: Any) -> Any:
        """Mask the remembered secrets throughout captured JSON (``capture``'s shape)."""
        if not self._ordered:
            return node
        return self._scrub(node, 0)

    def _scrub(self, node: Any, depth: int) -> Any:
        kind = type(node)
        if kind is str:
            return self.mask(node)
        if depth > 64:
            return node
        if kind is list:
            return [self._scrub(item, depth + 1) for item in node]
        if kind is not dict:
            return node
        if "type" in node and type(node.get("type")) is str:
            return self._scrub_node(node, depth)
        # A namespace or a "fields" dict: names map to nodes.
        out: dict[str, Any] = {}
        for key, item in node.items():
            name = self.mask(key) if type(key) is str else key
            if name in out:
                name = f"{name} #{len(out) + 1}"
            out[name] = self._scrub(item, depth + 1)
        return out

    def _scrub_node(self, node: dict[str, Any], depth: int) -> dict[str, Any]:
        value = node.get("value")
        if self.hides_number(value):
            return {"type": node["type"], "redacted": True}
        out = dict(node)
        if type(value) is str:
            out["value"] = self.mask(value)
        reason = node.get("notCaptured")  # a watch's error may quote what it read
        if type(reason) is str:
            out["notCaptured"] = self.mask(reason)
        for key in ("fields", "attributes", "items", "entries", "args", "cause", "context"):
            if key in out:
                out[key] = self._scrub(out[key], depth + 1)
        if "enumValue" in out:
            out["enumValue"] = self._scrub(out["enumValue"], depth + 1)
        return out


__all__ = [
    "BUILTIN_NAMES",
    "MIN_TRAVEL_LENGTH",
    "NAMES_ENV",
    "PATTERNS_ENV",
    "REDACTED",
    "SENSITIVE_PREFIXES",
    "SENSITIVE_SUFFIXES",
    "EventSecrets",
    "Redactor",
    "looks_like_card",
    "luhn_valid",
    "normalise",
]
