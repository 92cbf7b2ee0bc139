"""redact_names.py: the one name rule, both sides of it (what it hides, what it leaves)."""

from __future__ import annotations

import pytest

from runtime_agent.redact import Redactor

R = Redactor()


@pytest.mark.parametrize(
    "name",
    [
        # plurals
        "tokens",
        "secrets",
        "cookies",
        "api_keys",
        "apiKeys",
        "passwords",
        "sessions",
        "refresh_tokens",
        # compounds
        "credential",
        "credentials",
        "google_credentials",
        "auth_header",
        "auth_headers",
        "private_key_pem",
        "privateKeyPem",
        "private_key_pem_bytes",
        "client_secret_hash",
        "token_bytes",
        "cookie_jar",
        "session",
        "sessionCookie",
        "proxy_authorization",
        "request_signature",
        "hmac_key",
        # words that mean a secret wherever they stand
        "ssn",
        "user_ssn",
        "cvv",
        "card_cvv",
        "otp",
        "otp_code",
        "sms_otp",
        "new_password_confirm",
        # header and environ spellings
        "Authorization",
        "Set-Cookie",
        "X-Api-Key",
        "X-Amz-Security-Token",
        "X-Amz-Signature",
        "X-Amz-Credential",
        "HTTP_AUTHORIZATION",
        "HTTP_COOKIE",
        "HTTP_X_API_KEY",
        "HTTP_X_FORWARDED_FOR",
        "AWS_SECRET_ACCESS_KEY",
        "RUNTIME_AGENT_TOKEN",
    ],
)
def test_plural_compound_and_header_names_are_sensitive(name):
    assert R.is_sensitive(name)


@pytest.mark.parametrize(
    "name",
    [
        "max_tokens",
        "num_tokens",
        "prompt_tokens",
        "completion_tokens",
        "token_count",
        "tokens_used",
        "token_type",
        "token_url",
        "tokenizer",
        "secret_name",
        "secret_id",
        "secret_arn",
        "cookie_name",
        "SESSION_COOKIE_NAME",
        "session_factory",
        "db_session",
        "public_key",
        "public_key_pem",
        "keys",
        "cache_key",
        "sort_key",
        "author",
        "authored_by",
        "passenger",
        "secretary",
        "pin_memory",
        "signature_version",
        "content_type_header",
        "headers",
        "data",
        "HTTP_HOST",
        "HTTP_USER_AGENT",
        "user_id",
        "status",
        "address",
    ],
)
def test_names_one_debugs_by_stay_visible(name):
    assert not R.is_sensitive(name)


def test_owner_names_take_the_same_forms_and_override_the_counting_exception():
    owner = Redactor(extra_names=["user_id", "max_tokens"])
    assert owner.is_sensitive("user_id")
    assert owner.is_sensitive("userId")
    assert owner.is_sensitive("user_ids")  # plural
    assert owner.is_sensitive("HTTP_USER_ID")
    assert owner.is_sensitive("max_tokens")  # listed by the owner: meant
    assert not owner.is_sensitive("num_tokens")
    assert not R.is_sensitive("user_ids")


def test_a_hostile_str_subclass_header_name_runs_nothing():
    calls = []

    class Name(str):
        def lower(self):
            calls.append("lower")
            return "x"

        def endswith(self, *a):
            calls.append("endswith")
            return False

        def __iter__(self):
            calls.append("iter")
            return iter(())

    assert R.is_sensitive(Name("Auth_Header"))
    assert not R.is_sensitive(Name("max_tokens"))
    assert calls == []
