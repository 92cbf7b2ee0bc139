"""redact.mask_text: vendor formats (one test each), labels under the name rule, URLs,
cookies, cards with dots, and what is left alone."""

from __future__ import annotations

import time
import timeit

import pytest

from runtime_agent.redact import REDACTED, Redactor

R = Redactor()
X = REDACTED


def masked(text: str) -> str:
    return R.mask_text(text)


# --------------------------------------------------------------------------
# Vendor formats


def test_slack_tokens():
    for prefix in ("xoxb", "xoxa", "xoxp", "xoxo", "xoxs", "xoxr"):
        assert masked(f"slack {prefix}-1234567890-abcdefGHIJ end") == f"slack {X} end"
    assert masked("app xapp-1-A0123456789-abcdef0123 end") == f"app {X} end"
    assert masked("xoxz-1234567890-abcdefGHIJ is no slack kind") == (
        "xoxz-1234567890-abcdefGHIJ is no slack kind"
    )
    assert masked("talk about xoxb- tokens") == "talk about xoxb- tokens"


def test_github_tokens():
    body = "A1b2C3d4" * 4 + "E5f6"  # 36
    for prefix in ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"):
        assert masked(f"token {prefix}{body} end") == f"token {X} end"
    assert masked("pat github_pat_11ABCDEFG0123456789_abcdefghijklmnop end") == f"pat {X} end"
    assert masked(f"ghx_{body} and ghp_short") == f"ghx_{body} and ghp_short"


def test_stripe_keys():
    for prefix in ("sk_live_", "rk_live_", "sk_test_", "rk_test_"):
        assert masked(f"key {prefix}4eC39HqLyjWDarjtT1zdp7dc end") == f"key {X} end"
    assert masked("hook whsec_abcdefghijklmnopqrstuvwx end") == f"hook {X} end"
    # publishable keys are public by design
    assert masked("pk_live_4eC39HqLyjWDarjtT1zdp7dc") == "pk_live_4eC39HqLyjWDarjtT1zdp7dc"


def test_google_api_keys():
    key = "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"
    assert masked(f"maps {key} end") == f"maps {X} end"
    assert masked("AIzaShort not a key") == "AIzaShort not a key"


def test_http_auth_schemes_besides_bearer():
    """What ``Authorization`` holds, copied out of the header under any name."""
    basic = "dXNlcjpzM2NyZXQtcGFzc3dvcmQ="  # user:s3cret-password
    assert masked(f"auth Basic {basic} end") == f"auth Basic {X} end"
    assert masked("Basic YWI6Y2Q=") == f"Basic {X}"  # a:b, short
    assert masked("basic " + basic) == f"basic {X}"
    for scheme in ("Token", "ApiKey", "Api-Key", "token"):
        key = "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"
        assert masked(f"sent {scheme} {key}") == f"sent {scheme} {X}", scheme
    negotiate = "YIIGhgYGKwYBBQUCoIIGejCCBnagMDAuBgkqhkiC9xIBAgIGCSqGSIb3EgECAgYK"
    assert masked(f"Negotiate {negotiate}") == f"Negotiate {X}"
    assert masked("NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAGAbEdAAAADw==") == f"NTLM {X}"
    # Words after a scheme's name are not credentials.
    for text in (
        "Basic authentication failed for bob",
        "Basic dXNlcm5hbWU=",  # "username": no colon, so no user:password pair
        "token expired at 12:00; Token refreshed",
        "Token 2024-01-01T12:00 ApiKey rotation scheduled",
        "Negotiate authentication is not configured",
    ):
        assert masked(text) == text


def test_ai_registry_and_mail_keys():
    keys = (
        "sk-proj-" + "Ab3dE5fG7h" * 5,  # OpenAI project key
        "sk-" + "T3BlbkFJ" * 6,  # OpenAI legacy key (48)
        "sk-ant-api03-" + "Ab3dE5fG7h_-" * 8,  # Anthropic
        "glpat-" + "xY3zA9bC1dE5fG7hI2jK",  # GitLab personal access token
        "npm_" + "a1B2c3D4e5" * 3 + "f6G7h8",  # npm
        "pypi-AgEIcHlwaS5vcmc" + "CJDc2NmEtYjQ4ZC00" * 4,  # PyPI upload token
        "hf_" + "aBcDeFgHiJkLmNoPqRsTuVwXyZaBcDeFgH",  # Hugging Face (34 letters)
        "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",  # SendGrid
    )
    for key in keys:
        assert masked(f"using {key} now") == f"using {X} now", key
    for text in (
        "pip install scikit-learn; sk-learn is a typo",
        "npm_config_cache=/tmp/npm hf_hub_download(repo) glpat- pypi-server",
        "task-runner sk-1 sk-2 SG.a.b",
    ):
        assert masked(text) == text


def test_aws_access_key_ids():
    assert masked("id AKIAIOSFODNN7EXAMPLE end") == f"id {X} end"
    assert masked("id ASIAIOSFODNN7EXAMPLE end") == f"id {X} end"


def test_aws_secret_keys_only_next_to_a_key_id_or_a_label():
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    assert masked(f"AKIAIOSFODNN7EXAMPLE,{secret}") == f"{X},{X}"  # a credentials CSV line
    assert masked(f"aws_secret_access_key = {secret}") == f"aws_secret_access_key = {X}"
    assert masked(f'{{"SecretAccessKey": "{secret}"}}') == f'{{"SecretAccessKey": "{X}"}}'
    # alone, a 40-character string is as likely an id or a hash: left alone
    assert masked(f"value {secret}") == f"value {secret}"
    sha1 = "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12"
    assert masked(f"AKIAIOSFODNN7EXAMPLE commit {sha1}") == f"{X} commit {sha1}"


# --------------------------------------------------------------------------
# Labels, under the same name rule as captures


def test_str_of_a_dict_is_masked_under_the_name_rule():
    d = {
        "auth": "a-secret-1",
        "cookie": "sid=abc; theme=dark",
        "session": "s3ss10n-value",
        "credentials": {"user": "bob", "pw": "hunter2"},
        "ssn": "123-45-6789",
        "cvv": 123,
        "otp": "654321",
        "tokens": ["t1", "t2"],
        "qty": 3,
    }
    assert masked(str(d)) == (
        f"{{'auth': '{X}', 'cookie': '{X}', 'session': '{X}', 'credentials': {X}, "
        f"'ssn': '{X}', 'cvv': {X}, 'otp': '{X}', 'tokens': {X}, 'qty': 3}}"
    )


def test_header_pairs_in_text():
    assert masked(str([("Authorization", "Basic dXNlcjpwYXNz"), ("Accept", "*/*")])) == (
        f"[('Authorization', '{X}'), ('Accept', '*/*')]"
    )
    asgi = [(b"authorization", b"Bearer abc.def"), (b"cookie", b"sid=1"), (b"host", b"x.io")]
    assert masked(str(asgi)) == (
        f"[(b'authorization', b'{X}'), (b'cookie', b'{X}'), (b'host', b'x.io')]"
    )
    assert masked("Authorization: Digest username=bob") == f"Authorization: {X}"


def test_url_keys_and_signatures():
    assert masked("GET /geo?key=AbCdEf123456&page=2") == f"GET /geo?key={X}&page=2"
    assert masked("https://x.blob.core.windows.net/c?sv=2020&sig=abc%2Bdef") == (
        f"https://x.blob.core.windows.net/c?sv=2020&sig={X}"
    )
    presigned = (
        "https://b.s3.amazonaws.com/o?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20240101%2Fus-east-1"
        "&X-Amz-Signature=deadbeef1234&X-Amz-Expires=60"
    )
    assert masked(presigned) == (
        "https://b.s3.amazonaws.com/o?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        f"&X-Amz-Credential={X}&X-Amz-Signature={X}&X-Amz-Expires=60"
    )
    assert masked("cb?access_token=abcdefgh123&state=xyz") == f"cb?access_token={X}&state=xyz"
    assert masked("signature=abcdef0123 rest") == f"signature={X} rest"
    assert masked("oauth/callback?code=4/0AX4XfWh&state=1") == f"oauth/callback?code={X}&state=1"
    # outside a URL, "key" and "code" are what one debugs by
    assert masked("cache key=orders:42 code=200") == "cache key=orders:42 code=200"


def test_cookie_strings():
    assert masked("Cookie: _ga=GA1.2.3; sid=abcdef; theme=dark user=bob") == (
        f"Cookie: {X} user=bob"
    )
    assert masked("Set-Cookie: id=a3fWa; Path=/; HttpOnly") == f"Set-Cookie: {X}; HttpOnly"
    assert masked("session=abc123; csrftoken=def456") == f"session={X}; csrftoken={X}"


def test_cards_written_with_dots():
    assert masked("card 4111.1111.1111.1111 ok") == f"card {X} ok"
    assert masked("card 5555.5555.5555.4444.") == f"card {X}."
    # a float's digits, a version and an IP are not cards
    assert masked("ratio 0.4111111111111111") == "ratio 0.4111111111111111"
    assert masked("v 4111.1111.1111.1112 ip 10.20.30.40") == "v 4111.1111.1111.1112 ip 10.20.30.40"


def test_exception_text_is_masked():
    exc = ValueError("login failed for password=hunter2 with xoxb-1234567890-abcdefGHIJ")
    assert masked(str(exc)) == f"login failed for password={X} with {X}"
    assert masked(repr(KeyError("auth_token"))) == "KeyError('auth_token')"


@pytest.mark.parametrize(
    "text",
    [
        "max_tokens=1500 prompt_tokens=12 token_count: 3",
        "Error: upstream timed out after 3s",
        "secret_name=prod/db status=ok",
        "https://example.com/a?page=2&sort=asc",
        "author: bob, passenger: alice",
        "keys=['a', 'b'] cache_key=orders:42",
        "('Accept', 'text/html')",
    ],
)
def test_labels_that_are_not_secrets_are_left_alone(text):
    assert masked(text) == text


def test_masking_stays_idempotent_and_linear_on_label_floods():
    once = masked("auth=x1234567 cookie: 'a=b' ('Authorization', 'Basic zz') ?key=abc")
    assert masked(once) == once
    for text in ("a=" * 50_000, "'a', " * 30_000, "auth={" * 20_000, "x:" * 50_000):
        started = time.perf_counter()
        masked(text)
        assert time.perf_counter() - started < 2.0, text[:12]


def test_an_ordinary_line_still_costs_little():
    line = "total=1520.5 user=u-1234 items=3 status=ok region=eu-west-1 latency_ms=12"
    per_call = min(timeit.repeat(lambda: R.mask_text(line), number=2000, repeat=3)) / 2000
    assert per_call < 100e-6  # ~5 us on the shared reference machine
