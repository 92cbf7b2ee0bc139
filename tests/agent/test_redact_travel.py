"""Header structures in captures, os.environ, and secrets that travel within an event."""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest

from conftest import events_of
from runtime_agent import Engine
from runtime_agent.capture import CaptureLimits, capture_namespace, capture_value, render
from runtime_agent.redact import MIN_TRAVEL_LENGTH, REDACTED, EventSecrets, Redactor
from runtime_agent.template import Template

R = Redactor()
HERE = os.path.dirname(__file__)


def lines_of(name: str) -> dict[str, int]:
    from pathlib import Path

    from conftest import marked_lines

    return marked_lines(Path(HERE) / "rt_targets" / name)


APP = lines_of("secrets_app.py")


def app(marker: str) -> str:
    return f"rt_targets/secrets_app.py:{APP[marker]}"


def walk(node: Any):
    """Every str anywhere in captured JSON, keys included."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)
    elif isinstance(node, str):
        yield node


def shows(node: Any, secret: str) -> bool:
    return any(secret in text for text in walk(node))


# --------------------------------------------------------------------------
# Header structures


class Recorder:
    """Every hook records that it ran."""

    calls: list[str] = []

    def __init__(self, text: str) -> None:
        self.text = text

    def __eq__(self, other):
        Recorder.calls.append("eq")
        return False

    def __hash__(self):
        Recorder.calls.append("hash")
        return 0

    def __repr__(self):
        Recorder.calls.append("repr")
        return "x"

    def __iter__(self):
        Recorder.calls.append("iter")
        return iter(())

    def __len__(self):
        Recorder.calls.append("len")
        return 0


class HostileHeaderName(str):
    def lower(self):
        Recorder.calls.append("lower")
        return "x"

    def __eq__(self, other):
        Recorder.calls.append("str-eq")
        return False

    def __hash__(self):
        Recorder.calls.append("str-hash")
        return 0


def test_hostile_header_pairs_are_redacted_and_nothing_of_theirs_runs():
    Recorder.calls = []

    class HostileList(list):
        def __iter__(self):
            Recorder.calls.append("list-iter")
            return iter(())

        def __len__(self):
            Recorder.calls.append("list-len")
            return 0

    headers = HostileList(
        [(HostileHeaderName("Authorization"), Recorder("Basic dXNlcjpwYXNz")), ("a", "b")]
    )
    node = capture_value(headers)
    assert node["items"][0]["items"][1] == {"type": f"{__name__}.Recorder", "redacted": True}
    assert node["items"][1]["items"][1]["value"] == "b"
    text = render(headers)
    assert "Authorization" in text and REDACTED in text and "dXNl" not in text
    assert Recorder.calls == []


def test_a_list_of_header_tuples():
    headers = [("Authorization", "Basic dXNlcjpwYXNz"), ("Accept", "*/*"), ["X-Api-Key", "k-1"]]
    node = capture_value(headers)
    assert node["items"][0]["items"] == [
        {"type": "str", "value": "Authorization"},
        {"type": "str", "redacted": True},
    ]
    assert node["items"][1]["items"][1] == {"type": "str", "value": "*/*"}
    assert node["items"][2]["items"][1] == {"type": "str", "redacted": True}
    assert "dXNlcjpwYXNz" not in render(headers)


def test_asgi_scope_headers():
    scope = {
        "type": "http",
        "path": "/orders",
        "headers": [
            (b"host", b"shop.example"),
            (b"authorization", b"Bearer abcdefghijk"),
            [b"cookie", b"sessionid=s3cr3t; theme=dark"],
        ],
    }
    node = capture_value(scope)
    pairs = node["fields"]["headers"]["items"]
    assert pairs[0]["items"][1]["value"] == "b'shop.example'"
    assert pairs[1]["items"][1] == {"type": "bytes", "redacted": True}
    assert pairs[2]["items"][1] == {"type": "bytes", "redacted": True}
    assert "s3cr3t" not in render(scope, max_length=10_000)


def test_wsgi_environ_keys():
    environ = {
        "REQUEST_METHOD": "GET",
        "HTTP_AUTHORIZATION": "Basic dXNlcjpwYXNz",
        "HTTP_COOKIE": "sessionid=s3cr3t",
        "HTTP_X_API_KEY": "k-123456",
        "HTTP_HOST": "shop.example",
    }
    fields = capture_value(environ)["fields"]
    assert fields["REQUEST_METHOD"]["value"] == "GET"
    assert fields["HTTP_HOST"]["value"] == "shop.example"
    for key in ("HTTP_AUTHORIZATION", "HTTP_COOKIE", "HTTP_X_API_KEY"):
        assert fields[key] == {"type": "str", "redacted": True}


class Headers:
    """Starlette's Headers shape (``starlette.datastructures.Headers``): raw byte pairs."""

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._list = raw

    def __getattribute__(self, name):
        Recorder.calls.append(f"getattribute {name}")
        return object.__getattribute__(self, name)

    def items(self):
        Recorder.calls.append("items")
        return []


def test_starlette_headers_shape():
    Recorder.calls = []
    headers = Headers([(b"authorization", b"Bearer abcdefghijk"), (b"accept", b"*/*")])
    Recorder.calls = []
    node = capture_value(headers)
    raw = node["fields"]["_list"]["items"]
    assert raw[0]["items"][1] == {"type": "bytes", "redacted": True}
    assert raw[1]["items"][1]["value"] == "b'*/*'"
    assert Recorder.calls == []


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX keeps os.environ as bytes")
def test_os_environ_captured_as_a_local(monkeypatch):
    monkeypatch.setenv("PAYMENTS_API_KEY", "pk-should-not-show-1")
    monkeypatch.setenv("PLAIN_SETTING", "visible-value")
    env = os.environ
    limits = CaptureLimits(max_items=10_000, max_bytes=10**7)
    node = capture_namespace({"env": env}, redactor=R, limits=limits)["env"]
    assert node["type"] == "os._Environ"
    assert node["size"] == len(os.environ)
    fields = node["fields"]
    assert fields["PLAIN_SETTING"] == {"type": "str", "value": "visible-value"}
    assert fields["PAYMENTS_API_KEY"] == {"type": "str", "redacted": True}
    assert not shows(node, "pk-should-not-show-1")


# --------------------------------------------------------------------------
# EventSecrets


def test_event_secrets_bounds_and_forms():
    s = EventSecrets()
    s.add("short")  # under MIN_TRAVEL_LENGTH
    assert len("short") < MIN_TRAVEL_LENGTH and not s
    s.add_value("hunter22")
    s.add_value(b"bytes-secret")
    s.add_value(88124471)
    s.add_value(True)  # not a number that travels
    s.add_value({"github": "tok-123456", "n": 1})  # values, never keys
    s.add_value(["a", "item-secret-1"])
    assert s.mask("x hunter22 y bytes-secret z 88124471 tok-123456 github item-secret-1") == (
        f"x {REDACTED} y {REDACTED} z {REDACTED} {REDACTED} github {REDACTED}"
    )
    assert s.hides_number(88124471) and not s.hides_number(1)
    for i in range(200):
        s.add(f"secret-number-{i}")
    assert len(s._ordered) == EventSecrets.MAX_SECRETS


def test_a_hostile_value_redacted_by_name_runs_nothing_when_it_travels():
    Recorder.calls = []
    s = EventSecrets()
    s.add_value(Recorder("x"))
    s.add_value([Recorder("x")])

    class Sneaky(str):
        def __str__(self):
            Recorder.calls.append("str")
            return "x"

    s.add_value(Sneaky("sneaky-secret"))
    assert "sneaky-secret" in s
    assert Recorder.calls == []


def test_a_secret_redacted_by_name_is_masked_wherever_else_it_appears_in_a_capture():
    token = "opaque-4a7f19c2"
    s = EventSecrets()
    ns = {
        "headers_text": f"Authorization was {token}, retrying",
        "cache": {token: "bob"},  # a secret used as a dict key
        "token": token,
        "copy": token,
    }
    out = s.scrub(capture_namespace(ns, redactor=R, secrets=s))
    assert out["token"] == {"type": "str", "redacted": True}
    assert out["copy"] == {"type": "str", "value": REDACTED}
    assert out["headers_text"]["value"] == f"Authorization was {REDACTED}, retrying"
    assert list(out["cache"]["fields"]) == [REDACTED]
    assert not shows(out, token)


def test_a_value_masked_by_pattern_travels_too():
    s = EventSecrets()
    ns = {"url": "https://x.io/geo?key=k9d8s7f6g5&page=1", "later": "k9d8s7f6g5"}
    out = s.scrub(capture_namespace(ns, redactor=R, secrets=s))
    assert out["later"]["value"] == REDACTED


def test_exception_args_are_masked_and_travel():
    s = EventSecrets()
    exc = PermissionError("denied for api_key=zz-99887766 and xoxb-1234567890-abcdefGHIJ")
    ns = {"exc": exc, "api_key": "zz-99887766", "note": "zz-99887766 again"}
    out = s.scrub(capture_namespace(ns, redactor=R, secrets=s))
    assert not shows(out, "zz-99887766")
    assert not shows(out, "xoxb-1234567890")


def test_short_values_do_not_blank_the_event():
    s = EventSecrets()
    out = s.scrub(capture_namespace({"pin": "12", "total": "12 items"}, redactor=R, secrets=s))
    assert out["total"]["value"] == "12 items"


def test_template_masks_sensitive_locals_and_hidden_fields_throughout_the_line():
    def frame_code(user_token: str, request: Any) -> Any:
        return sys._getframe().f_code

    code = frame_code("", None)
    template = Template("sent {msg} for {req.auth} ({req})", R)

    class Req:
        def __init__(self) -> None:
            self.auth = "hidden-auth-991"
            self.path = "/x"

    local_vars = {
        "user_token": "tok-5550001",
        "msg": "tok-5550001 then hidden-auth-991",
        "req": Req(),
    }
    line = template.capture(local_vars, {}, code).text()
    assert "tok-5550001" not in line and "hidden-auth-991" not in line
    assert line.startswith(f"sent {REDACTED} then {REDACTED} for {REDACTED}")
    assert R.sensitive_locals(code) == ("user_token",)
    assert R.sensitive_locals(code) is R.sensitive_locals(code)  # found once per code object


# --------------------------------------------------------------------------
# In a live process: the case, snapshot and log both


@pytest.fixture
def owner_engine(request):
    eng = Engine(redactor=Redactor(extra_names=["user_id"]))
    try:
        yield eng
    finally:
        eng.close()


@pytest.mark.parametrize("user_id", ["u-8812-4471", 88124471])
def test_a_value_redacted_under_one_name_stays_redacted_when_copied(owner_engine, user_id):
    from rt_targets import secrets_app

    snap = owner_engine.add_snapshot(app("handle_return"))
    log = owner_engine.add_log(app("handle_return"), "{request} -> {result}")
    secrets_app.handle(secrets_app.Request(user_id, "/orders"))
    snapshot = events_of(owner_engine, "snapshot", snap.id)
    assert len(snapshot) == 1
    local = snapshot[0]["locals"]
    assert local["request"]["fields"]["user_id"]["redacted"] is True
    user = local["result"]["fields"]["user"]
    assert user.get("redacted") is True or user.get("value") == REDACTED
    assert not shows(snapshot[0], str(user_id))
    owner_engine.remove(snap.id)
    secrets_app.handle(secrets_app.Request(user_id, "/orders"))
    (line,) = [e["message"] for e in events_of(owner_engine, "log", log.id)][-1:]
    assert str(user_id) not in line
    assert "'user': <redacted>" in line or f"'user': '{REDACTED}'" in line


def test_a_sensitive_local_is_masked_in_a_log_line_that_does_not_name_it(owner_engine):
    from rt_targets import secrets_app

    log = owner_engine.add_log(app("token_return"), "{header} {owners}")
    secrets_app.with_token("tk-77aa88bb99")
    (event,) = events_of(owner_engine, "log", log.id)
    assert "tk-77aa88bb99" not in event["message"]
    assert event["message"] == f"Bearer-less {REDACTED} sent {{'{REDACTED}': 'bob'}}"
