"""A log line printing a copy of a secret whose source is no longer in the frame.

``tok = request.headers['Authorization']; alias = tok``, then at a later line
``{alias}``: no name marks the value secret, so only its shape can
(``redact.py``'s value patterns). Before: ``Basic``, ``Token``, ``ApiKey``,
``Negotiate`` and ``NTLM`` credentials, and OpenAI, Anthropic, GitLab, npm,
PyPI, Hugging Face and SendGrid keys, were printed as they were.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import marked_lines
from runtime_agent import Engine
from runtime_agent.redact import REDACTED

LINES = marked_lines(Path(__file__).parent / "rt_targets" / "status_app.py")
AUTHORIZE = f"rt_targets/status_app.py:{LINES['authorize_return']}"

CREDENTIALS = {
    "Bearer": "Bearer 3f9a8b7c6d5e4f3a2b1c",
    "Basic": "Basic dXNlcjpzM2NyZXQtcGFzc3dvcmQ=",
    "Token": "Token 9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b",
    "ApiKey": "ApiKey 9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b",
    "Negotiate": "Negotiate YIIGhgYGKwYBBQUCoIIGejCCBnagMDAuBgkqhkiC9xIBAgIGCSqGSIb3",
    "JWT": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl",
    "OpenAI": "sk-proj-" + "Ab3dE5fG7h" * 5,
    "Anthropic": "sk-ant-api03-" + "Ab3dE5fG7h_-" * 8,
    "GitHub": "ghp_" + "A1b2C3d4" * 4 + "E5f6",
}


@pytest.mark.parametrize("header", CREDENTIALS.values(), ids=CREDENTIALS.keys())
def test_a_copied_authorization_value_is_masked_by_its_shape(header):
    from rt_targets import status_app

    # Not named like a secret: a caller's secret-named local would travel into the
    # snapshot and mask the copy for another reason than its shape.
    part = header.split(" ")[-1]
    with Engine() as eng:
        eng.add_log(AUTHORIZE, "sent {alias} as {alias.split(' ')[0]}")
        eng.add_snapshot(AUTHORIZE)
        status_app.authorize(status_app.Request({"Authorization": header}))
        events = eng.drain()
    (log,) = [e for e in events if e["type"] == "log"]
    (snap,) = [e for e in events if e["type"] == "snapshot"]
    assert part not in log["message"] and REDACTED in log["message"], log["message"]
    assert part not in str(snap["locals"]) and "alias" in snap["locals"]
