"""Redaction: secrets never leave the process.

By name: a variable, field, key or attribute whose normalised name (lower
case, without ``_``, ``-`` and ``.``) is on the built-in list, or on the
service owner's (``RUNTIME_AGENT_REDACT``, comma-separated). By value: text
that looks like a payment card number (checked with Luhn), a bearer token, a
JWT, an AWS access key or a PEM private key, or that matches the owner's
patterns (``RUNTIME_AGENT_REDACT_PATTERNS``, regexes separated by ``;;``).

The owner's controls are read only here, inside the process, so no remote
caller can lift them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

REDACTED = "<redacted>"
NAMES_ENV = "RUNTIME_AGENT_REDACT"
PATTERNS_ENV = "RUNTIME_AGENT_REDACT_PATTERNS"
PATTERN_SEPARATOR = ";;"

#: Normalised identifiers, in the spirit of Datadog's list.
BUILTIN_NAMES = frozenset(
    [
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
        "bankaccount",
        "bearer",
        "cardnumber",
        "cc",
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
        "cvc",
        "cvv",
        "databaseurl",
        "dburl",
        "encryptionkey",
        "encryptionkeyid",
        "geolocation",
        "gpgkey",
        "iban",
        "ipaddress",
        "jsessionid",
        "jwt",
        "licensekey",
        "masterkey",
        "mysqlpwd",
        "nonce",
        "oauth",
        "oauthtoken",
        "otp",
        "passhash",
        "passphrase",
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
        "productkey",
        "pwd",
        "recaptchakey",
        "refreshtoken",
        "remoteaddr",
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
        "tokenid",
        "twilioauthtoken",
        "usertoken",
        "xapikey",
        "xauthtoken",
        "xcsrftoken",
        "xforwardedfor",
        "xrealip",
        "xsrf",
        "xsrftoken",
        "awssecretaccesskey",
        "awsaccesskeyid",
        "secretaccesskey",
        "accesskey",
        "accountnumber",
        "creditcardnumber",
        "debitcard",
        "cardcvv",
        "cardcvc",
        "securitypin",
        "socialsecuritynumber",
        "taxid",
    ]
)

_NORMALISE = str.maketrans("", "", "_-. ")

_CARD = r"(?<![\w-])(?:\d[ -]?){12,18}\d(?![\w-])"
_BUILTIN_PATTERNS = [
    r"\b(?i:bearer)\s+[A-Za-z0-9._~+/=-]{8,}",
    r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}",
    r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[A-Z0-9]{16}\b",
    r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----[\s\S]*?(?:-----END (?:[A-Z]+ )?PRIVATE KEY-----|$)",
]
_DIGITS = b"0123456789"
_MIN_CARD_DIGITS = 13
#: No built-in pattern matches fewer characters (a 13-digit card number).
_SHORTEST_SECRET = 13


def _may_hold_token(text: str) -> bool:
    """Cheap pre-check: text without these substrings cannot match a token pattern.

    Plain substring tests, because even a simple regular expression search
    costs several times more on the short strings of a log line.
    """
    return (
        "eyJ" in text
        or "earer" in text
        or "EARER" in text
        or "PRIVATE KEY" in text
        or "AKIA" in text
        or "ASIA" in text
        or "AGPA" in text
        or "AIDA" in text
        or "AROA" in text
        or "ANPA" in text
    )


def _digit_count(text: str) -> int:
    raw = text.encode("utf-8", "surrogatepass")
    return len(raw) - len(raw.translate(None, _DIGITS))


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum that every payment card number passes."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def normalise(name: str) -> str:
    """``X-Api-Key`` -> ``xapikey``."""
    return name.lower().translate(_NORMALISE)


class Redactor:
    """Decides what is sensitive; masks sensitive text."""

    def __init__(self, extra_names: Iterable[str] = (), extra_patterns: Iterable[str] = ()) -> None:
        self.names = BUILTIN_NAMES | {normalise(n) for n in extra_names if n.strip()}
        patterns = list(_BUILTIN_PATTERNS)
        self._extra: list[re.Pattern[str]] = []
        for pattern in extra_patterns:
            if not pattern:
                continue
            try:
                self._extra.append(re.compile(pattern))
            except re.error as exc:
                raise ValueError(
                    f"redaction pattern {pattern!r} is not a valid regular expression: {exc}"
                ) from None
        self._builtin = re.compile("|".join(f"(?:{p})" for p in patterns))
        self._card = re.compile(_CARD)
        self._cache: dict[str, bool] = {}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Redactor:
        """The built-in lists plus ``RUNTIME_AGENT_REDACT`` and ``RUNTIME_AGENT_REDACT_PATTERNS``.

        An invalid pattern in the environment is skipped rather than keeping
        the service from starting; ``Redactor(...)`` raises for it instead.
        """
        env = os.environ if environ is None else environ
        names = [n for n in env.get(NAMES_ENV, "").split(",") if n.strip()]
        patterns = []
        for pattern in env.get(PATTERNS_ENV, "").split(PATTERN_SEPARATOR):
            pattern = pattern.strip()
            if not pattern:
                continue
            try:
                re.compile(pattern)
            except re.error:
                continue
            patterns.append(pattern)
        return cls(names, patterns)

    def is_sensitive(self, name: object) -> bool:
        """Whether a variable, field, key or attribute of this name is redacted."""
        if not isinstance(name, str):
            return False
        known = self._cache.get(name)
        if known is None:
            known = normalise(name) in self.names
            if len(self._cache) < 10_000:
                self._cache[name] = known
        return known

    def mask_text(self, text: str) -> str:
        """``text`` with every sensitive-looking value replaced by ``<redacted>``."""
        if self._extra:
            for pattern in self._extra:
                text = pattern.sub(REDACTED, text)
        if len(text) < _SHORTEST_SECRET:
            return text
        if _may_hold_token(text):
            text = self._builtin.sub(REDACTED, text)
        if _digit_count(text) >= _MIN_CARD_DIGITS:
            text = self._card.sub(_mask_card, text)
        return text


def _mask_card(match: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", match.group(0))
    if 13 <= len(digits) <= 19 and luhn_valid(digits):
        return REDACTED
    return match.group(0)
