"""redact.py: sensitive names, masked values, and the service owner's settings."""

from __future__ import annotations

import logging
import random
import timeit

import pytest

from runtime_agent.redact import (
    BUILTIN_NAMES,
    REDACTED,
    Redactor,
    looks_like_card,
    luhn_valid,
    normalise,
)

R = Redactor()


def luhn_complete(prefix: str) -> str:
    """``prefix`` plus the check digit that makes it pass Luhn."""
    for digit in "0123456789":
        if luhn_valid(prefix + digit):
            return prefix + digit
    raise AssertionError("unreachable")


EPOCH_MS = luhn_complete("170000000000")  # 13 digits, like time.time() * 1000


# --------------------------------------------------------------------------
# Names


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "PASSWORD",
        "api_key",
        "API_KEY",
        "x-api-key",
        "X-Api-Key",
        "Authorization",
        "set-cookie",
        "sessionId",
        "credit_card",
        "cvv",
        "private_key",
        "jwt",
        "access_token",
        "ssn",
        "aws_secret_access_key",
        "$password",
        "user.password",
        # the suffix and prefix rules
        "db_password",
        "password_hash",
        "stripe_api_key",
        "github_token",
        "client-secret",
        "signing_key",
        "sessionCookie",
    ],
)
def test_sensitive_names(name):
    assert R.is_sensitive(name)


@pytest.mark.parametrize(
    "name",
    [
        "total",
        "user_id",
        "symbol",
        "quantity",
        "price",
        "items",
        "max_tokens",  # a count, not a token
        "tokenizer",
        "keyboard",
        "passenger",
        "secretary",
        "author",
        "public_key",
        "",
    ],
)
def test_ordinary_names(name):
    assert not R.is_sensitive(name)


def test_normalisation():
    assert normalise("X-Api-Key") == "xapikey"
    assert normalise("API_KEY") == "apikey"
    assert normalise("user.Pass Word") == "userpassword"
    assert {"password", "apikey", "authorization", "token", "secret"} <= BUILTIN_NAMES
    assert all(n == normalise(n) for n in BUILTIN_NAMES)  # stored already normalised


def test_non_strings_are_not_names_but_bytes_are_read_as_latin_1():
    assert not R.is_sensitive(None)
    assert not R.is_sensitive(42)
    assert not R.is_sensitive(bytearray(b"password"))
    # ASGI header names and POSIX os.environ keys are bytes
    assert R.is_sensitive(b"authorization")
    assert not R.is_sensitive(b"content-type")


def test_a_str_subclass_name_is_read_as_plain_text_without_running_its_methods():
    calls = []

    class Sneaky(str):
        def lower(self):
            calls.append("lower")
            return "x"

        def translate(self, table):
            calls.append("translate")
            return "x"

        def __hash__(self):
            calls.append("hash")
            return 1

        def __eq__(self, other):
            calls.append("eq")
            return False

    assert R.is_sensitive(Sneaky("Password"))
    assert not R.is_sensitive(Sneaky("total"))
    assert calls == []


def test_owner_names_are_normalised_too():
    redactor = Redactor(extra_names=["Internal-Ref", "  ", "plan"])
    assert redactor.is_sensitive("internal_ref")
    assert redactor.is_sensitive("INTERNALREF")
    assert redactor.is_sensitive("Plan")
    assert not Redactor().is_sensitive("plan")


def test_the_name_cache_stays_bounded_and_consistent():
    redactor = Redactor()
    for i in range(20_000):
        redactor.is_sensitive(f"name_{i}")
    assert len(redactor._cache) <= 10_000
    assert redactor.is_sensitive("password") and redactor.is_sensitive("password")
    assert not redactor.is_sensitive("name_19999")


# --------------------------------------------------------------------------
# Card numbers


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("card 4111111111111111 ok", f"card {REDACTED} ok"),
        ("card 4111 1111 1111 1111 ok", f"card {REDACTED} ok"),
        ("card 4111-1111-1111-1111", f"card {REDACTED}"),
        ("amex 3782 822463 10005", f"amex {REDACTED}"),  # 4-6-5
        ("amex 378282246310005.", f"amex {REDACTED}."),
        ("visa13 4222222222222", f"visa13 {REDACTED}"),
        ("mc 5555555555554444, next", f"mc {REDACTED}, next"),
        ("json {'pan': '4111111111111111'}", f"json {{'pan': '{REDACTED}'}}"),
        ("url ?card=4111111111111111&x=1", f"url ?card={REDACTED}&x=1"),
        # a card next to another number: the card part is found and masked
        ("4111 1111 1111 1111 12 items", f"{REDACTED} 12 items"),
    ],
)
def test_luhn_valid_card_numbers_are_masked(text, masked):
    assert R.mask_text(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "order 1234567890123456 ok",  # 16 digits, fails Luhn
        f"ts {EPOCH_MS} ms",  # an epoch-milliseconds timestamp: Luhn-valid, starts with 1
        "id 41111111111111110000",  # 20 digits: too long for a card
        "sku A4111111111111111",  # glued to a word
        "uuid 123e4567-e89b-12d3-a456-426614174000",
        "phone +1 415 555 0100",
        "short 4111 1111",
    ],
)
def test_numbers_that_are_not_cards_are_left_alone(text):
    assert luhn_valid(EPOCH_MS)  # the timestamp would pass Luhn alone
    assert R.mask_text(text) == text


def test_random_card_numbers():
    rng = random.Random(1234)
    for _ in range(500):
        prefix = rng.choice("23456") + "".join(rng.choice("0123456789") for _ in range(14))
        valid = luhn_complete(prefix)
        invalid = valid[:-1] + str((int(valid[-1]) + 1) % 10)
        assert R.mask_text(f"pay {valid} now") == f"pay {REDACTED} now"
        spaced = " ".join(valid[i : i + 4] for i in range(0, 16, 4))
        assert R.mask_text(f"pay {spaced} now") == f"pay {REDACTED} now"
        assert R.mask_text(f"pay {invalid} now") == f"pay {invalid} now"


def test_luhn_and_card_checks():
    assert luhn_valid("4111111111111111")
    assert luhn_valid("79927398713")
    assert not luhn_valid("4111111111111112")
    assert looks_like_card("4111111111111111")
    assert not looks_like_card("4111111111111112")
    assert not looks_like_card(EPOCH_MS)  # no card network starts with 1
    assert not looks_like_card("411111111111")  # 12 digits


# --------------------------------------------------------------------------
# Tokens and keys

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.sflKxwRJSMeKKF2QT4fwpM"
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEA7bq8\nq1w2e3r4t5y6u7i8o9p0\n"
    "-----END RSA PRIVATE KEY-----"
)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("Authorization: Bearer abcdef0123456789", f"Authorization: {REDACTED}"),
        ("authorization=Basic dXNlcjpwYXNz", f"authorization={REDACTED}"),
        ("{'Authorization': 'Token abc123def'}", f"{{'Authorization': '{REDACTED}'}}"),
        ("sent bearer abcdefghijklmnop to api", f"sent {REDACTED} to api"),
        ("BEARER ABCDEFGH12345678", REDACTED),
        (f"t={JWT}", f"t={REDACTED}"),
        (f"jwt {JWT} end", f"jwt {REDACTED} end"),
        ("key AKIAIOSFODNN7EXAMPLE here", f"key {REDACTED} here"),
        ("temp ASIAIOSFODNN7EXAMPLE", f"temp {REDACTED}"),
        (f"before\n{PEM}\nafter", f"before\n{REDACTED}\nafter"),
        ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC", REDACTED),  # cut block
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY----- ok",
            f"{REDACTED} ok",
        ),
        (
            "-----BEGIN PGP PRIVATE KEY BLOCK-----\nlQOY\n-----END PGP PRIVATE KEY BLOCK-----",
            REDACTED,
        ),
        ("dsn postgres://bob:hunter2@db:5432/app", f"dsn postgres://bob:{REDACTED}@db:5432/app"),
        ('{"password": "hunter2", "user": "bob"}', f'{{"password": "{REDACTED}", "user": "bob"}}'),
        ("login password=hunter2&next=/", f"login password={REDACTED}&next=/"),
        ("cfg API_KEY: abc123 ok", f"cfg API_KEY: {REDACTED} ok"),
        ("Login(user='bob', password=hunter2)", f"Login(user='bob', password={REDACTED})"),
    ],
)
def test_tokens_and_keys_are_masked(text, masked):
    assert R.mask_text(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "nothing to see here at all",
        "bearer abc",  # too short to be a token
        "the bearer of bad news",
        "AKIA123",  # too short for a key id
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkq\n-----END PUBLIC KEY-----",
        "https://example.com/path?q=1",
        "max_tokens=1500 used, monkey: 3",
        "password reset requested for bob",
        "eyJhbGciOiJIUzI1NiJ9 alone",
    ],
)
def test_ordinary_text_is_left_alone(text):
    assert R.mask_text(text) == text


def test_short_text_comes_back_unchanged_at_once():
    text = "abc 12"
    assert R.mask_text(text) is text
    assert R.shortest_secret == 13


def test_masking_is_idempotent():
    text = f"Authorization: Bearer {JWT} card 4111 1111 1111 1111 {PEM} password=x end"
    once = R.mask_text(text)
    assert R.mask_text(once) == once
    assert once == (f"Authorization: {REDACTED} card {REDACTED} {REDACTED} password={REDACTED} end")


PATHOLOGICAL = [
    lambda n: "a." * (n // 2) + "://" + "@",
    lambda n: "1 " * (n // 2),
    lambda n: "4111 " * (n // 5),
    lambda n: "token=" * (n // 6),
    lambda n: "eyJ" * (n // 3),
    lambda n: "password " * (n // 9),
    lambda n: "Authorization: " * (n // 15),
    lambda n: "x" * n + "eyJ" + "a" * n,
    lambda n: "-----BEGIN PRIVATE KEY-----" + "A" * n,
]


@pytest.mark.parametrize("make", PATHOLOGICAL)
def test_pathological_inputs_stay_linear(make):
    # Relative, not absolute: four times the input may cost about four times
    # as long (a quadratic pattern would cost sixteen), whatever the load.
    def cost(n: int) -> float:
        text = make(n)
        return min(timeit.repeat(lambda: R.mask_text(text), number=1, repeat=3))

    small, large = cost(25_000), cost(100_000)
    assert large < 8 * small + 0.05, (small, large)


def test_a_plain_log_line_costs_little():
    line = "order 42 placed for user bob at 12:00 qty=3"
    per_call = min(timeit.repeat(lambda: R.mask_text(line), number=2000, repeat=3)) / 2000
    assert per_call < 50e-6  # ~1 us here: substring checks, no regular expression


# --------------------------------------------------------------------------
# The owner's patterns and the environment


def test_owner_patterns_mask_and_bad_ones_are_refused():
    redactor = Redactor(["internal_ref"], [r"ACCT-\d{6}", r"emp\d+"])
    assert redactor.mask_text("ref ACCT-123456 ok") == f"ref {REDACTED} ok"
    assert redactor.mask_text("emp7") == REDACTED  # extra patterns apply to short text too
    assert redactor.shortest_secret == 0
    with pytest.raises(ValueError, match="not a valid regular expression"):
        Redactor(extra_patterns=["(unclosed"])
    with pytest.raises(ValueError, match="matches empty text"):
        Redactor(extra_patterns=[r"x*"])


def test_from_env_reads_names_and_patterns(caplog):
    env = {
        "RUNTIME_AGENT_REDACT": "tenant, plan ,,",
        "RUNTIME_AGENT_REDACT_PATTERNS": r"T-\d+;;(bad;; ;;ORD-[A-Z]{3}",
    }
    with caplog.at_level(logging.WARNING, logger="runtime_agent.redact"):
        redactor = Redactor.from_env(env)
    assert redactor.is_sensitive("tenant") and redactor.is_sensitive("PLAN")
    assert not redactor.is_sensitive("")
    assert redactor.mask_text("id T-42") == f"id {REDACTED}"
    assert redactor.mask_text("order ORD-ABC") == f"order {REDACTED}"
    assert redactor.mask_text("(bad") == "(bad"  # the bad pattern was left out ...
    assert "(bad" in caplog.text  # ... and said so
    assert redactor.is_sensitive("password")  # built-ins stay


def test_from_env_defaults_to_the_process_environment(monkeypatch):
    monkeypatch.setenv("RUNTIME_AGENT_REDACT", "customer_ref")
    monkeypatch.delenv("RUNTIME_AGENT_REDACT_PATTERNS", raising=False)
    redactor = Redactor.from_env()
    assert redactor.is_sensitive("CustomerRef")
    assert Redactor.from_env({}).is_sensitive("password")
    assert not Redactor.from_env({}).is_sensitive("customer_ref")
