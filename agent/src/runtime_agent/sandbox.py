"""The expression sandbox: conditions, ``{fields}``, watches and metrics,
evaluated in a live frame without ever running application code.

``compile_expression(source)`` parses the expression once, rejects what is
not allowed with a one-line message naming the offending part and what to
write instead (``ExpressionError``), and builds a tree of Python closures.
``Expression.evaluate(local_vars, global_vars)`` runs the closures: no AST
walk and no ``eval()`` per hit.

Allowed: names (locals, then globals, then an allowlist of builtins),
attributes, subscripts and slices, literals and tuple/list/set/dict
displays, f-strings, comparisons (chained), ``and``/``or``/``not``,
arithmetic and unary operators, conditional expressions, ``in``, ``is``,
calls of pure builtins (``safeops.BUILTINS``) and of pure methods of
builtin types (``safeops.METHODS``).

Rejected when placed: assignment and ``:=``, ``del``, lambda,
comprehensions, ``await``/``yield``, imports, dunder names and attributes,
calls outside the allowlists (``open``, ``getattr``, ``list.append``,
``str.format``...), unpacking, statements, sources longer than
``MAX_LENGTH`` characters or nested deeper than ``MAX_DEPTH``.

At evaluation, a value that could only be had by running application code
(a property, ``__getattr__``, a user-defined operator or method) raises
``NotEvaluated``; a spent work budget or a too large result raises
``BudgetExceeded``; ordinary errors raise ``EvaluationFailure``, the base
class of both. Nothing else escapes ``evaluate``.

The common cases (an int or str compared with a constant, an attribute in an
instance ``__dict__``, a local name) are handled inline in the closures with
``type(x) is int``-style tests; everything else goes through ``safeops``.
"""

from __future__ import annotations

import ast
import operator
import warnings
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal, final

from runtime_agent import cost, introspect, safeops, secrecy
from runtime_agent.errors import ExpressionError
from runtime_agent.redact import Redactor
from runtime_agent.safeops import (
    BudgetExceeded,
    EvaluationFailure,
    NotEvaluated,
    RedactedRead,
    Secret,
)
from runtime_agent.secrecy import Secrecy

__all__ = [
    "MAX_DEPTH",
    "MAX_LENGTH",
    "BudgetExceeded",
    "EvaluationFailure",
    "Expression",
    "NotEvaluated",
    "Redacted",
    "RedactedRead",
    "Use",
    "compile_expression",
]

#: Longest accepted source, in characters.
MAX_LENGTH: Final = 1000
#: Deepest accepted nesting of expression nodes (``a.b.c`` is 3 deep).
MAX_DEPTH: Final = 32

Scope = Mapping[str, Any]
#: A compiled node: (locals, globals, evaluation state) -> value.
Fn = Callable[[Scope, Scope, cost.Budget], Any]
#: What the expression's result is for, which decides what a secret result
#: becomes: ``"value"`` (log fields, watches) the ``Redacted`` marker,
#: ``"condition"`` its truth, ``"metric"`` a ``RedactedRead`` failure.
Use = Literal["value", "condition", "metric"]

_MISSING: Final = object()
_EMPTY: Final[dict[str, Any]] = {}
_CONSTANT_TYPES: Final = frozenset(
    map(id, (int, float, complex, str, bytes, bool, type(None), type(...)))
)

_SIMPLE_IDS = safeops.SIMPLE_IDS
_layout = safeops.layout
_get_attribute = safeops.get_attribute
_truth = safeops.truth
_MODE_FAST = safeops.MODE_FAST
_MODE_MODULE = safeops.MODE_MODULE
_MODE_SLOW = safeops.MODE_SLOW
_MODULE_DICT = safeops.MODULE_DICT
_DGET = dict.get
_DKEYS = dict.keys
_DEFAULT_SECRECY: Final = Secrecy(Redactor())


@final
class Redacted:
    """What ``evaluate`` returns for a log field or watch whose value is a
    secret: the name it was read under, never the value."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Redacted({self.name!r})"


class Expression:
    """A compiled, sandboxed expression; immutable and thread-safe.

    Attributes:
        source: the expression as given.
        identifiers: every variable name, attribute name and constant string
            key (``d["password"]``, ``d.get("token")``) it reads.
        evaluate: ``evaluate(local_vars, global_vars, budget=None)`` returns
            the value in a frame: names are looked up in ``local_vars``, then
            ``global_vars``, then the builtins allowlist. Each call gets a
            fresh budget of work and memory (``cost.py``), unless ``budget``
            (``cost.new_budget()``) is passed to share one between the
            evaluations of one hit (a template's fields). A secret result
            comes back as the expression's ``Use`` says (``Redacted``, a
            bool, or ``RedactedRead``). Raises ``NotEvaluated`` when the
            value can only be had by running application code,
            ``BudgetExceeded`` when the work or memory budget runs out or a
            result would be too large, ``RedactedRead`` when it uses a secret
            for more than a presence test, ``EvaluationFailure`` (their base
            class) for ordinary errors; never any other exception.
    """

    __slots__ = ("evaluate", "identifiers", "source")

    evaluate: Callable[..., Any]
    identifiers: frozenset[str]
    source: str

    def __init__(
        self, source: str, identifiers: frozenset[str], evaluate: Callable[..., Any]
    ) -> None:
        self.source = source
        self.identifiers = identifiers
        self.evaluate = evaluate

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


#: Why an expression nested past the compiler's stack is rejected.
TOO_DEEP: Final = "nested too deeply to compile; split it into simpler expressions"


def compile_expression(
    source: str, *, redactor: Redactor | None = None, use: Use = "value"
) -> Expression:
    """Compile ``source`` once into an ``Expression``.

    ``redactor`` decides which values are secret (``secrecy``; the built-in
    rules when None); ``use`` what a secret result becomes.

    Raises ``ExpressionError`` with a one-line message naming the rejected
    part (by column and snippet) and what is allowed instead; for an
    expression nested deeper than the compiler's stack too (``TOO_DEEP``).
    """
    if type(source) is not str:
        raise ExpressionError(f"expression rejected: a str is needed, not {type(source).__name__}")
    if len(source) > MAX_LENGTH:
        raise ExpressionError(
            f"expression rejected: {len(source)} characters; the limit is {MAX_LENGTH}"
        )
    if use not in _FINISH:
        raise ExpressionError(f"use must be one of {', '.join(_FINISH)}, not {use!r}")
    rule = _DEFAULT_SECRECY if redactor is None else Secrecy(redactor)
    try:
        return _Compiler(source, rule, use).build()
    except RecursionError:  # parsing, folding and compiling recurse once per level
        raise ExpressionError(f"expression rejected: {TOO_DEEP}") from None


class _Fold(ast.NodeTransformer):
    """Folds arithmetic on number literals (``10**6``) once, at placement.

    Each folded part is evaluated by the sandbox itself, so its size guards
    apply; a part that fails (``10**10**10``) is left to fail at evaluation.
    """

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        if _is_number(node.left) and _is_number(node.right):
            return self._folded(node)
        return node

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.op, (ast.USub, ast.UAdd)) and _is_number(node.operand):
            return self._folded(node)
        return node

    @staticmethod
    def _folded(node: ast.AST) -> ast.AST:
        try:
            compiler = _Compiler(ast.unparse(node), _DEFAULT_SECRECY, "value", fold=False)
            value = compiler.build().evaluate({}, {})
        except (ExpressionError, EvaluationFailure):
            return node
        if type(value) not in (int, float) or (type(value) is int and value.bit_length() > 256):
            return node
        return ast.copy_location(ast.Constant(value), node)


def _is_number(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) in (int, float)


# -- error messages --------------------------------------------------------------


def _one_line(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(exc: BaseException) -> str:
    """An exception raised by a builtin operation, as one line. Its args are
    rendered only when they are plain scalars: str() of an exception holding
    an application object would run that object's __repr__."""
    tp = type(exc)
    name = safeops.tname(tp)
    try:
        args = safeops.ARGS_GET(exc)
    except Exception:
        return name
    if type(args) is not tuple or not args:
        return name
    if not all(id(type(a)) in _SIMPLE_IDS for a in args):
        return name
    if len(args) == 1 and type(args[0]) is str:
        text = args[0]
    else:
        text = ", ".join(safeops.short_repr(a) for a in args)
    return f"{name}: {_one_line(text, 200)}"


def _failure(exc: Exception, where: str) -> EvaluationFailure:
    # ``inherits``, not isinstance: isinstance reads ``__class__`` when false.
    if introspect.inherits(type(exc), RecursionError):
        return BudgetExceeded(f"{where}: nested too deeply for the stack at this line")
    if introspect.inherits(type(exc), MemoryError):
        return BudgetExceeded(f"{where}: out of memory")
    return EvaluationFailure(f"{where}: {_describe(exc)}")


def _redacted(value: Secret, where: str) -> Redacted:
    return Redacted(value.name)


def _presence(value: Secret, where: str) -> bool:
    return safeops.truth(value, where)


def _refused(value: Secret, where: str) -> Any:
    raise safeops.redacted_read(value.name, where)


#: What a secret result becomes, per Use.
_FINISH: Final[dict[str, Callable[[Secret, str], Any]]] = {
    "value": _redacted,
    "condition": _presence,
    "metric": _refused,
}


def _entry(
    root: Fn, steps: int, memory: int, where: str, rule: Secrecy, use: Use
) -> Callable[..., Any]:
    """The evaluation function: one budget of work and memory per call (see
    ``cost.py``), less what the expression's nodes reserve at compilation
    (``steps`` and ``memory``); or a budget shared by the evaluations of one
    hit, passed in. ``B`` is ``[steps left, Secrecy, bytes left]``."""
    finish = _FINISH[use]
    secret = Secret
    work = cost.WORK_BUDGET - steps
    room = cost.MEMORY_BUDGET - memory

    def evaluate(local_vars: Scope, global_vars: Scope, budget: cost.Budget | None = None) -> Any:
        t = type(local_vars)
        if t is not dict and t is not _PROXY:
            local_vars = _scope(local_vars)
        if type(global_vars) is not dict:
            global_vars = _scope(global_vars)
        if budget is None:
            budget = [work, rule, room]
        else:
            budget[0] -= steps
            budget[1] = rule
            budget[2] -= memory
            if budget[0] < 0 or budget[2] < 0:
                raise BudgetExceeded(
                    f"{where}: not evaluated, this hit's earlier expressions spent its budget "
                    f"({cost.WORK_BUDGET} steps and {cost.MEMORY_BUDGET >> 20} MiB per hit)"
                )
        try:
            value = root(local_vars, global_vars, budget)
        except EvaluationFailure:
            raise
        except Exception as exc:
            # Safety net: the nodes convert errors themselves, naming the part.
            raise _failure(exc, where) from None
        if type(value) is secret:
            return finish(value, where)
        return value

    return evaluate


# -- scopes --------------------------------------------------------------------


_PROXY: Final[type] = introspect.FRAME_LOCALS


@final
class _DictScope:
    """A dict subclass (a function's ``__globals__``, a module's namespace)
    read with ``dict``'s own C methods: its ``__contains__``,
    ``__getitem__`` and ``__missing__`` never run."""

    __slots__ = ("_d",)

    def __init__(self, d: dict[str, Any]) -> None:
        self._d = d

    def __contains__(self, name: object) -> bool:
        return dict.__contains__(self._d, name)

    def __getitem__(self, name: str) -> Any:
        v = _DGET(self._d, name, _MISSING)
        if v is _MISSING:
            raise KeyError(name)
        return v

    def __iter__(self) -> Any:
        return iter(_DKEYS(self._d))


@final
class _ForeignScope:
    """A namespace of an application type (a class body's ``__prepare__``
    mapping, ``exec`` with a custom mapping): reading a name from it would
    run its code, so every read is refused."""

    __slots__ = ("_label",)

    def __init__(self, label: str) -> None:
        self._label = label

    def __contains__(self, name: object) -> bool:
        raise NotEvaluated(
            f"not evaluated: the frame's namespace is {self._label}; reading a name from it "
            "runs application code"
        )

    __getitem__ = __contains__

    def __iter__(self) -> Any:
        return iter(())


def _scope(names: Any) -> Any:
    """A frame namespace that is not an exact dict, made safe to read."""
    tp = type(names)
    if introspect.inherits(tp, dict):
        return _DictScope(names)
    if tp is _DictScope or tp is _ForeignScope:
        return names
    return _ForeignScope(safeops.an(tp))


# -- rejections ----------------------------------------------------------------

_FUNCTIONS_TEXT: Final = ", ".join(sorted(safeops.BUILTINS))
_METHODS_TEXT: Final = (
    "str: startswith, endswith, upper, lower, strip, split, replace, join, find, index, count, "
    "partition, removeprefix, is* tests and the other non-mutating str methods except format; "
    "bytes: the same and decode, hex; dict: get, keys, values, items; list/tuple: index, count; "
    "set: issubset, issuperset, isdisjoint, union, intersection, difference; "
    "int: bit_length, bit_count; float: is_integer; datetime/date/time: isoformat, strftime, "
    "timestamp, date, time, weekday; timedelta: total_seconds"
)
_MUTATING: Final = {
    "append": "list.append",
    "extend": "list.extend",
    "insert": "list.insert",
    "pop": "list.pop",
    "remove": "list.remove",
    "clear": "list.clear",
    "sort": "list.sort",
    "reverse": "list.reverse",
    "update": "dict.update",
    "setdefault": "dict.setdefault",
    "popitem": "dict.popitem",
    "add": "set.add",
    "discard": "set.discard",
    "difference_update": "set.difference_update",
    "intersection_update": "set.intersection_update",
    "symmetric_difference_update": "set.symmetric_difference_update",
    "appendleft": "deque.appendleft",
    "extendleft": "deque.extendleft",
    "popleft": "deque.popleft",
    "rotate": "deque.rotate",
    "write": "file.write",
    "writelines": "file.writelines",
    "close": "close()",
    "send": "generator.send",
    "throw": "generator.throw",
    "put": "queue.put",
    "put_nowait": "queue.put_nowait",
    "get_nowait": "queue.get_nowait",
    "acquire": "lock.acquire",
    "release": "lock.release",
    "set": "event.set",
    "delete": "delete()",
    "save": "save()",
    "commit": "commit()",
    "flush": "flush()",
}
_CALL_REASONS: Final = {
    **dict.fromkeys(("eval", "exec", "compile"), "runs code"),
    **dict.fromkeys(
        ("open", "input", "print", "breakpoint", "exit", "quit", "help"), "has side effects"
    ),
    "getattr": (
        "can run properties and __getattr__; write obj.name instead, it is read without "
        "running code"
    ),
    **dict.fromkeys(("setattr", "delattr"), "changes the service"),
    **dict.fromkeys(
        ("vars", "globals", "locals", "dir"), "exposes whole namespaces; name what you need"
    ),
    **dict.fromkeys(
        ("iter", "next", "enumerate", "zip", "map", "filter", "reversed", "aiter", "anext"),
        "makes an iterator that runs lazily; pass the container itself to len(), sorted(), "
        "any(), all(), sum(), min() or max()",
    ),
    "format": "calls __format__ of application objects; use an f-string such as f'{x:>10}'",
}
_STATEMENTS: Final = {
    "Assign": "assignment",
    "AugAssign": "assignment",
    "AnnAssign": "assignment",
    "Delete": "del",
    "Import": "import",
    "ImportFrom": "import",
    "FunctionDef": "def",
    "AsyncFunctionDef": "def",
    "ClassDef": "class",
}


def _is_dunder(name: str) -> bool:
    return name[:2] == "__" and name[-2:] == "__"


# -- compiler ------------------------------------------------------------------


class _Compiler:
    """Builds the closures of one expression; collects identifiers."""

    def __init__(self, source: str, rule: Secrecy, use: Use, fold: bool = True) -> None:
        self.rule = rule
        self.use: Use = use
        #: Nodes whose value is shown or tested as it is, never computed
        #: with: their text needs no pattern check (see ``secrecy``).
        self.bare: set[int] = set()
        self.fold = fold
        self.original = source
        stripped = source.strip()
        self.lead = len(source) - len(source.lstrip())
        self.text = stripped
        self.lines = stripped.split("\n")
        self.identifiers: set[str] = set()
        self.nodes = 0
        #: Calls of str methods with an inline path (their memory is reserved).
        self.inline_methods = 0

    # -- positions and rejections --

    def pos(self, node: ast.AST) -> str:
        line = getattr(node, "lineno", 1)
        col = getattr(node, "col_offset", 0)
        text_line = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        # col_offset counts UTF-8 bytes.
        col = len(text_line.encode()[:col].decode("utf-8", "replace"))
        if len(self.lines) > 1:
            return f"line {line}, column {col + 1}"
        return f"column {col + 1 + self.lead}"

    def snippet(self, node: ast.AST) -> str:
        segment = ast.get_source_segment(self.text, node)
        if not segment:
            try:
                segment = ast.unparse(node)
            except Exception:
                segment = type(node).__name__
        return _one_line(segment)

    def reject(self, node: ast.AST, what: str, why: str) -> ExpressionError:
        return ExpressionError(
            f"expression rejected: {what} at {self.pos(node)} (`{self.snippet(node)}`): {why}"
        )

    # -- entry --

    def build(self) -> Expression:
        if not self.text:
            raise ExpressionError("expression rejected: the expression is empty")
        tree = self.parse()
        if self.fold:
            tree = _Fold().visit(tree)
        if self.use != "metric":
            # Shown (and masked) or tested as it is; a metric's number is
            # itself the output, so it is checked like any other read.
            self.bare.add(id(tree.body))
        root = self.visit(tree.body, 1)
        memory = self.nodes * cost.NODE_BYTES + self.inline_methods * cost.INLINE_METHOD_BYTES
        evaluate = _entry(root, self.nodes, memory, _one_line(self.text), self.rule, self.use)
        return Expression(self.original, frozenset(self.identifiers), evaluate)

    def parse(self) -> ast.Expression:
        try:
            with warnings.catch_warnings():
                # Invalid escapes warn at parse time; the application's warning
                # hooks are not ours to call.
                warnings.simplefilter("ignore")
                return ast.parse(self.text, mode="eval")
        except SyntaxError as exc:
            raise self.syntax_error(exc) from None
        except (ValueError, MemoryError) as exc:
            raise ExpressionError(f"expression rejected: {_describe(exc)}") from None

    def syntax_error(self, exc: SyntaxError) -> ExpressionError:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = ast.parse(self.text, mode="exec")
        except Exception:
            module = None
        if module is not None and module.body and not isinstance(module.body[0], ast.Expr):
            stmt = module.body[0]
            kind = _STATEMENTS.get(type(stmt).__name__)
            snippet = self.snippet(stmt)
            if kind == "assignment":
                return ExpressionError(
                    f"expression rejected: assignment (`{snippet}`) is a statement; "
                    "expressions only read the frame: to test a value write `x == 1`"
                )
            if kind == "import":
                return ExpressionError(
                    f"expression rejected: import (`{snippet}`) is a statement and runs "
                    "code; read modules already imported through their names, e.g. `os.sep`"
                )
            if kind == "del":
                return ExpressionError(
                    f"expression rejected: del (`{snippet}`) changes the frame; "
                    "expressions only read it"
                )
            keyword = kind or type(stmt).__name__.lower()
            return ExpressionError(
                f"expression rejected: `{keyword}` (`{snippet}`) is a statement; write one "
                "expression, e.g. `total > 100`"
            )
        col = (exc.offset or 1) + (self.lead if (exc.lineno or 1) == 1 else 0)
        where = f"line {exc.lineno}, column {col}" if len(self.lines) > 1 else f"column {col}"
        return ExpressionError(f"expression rejected: invalid syntax at {where}: {exc.msg}")

    # -- secrecy --

    def hidden(self, fn: Fn, name: str) -> Fn:
        """``fn``'s value, read under the sensitive ``name``: a Secret."""
        hide = self.rule.hide

        def secret_read(L: Scope, G: Scope, B: cost.Budget) -> Any:
            return hide(name, fn(L, G, B))

        return secret_read

    def screened(self, node: ast.AST, fn: Fn, label: str) -> Fn:
        """``fn``, its value a Secret when its text looks like one, unless
        ``node`` is bare (shown or tested as it is)."""
        if id(node) in self.bare:
            return fn
        screen = self.rule.screen
        shortest = self.rule.shortest
        floor = secrecy.CARD_FLOOR
        plain = secrecy.PLAIN_IDS

        def screened(L: Scope, G: Scope, B: cost.Budget) -> Any:
            v = fn(L, G, B)
            t = type(v)
            if t is str:
                if len(v) < shortest:
                    return v
            elif t is int:
                if -floor < v < floor:
                    return v
            elif id(t) in plain:
                return v
            return screen(v, label, B)

        return screened

    def read(self, node: ast.AST, fn: Fn, name: str, label: str) -> Fn:
        """``fn`` reads a value under ``name``: hidden if the name is
        sensitive, else screened (``label`` names it in a refusal)."""
        if self.rule.is_sensitive(name):
            return self.hidden(fn, name)
        return self.screened(node, fn, label)

    def bare_too(self, parent: ast.AST, *children: ast.AST) -> None:
        """``children`` are shown or tested as they are when ``parent`` is."""
        if id(parent) in self.bare:
            self.bare.update(map(id, children))

    # -- dispatch --

    def visit(self, node: ast.AST, depth: int) -> Fn:
        if depth > MAX_DEPTH:
            raise self.reject(
                node,
                "nesting",
                f"expressions may nest at most {MAX_DEPTH} levels; split it into simpler ones",
            )
        self.nodes += 1
        handler = getattr(self, "visit_" + type(node).__name__, None)
        if handler is None:
            raise self.unsupported(node)
        return handler(node, depth + 1)  # type: ignore[no-any-return]

    def unsupported(self, node: ast.AST) -> ExpressionError:
        name = type(node).__name__
        if name == "NamedExpr":
            return self.reject(
                node, "`:=`", "assignment is not allowed, expressions only read the frame"
            )
        if name == "Lambda":
            return self.reject(
                node, "lambda", "functions cannot be defined; compare values directly"
            )
        if name in ("ListComp", "SetComp", "DictComp", "GeneratorExp"):
            return self.reject(
                node,
                "a comprehension",
                "comprehensions run a loop; use `x in items`, len(), any(), all(), sum(), "
                "min(), max() or sorted() on the container",
            )
        if name in ("Await", "Yield", "YieldFrom"):
            return self.reject(node, name.lower(), "expressions only read the frame")
        if name == "Starred":
            return self.reject(node, "unpacking", "`*x` is not allowed; pass the container itself")
        return self.reject(node, f"{name} syntax", "it is not supported in expressions")

    # -- leaves --

    def visit_Constant(self, node: ast.Constant, depth: int) -> Fn:
        value = node.value
        if id(type(value)) not in _CONSTANT_TYPES:
            raise self.reject(node, "this constant", "it is not supported")

        def constant(L: Scope, G: Scope, B: cost.Budget) -> Any:
            return value

        return constant

    def check_name(self, node: ast.AST, name: str) -> None:
        if _is_dunder(name):
            why = (
                "imports run code"
                if name == "__import__"
                else "dunder names reach interpreter internals; read plain attributes, or use "
                "type(x) for the type"
            )
            raise self.reject(node, f"`{name}`", why)

    def visit_Name(self, node: ast.Name, depth: int) -> Fn:
        name = node.id
        self.check_name(node, name)
        self.identifiers.add(name)
        fallback = _name_fallback(name)

        def lookup(L: Scope, G: Scope, B: cost.Budget) -> Any:
            if name in L:
                return L[name]
            if name in G:
                return G[name]
            return fallback(L, G)

        if self.rule.is_sensitive(name):
            return self.hidden(lookup, name)
        if id(node) in self.bare:
            return lookup
        # The pattern check inlined: names are the commonest operands.
        screen = self.rule.screen
        shortest = self.rule.shortest
        floor = secrecy.CARD_FLOOR
        plain = secrecy.PLAIN_IDS

        def screened_lookup(L: Scope, G: Scope, B: cost.Budget) -> Any:
            if name in L:
                v = L[name]
            elif name in G:
                v = G[name]
            else:
                return fallback(L, G)
            t = type(v)
            if t is str:
                if len(v) < shortest:
                    return v
            elif t is int:
                if -floor < v < floor:
                    return v
            elif id(t) in plain:
                return v
            return screen(v, name, B)

        return screened_lookup

    def visit_Attribute(self, node: ast.Attribute, depth: int) -> Fn:
        name = node.attr
        self.check_name(node, name)
        self.identifiers.add(name)
        where = self.snippet(node)
        # One-entry cache of the last type's layout (a tuple swap is atomic).
        # The MRO is not re-read per hit: after a later __bases__ assignment a
        # stale entry could miss a new class attribute, which changes which
        # value is read but can never run code.
        cache = [safeops.NO_LAYOUT]
        layout = _layout
        dget = _DGET
        dkeys = _DKEYS
        missing = _MISSING
        module_dict = _MODULE_DICT
        member = safeops.MEMBER

        # A second cache for reads on a class object (``Status.PAID``): where
        # the name was found, re-read live on every hit.
        class_cache: list[tuple[Any, ...] | None] = [None]
        site = safeops.class_attribute_site
        is_class = safeops.is_in

        def slow(o: Any) -> Any:
            cache[0] = layout(type(o))
            try:
                v = _get_attribute(o, name, where)
            except EvaluationFailure:
                raise
            except Exception as exc:
                raise _failure(exc, where) from None
            if cache[0][5] == _MODE_SLOW and is_class(type, cache[0][1]):
                class_cache[0] = site(o, name)
            return v

        def class_read(o: Any) -> Any:
            cc = class_cache[0]
            if cc is not None and cc[0] is o:
                for ns in cc[3]:
                    if name in ns:
                        break
                else:
                    ns = cc[1]  # a mappingproxy of the class namespace
                    if name in ns:
                        v = ns[name]
                        if type(v) is cc[2]:
                            return v
            return slow(o)

        # Reading an attribute shows nothing of the object's own text.
        self.bare.add(id(node.value))
        if (
            isinstance(node.value, ast.Name)
            and not _is_dunder(node.value.id)
            and not self.rule.is_sensitive(node.value.id)
        ):
            # The common `obj.attr`: the name lookup inlined (one call less).
            var = node.value.id
            self.nodes += 1
            self.identifiers.add(var)
            fallback = _name_fallback(var)

            def attribute_of_name(L: Scope, G: Scope, B: cost.Budget) -> Any:
                if var in L:
                    o = L[var]
                elif var in G:
                    o = G[var]
                else:
                    o = fallback(L, G)
                c = cache[0]
                if c[0] is not type(o):
                    c = layout(type(o))
                    cache[0] = c
                mode = c[5]
                if mode == _MODE_FAST:
                    # A slot is read from its member descriptor; any other name
                    # in a class namespace (property, method...) or a
                    # __getattribute__ override sends the read to the slow path.
                    for ns in c[2]:
                        if name in ns:
                            d = ns[name]
                            if type(d) is member:
                                try:
                                    return d.__get__(o)
                                except AttributeError:
                                    pass
                            break
                        if "__getattribute__" in ns:
                            break
                    else:
                        getter = c[4]
                        if getter is not None:
                            # A lookup compares the name with stored keys of
                            # the same hash: only exact str ones may be there.
                            d = getter(o)
                            for k in d if type(d) is dict else dkeys(d):
                                if type(k) is not str:
                                    break
                            else:
                                v = dget(d, name, missing)
                                if v is not missing:
                                    return v
                elif mode == _MODE_MODULE:
                    v = dget(module_dict(o), name, missing)
                    if v is not missing:
                        return v
                else:
                    return class_read(o)
                return slow(o)

            return self.read(node, attribute_of_name, name, where)

        get = self.visit(node.value, depth)

        def attribute(L: Scope, G: Scope, B: cost.Budget) -> Any:
            o = get(L, G, B)
            c = cache[0]
            if c[0] is not type(o):
                c = layout(type(o))
                cache[0] = c
            mode = c[5]
            if mode == _MODE_FAST:
                for ns in c[2]:
                    if name in ns:
                        d = ns[name]
                        if type(d) is member:
                            try:
                                return d.__get__(o)
                            except AttributeError:
                                pass
                        break
                    if "__getattribute__" in ns:
                        break
                else:
                    getter = c[4]
                    if getter is not None:
                        d = getter(o)
                        for k in d if type(d) is dict else dkeys(d):
                            if type(k) is not str:
                                break
                        else:
                            v = dget(d, name, missing)
                            if v is not missing:
                                return v
            elif mode == _MODE_MODULE:
                v = dget(module_dict(o), name, missing)
                if v is not missing:
                    return v
            else:
                return class_read(o)
            return slow(o)

        return self.read(node, attribute, name, where)

    # -- subscripts --

    def visit_Subscript(self, node: ast.Subscript, depth: int) -> Fn:
        get = self.visit(node.value, depth)
        key_node = node.slice
        constant = isinstance(key_node, ast.Constant)
        if constant and type(key_node.value) is str:
            self.identifiers.add(key_node.value)
        key = self.visit(key_node, depth)
        where = self.snippet(node)
        subscript = safeops.subscript
        dget = _DGET
        missing = _MISSING
        # A key computed at run time (`d['pass' + 'word']`) is a name too.
        computed = not constant
        key_name = self.rule.key_name
        hide = self.rule.hide

        def item(L: Scope, G: Scope, B: cost.Budget) -> Any:
            c = get(L, G, B)
            k = key(L, G, B)
            tc = type(c)
            if computed:
                tk = type(k)
                if tk is not int and tk is not slice:
                    name = key_name(k)
                    if name is not None:
                        try:
                            return hide(name, subscript(c, k, B, where))
                        except EvaluationFailure:
                            raise
                        except Exception as exc:
                            raise _failure(exc, where) from None
            try:
                if (tc is list or tc is tuple) and type(k) is int:
                    return c[k]
                if tc is dict and type(k) is str and len(c) <= 16:
                    # A small dict with str keys only: no stored key can run
                    # an __eq__ during the lookup.
                    for stored in c:
                        if type(stored) is not str:
                            break
                    else:
                        v = dget(c, k, missing)
                        if v is not missing:
                            return v
                return subscript(c, k, B, where)
            except EvaluationFailure:
                raise
            except IndexError:
                raise EvaluationFailure(
                    f"{where}: index {safeops.short_repr(k)} out of range for "
                    f"{safeops.an(tc)} of length {len(c)}"
                ) from None
            except Exception as exc:
                raise _failure(exc, where) from None

        name = self.rule.key_name(key_node.value) if constant else None
        if name is not None:
            return self.hidden(item, name)
        return self.screened(node, item, where)

    def visit_Slice(self, node: ast.Slice, depth: int) -> Fn:
        parts = [
            self.visit(p, depth) if p is not None else None
            for p in (node.lower, node.upper, node.step)
        ]
        lo, hi, step = (p if p is not None else _none for p in parts)
        where = self.snippet(node)
        make = safeops.make_slice

        def make_slice(L: Scope, G: Scope, B: cost.Budget) -> slice:
            return make(lo(L, G, B), hi(L, G, B), step(L, G, B), where)

        return make_slice

    # -- displays --

    def constant_of(self, node: ast.AST) -> Any:
        """The value of a literal (numbers with a sign, tuples of literals), or _MISSING."""
        if isinstance(node, ast.Constant) and id(type(node.value)) in _CONSTANT_TYPES:
            return node.value
        if (
            isinstance(node, ast.UnaryOp)
            and isinstance(node.op, (ast.USub, ast.UAdd))
            and isinstance(node.operand, ast.Constant)
            and type(node.operand.value) in (int, float, complex)
        ):
            v = node.operand.value
            return -v if isinstance(node.op, ast.USub) else +v
        if isinstance(node, ast.Tuple):
            values = tuple(self.constant_of(e) for e in node.elts)
            return _MISSING if _MISSING in values else values
        return _MISSING

    def elements(self, elts: list[ast.expr], depth: int) -> list[Fn]:
        return [self.visit(e, depth) for e in elts]

    def visit_Tuple(self, node: ast.Tuple, depth: int) -> Fn:
        fns = self.elements(node.elts, depth)
        value = self.constant_of(node)
        if value is not _MISSING:

            def constant_tuple(L: Scope, G: Scope, B: cost.Budget) -> tuple[Any, ...]:
                return value  # type: ignore[no-any-return]

            return constant_tuple

        def make_tuple(L: Scope, G: Scope, B: cost.Budget) -> Any:
            values = tuple([f(L, G, B) for f in fns])
            return _holder(values, values)

        return make_tuple

    def visit_List(self, node: ast.List, depth: int) -> Fn:
        fns = self.elements(node.elts, depth)

        def make_list(L: Scope, G: Scope, B: cost.Budget) -> Any:
            values = [f(L, G, B) for f in fns]
            return _holder(values, values)

        return make_list

    def visit_Set(self, node: ast.Set, depth: int) -> Fn:
        fns = self.elements(node.elts, depth)
        where = self.snippet(node)
        check = safeops.check_deep
        guarded = safeops.guarded
        EQ = safeops.EQ

        def make_set(L: Scope, G: Scope, B: cost.Budget) -> set[Any]:
            values = [f(L, G, B) for f in fns]
            try:
                flags = 0
                for v in values:
                    flags |= check(v, EQ, B, where)
                if flags:  # a Decimal compared with a float sets the context's flags
                    return guarded(flags, B, where, set, values)
                return set(values)
            except EvaluationFailure:
                raise
            except Exception as exc:
                raise _failure(exc, where) from None

        return make_set

    def visit_Dict(self, node: ast.Dict, depth: int) -> Fn:
        for k, v in zip(node.keys, node.values, strict=True):
            if k is None:
                raise self.reject(v, "`**` unpacking", "pass the dict itself")
        keys = self.elements(node.keys, depth)  # type: ignore[arg-type]
        values = self.elements(node.values, depth)
        pairs = list(zip(keys, values, strict=True))
        where = self.snippet(node)
        check = safeops.check_deep
        guarded = safeops.guarded
        EQ = safeops.EQ

        def make_dict(L: Scope, G: Scope, B: cost.Budget) -> Any:
            # Every key and value first, then the dict, as Python builds it.
            items = [(kf(L, G, B), vf(L, G, B)) for kf, vf in pairs]
            try:
                flags = 0
                for k, _ in items:
                    flags |= check(k, EQ, B, where)
                # A Decimal compared with a float sets the context's flags.
                out = guarded(flags, B, where, dict, items) if flags else dict(items)
            except EvaluationFailure:
                raise
            except Exception as exc:
                raise _failure(exc, where) from None
            return _holder(out, out.values())

        return make_dict

    # -- f-strings --

    def visit_JoinedStr(self, node: ast.JoinedStr, depth: int) -> Fn:
        parts = [self.visit(v, depth) for v in node.values]
        where = self.snippet(node)
        limit = safeops.MAX_TEXT

        produce = safeops.produce
        text_bytes = cost.text_bytes
        isascii = str.isascii

        def fstring(L: Scope, G: Scope, B: cost.Budget) -> str:
            pieces = [p(L, G, B) for p in parts]
            size = 0
            wide = False
            for piece in pieces:  # exact str: constants and formatted fields
                size += len(piece)
                if not wide and not isascii(piece):
                    wide = True
            if size > limit:
                raise BudgetExceeded(f"{where}: not evaluated, the text would exceed {limit}")
            produce(B, text_bytes(size, wide), where)
            return "".join(pieces)

        # Text made from whole containers is checked like a read.
        return self.screened(node, fstring, where)

    def visit_FormattedValue(self, node: ast.FormattedValue, depth: int) -> Fn:
        get = self.visit(node.value, depth)
        spec = self.visit(node.format_spec, depth) if node.format_spec is not None else None
        conversion = node.conversion
        where = self.snippet(node.value)
        fmt = safeops.format_value

        # Larger ints go through format_value: their conversion is charged.
        big = 1 << 64

        def field(L: Scope, G: Scope, B: cost.Budget) -> str:
            v = get(L, G, B)
            s = spec(L, G, B) if spec is not None else ""
            if conversion < 0 and not s:
                t = type(v)
                if t is str:
                    return v
                if (t is int and -big < v < big) or t is float or t is bool or v is None:
                    return format(v)
            try:
                return fmt(v, conversion, s, B, where)
            except EvaluationFailure:
                raise
            except Exception as exc:
                raise _failure(exc, where) from None

        return field

    # -- boolean logic --

    def visit_BoolOp(self, node: ast.BoolOp, depth: int) -> Fn:
        self.bare_too(node, *node.values)
        fns = [self.visit(v, depth) for v in node.values]
        where = self.snippet(node)
        truth = _truth
        if isinstance(node.op, ast.And):

            def all_of(L: Scope, G: Scope, B: cost.Budget) -> Any:
                v = None
                for f in fns:
                    v = f(L, G, B)
                    if v is True:
                        continue
                    if v is False or v is None or not truth(v, where):
                        return v
                return v

            return all_of

        def any_of(L: Scope, G: Scope, B: cost.Budget) -> Any:
            v = None
            for f in fns:
                v = f(L, G, B)
                if v is True or (v is not False and v is not None and truth(v, where)):
                    return v
            return v

        return any_of

    def visit_IfExp(self, node: ast.IfExp, depth: int) -> Fn:
        self.bare.add(id(node.test))  # only its truth is read
        self.bare_too(node, node.body, node.orelse)
        test = self.visit(node.test, depth)
        body = self.visit(node.body, depth)
        orelse = self.visit(node.orelse, depth)
        where = self.snippet(node.test)
        truth = _truth

        def choose(L: Scope, G: Scope, B: cost.Budget) -> Any:
            t = test(L, G, B)
            if t is True or (t is not False and truth(t, where)):
                return body(L, G, B)
            return orelse(L, G, B)

        return choose

    # -- operators --

    def visit_UnaryOp(self, node: ast.UnaryOp, depth: int) -> Fn:
        if isinstance(node.op, ast.Not):
            self.bare.add(id(node.operand))  # only its truth is read
        get = self.visit(node.operand, depth)
        where = self.snippet(node)
        value = self.constant_of(node)
        if value is not _MISSING:

            def constant(L: Scope, G: Scope, B: cost.Budget) -> Any:
                return value

            return constant
        if isinstance(node.op, ast.Not):
            truth = _truth

            def negation(L: Scope, G: Scope, B: cost.Budget) -> bool:
                v = get(L, G, B)
                if v is True:
                    return False
                if v is False or v is None:
                    return True
                return not truth(v, where)

            return negation
        op = {ast.USub: "-", ast.UAdd: "+", ast.Invert: "~"}[type(node.op)]
        unary = safeops.unary
        negate = op == "-"

        def arithmetic(L: Scope, G: Scope, B: cost.Budget) -> Any:
            v = get(L, G, B)
            t = type(v)
            if negate and (t is int or t is float):
                return -v
            try:
                return unary(op, v, where)
            except EvaluationFailure:
                raise
            except Exception as exc:
                raise _failure(exc, where) from None

        return arithmetic

    def visit_BinOp(self, node: ast.BinOp, depth: int) -> Fn:
        left = self.visit(node.left, depth)
        right = self.visit(node.right, depth)
        op = _BINOPS[type(node.op)]
        if (
            op == "%"
            and isinstance(node.left, (ast.Constant, ast.JoinedStr))
            and type(getattr(node.left, "value", "")) in (str, bytes)
        ):
            raise self.reject(
                node, "%-formatting", "it can call __str__ of application objects; use an f-string"
            )
        where = self.snippet(node)
        opf = safeops.ARITH_OPS[op]
        int_ok = op in _FAST_INT
        float_ok = op in _FAST_FLOAT
        arith = safeops.arithmetic
        if op in _DIVISIONS:
            small = _SMALL

            def division(L: Scope, G: Scope, B: cost.Budget) -> Any:
                a = left(L, G, B)
                b = right(L, G, B)
                t = type(a)
                try:
                    if t is type(b):
                        if t is int and -small < a < small and -small < b < small:
                            return opf(a, b)
                        if t is float:
                            return opf(a, b)
                    return arith(op, a, b, B, where)
                except EvaluationFailure:
                    raise
                except Exception as exc:
                    raise _failure(exc, where) from None

            return division

        def binop(L: Scope, G: Scope, B: cost.Budget) -> Any:
            a = left(L, G, B)
            b = right(L, G, B)
            t = type(a)
            try:
                if t is type(b) and ((t is int and int_ok) or (t is float and float_ok)):
                    return opf(a, b)
                return arith(op, a, b, B, where)
            except EvaluationFailure:
                raise
            except Exception as exc:
                raise _failure(exc, where) from None

        return binop

    def members_of(self, node: ast.AST) -> Any:
        """The elements of a tuple, list or set literal of plain constants
        (``x in ("a", "b")``) as a tuple, or _MISSING."""
        if not isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return _MISSING
        values = tuple(self.constant_of(e) for e in node.elts)
        if any(v is _MISSING or id(type(v)) not in _SIMPLE_IDS for v in values):
            return _MISSING
        return values

    def visit_Compare(self, node: ast.Compare, depth: int) -> Fn:
        operands = [node.left, *node.comparators]
        identity = [isinstance(op, (ast.Is, ast.IsNot)) for op in node.ops]
        for i, operand in enumerate(operands):
            # An operand of `is` / `is not` only: its identity is all that is read.
            if all(identity[j] for j in (i - 1, i) if 0 <= j < len(identity)):
                self.bare.add(id(operand))
        fns = [self.visit(o, depth) for o in operands]
        for i, op in enumerate(node.ops):
            members = self.members_of(operands[i + 1])
            if isinstance(op, (ast.In, ast.NotIn)) and members is not _MISSING:
                # `in` a literal: the same answer from a tuple built once.
                fns[i + 1] = _constant(members)
        where = self.snippet(node)
        tests = [self.comparison(op, operands[i + 1], where) for i, op in enumerate(node.ops)]
        if len(tests) == 1:
            test, _ = tests[0]
            first, second = fns
            const = self.constant_of(operands[1])
            fast = _fast_compare(node.ops[0], first, const, where)
            if fast is not None:
                return fast

            def compare(L: Scope, G: Scope, B: cost.Budget) -> Any:
                return test(first(L, G, B), second(L, G, B), B)

            return compare
        truth = _truth
        chain = [(t, f) for (t, _), f in zip(tests, fns[1:], strict=True)]
        first = fns[0]

        def compare_chain(L: Scope, G: Scope, B: cost.Budget) -> Any:
            a = first(L, G, B)
            r: Any = True
            for test, f in chain:
                b = f(L, G, B)
                r = test(a, b, B)
                if r is not True and (r is False or not truth(r, where)):
                    return r
                a = b
            return r

        return compare_chain

    def comparison(
        self, op: ast.cmpop, right: ast.AST, where: str
    ) -> tuple[Callable[[Any, Any, cost.Budget], Any], bool]:
        """A two-operand test for ``op``; ``right`` is the right operand's node."""
        kind = type(op)
        if kind is ast.Is:
            return (lambda a, b, B: a is b), True
        if kind is ast.IsNot:
            return (lambda a, b, B: a is not b), True
        if kind in (ast.In, ast.NotIn):
            negate = kind is ast.NotIn
            contains = safeops.contains
            members = self.members_of(right)
            frozen = None
            if members is not _MISSING:
                try:
                    frozen = frozenset(members)
                except TypeError:
                    frozen = None

            def membership(a: Any, b: Any, B: cost.Budget) -> bool:
                ta = type(a)
                try:
                    if frozen is not None and id(ta) in _SIMPLE_IDS and ta is not complex:
                        found = a in frozen
                    elif ta is str and type(b) is str:
                        found = a in b
                    else:
                        found = contains(a, b, B, where)
                except EvaluationFailure:
                    raise
                except Exception as exc:
                    raise _failure(exc, where) from None
                return not found if negate else found

            return membership, False
        opf, need = _COMPARISONS[kind]
        compare = safeops.compare

        def test(a: Any, b: Any, B: cost.Budget) -> Any:
            ta = type(a)
            try:
                if ta is type(b) and (ta is int or ta is str or ta is float):
                    return opf(a, b)
                return compare(opf, need, a, b, B, where)
            except EvaluationFailure:
                raise
            except Exception as exc:
                raise _failure(exc, where) from None

        return test, False

    # -- calls --

    def visit_Call(self, node: ast.Call, depth: int) -> Fn:
        func = node.func
        for a in node.args:
            if isinstance(a, ast.Starred):
                raise self.reject(a, "unpacking", "`*x` is not allowed; pass the values")
        for k in node.keywords:
            if k.arg is None:
                raise self.reject(k.value, "`**` unpacking", "pass keyword arguments by name")
        if isinstance(func, ast.Name):
            return self.builtin_call(node, func.id, depth)
        if isinstance(func, ast.Attribute):
            return self.method_call(node, func, depth)
        raise self.reject(
            node,
            "this call",
            "only builtin functions and methods of builtin values are called; "
            f"allowed functions: {_FUNCTIONS_TEXT}",
        )

    def builtin_call(self, node: ast.Call, name: str, depth: int) -> Fn:
        self.check_name(node.func, name)
        spec = safeops.BUILTINS.get(name)
        if spec is None:
            reason = _CALL_REASONS.get(name)
            if reason is None:
                reason = (
                    "application functions are never called"
                    if name not in safeops.BUILTIN_VALUES
                    else "it is not among the allowed functions"
                )
            raise self.reject(node, f"{name}()", f"{reason}; allowed functions: {_FUNCTIONS_TEXT}")
        impl, lo, hi, keywords = spec
        for k in node.keywords:
            if k.arg not in keywords:
                why = (
                    "key functions need a lambda, which is not allowed; sort or compare "
                    "plain values"
                    if k.arg == "key"
                    else f"{name}() accepts {', '.join(sorted(keywords)) or 'no keywords'}"
                )
                raise self.reject(k.value, f"{name}({k.arg}=...)", why)
        count = len(node.args)
        if not lo <= count <= hi:
            want = f"{lo}" if lo == hi else f"{lo} to {hi}"
            raise self.reject(node, f"{name}()", f"it takes {want} arguments, got {count}")
        if name == "hasattr" and count == 2:
            arg = node.args[1]
            if isinstance(arg, ast.Constant) and type(arg.value) is str:
                if _is_dunder(arg.value):
                    raise self.reject(arg, f"`{arg.value}`", "dunder names are not allowed")
                self.identifiers.add(arg.value)
        self.identifiers.add(name)
        if name == "bool":
            self.bare.update(map(id, node.args))  # only its truth is read
        args = [self.visit(a, depth) for a in node.args]
        n = len(args)
        a0, a1 = [*args, _none, _none][:2]
        kws = [(k.arg, self.visit(k.value, depth)) for k in node.keywords]
        where = self.snippet(node)
        real = safeops.BUILTIN_VALUES[name]

        def shadowed(L: Scope, G: Scope) -> None:
            # The name is bound in the frame: Python would call that value.
            value = L[name] if name in L else G[name]
            if value is real:
                return
            if not callable(value):  # reads the type's call slot only
                raise EvaluationFailure(
                    f"{where}: {name} here is {safeops.an(type(value))}, which is not callable"
                )
            raise NotEvaluated(
                f"{where}: not evaluated, {name} here is the application's "
                f"{safeops.tname(type(value))}, not the builtin"
            )

        if name == "len" and not kws:
            (arg,) = args

            def call_len(L: Scope, G: Scope, B: cost.Budget) -> Any:
                if name in L or name in G:
                    shadowed(L, G)
                v = arg(L, G, B)
                t = type(v)
                if t is list or t is str or t is dict or t is tuple:
                    return len(v)
                try:
                    return impl((v,), _EMPTY, B, where)
                except EvaluationFailure:
                    raise
                except Exception as exc:
                    raise _failure(exc, where) from None

            return call_len

        def call(L: Scope, G: Scope, B: cost.Budget) -> Any:
            if name in L or name in G:
                shadowed(L, G)
            if n == 1:
                values: tuple[Any, ...] = (a0(L, G, B),)
            elif n == 0:
                values = ()
            elif n == 2:
                values = (a0(L, G, B), a1(L, G, B))
            else:
                values = tuple([f(L, G, B) for f in args])
            kw = {k: f(L, G, B) for k, f in kws} if kws else _EMPTY
            try:
                return impl(values, kw, B, where)
            except EvaluationFailure:
                raise
            except Exception as exc:
                raise _failure(exc, where) from None

        if name in _READS:
            return self.screened(node, call, where)
        return call

    def method_call(self, node: ast.Call, func: ast.Attribute, depth: int) -> Fn:
        name = func.attr
        self.check_name(func, name)
        if name not in safeops.METHOD_NAMES:
            if name in _MUTATING:
                raise self.reject(
                    node,
                    _MUTATING[name],
                    f"it may change the service; allowed methods: {_METHODS_TEXT}",
                )
            if name in ("format", "format_map"):
                raise self.reject(
                    node,
                    f"str.{name}",
                    "it can call __format__ of application objects; use an f-string such as "
                    "f'{x:>10}'",
                )
            raise self.reject(
                node,
                f".{name}()",
                f"calls are limited to builtin functions ({_FUNCTIONS_TEXT}) and methods of "
                f"builtin types ({_METHODS_TEXT})",
            )
        key_node = node.args[0] if name == "get" and node.args else None
        if isinstance(key_node, ast.Constant) and type(key_node.value) is str:
            self.identifiers.add(key_node.value)
        recv = self.visit(func.value, depth)
        args = [self.visit(a, depth) for a in node.args]
        n = len(args)
        a0, a1 = [*args, _none, _none][:2]
        kws = [(k.arg, self.visit(k.value, depth)) for k in node.keywords]
        where = self.snippet(node)
        call_method = safeops.call_method
        # Inline: pure str methods on short strings with str/int arguments, and
        # dict.get on a small dict with str keys only.
        str_method = safeops.static_lookup(str, name) if name in safeops.STR_PLAIN else None
        if str_method is not None:
            self.inline_methods += 1
        inline_text = cost.INLINE_TEXT
        dict_get = name == "get" and not kws and 1 <= len(args) <= 2
        dget = _DGET
        # `d.get(k)` with k computed at run time: the key is a name too.
        computed_get = key_node is not None and not isinstance(key_node, ast.Constant)
        key_name = self.rule.key_name
        hide = self.rule.hide

        def call(L: Scope, G: Scope, B: cost.Budget) -> Any:
            r = recv(L, G, B)
            if n == 1:
                values: tuple[Any, ...] = (a0(L, G, B),)
            elif n == 0:
                values = ()
            elif n == 2:
                values = (a0(L, G, B), a1(L, G, B))
            else:
                values = tuple([f(L, G, B) for f in args])
            tr = type(r)
            if computed_get and type(values[0]) is not int:
                secret = key_name(values[0])
                if secret is not None:
                    try:
                        return hide(secret, call_method(r, name, values, _EMPTY, B, where))
                    except EvaluationFailure:
                        raise
                    except Exception as exc:
                        raise _failure(exc, where) from None
            if str_method is not None and tr is str and not kws and len(r) < inline_text:
                for v in values:
                    tv = type(v)
                    if tv is not str and tv is not int:
                        break
                else:
                    try:
                        return str_method(r, *values)
                    except Exception as exc:
                        raise _failure(exc, where) from None
            elif dict_get and tr is dict and type(values[0]) is str and len(r) <= 16:
                for stored in r:
                    if type(stored) is not str:
                        break
                else:
                    return dget(r, *values)
            kw = {k: f(L, G, B) for k, f in kws} if kws else _EMPTY
            try:
                return call_method(r, name, values, kw, B, where)  # type: ignore[arg-type]
            except EvaluationFailure:
                raise
            except Exception as exc:
                raise _failure(exc, where) from None

        secret = self.rule.key_name(key_node.value) if isinstance(key_node, ast.Constant) else None
        if secret is not None:
            return self.hidden(call, secret)
        if name in _READS:
            return self.screened(node, call, where)
        return call


def _none(L: Scope, G: Scope, B: cost.Budget) -> None:
    return None


def _holder(container: Any, values: Any) -> Any:
    """A display holding a secret is a secret itself (so no secret is ever
    inside a container: every walk may take its elements as they are)."""
    for v in values:
        if type(v) is Secret:
            return Secret(v.name, container)
    return container


def _constant(value: Any) -> Fn:
    def constant(L: Scope, G: Scope, B: cost.Budget) -> Any:
        return value

    return constant


def _name_fallback(name: str) -> Callable[[Scope, Scope], Any]:
    """What a name found in neither scope resolves to: an allowed builtin, or
    an EvaluationFailure listing the locals."""
    if name in safeops.BUILTIN_VALUES:
        value = safeops.BUILTIN_VALUES[name]
        return lambda L, G: value

    def undefined(L: Scope, G: Scope) -> Any:
        names: list[str] = []
        try:
            for k in L:
                if type(k) is str and not _is_dunder(k):
                    names.append(k)
                    if len(names) > 200:
                        break
        except Exception:
            pass
        names.sort()
        shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
        raise EvaluationFailure(f"name {name!r} is not defined here; locals: {shown or '(none)'}")

    return undefined


#: Calls whose result is text or an element read out of a value: their
#: result is checked against the patterns like any read.
_READS: Final = frozenset({"str", "repr", "ascii", "min", "max", "get", "join"})

_BINOPS: Final = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.MatMult: "@",
}
# Operators applied inline to two ints / two floats: one pass over the digits
# (at most about 3 us on the largest int an expression can build); ``*``,
# ``**`` and ``<<`` on ints go through the size checks and charges, and so do
# ``//`` and ``%`` (quadratic) unless both operands are below 2**62.
_FAST_INT: Final = frozenset({"+", "-", "/", ">>", "&", "|", "^"})
_DIVISIONS: Final = frozenset({"//", "%"})
_SMALL: Final = 1 << 62
_FAST_FLOAT: Final = frozenset({"+", "-", "*", "/", "//", "%"})
_COMPARISONS: Final = {
    ast.Eq: (operator.eq, safeops.EQ),
    ast.NotEq: (operator.ne, safeops.EQ),
    ast.Lt: (operator.lt, safeops.EQ | safeops.ORDER),
    ast.LtE: (operator.le, safeops.EQ | safeops.ORDER),
    ast.Gt: (operator.gt, safeops.EQ | safeops.ORDER),
    ast.GtE: (operator.ge, safeops.EQ | safeops.ORDER),
}


def _fast_compare(op: ast.cmpop, left: Fn, const: Any, where: str) -> Fn | None:
    """``left <op> constant`` with the constant's type tested inline: an int or
    float constant accepts int and float operands, a str constant str ones."""
    if const is _MISSING or type(const) not in (int, float, str):
        return None
    if type(op) not in _COMPARISONS:
        return None
    opf, need = _COMPARISONS[type(op)]
    compare = safeops.compare
    c = const
    if type(const) is str:
        t1 = t2 = str
    else:
        t1, t2 = int, float

    def slow(a: Any, B: cost.Budget) -> Any:
        try:
            return compare(opf, need, a, c, B, where)
        except EvaluationFailure:
            raise
        except Exception as exc:
            raise _failure(exc, where) from None

    kind = type(op)
    if kind is ast.Gt:

        def gt(L: Scope, G: Scope, B: cost.Budget) -> Any:
            a = left(L, G, B)
            t = type(a)
            if t is t1 or t is t2:
                return a > c
            return slow(a, B)

        return gt
    if kind is ast.GtE:

        def ge(L: Scope, G: Scope, B: cost.Budget) -> Any:
            a = left(L, G, B)
            t = type(a)
            if t is t1 or t is t2:
                return a >= c
            return slow(a, B)

        return ge
    if kind is ast.Lt:

        def lt(L: Scope, G: Scope, B: cost.Budget) -> Any:
            a = left(L, G, B)
            t = type(a)
            if t is t1 or t is t2:
                return a < c
            return slow(a, B)

        return lt
    if kind is ast.LtE:

        def le(L: Scope, G: Scope, B: cost.Budget) -> Any:
            a = left(L, G, B)
            t = type(a)
            if t is t1 or t is t2:
                return a <= c
            return slow(a, B)

        return le
    if kind is ast.Eq:

        def eq(L: Scope, G: Scope, B: cost.Budget) -> Any:
            a = left(L, G, B)
            t = type(a)
            if t is t1 or t is t2:
                return a == c
            return slow(a, B)

        return eq

    def ne(L: Scope, G: Scope, B: cost.Budget) -> Any:
        a = left(L, G, B)
        t = type(a)
        if t is t1 or t is t2:
            return a != c
        return slow(a, B)

    return ne
