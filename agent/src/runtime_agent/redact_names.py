"""Which names are sensitive: the one name rule for variables, fields, keys and labels.

``redact.Redactor.is_sensitive`` answers with this rule for captured
variables, fields, dict keys, attribute names, header names, the identifiers of
expressions, and the labels found in text (``password=...``, ``'auth': ...``),
so ``str(d)`` of a dict is masked under the same rule as a capture of ``d``.

The rule. A name is split into words (``_ - . $ @``, spaces and camelCase:
``privateKeyPem`` -> private, key, pem), and it is sensitive when

1. the whole name, normalised (lower case, separators removed:
   ``X-Api-Key`` -> ``xapikey``), is a known name (:data:`BUILTIN_NAMES`, or
   the owner's ``RUNTIME_AGENT_REDACT``), ends with a strong suffix
   (:data:`SENSITIVE_SUFFIXES`: ``db_password``, ``stripe_api_key``,
   ``proxy_authorization``) or starts with ``password``/``passwd``;
2. or the same holds once the name is read for its *head*: a leading
   ``HTTP`` word is dropped (WSGI/CGI environ keys: ``HTTP_AUTHORIZATION``,
   ``HTTP_COOKIE``), trailing words that only say how the secret is held are
   dropped (:data:`HOLDER_WORDS`: ``private_key_pem``, ``auth_header``,
   ``token_bytes``, ``cookie_jar``), and the last word is read singular
   (``tokens``, ``secrets``, ``cookies``, ``api_keys``, ``credentials``,
   ``sessions``, and the owner's names too: ``user_ids`` for ``user_id``);
3. or any word is one that means a secret wherever it stands
   (:data:`SECRET_WORDS`: ``ssn``, ``cvv``, ``cvc``, ``otp``, ``totp``,
   ``password``, ``passwd``, ``passphrase``: ``user_ssn``, ``otp_code``,
   ``new_password_confirm``).

Except: ``token`` after a counting word (:data:`COUNTING_WORDS`:
``max_tokens``, ``num_tokens``, ``prompt_tokens``) is a count, not a
credential, unless the owner names it.

The price, deliberately paid: a name whose last word is a secret word is
hidden even when it holds no secret (a lexer's ``tokens`` list, a paging
``next_page_token``, a requests or SQLAlchemy object named ``session``,
``password_reset_url``, ``otp_expires_at``, plurals such as ``pins``); a
hidden value keeps its type, so the shape of the data still shows. What stays
visible, because the head is not a secret: ``token_count``, ``token_type``,
``tokenizer``, ``secret_name``, ``secret_id``, ``cookie_name``,
``session_factory``, ``db_session``, ``public_key``, ``keys``, ``cache_key``,
``author``, ``passenger``, ``secretary``, ``pin_memory``.

In URLs only (``?key=``, ``&sig=``, ``&code=``), :data:`URL_PARAM_NAMES` are
sensitive too: a ``key`` variable is what one debugs by, a ``key`` query
parameter is an API key.
"""

from __future__ import annotations

import re
from collections.abc import Collection

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

#: A normalised name (or its head) ending with one of these is sensitive too.
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
    "hmackey",
    "credential",
    "credentials",
    "cookie",
    "sessionid",
    "authorization",
    "signature",
)
#: ... and so is one starting with one of these (``password_hash``).
SENSITIVE_PREFIXES = ("password", "passwd")
#: Words that mean a secret wherever they stand in a name.
SECRET_WORDS = frozenset({"ssn", "cvv", "cvc", "otp", "totp", "password", "passwd", "passphrase"})
#: Trailing words that say how a secret is held, not what it is.
HOLDER_WORDS = frozenset(
    {
        "b64",
        "base64",
        "bytes",
        "data",
        "der",
        "enc",
        "encoded",
        "encrypted",
        "hash",
        "hashed",
        "header",
        "headers",
        "hex",
        "jar",
        "pem",
        "plain",
        "plaintext",
        "raw",
        "str",
        "string",
        "text",
        "val",
        "value",
        "values",
    }
)
#: ``max_tokens``: a word before ``token(s)`` that makes it a count.
COUNTING_WORDS = frozenset(
    {
        "max",
        "min",
        "num",
        "n",
        "total",
        "count",
        "prompt",
        "completion",
        "input",
        "output",
        "cached",
        "reasoning",
        "used",
        "remaining",
    }
)
#: Query parameters that carry a key or signature (``?key=AIza...``, ``&sig=``).
URL_PARAM_NAMES = frozenset({"key", "sig", "sign", "code", "hmac"})

_NORMALISE = str.maketrans("", "", "_-. $@")
# camelCase and acronyms: "privateKeyPem" -> private Key Pem, "APIKey" -> API Key.
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def normalise(name: str) -> str:
    """``X-Api-Key`` -> ``xapikey``."""
    return str.lower(name).translate(_NORMALISE)


def _strong(key: str, known: Collection[str]) -> bool:
    return key in known or key.endswith(SENSITIVE_SUFFIXES) or key.startswith(SENSITIVE_PREFIXES)


def _singular(word: str) -> str:
    if len(word) > 2 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def is_sensitive_name(name: str, known: Collection[str], owner: Collection[str] = ()) -> bool:
    """The rule above for a plain ``str``; ``known``: every normalised known name.

    ``owner`` (normalised names the service owner listed) overrides the
    counting exception: an owner who lists ``max_tokens`` means it.
    """
    whole = normalise(name)
    if not whole:
        return False
    if whole in owner:
        return True
    words = [str.lower(w) for w in _WORD.findall(name)]
    if len(words) > 1 and words[0] == "http":
        words = words[1:]
    while len(words) > 1 and words[-1] in HOLDER_WORDS:
        words.pop()
    if not words:
        return _strong(whole, known)
    head = _singular(words[-1])
    if head == "token" and len(words) > 1 and words[-2] in COUNTING_WORDS:
        return False
    words[-1] = head
    return (
        _strong(whole, known)
        or _strong("".join(words), known)
        or any(w in SECRET_WORDS for w in words)
    )


def is_url_param_name(name: str) -> bool:
    """Whether a query parameter of this name carries a key or signature."""
    return normalise(name) in URL_PARAM_NAMES
