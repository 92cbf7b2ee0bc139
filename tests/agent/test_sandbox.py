"""The expression sandbox: what it evaluates, what it rejects, and that it
never runs application code (hostile objects record every call they get)."""

from __future__ import annotations

import builtins
import collections
import copy
import dataclasses
import datetime
import decimal
import enum
import fractions
import functools
import sys
import threading
import time
import types
import uuid
from typing import Any

import pytest

from runtime_agent.errors import ExpressionError
from runtime_agent.sandbox import (
    MAX_DEPTH,
    MAX_LENGTH,
    BudgetExceeded,
    EvaluationFailure,
    Expression,
    NotEvaluated,
    compile_expression,
)

# -- helpers -------------------------------------------------------------------


def ev(source: str, local_vars: dict[str, Any] | None = None, global_vars: Any = None) -> Any:
    """Compile and evaluate; any exception other than EvaluationFailure fails the test."""
    expr = compile_expression(source)
    try:
        return expr.evaluate(local_vars or {}, global_vars or {})
    except EvaluationFailure:
        raise
    except BaseException as exc:  # pragma: no cover - the point of the tests
        pytest.fail(f"{source!r} raised {type(exc).__name__}: {exc}")


def failure(source: str, local_vars: dict[str, Any] | None = None, global_vars: Any = None):
    """The EvaluationFailure (or subclass) raised by ``source``."""
    with pytest.raises(EvaluationFailure) as info:
        ev(source, local_vars, global_vars)
    return info.value


def rejected(source: str) -> str:
    with pytest.raises(ExpressionError) as info:
        compile_expression(source)
    message = str(info.value)
    assert "\n" not in message
    return message


class Point:
    """A plain class: its instances take object's behaviour."""

    kind = "point"

    def __init__(self, x: int, y: int) -> None:
        self.x = x
        self.y = y

    def norm(self) -> int:
        return abs(self.x) + abs(self.y)


class Color(enum.Enum):
    RED = 1
    GREEN = 2


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


Pair = collections.namedtuple("Pair", "left right")


@dataclasses.dataclass
class Order:
    total: int
    status: Color = Color.RED


@dataclasses.dataclass(slots=True)
class Slotted:
    a: int
    b: str = "b"


class UserId(str):
    """A str subclass without dunders: treated as a str."""


NS: dict[str, Any] = {
    "total": 12_500,
    "price": 9.5,
    "name": "alice",
    "empty": "",
    "items": [3, 1, 2],
    "nested": {"user": {"id": "u1", "roles": ["admin", "dev"]}, "n": 3},
    "tags": {"a", "b"},
    "pair": (1, "x"),
    "p": Point(3, -4),
    "color": Color.GREEN,
    "level": Level.HIGH,
    "tup": Pair(1, 2),
    "order": Order(250),
    "slotted": Slotted(7),
    "uid": UserId("u-9"),
    "none": None,
    "flag": True,
    "raw": b"bytes\x00",
    "dec": decimal.Decimal("1.25"),
    "frac": fractions.Fraction(1, 3),
    "when": datetime.datetime(2024, 5, 6, 7, 8, 9),
    "day": datetime.date(2024, 5, 6),
    "span": datetime.timedelta(minutes=90),
    "aware": datetime.datetime(2024, 5, 6, tzinfo=datetime.timezone.utc),
    "ident": uuid.UUID(int=255),
    "counts": collections.Counter("aabc"),
    "ordered": collections.OrderedDict(a=1),
    "defaults": collections.defaultdict(list, {"k": [1]}),
    "queue": collections.deque([1, 2]),
    "err": ValueError("bad", 3),
}
GLOBALS: dict[str, Any] = {
    "LIMIT": 10_000,
    "Color": Color,
    "Level": Level,
    "Point": Point,
    "mod": types.SimpleNamespace(x=1),
    "datetime": datetime,
    "collections": collections,
    "total": "shadowed by the local",
}

ALLOWED: list[tuple[str, Any]] = [
    # names, constants, lookup order
    ("total", 12_500),
    ("LIMIT", 10_000),
    ("total > LIMIT", True),
    ("total > 10000", True),
    ("total >= 12500", True),
    ("total < 10000", False),
    ("total <= 12500.0", True),
    ("total == 12500", True),
    ("total != 12500", False),
    ("price > 9", True),
    ("name == 'alice'", True),
    ("name != 'bob'", True),
    ("name < 'b'", True),
    ("None", None),
    ("...", ...),
    ("-5", -5),
    ("1_000", 1000),
    ("0x10 + 0o10 + 0b10", 26),
    ("1e3", 1000.0),
    ("2j * 2j", -4 + 0j),
    ("b'ab' + raw[:2]", b"abby"),
    ("'a' 'b'", "ab"),
    # comparisons
    ("1 < total < 20000", True),
    ("1 < total < 2", False),
    ("0 <= price <= 10 < LIMIT", True),
    ("none is None", True),
    ("none is not None", False),
    ("p is p", True),
    ("name in ('alice', 'bob')", True),
    ("name not in ('alice', 'bob')", False),
    ("total in (1, 12500)", True),
    ("'li' in name", True),
    ("3 in items", True),
    ("4 not in items", True),
    ("'user' in nested", True),
    ("'a' in tags", True),
    ("b'y' in raw", True),
    ("5 in range(10)", True),
    ("[1, 2] == [1, 2]", True),
    ("(1, 2) < (1, 3)", True),
    ("{'a': 1} == {'a': 1}", True),
    ("items == [3, 1, 2]", True),
    ("pair == (1, 'x')", True),
    ("1 == 1.0", True),
    ("tags == {'b', 'a'}", True),
    ("p == p", True),
    ("p != Point", True),
    # boolean logic
    ("total > 1 and name == 'alice'", True),
    ("total > 1 and empty", ""),
    ("empty or name", "alice"),
    ("empty or none", None),
    ("not empty", True),
    ("not items", False),
    ("not p", False),
    ("p and 1", 1),
    ("items and nested and total", 12_500),
    ("'yes' if total > 1 else 'no'", "yes"),
    ("'yes' if empty else 'no'", "no"),
    # arithmetic
    ("total + 1", 12_501),
    ("total - 1", 12_499),
    ("total * 2", 25_000),
    ("total / 2", 6_250.0),
    ("total // 1000", 12),
    ("total % 1000", 500),
    ("2 ** 10", 1024),
    ("2 ** -1", 0.5),
    ("(-2) ** 3", -8),
    ("1 << 4", 16),
    ("256 >> 4", 16),
    ("6 & 3", 2),
    ("6 | 3", 7),
    ("6 ^ 3", 5),
    ("-total", -12_500),
    ("+price", 9.5),
    ("~5", -6),
    ("~flag", -2),
    ("price * 2", 19.0),
    ("total + price", 12_509.5),
    ("name + '!'", "alice!"),
    ("name * 2", "alicealice"),
    ("items + [4]", [3, 1, 2, 4]),
    ("pair * 2", (1, "x", 1, "x")),
    ("tags | {'c'}", {"a", "b", "c"}),
    ("tags - {'a'}", {"b"}),
    ("dec + 1", decimal.Decimal("2.25")),
    ("dec * 2 > 2", True),
    ("frac * 3", fractions.Fraction(1)),
    ("frac + frac", fractions.Fraction(2, 3)),
    ("when + span", datetime.datetime(2024, 5, 6, 8, 38, 9)),
    ("when - when", datetime.timedelta(0)),
    ("span * 2", datetime.timedelta(hours=3)),
    ("span > span * 0.5", True),
    ("day < when.date()", False),
    ("level + 1", 3),
    ("level == 2", True),
    ("level > Level.LOW", True),
    ("counts + counts", collections.Counter("aabcaabc")),
    # attributes
    ("p.x", 3),
    ("p.x + p.y", -1),
    ("p.kind", "point"),
    ("order.total", 250),
    ("order.status", Color.RED),
    ("order.status is Color.RED", True),
    ("order.status == Color.RED", True),
    ("color == Color.GREEN", True),
    ("color != Color.RED", True),
    ("color.name", "GREEN"),
    ("color.value", 2),
    ("Color.RED.value", 1),
    ("level.name", "HIGH"),
    ("slotted.a", 7),
    ("slotted.b", "b"),
    ("tup.left", 1),
    ("tup.right + 1", 3),
    ("tup == (1, 2)", True),
    ("mod.x", 1),
    ("datetime.timezone.utc", datetime.timezone.utc),
    ("when.year", 2024),
    ("when.hour", 7),
    ("span.days", 0),
    ("span.seconds", 5400),
    ("frac.numerator", 1),
    ("frac.denominator", 3),
    ("ident.hex", "000000000000000000000000000000ff"),
    ("ident.int", 255),
    ("err.args", ("bad", 3)),
    ("err.args[1]", 3),
    ("(3 + 4j).imag", 4.0),
    ("total.real", 12_500),
    # subscripts and slices
    ("items[0]", 3),
    ("items[-1]", 2),
    ("items[1:]", [1, 2]),
    ("items[::-1]", [2, 1, 3]),
    ("items[:total]", [3, 1, 2]),
    ("name[0]", "a"),
    ("name[1:3]", "li"),
    ("nested['user']['id']", "u1"),
    ("nested['user']['roles'][0]", "admin"),
    ("nested['n'] * 2", 6),
    ("pair[1]", "x"),
    ("tup[0]", 1),
    ("raw[0]", 98),
    ("range(10)[3]", 3),
    ("counts['a']", 2),
    ("counts['zz']", 0),
    ("ordered['a']", 1),
    ("defaults['k']", [1]),
    ("queue[0]", 1),
    ("{'a': 1}['a']", 1),
    ("Color['RED']", Color.RED),
    # displays
    ("[total, name]", [12_500, "alice"]),
    ("(total,)", (12_500,)),
    ("{'k': total}", {"k": 12_500}),
    ("{1, 2, 2}", {1, 2}),
    ("()", ()),
    ("[]", []),
    ("{}", {}),
    # f-strings
    ("f'{total}'", "12500"),
    ("f'{total:>8}|{price:.2f}|{name!r}'", "   12500|9.50|'alice'"),
    ("f'{name=}'", "name='alice'"),
    ("f'{items}'", "[3, 1, 2]"),
    ("f'{nested}'", "{'user': {'id': 'u1', 'roles': ['admin', 'dev']}, 'n': 3}"),
    ("f'{dec}'", "1.25"),
    ("f'{when:%Y-%m-%d}'", "2024-05-06"),
    ("f'{color}'", "Color.GREEN"),
    ("f'{total:{8}}'", "   12500"),
    ("f'{err}'", "('bad', 3)"),
    # builtins
    ("len(items)", 3),
    ("len(name)", 5),
    ("len(nested)", 2),
    ("len(tags)", 2),
    ("len(range(5))", 5),
    ("len(counts)", 3),
    ("len(tup)", 2),
    ("str(total)", "12500"),
    ("str(items)", "[3, 1, 2]"),
    ("str(b'ab', 'ascii')", "ab"),
    ("str()", ""),
    ("repr(name)", "'alice'"),
    ("ascii('é')", "'\\xe9'"),
    ("int('42')", 42),
    ("int('ff', 16)", 255),
    ("int(price)", 9),
    ("int(dec)", 1),
    ("int(frac)", 0),
    ("float('1.5')", 1.5),
    ("float(total)", 12_500.0),
    ("float(dec)", 1.25),
    ("bool(items)", True),
    ("bool(empty)", False),
    ("bool(p)", True),
    ("bool()", False),
    ("abs(-3)", 3),
    ("abs(span * -1)", datetime.timedelta(minutes=90)),
    ("round(3.14159, 2)", 3.14),
    ("round(price)", 10),
    ("round(1234, -2)", 1200),
    ("min(items)", 1),
    ("max(items)", 3),
    ("min(3, 1, 2)", 1),
    ("max([], default=0)", 0),
    ("max('abc')", "c"),
    ("min(nested)", "n"),
    ("sum(items)", 6),
    ("sum(items, 10)", 16),
    ("sum([0.5, 0.25])", 0.75),
    ("sum([dec, dec])", decimal.Decimal("2.50")),
    ("sum([span, span], span * 0)", datetime.timedelta(hours=3)),
    ("sorted(items)", [1, 2, 3]),
    ("sorted(items, reverse=True)", [3, 2, 1]),
    ("sorted(nested)", ["n", "user"]),
    ("sorted(tags)", ["a", "b"]),
    ("any(items)", True),
    ("any([])", False),
    ("all([1, 'x', [0]])", True),
    ("all([1, 0])", False),
    ("isinstance(total, int)", True),
    ("isinstance(flag, int)", True),
    ("isinstance(name, (int, str))", True),
    ("isinstance(name, int | None)", False),
    ("isinstance(p, Point)", True),
    ("isinstance(color, Color)", True),
    ("isinstance(level, int)", True),
    ("isinstance(err, Exception)", True),
    ("isinstance(nested, collections.abc.Mapping)", True),
    ("isinstance(items, collections.abc.Mapping)", False),
    ("type(total) is int", True),
    ("type(p) is Point", True),
    ("type(p) == Point", True),
    ("hasattr(p, 'x')", True),
    ("hasattr(p, 'norm')", True),
    ("hasattr(p, 'missing')", False),
    ("divmod(7, 2)", (3, 1)),
    ("pow(2, 10)", 1024),
    ("pow(3, 4, 5)", 1),
    ("hex(255)", "0xff"),
    ("oct(8)", "0o10"),
    ("bin(5)", "0b101"),
    ("chr(97)", "a"),
    ("ord('a')", 97),
    ("list(tags) != []", True),
    ("list('ab')", ["a", "b"]),
    ("tuple(items)", (3, 1, 2)),
    ("set(items)", {1, 2, 3}),
    ("frozenset('aa')", frozenset("a")),
    ("list(range(3))", [0, 1, 2]),
    ("callable(len)", True),
    ("callable(total)", False),
    ("hash(1)", 1),
    ("id(p) == id(p)", True),
    # methods of builtin types
    ("name.upper()", "ALICE"),
    ("name.startswith('al')", True),
    ("name.endswith(('x', 'ce'))", True),
    ("'  x '.strip()", "x"),
    ("'a,b'.split(',')", ["a", "b"]),
    ("'a b c'.split(maxsplit=1)", ["a", "b c"]),
    ("name.replace('a', 'A')", "Alice"),
    ("name.find('i')", 2),
    ("name.count('a')", 1),
    ("'-'.join(['a', 'b'])", "a-b"),
    ("name.center(9, '*')", "**alice**"),
    ("'7'.zfill(3)", "007"),
    ("name.title()", "Alice"),
    ("name.isalpha()", True),
    ("name.partition('i')", ("al", "i", "ce")),
    ("name.removeprefix('al')", "ice"),
    ("name.encode()", b"alice"),
    ("raw.decode('latin-1')", "bytes\x00"),
    ("raw.hex()", "627974657300"),
    ("raw.startswith(b'by')", True),
    ("nested.get('n')", 3),
    ("nested.get('zz', 0)", 0),
    ("nested.get('zz')", None),
    ("sorted(nested.keys())", ["n", "user"]),
    ("len(nested.values())", 2),
    ("('n', 3) in nested.items()", True),
    ("items.index(2)", 2),
    ("items.count(3)", 1),
    ("pair.index('x')", 1),
    ("tup.count(1)", 1),
    ("tags.issubset({'a', 'b', 'c'})", True),
    ("tags.union(['c'])", {"a", "b", "c"}),
    ("tags.isdisjoint(['z'])", True),
    ("total.bit_length()", 14),
    ("price.is_integer()", False),
    ("when.isoformat()", "2024-05-06T07:08:09"),
    ("when.strftime('%H:%M')", "07:08"),
    ("when.date()", datetime.date(2024, 5, 6)),
    ("when.weekday()", 0),
    ("aware.isoformat()", "2024-05-06T00:00:00+00:00"),
    ("span.total_seconds()", 5400.0),
    ("dec.is_nan()", False),
    ("frac.as_integer_ratio()", (1, 3)),
    ("uid.upper()", "U-9"),
    ("uid == 'u-9'", True),
    ("uid + '!'", "u-9!"),
    ("queue.count(1)", 1),
    ("counts.get('a')", 2),
    ("ordered.get('a')", 1),
    ("defaults.get('zz')", None),
]


@pytest.mark.parametrize(("source", "expected"), ALLOWED)
def test_allowed(source: str, expected: Any) -> None:
    result = ev(source, dict(NS), dict(GLOBALS))
    assert result == expected
    assert type(result) is type(expected)
    # Again through the same compiled expression: its caches must not change the answer.
    expr = compile_expression(source)
    assert expr.evaluate(NS, GLOBALS) == expr.evaluate(NS, GLOBALS) == expected


def test_allowed_expressions_leave_the_namespace_unchanged() -> None:
    objects = ("p", "order", "slotted", "err")
    before = {k: copy.deepcopy(v) for k, v in NS.items() if k not in objects}
    ids = {k: id(v) for k, v in NS.items()}
    plain = (dict(NS["p"].__dict__), dict(NS["order"].__dict__), NS["slotted"].a, NS["err"].args)
    decimal.getcontext().clear_flags()
    for source, _ in ALLOWED:
        compile_expression(source).evaluate(NS, GLOBALS)
    assert {k: v for k, v in NS.items() if k not in objects} == before
    assert {k: id(v) for k, v in NS.items()} == ids
    assert (NS["p"].__dict__, NS["order"].__dict__, NS["slotted"].a, NS["err"].args) == plain
    assert not any(decimal.getcontext().flags.values())


def test_returns_application_objects_without_touching_them() -> None:
    point = Point(1, 2)
    assert ev("p", {"p": point}) is point
    assert ev("[p, p][1]", {"p": point}) is point
    assert ev("d['k']", {"d": {"k": point}}) is point
    assert ev("Point", {}, {"Point": Point}) is Point
    assert ev("Color.RED", {}, GLOBALS) is Color.RED


REJECTED: list[tuple[str, list[str]]] = [
    ("x = 1", ["assignment", "x = 1", "x == 1"]),
    ("x += 1", ["assignment", "x += 1"]),
    ("(y := 5)", ["`:=`", "column 2", "y := 5"]),
    ("del x", ["del", "del x"]),
    ("import os", ["import", "import os", "os.sep"]),
    ("from os import path", ["import"]),
    ("lambda: 1", ["lambda", "column 1", "lambda: 1"]),
    ("sorted(items, key=lambda i: -i)", ["sorted(key=...)", "lambda"]),
    ("[i for i in items]", ["comprehension", "any()"]),
    ("{i for i in items}", ["comprehension"]),
    ("{k: 1 for k in d}", ["comprehension"]),
    ("sum(i for i in items)", ["comprehension", "i for i in items"]),
    ("await x", ["await"]),
    ("(yield)", ["yield"]),
    ("x.__class__", ["`__class__`", "column 1", "dunder"]),
    ("x.__class__.__subclasses__()", ["`__subclasses__`"]),
    ("f.__globals__", ["`__globals__`"]),
    ("__builtins__", ["`__builtins__`", "dunder"]),
    ("__import__('os')", ["`__import__`", "imports run code"]),
    ("open('/etc/passwd')", ["open()", "side effects", "allowed functions", "len"]),
    ("eval('1')", ["eval()", "runs code"]),
    ("exec('x=1')", ["exec()", "runs code"]),
    ("compile('1', '', 'eval')", ["compile()", "runs code"]),
    ("getattr(x, 'y')", ["getattr()", "obj.name"]),
    ("setattr(x, 'y', 1)", ["setattr()", "changes the service"]),
    ("vars(x)", ["vars()", "namespaces"]),
    ("globals()", ["globals()"]),
    ("print(x)", ["print()", "side effects"]),
    ("iter(items)", ["iter()", "iterator"]),
    ("format(x, '>3')", ["format()", "__format__", "f-string"]),
    ("dict(a=1)", ["dict()", "allowed functions"]),
    ("compute(total)", ["compute()", "application functions are never called"]),
    ("items.append(1)", ["list.append", "may change the service", "allowed methods", "get"]),
    ("d.update({})", ["dict.update", "may change the service"]),
    ("d.pop('k')", ["list.pop", "may change the service"]),
    ("s.add(1)", ["set.add", "may change the service"]),
    ("items.sort()", ["list.sort"]),
    ("'{}'.format(x)", ["str.format", "__format__", "f-string"]),
    ("'{x}'.format_map(d)", ["str.format_map"]),
    ("'%s' % x", ["%-formatting", "f-string"]),
    ("obj.compute()", [".compute()", "calls are limited to builtin functions"]),
    ("name.nope()", [".nope()", "column 1"]),
    ("h.method()", [".method()"]),
    ("f(x)(y)", ["this call", "builtin functions"]),
    ("items[0]()", ["this call"]),
    ("len(*items)", ["unpacking", "*x"]),
    ("max(**opts)", ["`**` unpacking"]),
    ("[*items]", ["unpacking"]),
    ("{**d}", ["`**` unpacking"]),
    ("min(items, key=len)", ["min(key=...)", "lambda"]),
    ("sorted(items, cmp=1)", ["sorted(cmp=...)", "reverse"]),
    ("len()", ["len()", "takes 1 arguments, got 0"]),
    ("len(a, b)", ["len()", "got 2"]),
    ("isinstance(x)", ["isinstance()", "takes 2"]),
    ("hasattr(x, '__dict__')", ["`__dict__`", "dunder"]),
    ("x ==", ["invalid syntax", "column"]),
    ("if x: y", ["`if`", "statement"]),
    ("for i in x: pass", ["`for`", "statement"]),
    ("", ["empty"]),
    ("   ", ["empty"]),
    ("a\n==\nb", ["invalid syntax", "line"]),
    ("x" * (MAX_LENGTH + 1), [f"{MAX_LENGTH + 1} characters", f"limit is {MAX_LENGTH}"]),
    ("-" * 40 + "x", ["nesting", f"at most {MAX_DEPTH} levels"]),
    ("a" + ".b" * 40, ["nesting"]),
    ("x\x00", ["null"]),
]


@pytest.mark.parametrize(("source", "parts"), REJECTED)
def test_rejected(source: str, parts: list[str]) -> None:
    message = rejected(source)
    assert message.startswith("expression rejected:")
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"


def test_rejection_columns_count_characters_and_leading_spaces() -> None:
    # The attribute starts at `x`: character 7, byte 8 (é is two bytes in UTF-8).
    assert "column 7 (`x.__dict__`)" in rejected("'é' + x.__dict__")
    assert "column 7 (`x.__dict__`)" in rejected("  1 + x.__dict__")
    assert "line 2, column 3" in rejected("(1 +\n  x.__dict__)")


def test_compile_rejects_non_strings() -> None:
    with pytest.raises(ExpressionError, match="a str is needed"):
        compile_expression(b"x")  # type: ignore[arg-type]


def test_expression_error_is_the_errors_module_class() -> None:
    from runtime_agent import errors

    with pytest.raises(errors.ExpressionError):
        compile_expression("x = 1")
    assert issubclass(errors.ExpressionError, errors.AgentError)


def test_surrounding_whitespace_is_accepted() -> None:
    expr = compile_expression("  total > 1 ")
    assert expr.source == "  total > 1 "
    assert expr.evaluate({"total": 2}, {}) is True


def test_multiline_expression() -> None:
    assert ev("(total\n > 1)", {"total": 2}) is True


def test_expression_object() -> None:
    expr = compile_expression("req.user['name'] == x.get('token') and len(items) > LIMIT")
    assert isinstance(expr, Expression)
    assert expr.source == "req.user['name'] == x.get('token') and len(items) > LIMIT"
    assert expr.identifiers == frozenset(
        {"req", "user", "name", "x", "token", "len", "items", "LIMIT"}
    )
    assert repr(expr) == f"Expression({expr.source!r})"
    with pytest.raises(AttributeError):
        expr.other = 1  # type: ignore[attr-defined]


def test_identifiers_cover_hasattr_names_and_fstring_fields() -> None:
    assert compile_expression("hasattr(user, 'password')").identifiers >= {"user", "password"}
    assert compile_expression("f'{user.secret}'").identifiers == frozenset({"user", "secret"})


def test_exception_hierarchy() -> None:
    assert issubclass(NotEvaluated, EvaluationFailure)
    assert issubclass(BudgetExceeded, EvaluationFailure)
    assert issubclass(EvaluationFailure, Exception)
    assert not issubclass(EvaluationFailure, ExpressionError)


# -- names ---------------------------------------------------------------------


def test_lookup_order_locals_globals_builtins() -> None:
    assert ev("x", {"x": 1}, {"x": 2}) == 1
    assert ev("x", {}, {"x": 2}) == 2
    assert ev("int", {}, {}) is int
    assert ev("len", {}, {}) is len
    assert ev("ValueError", {}, {}) is ValueError
    assert ev("int", {"int": 5}, {}) == 5


def test_unknown_name_lists_locals() -> None:
    exc = failure("nope + 1", {"b": 1, "a": 2, "__x__": 3})
    assert type(exc) is EvaluationFailure
    assert str(exc) == "name 'nope' is not defined here; locals: a, b"


def test_unknown_name_without_locals() -> None:
    assert "locals: (none)" in str(failure("nope"))


def test_builtins_outside_the_allowlist_are_not_visible() -> None:
    for name in ("open", "eval", "getattr", "print", "breakpoint", "vars"):
        assert "is not defined here" in str(failure(name))


def test_shadowed_builtin_is_not_called() -> None:
    calls = []

    def len(x: Any) -> int:
        calls.append(x)
        return 0

    exc = failure("len(items)", {"len": len, "items": [1]})
    assert isinstance(exc, NotEvaluated)
    assert "len here is the application's function" in str(exc)
    exc = failure("str(1)", {}, {"str": len})
    assert isinstance(exc, NotEvaluated)
    assert calls == []
    exc = failure("type(x)", {"type": "order", "x": 1})
    assert type(exc) is EvaluationFailure
    assert "type here is a str, which is not callable" in str(exc)
    # The builtin itself, bound to a name, is fine.
    assert ev("len(items)", {"len": builtins.len, "items": [1]}) == 1


def test_frame_locals_mapping() -> None:
    """The engine passes frame.f_locals (a FrameLocalsProxy on 3.13+)."""
    total = 42  # noqa: F841
    frame = sys._getframe()
    expr = compile_expression("total * 2 + len(frame_name)")
    frame_name = "ab"  # noqa: F841
    assert expr.evaluate(frame.f_locals, frame.f_globals) == 86
    assert "is not defined" in str(failure("nothing_here", frame.f_locals, frame.f_globals))


# -- ordinary failures ---------------------------------------------------------

FAILURES: list[tuple[str, list[str]]] = [
    ("1 / 0", ["1 / 0", "ZeroDivisionError"]),
    ("total % 0", ["ZeroDivisionError"]),
    ("items[10]", ["items[10]", "index 10 out of range", "length 3"]),
    ("nested['zz']", ["nested['zz']", "key 'zz' not found", "keys: 'user', 'n'"]),
    ("defaults['zz']", ["factory is not run"]),
    ("name + 1", ["TypeError"]),
    ("name < 1", ["TypeError"]),
    ("p < p", ["TypeError"]),
    ("p.missing", ["p.missing", "has no attribute 'missing'", "it has: x, y"]),
    ("mod.missing", ["has no attribute 'missing'"]),
    ("slotted.missing", ["has no attribute"]),
    ("collections.nope", ["module 'collections' has no attribute 'nope'"]),
    ("Point.nope", ["class Point has no attribute 'nope'"]),
    ("int('x')", ["ValueError"]),
    ("chr(-1)", ["ValueError"]),
    ("float('inf') ** 2 > 1 and int(float('inf'))", ["OverflowError"]),
    ("round(float('nan'))", ["cannot round"]),
    ("len(total)", ["has no len()"]),
    ("total[0]", ["not subscriptable"]),
    ("items['a']", ["not an integer"]),
    ("name.upper(1)", ["TypeError"]),
    ("items.get(1)", ["list has no attribute 'get'", "its allowed methods: count, index"]),
    ("1 in total", ["`in` needs a builtin container"]),
    ("sum(['a'])", ["sum() needs a number"]),
    ("sum(total)", ["sum() needs a builtin container", "not an int"]),
    ("'x'.join([1])", ["join() takes str elements only"]),
    ("name.encode('rot13')", ["encoding must be one of"]),
    ("name.encode('utf-8', 'custom')", ["errors must be one of"]),
    ("name.startswith(p)", ["arguments of str.startswith() must be"]),
    ("isinstance(total, 1)", ["isinstance() takes a class"]),
    ("hasattr(p, 1)", ["needs a str name"]),
    ("Color['BLUE']", ["has no member 'BLUE'"]),
    ("when.strftime('%10000Y')", ["without widths"]),
    ("name % 2", ["%-formatting is not evaluated"]),
    ("str(name, 'utf-8')", ["needs bytes"]),
    ("err + 1", ["TypeError"]),
    ("list[int]", ["subscripting a class"]),
    ("slotted_empty.a", ["is not set"]),
]


@pytest.mark.parametrize(("source", "parts"), FAILURES)
def test_ordinary_failures(source: str, parts: list[str]) -> None:
    ns = dict(NS, slotted_empty=Slotted.__new__(Slotted))
    exc = failure(source, ns, dict(GLOBALS))
    assert type(exc) is EvaluationFailure, exc
    message = str(exc)
    assert "\n" not in message
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"


def test_failure_messages_do_not_render_application_objects() -> None:
    """A KeyError's message would be repr(key): keys are shown only when plain."""
    key = Point(1, 1)
    exc = failure("d[k]", {"d": {}, "k": key})
    assert "<Point>" in str(exc)


# -- hostile objects -----------------------------------------------------------


class Recorder:
    """Collects every call made to a hostile object's code."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, what: str) -> None:
        self.calls.append(what)


LOG = Recorder()


@pytest.fixture(autouse=True)
def _clean_log():
    LOG.calls.clear()
    yield
    assert LOG.calls == [], f"application code ran: {LOG.calls}"


class Hostile:
    """Every hook records its call and mutates the object."""

    cls_attr = "plain class attribute"

    def __init__(self) -> None:
        self.x = 1
        self.data = {"k": "v"}

    @property
    def prop(self) -> int:
        LOG("prop")
        self.x += 1
        return self.x

    @functools.cached_property
    def cached(self) -> int:
        LOG("cached")
        return 5

    def method(self) -> None:
        LOG("method")

    @classmethod
    def cmethod(cls) -> None:
        LOG("cmethod")

    @staticmethod
    def smethod() -> None:
        LOG("smethod")

    def __getattr__(self, name: str) -> Any:
        LOG(f"__getattr__ {name}")
        return 1

    def __eq__(self, other: object) -> bool:
        LOG("__eq__")
        self.x += 1
        return True

    def __ne__(self, other: object) -> bool:
        LOG("__ne__")
        return False

    def __hash__(self) -> int:
        LOG("__hash__")
        return hash("a")

    def __lt__(self, other: object) -> bool:
        LOG("__lt__")
        return True

    def __gt__(self, other: object) -> bool:
        LOG("__gt__")
        return True

    def __len__(self) -> int:
        LOG("__len__")
        return 1

    def __bool__(self) -> bool:
        LOG("__bool__")
        return True

    def __contains__(self, item: object) -> bool:
        LOG("__contains__")
        return True

    def __getitem__(self, key: object) -> int:
        LOG("__getitem__")
        return 1

    def __iter__(self):
        LOG("__iter__")
        return iter([1])

    def __add__(self, other: object) -> int:
        LOG("__add__")
        return 1

    def __radd__(self, other: object) -> int:
        LOG("__radd__")
        return 1

    def __mul__(self, other: object) -> int:
        LOG("__mul__")
        return 1

    def __index__(self) -> int:
        LOG("__index__")
        return 1

    def __int__(self) -> int:
        LOG("__int__")
        return 1

    def __float__(self) -> float:
        LOG("__float__")
        return 1.0

    def __round__(self, n: int | None = None) -> int:
        LOG("__round__")
        return 1

    def __abs__(self) -> int:
        LOG("__abs__")
        return 1

    def __neg__(self) -> int:
        LOG("__neg__")
        return 1

    def __repr__(self) -> str:
        LOG("__repr__")
        return "H"

    def __str__(self) -> str:
        LOG("__str__")
        return "H"

    def __format__(self, spec: str) -> str:
        LOG("__format__")
        return "H"


def state(obj: Any) -> dict[str, Any]:
    return dict(object.__getattribute__(obj, "__dict__"))


HOSTILE_NOT_EVALUATED: list[tuple[str, list[str]]] = [
    ("h.prop", ["h.prop", "Hostile.prop is a property", "could change the service"]),
    ("h.cached", ["cached_property", "not computed yet"]),
    ("h.method", ["Hostile.method is a method", "calls are limited"]),
    ("h.cmethod", ["Hostile.cmethod is a method"]),
    ("h.smethod", ["Hostile.smethod is a method"]),
    ("h.missing", ["defines __getattr__"]),
    ("h.get('k')", ["defines __getattr__"]),
    ("h.method.count(1)", ["Hostile.method is a method"]),
    ("h == 1", ["comparing", "Hostile.__eq__", "`is`"]),
    ("1 == h", ["Hostile.__eq__"]),
    ("h != 1", ["Hostile.__eq__"]),
    ("h < 1", ["ordering", "Hostile.__lt__"]),
    ("1 < h", ["Hostile.__lt__"]),
    ("[h] == [h]", ["Hostile.__eq__"]),
    ("[1, [h]] == [1, [2]]", ["Hostile.__eq__"]),
    ("(h,) < (1,)", ["Hostile.__lt__"]),
    ("h in [1, 2]", ["Hostile.__eq__"]),
    ("1 in [h]", ["Hostile.__eq__"]),
    ("1 in {'a': 1, 'b': h}.values()", ["Hostile.__eq__"]),
    ("h in {1: 2}", ["Hostile.__eq__"]),
    ("{h}", ["Hostile.__eq__"]),
    ("{h: 1}", ["Hostile.__eq__"]),
    ("hash(h)", ["Hostile.__eq__"]),
    ("{1: 2}[h]", ["Hostile.__eq__"]),
    ("{1: 2}.get(h)", ["Hostile.__eq__"]),
    ("{1: 2}.get(sl)", ["Hostile.__eq__"]),
    ("sl == slice2", ["Hostile.__eq__"]),
    ("sl in [slice2]", ["Hostile.__eq__"]),
    ("items[0:h]", ["Hostile.__index__"]),
    ("[1].index(h)", ["Hostile.__eq__"]),
    ("[h].count(1)", ["Hostile.__eq__"]),
    ("len(h)", ["len()", "Hostile.__len__"]),
    ("1 in h", ["Hostile.__len__"]),
    ("h[0]", ["Hostile"]),
    ("bool(h)", ["truth", "is not None"]),
    ("not h", ["truth"]),
    ("h and 1", ["truth"]),
    ("0 or h or 1", ["truth"]),
    ("1 if h else 2", ["truth"]),
    ("any([h])", ["truth"]),
    ("all([1, h])", ["truth"]),
    ("h + 1", ["arithmetic", "Hostile.__add__"]),
    ("1 + h", ["Hostile.__add__"]),
    ("-h", ["Hostile"]),
    ("[1] * h", ["Hostile"]),
    ("items[h]", ["Hostile"]),
    ("items[h:]", ["Hostile"]),
    ("abs(h)", ["Hostile"]),
    ("round(h)", ["Hostile"]),
    ("int(h)", ["Hostile"]),
    ("float(h)", ["Hostile"]),
    ("hex(h)", ["Hostile"]),
    ("range(h)", ["Hostile"]),
    ("str(h)", ["converting to text", "Hostile.__repr__", "rendered safely"]),
    ("repr(h)", ["Hostile.__repr__"]),
    ("f'{h}'", ["Hostile.__repr__"]),
    ("f'{h!r}'", ["Hostile.__repr__"]),
    ("f'{[h]}'", ["Hostile.__repr__"]),
    ("str(err)", ["Hostile"]),
    ("min(h, 1)", ["Hostile.__lt__"]),
    ("max([h, 1])", ["Hostile.__lt__"]),
    ("sorted([h])", ["Hostile.__lt__"]),
    ("sum(h)", ["iterating", "Hostile.__len__"]),
    ("sum([h])", ["Hostile"]),
    ("list(h)", ["Hostile"]),
    ("set([h])", ["Hostile.__eq__"]),
    ("min(h)", ["Hostile"]),
    ("', '.join(h)", ["Hostile"]),
    ("hasattr(h, 'prop')", ["Hostile.prop is a property"]),
    ("hasattr(h, 'missing')", ["defines __getattr__"]),
]


@pytest.mark.parametrize(("source", "parts"), HOSTILE_NOT_EVALUATED)
def test_hostile_object_is_never_run(source: str, parts: list[str]) -> None:
    h = Hostile()
    before = state(h)
    ns = {"h": h, "items": [1, 2], "err": ValueError(h), "sl": slice(0, h), "slice2": slice(0, 1)}
    exc = failure(source, ns)
    assert isinstance(exc, NotEvaluated), f"{type(exc).__name__}: {exc}"
    for part in parts:
        assert part in str(exc), f"{part!r} not in {str(exc)!r}"
    assert state(h) == before


HOSTILE_ALLOWED: list[tuple[str, Any]] = [
    ("h.x", 1),
    ("h.data['k']", "v"),
    ("h.cls_attr", "plain class attribute"),
    ("h is h", True),
    ("h is not None", True),
    ("[h, 2][1]", 2),
    ("len([h, h])", 2),
    ("type(h) is Hostile", True),
    ("isinstance(h, Hostile)", True),
    ("hasattr(h, 'x')", True),
    ("hasattr(h, 'method')", True),
    ("hasattr(h, 'cls_attr')", True),
    ("callable(h)", False),
    ("[h] + [1]", "list"),
    ("(h, 1)[1]", 1),
    ("{'a': h}['a']", "h"),
    ("{'a': h}.get('a')", "h"),
    ("h.x if h is not None else 0", 1),
]


@pytest.mark.parametrize(("source", "expected"), HOSTILE_ALLOWED)
def test_hostile_object_plain_data_is_read(source: str, expected: Any) -> None:
    h = Hostile()
    before = state(h)
    result = ev(source, {"h": h}, {"Hostile": Hostile})
    if expected == "h":
        assert result is h
    elif expected == "list":
        assert result[0] is h and result[1] == 1
    else:
        assert result == expected
    assert state(h) == before


def test_cached_property_value_already_computed_is_read() -> None:
    h = Hostile()
    object.__getattribute__(h, "__dict__")["cached"] = 9
    assert ev("h.cached", {"h": h}) == 9


def test_hostile_getattribute_is_never_called() -> None:
    class Proxy:
        def __init__(self) -> None:
            self.value = 1

        def __getattribute__(self, name: str) -> Any:
            LOG(f"__getattribute__ {name}")
            return 2

    proxy = Proxy()
    for source in ("p.value", "p.value == 1", "hasattr(p, 'value')", "p.other"):
        exc = failure(source, {"p": proxy})
        assert isinstance(exc, NotEvaluated)
        assert "overrides __getattribute__" in str(exc)
    # Identity and the type are fine.
    assert ev("p is p", {"p": proxy}) is True
    assert ev("type(p) is P", {"p": proxy, "P": Proxy}) is True


def test_class_property_and_getattribute_added_later_are_seen() -> None:
    """The per-node layout cache re-reads class namespaces on every hit."""

    class Late:
        def __init__(self) -> None:
            self.v = 1

    obj = Late()
    expr = compile_expression("o.v")
    assert expr.evaluate({"o": obj}, {}) == 1
    Late.v = property(lambda self: LOG("late property"))  # type: ignore[attr-defined]
    with pytest.raises(NotEvaluated, match="property"):
        expr.evaluate({"o": obj}, {})
    del Late.v  # type: ignore[attr-defined]
    assert expr.evaluate({"o": obj}, {}) == 1

    def spy(self: Any, name: str) -> Any:
        LOG("late __getattribute__")
        return 0

    Late.__getattribute__ = spy  # type: ignore[method-assign]
    with pytest.raises(NotEvaluated, match="__getattribute__"):
        expr.evaluate({"o": obj}, {})


def test_dunders_added_later_are_seen() -> None:
    class Later:
        pass

    a, b = Later(), Later()
    expr = compile_expression("a == b")
    assert expr.evaluate({"a": a, "b": b}, {}) is False
    Later.__eq__ = lambda self, other: LOG("late __eq__")  # type: ignore[method-assign]
    with pytest.raises(NotEvaluated, match=r"Later\.__eq__"):
        expr.evaluate({"a": a, "b": b}, {})


class CollidingKey:
    """Hashes like "a" and 3 (so lookups of those compare with it); records its calls."""

    def __hash__(self) -> int:
        LOG("CollidingKey.__hash__")
        return hash("a")

    def __eq__(self, other: object) -> bool:
        LOG("CollidingKey.__eq__")
        return False


def test_dict_with_a_hostile_key() -> None:
    key = CollidingKey()
    d = {key: 1, "a": 2, 3: 4}
    LOG.calls.clear()  # building the dict hashed and compared the key
    before = list(dict.items(d))
    for source in ("d['a']", "'a' in d", "d.get('a')", "d == {'a': 2}", "3 in d", "d[3]"):
        exc = failure(source, {"d": d})
        assert isinstance(exc, NotEvaluated), source
        assert "CollidingKey" in str(exc)
    assert ev("len(d)", {"d": d}) == 3
    assert list(dict.items(d)) == before
    assert ev("d is d", {"d": d}) is True


def test_dict_with_plain_object_keys_is_looked_up() -> None:
    """Plain objects compare by identity: no application __eq__ exists."""
    p = Point(1, 2)
    assert ev("d[p]", {"d": {p: "found", "a": 1}, "p": p}) == "found"
    assert ev("p in d", {"d": {p: 1}, "p": p}) is True


class HostileInt(int):
    def __eq__(self, other: object) -> bool:
        LOG("HostileInt.__eq__")
        return True

    def __repr__(self) -> str:
        LOG("HostileInt.__repr__")
        return "5"

    def __format__(self, spec: str) -> str:
        LOG("HostileInt.__format__")
        return "5"

    def __hash__(self) -> int:
        LOG("HostileInt.__hash__")
        return 0

    def __add__(self, other: object) -> int:
        LOG("HostileInt.__add__")
        return 0

    def __bool__(self) -> bool:
        LOG("HostileInt.__bool__")
        return False


class HostileStr(str):
    def __eq__(self, other: object) -> bool:
        LOG("HostileStr.__eq__")
        return True

    __hash__ = str.__hash__

    def upper(self) -> str:  # type: ignore[override]
        LOG("HostileStr.upper")
        return "X"

    def __len__(self) -> int:
        LOG("HostileStr.__len__")
        return 0


class HostileDict(dict):
    def __getitem__(self, key: object) -> Any:
        LOG("HostileDict.__getitem__")
        return 1

    def __missing__(self, key: object) -> Any:
        LOG("HostileDict.__missing__")
        return 1

    def get(self, key: object, default: Any = None) -> Any:
        LOG("HostileDict.get")
        return 1

    def __contains__(self, key: object) -> bool:
        LOG("HostileDict.__contains__")
        return True

    def __iter__(self):
        LOG("HostileDict.__iter__")
        return iter(())

    def __len__(self) -> int:
        LOG("HostileDict.__len__")
        return 0


SUBCLASS_CASES: list[tuple[str, list[str]]] = [
    ("i == 5", ["HostileInt.__eq__"]),
    ("i in {5: 1}", ["HostileInt.__eq__"]),
    ("{5: 1}[i]", ["HostileInt.__eq__"]),
    ("i + 1", ["HostileInt.__add__"]),
    ("str(i)", ["HostileInt.__repr__"]),
    ("not i", ["HostileInt.__bool__"]),
    ("i and 1", ["HostileInt.__bool__"]),
    ("s == 'a'", ["HostileStr.__eq__"]),
    ("'a' == s", ["HostileStr.__eq__"]),
    ("s.upper()", ["HostileStr.upper"]),
    ("len(s)", ["HostileStr.__len__"]),
    ("'a' in s", ["HostileStr.__len__"]),
    ("d['k']", ["HostileDict"]),
    ("d.get('k')", ["HostileDict"]),
    ("'k' in d", ["HostileDict"]),
    ("len(d)", ["HostileDict"]),
    ("sorted(d)", ["HostileDict"]),
    ("d == {}", ["HostileDict"]),
]


@pytest.mark.parametrize(("source", "parts"), SUBCLASS_CASES)
def test_builtin_subclasses_with_overridden_dunders(source: str, parts: list[str]) -> None:
    d = HostileDict(k="v")
    exc = failure(source, {"i": HostileInt(5), "s": HostileStr("a"), "d": d})
    assert isinstance(exc, NotEvaluated), f"{type(exc).__name__}: {exc}"
    for part in parts:
        assert part in str(exc)
    assert list(dict.items(d)) == [("k", "v")]


def test_int_subclass_index_out_of_range_message_does_not_format_it() -> None:
    exc = failure("items[i]", {"items": [1], "i": HostileInt(5)})
    assert type(exc) is EvaluationFailure
    assert "index 5 out of range" in str(exc)


def test_builtin_subclass_data_still_readable() -> None:
    assert ev("i is i", {"i": HostileInt(5)}) is True
    assert ev("type(s) is HostileStr", {"s": HostileStr("a"), "HostileStr": HostileStr})


def test_broken_dict_property() -> None:
    """A property named __dict__: instance data cannot be read without it."""

    class Broken:
        @property
        def __dict__(self):  # type: ignore[override]
            LOG("__dict__ property")
            return {"x": 1}

    obj = Broken()
    exc = failure("o.x", {"o": obj})
    assert isinstance(exc, NotEvaluated)
    assert "__dict__ is computed by code" in str(exc)
    assert ev("o is o", {"o": obj}) is True


def test_broken_dict_property_with_slots_and_class_attributes() -> None:
    class Broken:
        __slots__ = ("a",)
        label = "plain"

        @property
        def __dict__(self):  # type: ignore[override]
            LOG("__dict__ property")
            return {}

    obj = Broken()
    obj.a = 3
    assert ev("o.a", {"o": obj}) == 3
    assert isinstance(failure("o.label", {"o": obj}), NotEvaluated)


def test_object_with_ten_thousand_attributes() -> None:
    class Wide:
        pass

    obj = Wide()
    for i in range(10_000):
        setattr(obj, f"a{i}", i)
    start = time.perf_counter()
    assert ev("o.a9999 + o.a0", {"o": obj}) == 9999
    assert ev("hasattr(o, 'a5000')", {"o": obj}) is True
    assert ev("o == o", {"o": obj}) is True
    exc = failure("o.nothing", {"o": obj})
    assert "it has: a0, a1," in str(exc) and "..." in str(exc)
    assert len(str(exc)) < 400
    assert time.perf_counter() - start < 1.0


def test_self_referencing_containers() -> None:
    a: list[Any] = []
    a.append(a)
    b: list[Any] = []
    b.append(b)
    d: dict[str, Any] = {}
    d["self"] = d
    start = time.perf_counter()
    for source, ns in (
        ("a == b", {"a": a, "b": b}),
        ("a < b", {"a": a, "b": b}),
        ("a in [b]", {"a": a, "b": b}),
        ("d == e", {"d": d, "e": {"self": d}}),
    ):
        try:
            ev(source, ns)
        except EvaluationFailure as exc:
            assert isinstance(exc, BudgetExceeded) or type(exc) is EvaluationFailure, exc
    assert ev("a == a", {"a": a}) is True
    assert ev("str(a)", {"a": a}) == "[[...]]"
    assert ev("len(d['self']['self'])", {"d": d}) == 1
    assert time.perf_counter() - start < 2.0
    assert a == [a] and b == [b]


def test_deeply_nested_containers() -> None:
    deep: list[Any] = []
    for _ in range(50_000):
        deep = [deep]
    other: list[Any] = []
    for _ in range(50_000):
        other = [other]
    for source in ("x == y", "str(x)", "x in [y]", "sorted([x, y])"):
        with pytest.raises(EvaluationFailure):
            ev(source, {"x": deep, "y": other})


class Meta(type):
    def __eq__(cls, other: object) -> bool:
        LOG("Meta.__eq__")
        return True

    def __hash__(cls) -> int:
        LOG("Meta.__hash__")
        return 1

    def __getattribute__(cls, name: str) -> Any:
        LOG(f"Meta.__getattribute__ {name}")
        return type.__getattribute__(cls, name)

    def __instancecheck__(cls, obj: object) -> bool:
        LOG("Meta.__instancecheck__")
        return True

    def __repr__(cls) -> str:
        LOG("Meta.__repr__")
        return "M"


class WithMeta(metaclass=Meta):
    limit = 5

    def __init__(self) -> None:
        self.v = 1


def test_hostile_metaclass() -> None:
    obj = WithMeta()
    ns = {"o": obj, "W": WithMeta}
    assert ev("o.v", ns) == 1
    assert ev("o.v == 1", ns) is True
    assert ev("type(o) is W", ns) is True
    assert ev("isinstance(o, W)", ns) is True
    assert ev("o == o", ns) is True
    assert ev("{1: o}[1] is o", ns) is True
    for source in ("type(o) == W", "W.limit", "isinstance(1, W)", "str(W)", "W in [W]", "{W: 1}"):
        assert isinstance(failure(source, ns), NotEvaluated), source


def test_class_property_on_metaclass_and_descriptors() -> None:
    class Descriptor:
        def __get__(self, obj: Any, owner: Any = None) -> int:
            LOG("Descriptor.__get__")
            return 1

        def __set__(self, obj: Any, value: Any) -> None:
            LOG("Descriptor.__set__")

    class NonData:
        def __get__(self, obj: Any, owner: Any = None) -> int:
            LOG("NonData.__get__")
            return 1

    class Owner:
        data = Descriptor()
        nondata = NonData()

        def __init__(self) -> None:
            self.__dict__["data"] = "shadowed by the data descriptor"

    obj = Owner()
    for source in ("o.data", "o.nondata", "Owner.data", "Owner.nondata"):
        exc = failure(source, {"o": obj, "Owner": Owner})
        assert isinstance(exc, NotEvaluated), source
        assert "descriptor" in str(exc)
    obj.__dict__["nondata"] = "instance value wins over a non-data descriptor"
    assert ev("o.nondata", {"o": obj}).startswith("instance value")


def test_class_attribute_reads() -> None:
    class Config:
        TIMEOUT = 30
        nested = Point

        @property
        def prop(self) -> int:
            LOG("prop")
            return 1

        def method(self) -> None:
            LOG("method")

    ns = {"C": Config}
    assert ev("C.TIMEOUT * 2", ns) == 60
    assert ev("C.nested.kind", ns) == "point"
    assert isinstance(failure("C.method", ns), NotEvaluated)
    assert isinstance(failure("C.prop", ns), NotEvaluated)
    assert isinstance(failure("C.mro", ns), NotEvaluated)


def test_isinstance_never_reads_a_class_property() -> None:
    class Liar:
        @property
        def __class__(self):  # type: ignore[override]
            LOG("__class__")
            return int

    obj = Liar()
    assert ev("isinstance(o, int)", {"o": obj}) is False
    assert ev("type(o) is L", {"o": obj, "L": Liar}) is True
    exc = failure("o == 1", {"o": obj})
    assert isinstance(exc, NotEvaluated)


def test_isinstance_with_an_abc_the_type_does_not_inherit() -> None:
    assert ev("isinstance(d, Mapping)", {"d": {}, "Mapping": collections.abc.Mapping}) is True
    exc = failure("isinstance(p, Mapping)", {"p": Point(1, 2), "Mapping": collections.abc.Mapping})
    assert isinstance(exc, NotEvaluated)
    assert "__instancecheck__" in str(exc)


def test_module_attributes() -> None:
    lazy = types.ModuleType("lazy")
    lazy.present = 1  # type: ignore[attr-defined]

    def module_getattr(name: str) -> Any:
        LOG(f"module __getattr__ {name}")
        return 1

    lazy.__getattr__ = module_getattr  # type: ignore[method-assign]
    assert ev("m.present", {"m": lazy}) == 1
    exc = failure("m.absent", {"m": lazy})
    assert isinstance(exc, NotEvaluated)
    assert "module 'lazy'" in str(exc)

    class PropertyModule(types.ModuleType):
        @property
        def computed(self) -> int:
            LOG("module property")
            return 1

    special = PropertyModule("special")
    special.plain = 2  # type: ignore[attr-defined]
    special.get = lambda *args: LOG("module function")  # type: ignore[attr-defined]
    assert ev("m.plain", {"m": special}) == 2
    assert isinstance(failure("m.computed", {"m": special}), NotEvaluated)
    exc = failure("m.get(1)", {"m": special})
    assert isinstance(exc, NotEvaluated)
    assert "get() of module special is application code" in str(exc)
    assert type(failure("m.plain.get(1)", {"m": special})) is EvaluationFailure
    assert type(failure("m.join(1)", {"m": special})) is EvaluationFailure
    assert isinstance(failure("str(m)", {"m": lazy}), NotEvaluated)


def test_generators_are_never_iterated() -> None:
    def gen():
        LOG("generator ran")
        yield 1

    g = gen()
    for source in (
        "1 in g",
        "sum(g)",
        "list(g)",
        "sorted(g)",
        "any(g)",
        "len(g)",
        "g[0]",
        "min(g)",
    ):
        with pytest.raises(EvaluationFailure):
            ev(source, {"g": g})
    assert next(g) == 1  # not consumed
    assert LOG.calls == ["generator ran"]  # by next() above
    LOG.calls.clear()


def test_iterators_and_extension_objects_are_refused() -> None:
    it = iter([1, 2])
    mapped = map(lambda v: LOG("map ran"), [1])
    for source in ("1 in it", "sum(it)", "list(m)", "m == m", "len(it)"):
        with pytest.raises(EvaluationFailure):
            ev(source, {"it": it, "m": mapped})
    assert next(it) == 1


def test_datetime_with_application_tzinfo() -> None:
    class Zone(datetime.tzinfo):
        def utcoffset(self, dt: Any) -> datetime.timedelta:
            LOG("utcoffset")
            return datetime.timedelta(hours=1)

        def dst(self, dt: Any) -> datetime.timedelta:
            LOG("dst")
            return datetime.timedelta(0)

        def tzname(self, dt: Any) -> str:
            LOG("tzname")
            return "Z"

    t = datetime.datetime(2024, 1, 1, tzinfo=Zone())
    u = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    ns = {"t": t, "u": u}
    for source in (
        "t == u",
        "t < u",
        "t - u",
        "str(t)",
        "t.isoformat()",
        "f'{t}'",
        "t.utcoffset()",
    ):
        exc = failure(source, ns)
        assert isinstance(exc, NotEvaluated), source
        assert "tzinfo" in str(exc)
    assert ev("t.year", ns) == 2024
    assert ev("u - u", ns) == datetime.timedelta(0)


def test_decimal_context_flags_are_not_touched() -> None:
    ctx = decimal.getcontext()
    ctx.clear_flags()
    ns = {"a": decimal.Decimal(1), "b": decimal.Decimal(3), "f": 0.5}
    assert ev("a / b > 0", ns) is True
    assert ev("a < f", ns) is False
    assert ev("f'{a / b:.3f}'", ns) == "0.333"
    assert ev("sum([a / b, a])", ns) > 1
    assert not any(ctx.flags.values())


def test_slots_read_through_member_descriptors() -> None:
    class S:
        __slots__ = ("__dict__", "a", "b")

        def __init__(self) -> None:
            self.a = 1
            self.extra = 2

    obj = S()
    assert ev("o.a", {"o": obj}) == 1
    assert ev("o.extra", {"o": obj}) == 2
    exc = failure("o.b", {"o": obj})
    assert type(exc) is EvaluationFailure
    assert "'b'" in str(exc) and "not set" in str(exc)


def test_namedtuple_and_dataclass_fields() -> None:
    pair = Pair(1, [2])
    order = Order(5)
    assert ev("x.right[0]", {"x": pair}) == 2
    assert ev("x == (1, [2])", {"x": pair}) is True
    assert ev("o.total", {"o": order}) == 5
    exc = failure("o == o", {"o": order})
    assert isinstance(exc, NotEvaluated)
    assert "Order.__eq__" in str(exc)
    assert isinstance(failure("str(o)", {"o": order}), NotEvaluated)
    # A namedtuple's generated __repr__ is trusted; one written by the application is not.
    assert ev("str(x)", {"x": pair}) == "Pair(left=1, right=[2])"
    assert isinstance(failure("f'{x}'", {"x": Pair(Hostile(), 1)}), NotEvaluated)

    class Custom(collections.namedtuple("Custom", "a")):
        def __repr__(self) -> str:
            LOG("Custom.__repr__")
            return "custom"

    assert isinstance(failure("str(x)", {"x": Custom(1)}), NotEvaluated)
    assert ev("x.a", {"x": Custom(1)}) == 1


def test_enum_members() -> None:
    class Flags(enum.Flag):
        A = 1
        B = 2

    ns = {"c": Color.RED, "Color": Color, "f": Flags.A, "Flags": Flags, "lvl": Level.LOW}
    assert ev("c is Color.RED", ns) is True
    assert ev("c == Color.RED", ns) is True
    assert ev("c in (Color.RED, Color.GREEN)", ns) is True
    assert ev("{c: 1}[Color.RED]", ns) == 1
    assert ev("f == Flags.A", ns) is True
    assert ev("f.value", ns) == 1
    assert ev("lvl < 2", ns) is True
    assert ev("str(c)", ns) == "Color.RED"
    assert isinstance(failure("f | Flags.B", ns), NotEvaluated)
    assert isinstance(failure("bool(f)", ns), NotEvaluated)


def test_exceptions_as_values() -> None:
    class AppError(Exception):
        def __init__(self, code: int) -> None:
            super().__init__(code)
            self.code = code

    class LoudError(Exception):
        def __str__(self) -> str:
            LOG("LoudError.__str__")
            return "loud"

    ns = {
        "e": AppError(7),
        "loud": LoudError("x"),
        "o": OSError(2, "gone", Hostile()),
        "plain": OSError(2, "gone", "/tmp/x"),
    }
    assert ev("e.code", ns) == 7
    assert ev("e.args", ns) == (7,)
    assert ev("str(e)", ns) == "7"
    assert ev("o.errno", ns) == 2
    assert isinstance(failure("str(loud)", ns), NotEvaluated)
    assert isinstance(failure("f'{o}'", ns), NotEvaluated)  # its filename has a __repr__
    assert ev("str(plain)", ns) == "[Errno 2] gone: '/tmp/x'"
    assert ev("loud.args[0]", ns) == "x"


def test_string_subclass_display_and_methods() -> None:
    assert ev("f'{u}:{u.lower()}'", {"u": UserId("AB")}) == "AB:ab"


# -- budget and bombs ------------------------------------------------------------

BIG = list(range(1_000_000))

BUDGET: list[tuple[str, dict[str, Any], str]] = [
    ("'a' * 10**9", {}, "str would have 1000000000"),
    ("10**9 * 'a'", {}, "str would have"),
    ("b'a' * 10**9", {}, "bytes would have"),
    ("[0] * 10**9", {}, "list would have"),
    ("(0,) * 10**8", {}, "tuple would have"),
    ("10 ** 10 ** 10", {}, "bits"),
    ("2 ** 10**6", {}, "bits"),
    ("pow(7, 10**7)", {}, "bits"),
    ("(10**50000) * (10**50000)", {}, "bits"),
    ("1 << 10**9", {}, "bits"),
    ("frac ** 10**7", {"frac": fractions.Fraction(3, 7)}, "bits"),
    ("str(10 ** 20000)", {}, "to text"),
    ("f'{10 ** 20000}'", {}, "to text"),
    ("repr([10 ** 20000])", {}, "to text"),
    ("int('9' * 6000)", {}, "as an int"),
    ("float('1' * 6000)", {}, "as a float"),
    ("round(1.5, 10**9)", {}, "round()"),
    ("sum(big)", {"big": BIG}, "work budget of 10000 steps exhausted in sum(big)"),
    ("sorted(big)", {"big": BIG}, "exhausted in sorted(big)"),
    ("min(big)", {"big": BIG}, "exhausted in min(big)"),
    ("max(big)", {"big": BIG}, "exhausted"),
    ("any(big)", {"big": BIG}, "exhausted"),
    ("all(big)", {"big": BIG}, "exhausted"),
    ("-1 in big", {"big": BIG}, "exhausted in -1 in big"),
    ("big == big2", {"big": BIG, "big2": list(BIG)}, "exhausted"),
    ("big.count(1)", {"big": BIG}, "exhausted"),
    ("set(big)", {"big": BIG}, "exhausted"),
    ("list(big)", {"big": BIG}, "exhausted"),
    ("sum(range(10**12))", {}, "exhausted"),
    ("sorted(range(10**6))", {}, "exhausted"),
    ("list(range(10**7))", {}, "exhausted"),
    ("1.5 in range(10**9)", {}, "exhausted"),
    ("'x'.join(words)", {"words": ["ab"] * 600_000}, "exhausted"),
    ("s.center(10**9)", {"s": "a"}, "characters"),
    ("s.ljust(10**8)", {"s": "a"}, "characters"),
    ("'7'.zfill(10**9)", {}, "characters"),
    ("s.replace('', 'x' * 1000)", {"s": "a" * 5_000}, "characters"),
    ("'\\t'.expandtabs(10**9)", {}, "characters"),
    ("f'{1:>100000}'", {}, "9999"),
    ("f'{1.5:.100000f}'", {}, "9999"),
    ("words + words", {"words": ["a"] * 60_000}, "list would have"),
    ("'a' * 600_000 + 'a' * 600_000", {}, "str would have"),
    ("text + text", {"text": "a" * 600_000}, "checked for secrets"),
    ("str(big)", {"big": BIG}, "exhausted"),
    ("f'{d}'", {"d": {i: "x" * 2000 for i in range(1000)}}, "exceed"),
    ("d['k']", {"d": {(i,): i for i in range(50_000)}}, "exhausted"),
    ("d == e", {"d": dict.fromkeys(range(20_000)), "e": dict.fromkeys(range(20_000))}, "exhausted"),
    ("pow(3, 10**6000, 7)", {}, "pow()"),
]


@pytest.mark.parametrize(("source", "ns", "part"), BUDGET)
def test_budget_and_size_limits(source: str, ns: dict[str, Any], part: str) -> None:
    start = time.perf_counter()
    exc = failure(source, ns)
    elapsed = time.perf_counter() - start
    assert isinstance(exc, BudgetExceeded), f"{type(exc).__name__}: {exc}"
    assert part in str(exc), str(exc)
    assert elapsed < 0.5, f"{source} took {elapsed:.3f}s"


def test_budget_is_per_evaluation() -> None:
    expr = compile_expression("sum(a) + sum(b)")
    ns = {"a": list(range(6000)), "b": list(range(6000))}
    with pytest.raises(BudgetExceeded):
        expr.evaluate(ns, {})
    ns = {"a": list(range(3000)), "b": list(range(3000))}
    for _ in range(3):  # the budget resets on every evaluation
        assert expr.evaluate(ns, {}) == 2 * sum(range(3000))


def test_moderate_work_fits_the_budget() -> None:
    ns = {"xs": list(range(3000)), "d": {str(i): i for i in range(5000)}}
    assert ev("sorted(xs)[-1] + max(xs) + len(xs)", ns) == 2999 * 2 + 3000
    assert ev("d['4999'] + d.get('10', 0)", ns) == 5009
    assert ev("'4999' in d", ns) is True


def test_recursion_near_the_stack_limit_is_contained() -> None:
    """Evaluated deep in the host's stack, nesting cannot escape as RecursionError."""
    expr = compile_expression("-" * 30 + "x")
    result: list[Any] = []

    def dive(n: int) -> None:
        if n:
            dive(n - 1)
            return
        try:
            result.append(expr.evaluate({"x": 1}, {}))
        except EvaluationFailure as exc:
            result.append(exc)

    limit = sys.getrecursionlimit()
    depth = 0
    frame = sys._getframe()
    while frame is not None:
        depth += 1
        frame = frame.f_back
    dive(limit - depth - 40)
    assert result and (result[0] == 1 or isinstance(result[0], BudgetExceeded))


@pytest.mark.parametrize("source", ["-" * 999 + "1", "1+" * 499 + "1", "x" + ".a" * 499])
def test_nesting_past_the_compilers_stack_is_an_expression_error(source: str) -> None:
    # The package's own error, from the compile step itself: callers need not
    # know that compiling recurses.
    with pytest.raises(ExpressionError, match="nested too deeply to compile"):
        compile_expression(source)


# -- concurrency -----------------------------------------------------------------


def test_one_expression_shared_by_threads_with_different_types() -> None:
    """The attribute node's layout cache is swapped atomically between types."""

    class A:
        def __init__(self) -> None:
            self.v = "a"

    class B:
        __slots__ = ("v",)

        def __init__(self) -> None:
            self.v = "b"

    expr = compile_expression("o.v")
    errors: list[BaseException] = []

    def run(obj: Any, want: str) -> None:
        try:
            for _ in range(20_000):
                assert expr.evaluate({"o": obj}, {}) == want
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=(A(), "a")),
        threading.Thread(target=run, args=(B(), "b")),
        threading.Thread(target=run, args=(types.SimpleNamespace(v="n"), "n")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


# -- the engine's use ------------------------------------------------------------


def test_evaluate_is_a_plain_callable_for_the_hot_path() -> None:
    expr = compile_expression("total > 10000")
    evaluate = expr.evaluate
    assert evaluate({"total": 10_001}, {}) is True
    assert evaluate({"total": 3}, {}) is False
    assert evaluate({"total": 10_000.5}, {}) is True
    with pytest.raises(EvaluationFailure):
        evaluate({"total": "x"}, {})
    with pytest.raises(NotEvaluated):
        evaluate({"total": Hostile()}, {})


def test_membership_in_literals() -> None:
    assert ev("x in ['a', 'b']", {"x": "b"}) is True
    assert ev("x not in {1, 2}", {"x": 3}) is True
    assert ev("x in (1, 2.0)", {"x": 2}) is True
    assert ev("[1] in [[1], 2]", {}) is True
    assert ev("x in [1, 2]", {"x": [1]}) is False
    assert isinstance(failure("h in ['a']", {"h": Hostile()}), NotEvaluated)
    assert isinstance(failure("h in {'a'}", {"h": Hostile()}), NotEvaluated)


def test_class_attribute_cache_sees_changes() -> None:
    class Config:
        TIMEOUT = 30

    class Sub(Config):
        pass

    expr = compile_expression("C.TIMEOUT")
    for _ in range(2):
        assert expr.evaluate({"C": Sub}, {}) == 30
    Config.TIMEOUT = 60
    assert expr.evaluate({"C": Sub}, {}) == 60
    Sub.TIMEOUT = property(lambda self: LOG("property"))  # type: ignore[assignment]
    assert isinstance(failure("C.TIMEOUT", {"C": Sub}), NotEvaluated)
    with pytest.raises(NotEvaluated):
        expr.evaluate({"C": Sub}, {})
    del Sub.TIMEOUT
    Config.TIMEOUT = staticmethod(lambda: LOG("staticmethod"))  # type: ignore[assignment]
    with pytest.raises(NotEvaluated, match="method"):
        expr.evaluate({"C": Sub}, {})
    assert expr.evaluate({"C": types.SimpleNamespace(TIMEOUT=1)}, {}) == 1
    assert compile_expression("C.RED").evaluate({"C": Color}, {}) is Color.RED


def test_data_under_dunder_names_is_harmless() -> None:
    class Model:
        __tablename__ = "orders"
        __table_args__ = ({"schema": "x"},)

        def __init__(self) -> None:
            self.id = 1

    class Hooked:
        def __weird__(self) -> None:
            LOG("__weird__")

    m, h = Model(), Hooked()
    assert ev("m == m and m.id == 1", {"m": m}) is True
    copy.copy(m)  # copyreg caches __slotnames__ in the class namespace
    assert "__slotnames__" in Model.__dict__
    assert ev("m == m", {"m": m}) is True
    exc = failure("h == h", {"h": h})
    assert isinstance(exc, NotEvaluated)
    assert "Hooked.__weird__" in str(exc)


def test_number_literals_fold_at_placement_within_the_guards():
    from runtime_agent.sandbox import BudgetExceeded as _Budget

    folded = compile_expression("x > 10**6 and -(2 * 3) < x")
    assert folded.evaluate({"x": 10**6 + 1}, {}) is True
    assert folded.evaluate({"x": 5}, {}) is False
    assert folded.identifiers == frozenset({"x"})
    huge = compile_expression("x > 10**10**10")  # not folded: fails at evaluation, bounded
    with pytest.raises(_Budget):
        huge.evaluate({"x": 1}, {})


def test_methods_called_through_their_builtin_class() -> None:
    """``str.upper(s)`` works as Python's does; without a value it fails like
    Python (never as application code), and dict.get(d, key) hides a secret
    like d.get(key)."""
    assert ev("str.upper('ab')") == "AB"
    assert ev("type(s).upper(s)", {"s": "ab"}) == "AB"
    assert ev("int.bit_length(5)") == 3
    assert ev("type(fs).union(fs)", {"fs": frozenset({1})}) == frozenset({1})
    for source in ("type('k').upper()", "str.upper(3)", "int.bit_length()"):
        exc = failure(source)
        assert type(exc) is EvaluationFailure, source
    d = {"password": "hunter2-secret", "a": 1}
    assert ev("dict.get(d, 'a')", {"d": d}) == 1
    assert type(ev("dict.get(d, 'password')", {"d": d})).__name__ == "Redacted"
    assert type(failure("dict.get(d, 'pass' + 'word') == 'x'", {"d": d})).__name__ == "RedactedRead"
