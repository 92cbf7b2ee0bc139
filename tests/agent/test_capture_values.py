"""Capturing hostile and ordinary values without running application code."""

from __future__ import annotations

import collections
import dataclasses
import datetime
import decimal
import enum
import json
import time
import uuid
from typing import NamedTuple

import pytest

from runtime_agent.capture import (
    CaptureBudget,
    CaptureLimits,
    capture_namespace,
    capture_value,
    render,
)
from runtime_agent.redact import Redactor

CALLS: list[str] = []


@pytest.fixture(autouse=True)
def no_calls():
    CALLS.clear()
    yield
    assert CALLS == [], f"application code ran: {CALLS}"


class Hostile:
    """Every hook an unsafe capture would run records itself, mutates, sleeps or raises."""

    def __init__(self) -> None:
        self.plain = 1
        self.items = [1, 2]

    def __repr__(self) -> str:
        CALLS.append("repr")
        self.plain += 1
        time.sleep(1)
        raise RuntimeError("repr")

    __str__ = __repr__

    def __getattr__(self, name: str) -> object:
        CALLS.append(f"getattr {name}")
        return 0

    def __eq__(self, other: object) -> bool:
        CALLS.append("eq")
        self.items.append(3)
        return True

    def __hash__(self) -> int:
        CALLS.append("hash")
        return 1

    def __len__(self) -> int:
        CALLS.append("len")
        return 0

    def __iter__(self):
        CALLS.append("iter")
        return iter(())

    @property
    def prop(self) -> int:
        CALLS.append("property")
        return 5


class BrokenDict:
    @property
    def __dict__(self):  # type: ignore[override]
        CALLS.append("__dict__ property")
        raise RuntimeError("no")


class SneakyList(list):
    def __iter__(self):
        CALLS.append("list iter")
        return iter([99])

    def __len__(self) -> int:
        CALLS.append("list len")
        return 1


class SneakyDict(dict):
    def items(self):
        CALLS.append("dict items")
        return iter(())

    def __iter__(self):
        CALLS.append("dict iter")
        return iter(())


class Slotted:
    __slots__ = ("a", "b", "unset")

    def __init__(self) -> None:
        self.a = 1
        self.b = "two"


@dataclasses.dataclass
class Trade:
    symbol: str
    quantity: int
    password: str = "hunter2"


class Point(NamedTuple):
    x: int
    y: int


class Color(enum.Enum):
    RED = 1


def roundtrip(captured: object) -> object:
    return json.loads(json.dumps(captured))


def test_hostile_object_is_walked_not_run():
    obj = Hostile()
    before = dict(obj.__dict__)
    captured = capture_value(obj)
    assert captured["type"].endswith("Hostile")
    assert captured["fields"]["plain"] == {"type": "int", "value": 1}
    assert captured["fields"]["items"]["items"] == [
        {"type": "int", "value": 1},
        {"type": "int", "value": 2},
    ]
    assert "prop" not in captured["fields"]
    assert obj.__dict__ == before
    assert roundtrip(captured) == captured


def test_broken_dict_property_is_never_called():
    captured = capture_value(BrokenDict())
    assert captured["type"].endswith("BrokenDict")
    assert "fields" not in captured
    assert captured["id"].startswith("0x")


def test_subclassed_containers_use_the_builtin_storage():
    lst = SneakyList([1, 2, 3])
    captured = capture_value(lst)
    assert [i["value"] for i in captured["items"]] == [1, 2, 3]
    assert captured["size"] == 3
    d = SneakyDict(a=1)
    assert capture_value(d)["fields"] == {"a": {"type": "int", "value": 1}}


def test_hostile_keys_and_elements():
    key = Hostile()
    value = {key: 1, "x": [Hostile()]}
    CALLS.clear()  # building the dict hashed the key; capturing it must not
    captured = capture_value(value)
    assert captured["size"] == 2
    assert "entries" in captured
    roundtrip(captured)


def test_slots_dataclasses_namedtuples_enums():
    assert capture_value(Slotted())["fields"] == {
        "a": {"type": "int", "value": 1},
        "b": {"type": "str", "value": "two"},
    }
    trade = capture_value(Trade("ACME", 3), redactor=Redactor())
    assert list(trade["fields"]) == ["symbol", "quantity", "password"]
    assert trade["fields"]["password"] == {"type": "str", "redacted": True}
    assert capture_value(Point(1, 2))["fields"] == {
        "x": {"type": "int", "value": 1},
        "y": {"type": "int", "value": 2},
    }
    assert capture_value(Color.RED)["value"] == "Color.RED"


def test_scalars_as_text():
    when = datetime.datetime(2026, 1, 2, 3, 4, 5)
    ident = uuid.UUID(int=5)
    assert capture_value(decimal.Decimal("1.10"))["value"] == "1.10"
    assert capture_value(when)["value"] == "2026-01-02 03:04:05"
    assert capture_value(ident)["value"] == str(ident)
    assert capture_value(b"\x00ab")["value"] == "b'\\x00ab'"
    assert capture_value(float("nan"))["value"] == "nan"
    assert capture_value(10**400)["value"] == "<int of 1329 bits>"


def test_exceptions_show_type_args_and_frames():
    try:
        raise ValueError("bad", 3)
    except ValueError as exc:
        captured = capture_value(exc)
    assert captured["type"] == "ValueError"
    assert [a["value"] for a in captured["args"]["items"]] == ["bad", 3]
    assert "test_exceptions_show_type_args_and_frames" in captured["frames"][0]


def test_limits_and_markers():
    limits = CaptureLimits()
    long = "x" * 1000
    assert capture_value(long) == {
        "type": "str",
        "value": "x" * 256,
        "truncated": True,
        "size": 1000,
    }
    many = list(range(5000))
    captured = capture_value(many)
    assert captured["size"] == 5000 and len(captured["items"]) == 100 and captured["truncated"]
    deep = [[[[["bottom"]]]]]
    level = capture_value(deep)
    for _ in range(limits.max_depth):
        level = level["items"][0]
    assert level == {"type": "list", "notCaptured": "depth limit", "size": 1}

    class Wide:
        pass

    wide = Wide()
    for i in range(10_000):
        setattr(wide, f"a{i}", i)
    captured = capture_value(wide)
    assert len(captured["fields"]) == 20 and captured["size"] == 10_000


def test_cycles_are_references():
    cycle: list = [1]
    cycle.append(cycle)
    captured = capture_value(cycle)
    assert captured["items"][1] == {"type": "list", "ref": captured["id"]}
    node: dict = {}
    node["self"] = node
    top = capture_value(node)
    assert top["fields"]["self"]["ref"] == top["id"]


def test_snapshot_budget_bounds_the_total():
    names = {f"v{i}": "y" * 200 for i in range(1000)}
    captured = capture_namespace(names, budget=CaptureBudget(65536))
    size = len(json.dumps(captured))
    assert size < 65536 * 2
    assert any(v.get("notCaptured") == "snapshot size limit" for v in captured.values())


def test_namespace_redacts_by_name():
    captured = capture_namespace(
        {"api_key": "k", "user": "bob", "Authorization": "Bearer x"}, redactor=Redactor()
    )
    assert captured["api_key"] == {"type": "str", "redacted": True}
    assert captured["Authorization"] == {"type": "str", "redacted": True}
    assert captured["user"]["value"] == "bob"


def test_render_is_safe_and_short():
    assert render("abc") == "abc"
    assert render(12) == "12"
    assert render([1, "a"]) == "[1, 'a']"
    assert render(Trade("ACME", 3), redactor=Redactor()) == (
        "Trade(symbol='ACME', quantity=3, password=<redacted>)"
    )
    assert render(Hostile()).startswith("Hostile(plain=1")
    assert len(render("z" * 1000)) == 256
    assert render(collections.deque([1])) == "[1]"
