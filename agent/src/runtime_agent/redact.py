"""Redaction: secrets never leave the process.

By name
    A variable, field, key or attribute is redacted when its *normalised* name
    (lower case, without ``_ - . $ @`` and spaces: ``X-Api-Key`` -> ``xapikey``)

    - is on the built-in list (:data:`BUILTIN_NAMES`: Datadog's list of
      identifiers plus payment and cloud names), or on the service owner's
      list (``RUNTIME_AGENT_REDACT``, comma-separated names);
    - or ends with a strong word (:data:`SENSITIVE_SUFFIXES`: ``db_password``,
      ``stripe_api_key``, ``github_token``), or starts with ``password``.

    Datadog matches whole names only; the suffix rule is ours, because
    ``db_password`` and ``aws_session_token`` are the usual spellings of a
    secret in application code. Over-redacting a ``next_page_token`` is the
    price.

By value
    :meth:`Redactor.mask_text` replaces with ``<redacted>``:

    - payment card numbers: 13 to 19 digits, unbroken or grouped by single
      spaces or dashes as cards are printed (4-4-4-4, 4-4-4-4-3, 4-6-5,
      4-6-4, 4-4-4-1), whose first digit is 2 to 6 (the card networks: this
      keeps epoch-millisecond timestamps, which start with 1, out) and which
      pass the Luhn check;
    - ``Bearer <token>``; the value of an ``Authorization`` header; a JWT
      (``eyJ...eyJ...``); an AWS access key id (``AKIA``/``ASIA`` + 16); a
      PEM or PGP private key block (to the end of the text when the block is
      cut); the password in a URL (``postgres://user:pw@host``); the value in
      ``password=...``, ``api_key: ...``, ``secret=...``, ``token=...``;
    - whatever the owner's patterns match (``RUNTIME_AGENT_REDACT_PATTERNS``:
      Python regular expressions separated by ``;;``, chosen because neither a
      comma nor a newline survives every way environment variables are set).

    Cost: text shorter than 13 characters is returned at once (when the owner
    has no patterns); otherwise cheap substring and digit-count checks decide
    whether any regular expression runs at all.

The owner's controls are read only here, inside the process, so no remote
caller can lift them.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping

REDACTED = "<redacted>"
NAMES_ENV = "RUNTIME_AGENT_REDACT"
PATTERNS_ENV = "RUNTIME_AGENT_REDACT_PATTERNS"
PATTERN_SEPARATOR = ";;"

_LOG = logging.getLogger("runtime_agent.redact")

#: Normalised identifiers: Datadog's list (ddtrace/debugging/_redaction.py) less
#: ``publickey`` and ``transactionid`` (not secrets, and what one debugs by),
#: plus payment, identity and cloud credentials.
BUILTIN_NAMES = frozenset(
    {
        # Datadog's identifiers
        "2fa",
        "accesstoken",
        "aiohttpsession",
        "apikey",
        "apisecret",
        "apisignature",
        "appkey",
        "applicationkey",
        "auth",
        "authorization",
        "authtoken",
        "ccnumber",
        "certificatepin",
        "cipher",
        "clientid",
        "clientsecret",
        "connectionstring",
        "connectsid",
        "cookie",
        "credentials",
        "creditcard",
        "csrf",
        "csrftoken",
        "cvv",
        "databaseurl",
        "dburl",
        "encryptionkey",
        "encryptionkeyid",
        "geolocation",
        "gpgkey",
        "ipaddress",
        "jti",
        "jwt",
        "licensekey",
        "masterkey",
        "mysqlpwd",
        "nonce",
        "oauth",
        "oauthtoken",
        "otp",
        "passhash",
        "passwd",
        "password",
        "passwordb",
        "pemfile",
        "pgpkey",
        "phpsessid",
        "pin",
        "pincode",
        "pkcs8",
        "privatekey",
        "pwd",
        "recaptchakey",
        "refreshtoken",
        "routingnumber",
        "salt",
        "secret",
        "secretkey",
        "secrettoken",
        "securityanswer",
        "securitycode",
        "securityquestion",
        "serviceaccountcredentials",
        "session",
        "sessionid",
        "sessionkey",
        "setcookie",
        "signature",
        "signaturekey",
        "sshkey",
        "ssn",
        "symfony",
        "token",
        "twiliotoken",
        "usersession",
        "voterid",
        "xapikey",
        "xauthtoken",
        "xcsrftoken",
        "xforwardedfor",
        "xrealip",
        "xsrf",
        "xsrftoken",
        # payment and identity
        "accountnumber",
        "bankaccount",
        "cardcvc",
        "cardcvv",
        "cardnumber",
        "cc",
        "creditcardnumber",
        "cvc",
        "debitcard",
        "iban",
        "pan",
        "securitypin",
        "socialsecuritynumber",
        "taxid",
        # authentication
        "apitoken",
        "bearer",
        "idtoken",
        "jsessionid",
        "mfa",
        "mfacode",
        "oauthtokensecret",
        "passphrase",
        "remoteaddr",
        "sessiontoken",
        "totp",
        "twilioauthtoken",
        "usertoken",
        "xsessionid",
        # cloud credentials
        "accesskey",
        "awsaccesskeyid",
        "awssecretaccesskey",
        "awssessiontoken",
        "secretaccesskey",
    }
)

#: A normalised name ending with one of these is sensitive too.
SENSITIVE_SUFFIXES = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "privatekey",
    "secretkey",
    "accesskey",
    "signingkey",
    "encryptionkey",
    "credentials",
    "cookie",
    "sessionid",
)
#: ... and so is one starting with one of these (``password_hash``).
SENSITIVE_PREFIXES = ("password", "passwd")

_NORMALISE = str.maketrans("", "", "_-. $@")
_MAX_CACHED_NAMES = 10_000

# Cards: unbroken, or grouped the way cards are printed; an optional trailing
# group lets "4111 1111 1111 1111 12" be found and the card part masked.
_CARD = re.compile(
    # The first digit comes first and the boundary is checked behind it, so the
    # engine can skip from digit to digit (twice as fast as a leading lookbehind).
    r"[0-9](?<![\w-][0-9])"
    r"(?:[0-9]{12,18}"
    r"|[0-9]{3}(?:[ -][0-9]{4}){2}[ -][0-9]{1,4}(?:[ -][0-9]{1,3})?"
    r"|[0-9]{3}[ -][0-9]{6}[ -][0-9]{4,5})"
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
_AUTHZ = re.compile(
    # An Authorization header's value, with its scheme (Bearer, Basic ...); a
    # value masked already is left as it is, so masking twice changes nothing.
    r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)(?!<redacted>)"
    r"(?:(?:bearer|basic|digest|token|negotiate|ntlm|apikey|aws4-hmac-sha256)\s+)?"
    r"[^\s\"',;]+"
)
_BEARER = re.compile(r"(?i)bearer\s+[a-z0-9._~+/=-]{8,}")
# A bounded header, so text of repeated "eyJ" cannot make the search quadratic.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,1024}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_AWS_KEY_ID = re.compile(r"(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])")
_PEM = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
    r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\Z)"
)
# The password in a URL's user info: scheme://user:password@host.
_USERINFO = re.compile(r"(://[^\s:/@]{0,256}:)[^\s/@]+(?=@)")
# password=..., "api_key": "...": found by substring, then this tail is matched
# right after the word (a case-insensitive keyword regex costs ~15 us a line).
_ASSIGN_WORDS = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "api-key",
    "accesskey",
    "access_key",
    "privatekey",
    "private_key",
)
# The value stops at a quote, separator or closing bracket ("Trade(password=x)"),
# and an already masked value is left alone.
_ASSIGN_TAIL = re.compile(r"[\"']?\s*[:=]\s*[\"']?(?!<redacted>)([^\s\"',;&)\]}>]+)")
#: No built-in pattern matches fewer characters (a 13-digit card number).
_SHORTEST_SECRET = 13


def _keep_label(match: re.Match[str]) -> str:
    # Keep the label in front of the secret ("Authorization: ", "://user:").
    return match.group(1) + REDACTED


def _mask_assignments(text: str) -> str:
    """Mask the value after ``password=``, ``"token": ``, ``api_key:`` and the like."""
    if "=" not in text and ":" not in text:
        return text
    lowered = text.lower()
    if not (
        "pass" in lowered
        or "pwd" in lowered
        or "secret" in lowered
        or "token" in lowered
        or "key" in lowered
    ):
        return text  # the common case: five substring searches
    if len(lowered) != len(text):  # a few characters change length in lower case
        lowered = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
    starts: list[tuple[int, int]] = []
    for word in _ASSIGN_WORDS:
        start = lowered.find(word)
        while start != -1:
            starts.append((start, start + len(word)))
            start = lowered.find(word, start + 1)
    if not starts:
        return text
    out = []
    last = 0
    for start, after in sorted(starts):
        if start < last:  # inside a value masked already ("token=token=...")
            continue
        match = _ASSIGN_TAIL.match(text, after)
        if match is None:
            continue
        begin, end = match.span(1)
        out.append(text[last:begin])
        out.append(REDACTED)
        last = end
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


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


def normalise(name: str) -> str:
    """``X-Api-Key`` -> ``xapikey``."""
    return str.lower(name).translate(_NORMALISE)


class Redactor:
    """Decides which names are sensitive, and masks sensitive values inside text.

    ``extra_names`` are added to the built-in names (normalised the same way);
    ``extra_patterns`` are Python regular expressions whose matches are
    masked. A pattern that does not compile, or that matches empty text
    (which would mask between every character), raises ``ValueError``.
    """

    def __init__(self, extra_names: Iterable[str] = (), extra_patterns: Iterable[str] = ()) -> None:
        self.names = BUILTIN_NAMES | {
            normalise(n) for n in extra_names if isinstance(n, str) and n.strip()
        }
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

    def is_sensitive(self, name: object) -> bool:
        """Whether a variable, field, key or attribute of this name is redacted.

        Anything but a string is not a name, so it is not sensitive. A str
        subclass is read as its plain string, so its own ``lower``,
        ``__hash__`` or ``__eq__`` never run.
        """
        kind = type(name)
        if kind is not str:
            if not issubclass(kind, str):
                return False
            name = str.__str__(name)  # type: ignore[arg-type]  # the C copy: no user code
        known = self._cache.get(name)  # type: ignore[arg-type]
        if known is None:
            known = self._decide(name)  # type: ignore[arg-type]
            if len(self._cache) < _MAX_CACHED_NAMES:
                self._cache[name] = known  # type: ignore[index]
        return known

    def _decide(self, name: str) -> bool:
        key = normalise(name)
        return (
            key in self.names
            or key.endswith(SENSITIVE_SUFFIXES)
            or key.startswith(SENSITIVE_PREFIXES)
        )

    def mask_text(self, text: str) -> str:
        """``text`` with every sensitive-looking value replaced by ``<redacted>``."""
        for pattern in self._extra:
            text = pattern.sub(REDACTED, text)
        if len(text) < _SHORTEST_SECRET:
            return text
        # Authorization first: its value may be a Bearer token or a JWT.
        if "uthorization" in text or "UTHORIZATION" in text:
            text = _AUTHZ.sub(_keep_label, text)
        if "earer" in text or "EARER" in text:
            text = _BEARER.sub(REDACTED, text)
        if "eyJ" in text:
            text = _JWT.sub(REDACTED, text)
        if "AKIA" in text or "ASIA" in text:
            text = _AWS_KEY_ID.sub(REDACTED, text)
        if "PRIVATE KEY" in text:
            text = _PEM.sub(REDACTED, text)
        if "://" in text and "@" in text:
            text = _USERINFO.sub(_keep_label, text)
        text = _mask_assignments(text)
        if _digit_count(text) >= _MIN_CARD_DIGITS:
            text = _CARD.sub(_mask_card, text)
        return text


def _mask_card(match: re.Match[str]) -> str:
    text = match.group(0)
    groups = list(_GROUP.finditer(text))
    if looks_like_card("".join(g.group(0) for g in groups)):
        return REDACTED
    # A card next to another number ("4111 1111 1111 1111 12"): the card is
    # every group but the last, or every group but the first.
    if len(groups) > 2:
        if looks_like_card("".join(g.group(0) for g in groups[:-1])):
            return REDACTED + text[groups[-2].end() :]
        if looks_like_card("".join(g.group(0) for g in groups[1:])):
            return text[: groups[1].start()] + REDACTED
    return text
