"""What the expression sandbox may do with live values, and how, without
running application code.

``sandbox.py`` compiles an expression once into closures. The closures handle
the common cases inline (an int compared with an int, an attribute found in an
instance ``__dict__``) and call the helpers here for everything else.

Nothing here runs code of the application. Objects are read only through
``introspect`` (type slots, static lookup in the MRO, instance dicts through
their C slot, the storage of builtin containers through the builtin's own C
methods, exception fields through the exception slots), and every value an
operation hands to native code is checked first, so no ``__getattr__``,
``__getattribute__``, property, descriptor, metaclass hook or user-defined
operator, ``__len__``, ``__iter__``, ``__hash__``, ``__eq__``, ``__bool__``
or ``__str__`` can run:

* ``type_info`` classifies a type by reading the namespaces of the classes in
  its MRO: which behaviours (equality and hashing, ordering, arithmetic, the
  container protocol, truth, text, conversions) it takes from trusted
  builtin or standard library classes and which from application code. The
  result is cached and recomputed when a class namespace changes size or the
  MRO changes. A class whose namespace holds a key that is not an exact str
  is application code for everything (searching it would compare that key).
* An operation runs natively (the C implementation of the builtin type) only
  when every value it can touch, container elements included, takes that
  behaviour from trusted code (``check_deep``). Walks read a container's
  storage (``introspect.length``/``elements``), never a subclass's
  ``__len__`` or ``__iter__``; an operation whose Python meaning goes
  through them (``len(x)``, ``sorted(x)``) refuses such a subclass, and so
  does one whose builtin C code calls them on a subclass (a set's repr, a
  deque's ``==``, repr and ``+``, an OrderedDict's ``|``: ``_REACHED_BY_C``).
  A dict lookup scans the types of the dict's keys: a lookup compares the
  key with stored keys of the same hash, and a stored application object
  would run its ``__eq__``; an attribute read checks that the instance dict
  holds exact str keys only, for the same reason.
* Values of application classes that define none of the dunders of an
  operation take object's behaviour for it, as in Python: ``==`` is
  identity, truth is True, text is ``<mod.Class object at 0x...>``.
  Subclasses of builtin types that override nothing an operation uses are
  treated as their base (``class UserId(str)``, IntEnum members, named
  tuples). ``truth`` is the one truth test of conditions and expressions.
* ``str()`` of an exception is evaluated only when its args and every field
  its builtin ``__str__`` formats (``SyntaxError.msg``, ``OSError.strerror``,
  ``UnicodeError.reason``...: ``introspect.text_parts``) are trusted.
* Every operation is charged before it runs to the evaluation's budget
  ``B = [steps, Secrecy, bytes]`` (``cost.new_budget``): walks over elements
  one step each, big-int arithmetic, ``pow`` and text conversions by operand
  size, and everything built (str, bytes, big ints, containers) by its size
  in bytes, summed over the evaluation. ``cost.py`` holds the cost model;
  ``charge`` and ``produce`` raise ``BudgetExceeded`` before an operation
  would go over. Single results are also capped (``"a" * 10**9``,
  ``10 ** 10 ** 10``).
* Native code of Decimal and Fraction runs through ``guarded``: under a copy
  of the thread's decimal context (comparisons with floats, set and dict
  displays and lookups holding a Decimal never set the service's flags),
  charged for the ints it converts to Decimals (quadratic in their size),
  and refused when a value whose class has an application metaclass is
  among its operands (their numbers-ABC checks hash and compare that class).

Deliberate limits: values of extension types (numpy arrays, Cython classes)
count as application code; so do subclasses of ``Fraction``, ``UUID`` and
``Counter``, whose standard library code looks their attributes up by name.
A name looked up in a module namespace or a frame's globals is not preceded
by a scan of its keys (hundreds of them, on every read): a key of another
type hashing like the name would be compared, as Python's own lookup of that
global does.
"""

from __future__ import annotations

import abc
import builtins
import collections
import collections.abc
import datetime as _dt
import decimal
import enum
import fractions
import math
import numbers
import operator
import types
import uuid
import zoneinfo
from collections.abc import Callable, Iterable
from typing import Any, Final, NoReturn, final

from runtime_agent import cost, introspect
from runtime_agent.introspect import abc_checks_run_code, inherits, is_in, length, static_lookup

# -- exceptions ----------------------------------------------------------------


class EvaluationFailure(Exception):
    """Evaluating an expression failed at this hit: an unknown name, a missing
    key or index, a division by zero, a type error between builtin values...
    The message is one line and names the part of the expression that failed.
    Base class of ``NotEvaluated`` and ``BudgetExceeded``.
    """


class NotEvaluated(EvaluationFailure):
    """The value could only be had by running application code (a property,
    ``__getattr__``, a user-defined operator or method...), so it was not
    computed. The message names the attribute or operation and why.
    """


class BudgetExceeded(EvaluationFailure):
    """The evaluation ran out of its work budget, or a result would have been
    too large (``"a" * 10**9``, ``10 ** 10 ** 10``, ``sorted`` of a huge list).
    """


class RedactedRead(EvaluationFailure):
    """The expression used a secret for more than a presence test: read,
    indexed, compared, measured, converted, iterated or computed with it, or
    walked a container holding one (see ``secrecy``). The message names the
    secret's name, never its value.
    """


@final
class Secret:
    """A value read under a sensitive name, or whose text looks like a secret,
    as it travels through one evaluation: every operation but a presence test
    refuses it (``RedactedRead``). Created only by ``secrecy``; an evaluation
    never returns one (``sandbox`` turns it into its result)."""

    __slots__ = ("name", "value")

    def __init__(self, name: str, value: Any) -> None:
        self.name = name
        self.value = value

    def __repr__(self) -> str:
        return f"<secret {self.name!r}>"


def opaque(v: Any, where: str) -> None:
    """Raise RedactedRead if ``v`` is a Secret (for operations that take any value)."""
    if type(v) is Secret:
        raise redacted_read(v.name, where)


def redacted_read(name: str, where: str, inside: str = "") -> RedactedRead:
    """The one wording of a refused use of the secret ``name``."""
    return RedactedRead(
        f"{where}: reads the redacted value {name!r}{inside}; only presence tests "
        "(is None, is not None, truth) are allowed on it"
    )


# -- limits --------------------------------------------------------------------

#: Work units per evaluation: one per AST node, one per element iterated or
#: checked (sum, sorted, min, max, any, all, ``in``, ``==`` between
#: containers...), one per ``KEY_SCAN_RATE`` keys of a dict looked up, and
#: the size-based costs of ``cost.py`` (about 50 ns each).
#: ``B``, the evaluation's state, is ``[steps left, Secrecy, bytes left]``.
WORK_BUDGET: Final = cost.WORK_BUDGET
#: Bytes an evaluation may build in all (every intermediate result counts).
MEMORY_BUDGET: Final = cost.MEMORY_BUDGET
#: Keys whose types one work unit covers when a dict lookup scans them.
KEY_SCAN_RATE: Final = 4
#: Characters of a computed str, bytes of computed bytes.
MAX_TEXT: Final = 1_000_000
#: Elements of a computed list, tuple or deque.
MAX_ITEMS: Final = 100_000
#: Bits of a computed int (about 30,000 decimal digits).
MAX_INT_BITS: Final = 100_000
#: Bits of an int converted to decimal text (the conversion is quadratic, and a
#: service may have lifted ``sys.set_int_max_str_digits``).
MAX_INT_TEXT_BITS: Final = 14_000
#: Characters parsed by int() or float().
MAX_PARSE: Final = 5_000
#: ``round(x, n)``: |n| at most this.
MAX_NDIGITS: Final = 10_000
#: Entries of the per-type caches before they are emptied.
_CACHE_SIZE: Final = 4096

# -- behaviour categories ------------------------------------------------------

EQ: Final = 1  # ==, !=, hash (dict and set lookups)
ORDER: Final = 2  # <, <=, >, >=, sorting
ARITH: Final = 4  # arithmetic and bitwise operators
CONTAINER: Final = 8  # len, in, [], iteration
TRUTH: Final = 16  # bool(), and, or, not, conditions
DISPLAY: Final = 32  # str(), repr(), f-strings
CONVERT: Final = 64  # int(), float(), round(), use as an index or a count
ALL: Final = 127

_CATEGORY_TEXT: dict[int, tuple[str, str]] = {
    EQ: ("comparing or hashing", "compare identity with `is`, or compare its attributes"),
    ORDER: ("ordering", "compare its attributes"),
    ARITH: ("arithmetic on", "compute with its attributes"),
    CONTAINER: ("iterating, len(), `in` or [] on", "read its attributes"),
    TRUTH: ("the truth of", "test `x is not None` or compare explicitly"),
    DISPLAY: ("converting to text", "put the value itself in the message, it is rendered safely"),
    CONVERT: ("converting", "convert its attributes"),
}

# Dunders that no operation of the sandbox reaches: class data, construction,
# pickling, descriptors and attribute hooks (attribute reads are handled
# separately and never call hooks), context managers, in-place operators.
_HARMLESS: Final = frozenset(
    {
        "__module__", "__qualname__", "__doc__", "__dict__", "__weakref__", "__slots__",
        "__annotations__", "__annotate__", "__annotate_func__", "__annotations_cache__",
        "__type_params__", "__firstlineno__", "__static_attributes__", "__orig_bases__",
        "__parameters__", "__match_args__", "__abstractmethods__", "__dataclass_fields__",
        "__dataclass_params__", "__post_init__", "__signature__", "__text_signature__",
        "__wrapped__", "__final__", "__protocol_attrs__", "__non_callable_proto_members__",
        "__callable_proto_members_only__", "__total__", "__required_keys__",
        "__optional_keys__", "__readonly_keys__", "__mutable_keys__", "__closed__",
        "__extra_items__", "__new__", "__init__", "__init_subclass__", "__class_getitem__",
        "__set_name__", "__get__", "__set__", "__delete__", "__call__", "__del__",
        "__enter__", "__exit__", "__aenter__", "__aexit__", "__await__", "__aiter__",
        "__anext__", "__getattr__", "__setattr__", "__delattr__", "__dir__", "__getnewargs__",
        "__getnewargs_ex__", "__getstate__", "__setstate__", "__reduce__", "__reduce_ex__",
        "__copy__", "__deepcopy__", "__replace__", "__sizeof__", "__fspath__",
        "__subclasshook__", "__instancecheck__", "__subclasscheck__", "__mro_entries__",
        "__prepare__", "__setitem__", "__delitem__", "__iadd__", "__isub__", "__imul__",
        "__imatmul__", "__itruediv__", "__ifloordiv__", "__imod__", "__ipow__",
        "__ilshift__", "__irshift__", "__iand__", "__ixor__", "__ior__", "__objclass__",
        "__slotnames__",
    }
)  # fmt: skip

_ARITH_DUNDERS = (
    "add", "sub", "mul", "matmul", "truediv", "floordiv", "mod", "divmod", "pow", "lshift",
    "rshift", "and", "xor", "or", "radd", "rsub", "rmul", "rmatmul", "rtruediv", "rfloordiv",
    "rmod", "rdivmod", "rpow", "rlshift", "rrshift", "rand", "rxor", "ror", "neg", "pos",
    "abs", "invert",
)  # fmt: skip
_DUNDERS: dict[str, int] = {
    "__eq__": EQ, "__ne__": EQ, "__hash__": EQ,
    "__lt__": ORDER, "__le__": ORDER, "__gt__": ORDER, "__ge__": ORDER,
    "__len__": CONTAINER | TRUTH, "__bool__": TRUTH,
    "__iter__": CONTAINER, "__getitem__": CONTAINER, "__contains__": CONTAINER,
    "__missing__": CONTAINER, "__reversed__": CONTAINER, "__length_hint__": CONTAINER,
    "__next__": CONTAINER,
    "__repr__": DISPLAY, "__str__": DISPLAY, "__format__": DISPLAY,
    "__bytes__": DISPLAY | CONVERT, "__buffer__": CONVERT, "__release_buffer__": CONVERT,
    "__index__": CONVERT, "__int__": CONVERT, "__float__": CONVERT, "__complex__": CONVERT,
    "__round__": CONVERT, "__trunc__": CONVERT, "__floor__": CONVERT, "__ceil__": CONVERT,
}  # fmt: skip
_DUNDERS.update({f"__{name}__": ARITH for name in _ARITH_DUNDERS})
# Any other dunder a class defines as a function or descriptor
# (``__getattribute__``, ``__class__``, unknown ones) counts against every
# category; plain data under a dunder name (``__slotnames__`` cached by copy
# and pickle, ``__tablename__``, ``__pydantic_fields__``) is harmless.

# -- reading types without running code (``introspect``) ------------------------

MRO_OF: Final = introspect.mro
_TYPE_DICT: Final = introspect.type_dict
MODULE_DICT: Final = introspect.module_dict
tname: Final = introspect.type_name
_iter_stored: Final = introspect.elements
_DGET: Final = dict.get
_DKEYS: Final = dict.keys
_DVALUES: Final = dict.values
_GETSET: Final = types.GetSetDescriptorType
MEMBER: Final = types.MemberDescriptorType
_NAMEDTUPLE = collections.namedtuple("_NAMEDTUPLE", "a")
_TUPLEGETTER: Final = type(_NAMEDTUPLE.__dict__["a"])
# Every namedtuple class gets a __repr__ made from this code object: it formats
# the fields with %r (fields are checked like any tuple's elements).
_NAMEDTUPLE_REPR: Final = _NAMEDTUPLE.__repr__.__code__
_MISSING: Final = introspect.MISSING
_GA: Final = "__getattribute__"

NoneType = type(None)


def an(tp: type) -> str:
    """``"a str"``, ``"an int"``: a type's name with its article."""
    name = tname(tp)
    return f"an {name}" if name[:1] in "aeiouAEIOU" else f"a {name}"


# -- trusted types -------------------------------------------------------------

(
    K_SIMPLE,  # int, float, complex, bool, str, bytes, None
    K_ATOM,  # other value types: bytearray, range, Fraction, UUID, date, timedelta...
    K_TZ,  # datetime, time: their tzinfo may be application code
    K_DECIMAL,  # operations read and set flags of the thread's decimal context
    K_SEQ,  # list, tuple, deque
    K_MAP,  # dict, OrderedDict, defaultdict, Counter
    K_SET,  # set, frozenset
    K_VIEW,  # dict views
    K_EXC,  # exceptions: identity, text from their args
    K_ENUM,  # enum members without a data type: identity, text from their value
    K_OPAQUE,  # functions, modules, classes...: identity only
    K_OBJECT,  # anything else taking object's behaviour: identity, truthy
    K_SECRET,  # a Secret: presence tests only
) = range(13)
_CONTAINER_KINDS: Final = frozenset({K_SEQ, K_MAP, K_SET, K_VIEW})
_NUMBER_KINDS: Final = frozenset({K_SIMPLE, K_DECIMAL, K_ATOM})

_SIMPLE_TYPES: Final = (int, bool, float, complex, str, bytes, NoneType)
SIMPLE_IDS: Final = frozenset(map(id, _SIMPLE_TYPES))
_NUMBER_IDS: Final = frozenset(map(id, (int, bool, float, complex)))
_ARG_IDS: Final = frozenset(map(id, (int, bool, float, str, bytes, NoneType)))

# id(type) -> (kind, base, dirty categories, reasons). Trusted types live as
# long as the interpreter, so their ids are never reused.
Info = tuple[int, type, int, dict[int, str]]
_TRUSTED: dict[int, Info] = {}
_NO_REASONS: dict[int, str] = {}


def _trust(kind: int, *kinds: type, dirty: int = 0) -> None:
    for tp in kinds:
        reasons = {bit: f"{tname(tp)} code" for bit in (EQ, ORDER, DISPLAY) if dirty & bit}
        _TRUSTED[id(tp)] = (kind, tp, dirty, reasons)


_trust(K_SIMPLE, *_SIMPLE_TYPES)
_trust(
    K_ATOM,
    bytearray,
    range,
    slice,
    fractions.Fraction,
    uuid.UUID,
    _dt.date,
    _dt.timedelta,
    _dt.timezone,
    zoneinfo.ZoneInfo,
    type(...),
    type(NotImplemented),
)
_trust(K_TZ, _dt.datetime, _dt.time)
_trust(K_DECIMAL, decimal.Decimal)
_trust(K_SEQ, list, tuple, collections.deque)
_trust(K_MAP, dict, collections.OrderedDict, collections.defaultdict, collections.Counter)
_trust(K_SET, set, frozenset)
_od = collections.OrderedDict()
_trust(
    K_VIEW,
    *{type({}.keys()), type({}.values()), type({}.items())},
    *{type(_od.keys()), type(_od.values()), type(_od.items())},
)
_ITEMS_VIEWS: Final = frozenset(map(id, (type({}.items()), type(_od.items()))))
_EXCEPTIONS = [
    v for v in vars(builtins).values() if isinstance(v, type) and issubclass(v, BaseException)
]
_trust(K_EXC, *_EXCEPTIONS)
_trust(
    K_OPAQUE,
    type,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodWrapperType,
    types.WrapperDescriptorType,
    types.MethodDescriptorType,
    types.ClassMethodDescriptorType,
    _GETSET,
    MEMBER,
    property,
    types.FrameType,
    types.TracebackType,
    types.GeneratorType,
    types.CoroutineType,
    types.AsyncGeneratorType,
    enum.EnumMeta,
    abc.ABCMeta,
)
# Their text runs code: a bound method shows repr(self), a module its loader's
# repr. Bound methods also compare and hash their __func__, which can be any
# callable object.
_trust(K_OPAQUE, types.ModuleType, classmethod, staticmethod, dirty=DISPLAY)
_trust(K_OPAQUE, types.MethodType, dirty=DISPLAY | EQ)
# Code objects compare their constants, cells their contents.
_trust(K_OPAQUE, types.CodeType, types.CellType, dirty=EQ | ORDER)
_trust(K_OBJECT, object)
_trust(K_SECRET, Secret, dirty=ALL)
# Attribute reads are generic; equality and text compare and show the values.
_trust(K_OBJECT, types.SimpleNamespace, dirty=EQ | ORDER | DISPLAY)
_ENUM_BASES = [
    getattr(enum, n) for n in ("Enum", "ReprEnum", "IntEnum", "StrEnum") if hasattr(enum, n)
]
_trust(K_ENUM, *_ENUM_BASES)
# Standard library classes written in Python that look attributes of ``self``
# up by name: a subclass could redefine any of them.
_PY_TRUSTED: Final = frozenset(map(id, (fractions.Fraction, uuid.UUID, collections.Counter)))
_TEXT_BASES: Final = frozenset({str, bytes, bytearray})
_SEQ_LIMITS: dict[type, int] = {
    str: MAX_TEXT,
    bytes: MAX_TEXT,
    bytearray: MAX_TEXT,
    list: MAX_ITEMS,
    tuple: MAX_ITEMS,
    collections.deque: MAX_ITEMS,
}
_INT_BASES: Final = frozenset({int, bool})
_SAFE_TZ_IDS: Final = frozenset(map(id, (NoneType, _dt.timezone, zoneinfo.ZoneInfo)))
_TZ_GET: dict[type, Callable[[Any], Any]] = {
    _dt.datetime: _dt.datetime.__dict__["tzinfo"].__get__,
    _dt.time: _dt.time.__dict__["tzinfo"].__get__,
}
ARGS_GET: Final = introspect.exc_args
_FACTORY_GET: Final = collections.defaultdict.__dict__["default_factory"].__get__


# Builtins whose C code, on a subclass, calls the subclass's own dunders for
# more than the container protocol (probed on 3.10 to 3.13 with recording
# subclasses): set's repr iterates it, deque's ==, <, repr, + and * iterate it
# and + and * build a new instance of the subclass, dict's | reads items
# through __getitem__, and OrderedDict's repr (3.12+) and | too.
_REACHED_BY_C: Final[dict[int, dict[str, int]]] = {
    id(set): {"__iter__": DISPLAY, "__len__": DISPLAY},
    id(frozenset): {"__iter__": DISPLAY, "__len__": DISPLAY},
    id(collections.deque): {
        "__iter__": EQ | ORDER | ARITH | DISPLAY,
        "__len__": ARITH | DISPLAY,
        "__init__": ARITH,
        "__new__": ARITH,
    },
    id(dict): {"__getitem__": ARITH},
    id(collections.OrderedDict): {
        "__getitem__": ARITH | DISPLAY,
        "__init__": ARITH,
        "__new__": ARITH,
    },
    id(collections.defaultdict): {"__getitem__": ARITH, "__init__": ARITH, "__new__": ARITH},
}

# id(type) -> (type, mro, (namespace, size) of its untrusted classes, info)
_INFO: dict[int, tuple[type, tuple[type, ...], tuple[tuple[Any, int], ...], Info]] = {}


def type_info(tp: type) -> Info:
    """``(kind, base, dirty, reasons)`` of a type: how the sandbox treats its
    values. ``base`` is the trusted class whose behaviour applies (``str`` for
    a str subclass), ``dirty`` the categories that application code defines,
    ``reasons`` the offending definition per category (``"Money.__eq__"``).
    """
    info = _TRUSTED.get(id(tp))
    if info is not None:
        return info
    entry = _INFO.get(id(tp))
    if entry is not None and entry[0] is tp and entry[1] is MRO_OF(tp):
        # A class namespace that gained or lost a name (a dunder assigned
        # later) is classified again; so is a class whose __bases__ changed.
        for ns, size in entry[2]:
            if len(ns) != size:
                break
        else:
            return entry[3]
    mro = MRO_OF(tp)
    spaces = tuple((ns, len(ns)) for ns in (_TYPE_DICT(k) for k in mro if id(k) not in _TRUSTED))
    info = _classify(mro)
    if len(_INFO) >= _CACHE_SIZE:
        _INFO.clear()
    _INFO[id(tp)] = (tp, mro, spaces, info)
    return info


def _classify(mro: tuple[type, ...]) -> Info:
    kind = -1
    base: type = object
    enum_based = False
    python_trusted = False
    trusted_spaces = []
    untrusted = []
    for klass in mro:
        t = _TRUSTED.get(id(klass))
        if t is None:
            untrusted.append(klass)
            continue
        trusted_spaces.append(_TYPE_DICT(klass))
        if id(klass) in _PY_TRUSTED:
            python_trusted = True
        if t[0] == K_ENUM:
            enum_based = True
        elif kind < 0 and t[0] != K_OBJECT:
            kind, base = t[0], klass
    if kind < 0:
        kind = K_ENUM if enum_based else K_OBJECT
    dirty = _TRUSTED[id(base)][2]
    reasons: dict[int, str] = dict(_TRUSTED[id(base)][3])

    def mark(bits: int, reason: str) -> None:
        nonlocal dirty
        for bit in (EQ, ORDER, ARITH, CONTAINER, TRUTH, DISPLAY, CONVERT):
            if bits & bit and not dirty & bit:
                reasons[bit] = reason
        dirty |= bits

    own: list[tuple[str, str]] = []
    reached = _REACHED_BY_C.get(id(base))
    for klass in untrusted:
        name_k = tname(klass)
        if not introspect.is_heap_type(klass):
            mark(ALL, f"{name_k}, a class implemented by an extension module,")
            continue
        if not introspect.clean_namespace(klass):
            mark(ALL, f"{name_k} (a name in its namespace is not a str)")
            continue
        for name, value in _TYPE_DICT(klass).items():
            if name[:2] == "__" and name[-2:] == "__":
                if reached is not None and name in reached:
                    mark(reached[name], f"{name_k}.{name}, which {tname(base)}'s own code calls,")
                if name in _HARMLESS:
                    continue
                if name == "__hash__" and value is None:
                    continue  # unhashable: raises TypeError in C
                # A builtin slot copied into the class (IntEnum.__format__ is int.__format__).
                if any(q.get(name, _MISSING) is value for q in trusted_spaces):
                    continue
                if (
                    name == "__repr__"
                    and type(value) is types.FunctionType
                    and value.__code__ is _NAMEDTUPLE_REPR
                    and type(mro[0]) is type
                ):
                    continue
                bits = _DUNDERS.get(name)
                if bits is None:
                    # callable() reads the type's call slot; nothing runs.
                    if not callable(value) and not _has_get(value):
                        continue
                    bits = ALL
                mark(bits, f"{name_k}.{name}")
            else:
                own.append((name, name_k))
    if untrusted and python_trusted:
        mark(ALL, f"a subclass of {tname(base)}")
    for name, name_k in own:
        if enum_based and name[:1] == "_" and name[-1:] == "_":
            continue  # enum hooks such as _missing_: only run when members are looked up
        if any(name in q for q in trusted_spaces):
            mark(ALL, f"{name_k}.{name} (it redefines {tname(base)}.{name})")
            break
    return (kind, base, dirty, reasons)


def refuse(tp: type, info: Info, bits: int, where: str, value: Any = None) -> NoReturn:
    """Raise NotEvaluated for a value of ``tp`` whose ``bits`` are application
    code; RedactedRead for a Secret (``value``)."""
    if info[0] == K_SECRET:
        raise redacted_read(value.name if type(value) is Secret else "?", where)
    # The most specific category first: `<` needs ORDER and EQ, report ORDER.
    for bit in (ORDER, ARITH, CONVERT, CONTAINER, TRUTH, DISPLAY, EQ):
        if bits & bit:
            what, hint = _CATEGORY_TEXT[bit]
            reason = info[3].get(bit) or f"{tname(tp)} code"
            raise NotEvaluated(
                f"{where}: not evaluated, {what} {an(tp)} runs {reason} (application code); {hint}"
            )
    raise NotEvaluated(f"{where}: not evaluated, {an(tp)} is application code")


# -- budget --------------------------------------------------------------------


_WORK_TEXT: Final = f"about {WORK_BUDGET * cost.NS_PER_STEP / 1e6:g} ms of CPU"
_MEMORY_TEXT: Final = f"{MEMORY_BUDGET >> 20} MiB"


def charge(B: cost.Budget, steps: int, where: str) -> None:
    """Take ``steps`` from the evaluation's work budget ``B[0]``, before the
    work is done; BudgetExceeded past it."""
    left = B[0] - steps
    B[0] = left
    if left < 0:
        alone = f": this operation alone costs about {steps} steps" if steps > WORK_BUDGET else ""
        raise BudgetExceeded(
            f"work budget of {WORK_BUDGET} steps exhausted in {where}{alone}; one evaluation "
            f"may use {_WORK_TEXT}: test smaller values or a simpler expression"
        )


def produce(B: cost.Budget, nbytes: int, where: str) -> None:
    """Take ``nbytes`` from the evaluation's memory budget ``B[2]``, before the
    result is built; BudgetExceeded past it."""
    left = B[2] - nbytes
    B[2] = left
    if left < 0:
        alone = f": this result alone would take {nbytes} bytes" if nbytes > MEMORY_BUDGET else ""
        raise BudgetExceeded(
            f"memory budget of {_MEMORY_TEXT} exhausted in {where}{alone}; one evaluation "
            f"may build {_MEMORY_TEXT} of values in all: test smaller values"
        )


def too_big(where: str, what: str) -> NoReturn:
    raise BudgetExceeded(f"{where}: not evaluated, {what}")


# -- deep checks ---------------------------------------------------------------

# What ``check_value``, ``check_deep`` and the checks built on them report
# about the values an operation will hand to native code; ``guarded`` runs it.
F_DECIMAL: Final = 1  # a Decimal: run under a private copy of the context
F_FRACTION: Final = 2  # a Fraction: its Python operators test the other operand against ABCs
F_META: Final = 4  # a value whose class has a metaclass of application code
#: Decimal's comparisons and Fraction's operators ask ``isinstance(other,
#: numbers.Rational)`` of the other operand (and read ``other.numerator``):
#: an ABC check that hashes and compares the operand's class in the ABC's
#: caches, through its metaclass's ``__hash__`` and ``__eq__``.
_CALLS_BACK: Final = F_DECIMAL | F_FRACTION
#: Metaclasses whose class hashing and equality are type's own.
_TRUSTED_META: Final = frozenset(map(id, (type, abc.ABCMeta, enum.EnumMeta)))


def guarded(
    flags: int, B: cost.Budget | None, where: str, fn: Callable[..., Any], /, *args: Any, **kw: Any
) -> Any:
    """``fn(*args, **kw)``: native code of trusted types over checked values,
    run so that it neither calls application code nor changes the host.

    ``flags`` are those the checks of the values gave. A Decimal or Fraction
    meeting a value whose class has an application metaclass is refused
    (NotEvaluated): their native code would call that metaclass's hooks. A
    Decimal operation runs under a copy of the thread's decimal context, so
    the host's flags (``Inexact``, ``FloatOperation``...) stay as they were,
    and is first charged to ``B`` for the ints among ``args`` (and inside
    them) that it may convert to Decimals (``B`` None: ``args`` hold none).
    Callers test ``flags`` first: with none, they call ``fn`` themselves.
    """
    if flags & _CALLS_BACK and flags & F_META:
        raise NotEvaluated(
            f"{where}: not evaluated, a Decimal or Fraction operation would run the hooks of "
            "a class whose metaclass is application code (the numbers ABC check hashes and "
            "compares it); compare plain numbers"
        )
    if flags & _CALLS_BACK and abc_checks_run_code(numbers.Number):
        raise NotEvaluated(
            f"{where}: not evaluated, a Decimal or Fraction operation checks its operands "
            "against the numbers ABCs, which would run an application class's "
            "__subclasshook__ (or metaclass) registered under them; compare plain numbers"
        )
    if flags & F_DECIMAL:
        if B is not None:
            _charge_conversions(args, B, where, flags)
        with decimal.localcontext():
            return fn(*args, **kw)
    return fn(*args, **kw)


def _charge_conversions(values: Iterable[Any], B: cost.Budget, where: str, flags: int) -> None:
    """Charge what a Decimal operation (``flags`` has F_DECIMAL) over ``values``
    may spend converting exact numbers: every int of more than 64 bits, and
    both parts of every Fraction, among them and in their builtin containers,
    to a Decimal, quadratic in its size. The containers' elements were
    charged by the checks that gave ``flags``; walking them again is not."""
    if not flags & F_DECIMAL:
        return
    stack = list(values)
    seen: set[int] = set()
    while stack:
        v = stack.pop()
        tp = type(v)
        if tp is str or tp is float or tp is decimal.Decimal or v is None:
            continue
        base = int if tp is int else type_info(tp)[1]
        if base in _INT_BASES:
            bits = _bits(v)
            if bits > 64:
                charge(B, cost.int_to_decimal(bits), where)
                produce(B, cost.int_bytes(bits), where)
        elif base is fractions.Fraction:
            stack.append(v.numerator)
            stack.append(v.denominator)
        elif type_info(tp)[0] in _CONTAINER_KINDS:
            if id(v) in seen:
                continue
            seen.add(id(v))
            if type_info(tp)[0] == K_MAP:
                stack.extend(_DKEYS(v))
                stack.extend(_DVALUES(v))
            elif id(tp) in _ITEMS_VIEWS:
                for pair in v:
                    stack.extend(pair)
            else:
                stack.extend(_iter_stored(v, base))


def _check_tz(v: Any, base: type, where: str) -> None:
    tz = _TZ_GET[base](v)
    if id(type(tz)) not in _SAFE_TZ_IDS:
        raise NotEvaluated(
            f"{where}: not evaluated, the {tname(type(v))} has a tzinfo of type "
            f"{tname(type(tz))} (application code); compare naive or UTC values"
        )


def check_value(v: Any, need: int, where: str) -> tuple[Info, int]:
    """Check one value (not its elements) for ``need``; its info and flags."""
    tp = type(v)
    info = type_info(tp)
    if info[2] & need:
        refuse(tp, info, info[2] & need, where, v)
    kind = info[0]
    if kind == K_TZ:
        _check_tz(v, info[1], where)
    meta = type(tp)
    flags = 0 if meta is type or id(meta) in _TRUSTED_META else F_META
    if kind == K_DECIMAL:
        return info, flags | F_DECIMAL
    if info[1] is fractions.Fraction:
        return info, flags | F_FRACTION
    return info, flags


def _simple(items: Iterable[Any]) -> bool:
    """Are all ``items`` plain scalars? (About 20 ns per element.)"""
    for e in items:
        t = type(e)
        if t is not str and t is not int and id(t) not in SIMPLE_IDS:
            return False
    return True


#: Steps per value that a check loop visits in Python (about 0.4 us each),
#: against one per element that is only glanced at.
_VISIT_STEPS: Final = 8


def check_deep(x: Any, need: int, B: cost.Budget, where: str) -> int:
    """Raise NotEvaluated unless ``x`` and everything reachable from it through
    builtin containers take the ``need`` behaviours from trusted code. Charges
    one step per element; returns the F_ flags of what it saw (for ``guarded``).
    """
    if id(type(x)) in SIMPLE_IDS:
        return 0
    flags = 0
    secrecy = B[1]
    stack = [x]
    pop = stack.pop
    push = stack.append
    seen: set[int] = set()
    while stack:
        v = pop()
        tp = type(v)
        if id(tp) in SIMPLE_IDS:
            continue
        info = type_info(tp)
        if info[2] & need:
            refuse(tp, info, info[2] & need, where, v)
        meta = type(tp)
        if meta is not type and id(meta) not in _TRUSTED_META:
            flags |= F_META
        kind = info[0]
        if kind in _CONTAINER_KINDS:
            # Containers are walked once: shared and self-referencing ones too.
            if id(v) in seen:
                continue
            seen.add(id(v))
            base = info[1]
            charge(B, length(v, base) + 1, where)
            if secrecy is not None and _keyed(kind, tp, base):
                secrecy.check_container(v, kind, base, where)
            if kind == K_MAP:
                parts: tuple[Iterable[Any], ...] = (_DKEYS(v), _DVALUES(v))
            elif id(tp) in _ITEMS_VIEWS:
                parts = tuple(zip(*v, strict=True)) if v else ()
            else:
                # The stored elements, through the builtin's own C iterator:
                # a subclass's __iter__ is never called.
                parts = (_iter_stored(v, base),)
            before = len(stack)
            for part in parts:
                for e in part:
                    t = type(e)
                    if t is not str and t is not int and id(t) not in SIMPLE_IDS:
                        push(e)
            if len(stack) > before:  # each of those is checked in this loop
                charge(B, _VISIT_STEPS * (len(stack) - before), where)
        elif kind == K_TZ:
            _check_tz(v, info[1], where)
        elif kind == K_DECIMAL:
            flags |= F_DECIMAL
        elif info[1] is fractions.Fraction:
            flags |= F_FRACTION
        elif info[1] is slice:
            # Slices compare and hash (3.12+) through their parts.
            push(v.start)
            push(v.stop)
            push(v.step)
    return flags


def _keyed(kind: int, tp: type, base: type) -> bool:
    """Can a container of this kind hold values under names (keys, fields)?"""
    return kind in (K_MAP, K_VIEW) or (kind == K_SEQ and tp is not base)


def check_keys(d: Any, B: cost.Budget, where: str) -> int:
    """Check the keys of a dict for a lookup: stored keys of the same hash are
    compared with ``==``, which must not reach application code."""
    keys = _DKEYS(d)
    charge(B, len(keys) // KEY_SCAN_RATE + 1, where)
    if _simple(keys):
        return 0
    flags = 0
    for k in keys:
        flags |= check_deep(k, EQ, B, where)
    return flags


class _Leave:
    """Marks, on check_display's stack, the end of a container's elements."""

    __slots__ = ("key",)

    def __init__(self, key: int) -> None:
        self.key = key


#: Characters of text per step for escaping non-ASCII text (repr, ascii).
_ESCAPE_RATE: Final = 4
#: Characters one escape can become at most (``\U0001f600``).
_ESCAPE_WIDTH: Final = 10


def _quoted_size(
    v: Any, tp: type, B: cost.Budget, where: str, escape_all: bool
) -> tuple[int, bool]:
    """Characters of repr() (or ascii(), ``escape_all``) of a str or bytes, and
    whether the text may be wide; charges the escaping of non-ASCII text."""
    n = length(v, tp)
    if n > MAX_TEXT:  # before any pass over it
        too_big(where, f"the text would exceed {MAX_TEXT} characters")
    if tp is not str and not inherits(tp, str):
        return 4 * n + 3, False  # bytes: \xNN at most
    if str.isascii(v):
        if str.isprintable(v):
            return n + 2 + str.count(v, "\\") + str.count(v, "'"), False
        return 4 * n + 2, False
    charge(B, n // _ESCAPE_RATE, where)
    if not escape_all and str.isprintable(v):
        return n + 2 + str.count(v, "\\") + str.count(v, "'"), True
    return _ESCAPE_WIDTH * n + 2, not escape_all


def check_display(x: Any, B: cost.Budget, where: str, conversion: int = -1, extra: int = 0) -> int:
    """Check that str()/repr()/ascii()/format() of ``x`` runs trusted code only,
    then charge the work and the size of the text (plus ``extra`` characters
    of padding from a format spec) to ``B``; returns F_DECIMAL if a Decimal is
    inside. ``conversion`` is ``ord("r")`` or ``ord("a")`` for repr and ascii.

    A container shared by several others is counted every time it is
    printed; one that contains itself is printed once, as ``[...]``.
    """
    escape_all = conversion == ord("a")
    if conversion == ord("s"):
        conversion = -1
    flags = 0
    size = extra
    wide = False
    secrecy = B[1]
    stack: list[Any] = [x]
    pop = stack.pop
    push = stack.append
    open_containers: set[int] = set()
    top = True
    while stack:
        v = pop()
        tp = type(v)
        if tp is _Leave:
            open_containers.discard(v.key)
            continue
        if tp is str or tp is bytes:
            if top and conversion < 0:
                size += len(v)
                wide = wide or (tp is str and not str.isascii(v))
            else:
                chars, w = _quoted_size(v, tp, B, where, escape_all)
                size += chars
                wide = wide or w
        else:
            info = type_info(tp)
            kind = info[0]
            if info[2] & DISPLAY:
                refuse(tp, info, info[2] & DISPLAY, where, v)
            if info[1] in _INT_BASES:
                bits = int.bit_length(v)
                if bits > MAX_INT_TEXT_BITS:
                    too_big(where, f"converting a {bits}-bit int to text is too costly")
                if bits > 64:
                    charge(B, cost.int_to_text(bits), where)
                size += bits // 3 + 2
            elif info[1] in _TEXT_BASES:
                if top and conversion < 0 and info[1] is str:
                    size += length(v, str)
                    wide = wide or not str.isascii(v)
                else:
                    chars, w = _quoted_size(v, info[1], B, where, escape_all)
                    size += chars
                    wide = wide or w
            elif kind in _CONTAINER_KINDS:
                key = id(v)
                if key in open_containers:
                    size += 5  # printed as [...] or {...}
                    continue
                open_containers.add(key)
                push(_Leave(key))
                n = length(v, info[1])
                charge(B, _VISIT_STEPS * n + 1, where)  # each element goes through this loop
                if secrecy is not None and _keyed(kind, tp, info[1]):
                    secrecy.check_container(v, kind, info[1], where)
                size += 2 * n + 2
                if kind == K_MAP:
                    stack.extend(_DKEYS(v))
                    stack.extend(_DVALUES(v))
                    if info[1] is collections.defaultdict:
                        push(_FACTORY_GET(v))
                elif id(tp) in _ITEMS_VIEWS or (kind == K_VIEW and info[1] is not tp):
                    for pair in v:
                        stack.extend(pair)
                else:
                    stack.extend(_iter_stored(v, info[1]))
            else:
                charge(B, 1, where)
                size += 32
                if kind == K_TZ:
                    _check_tz(v, info[1], where)
                elif kind == K_DECIMAL:
                    flags |= F_DECIMAL
                elif kind == K_EXC:
                    # str() of an exception formats its args and, for some
                    # builtins, fields such as SyntaxError.msg.
                    stack.extend(introspect.text_parts(v))
                elif kind == K_ENUM or (info[2] == 0 and _is_enum(tp)):
                    push(_enum_value(v))
                elif info[1] is slice:
                    push((v.start, v.stop, v.step))
                elif info[1] is range:
                    size += 40
        top = False
        if size > MAX_TEXT:
            too_big(where, f"the text would exceed {MAX_TEXT} characters")
    produce(B, cost.text_bytes(size, wide), where)
    return flags


def _is_enum(tp: type) -> bool:
    return inherits(tp, enum.Enum)


def _enum_value(member: Any) -> Any:
    ns = introspect.instance_dict(member)
    if ns is None:
        return None
    v = introspect.scan_for(ns, "_value_")
    return None if v is _MISSING else v


# -- attributes ----------------------------------------------------------------

# Per-type layout for attribute reads:
# (type, mro, namespaces to scan for the name, namespaces to scan for a
#  __getattribute__ override, instance-dict getter, mode, introspect.Shape)
Layout = tuple[type, tuple[type, ...], tuple[Any, ...], tuple[Any, ...], Any, int, Any]
MODE_FAST: Final = 0  # instances with a standard __dict__: the closure's fast path
MODE_MODULE: Final = 1  # exactly a module: its __dict__
MODE_SLOW: Final = 2  # everything else: get_attribute()
_LAYOUTS: dict[int, Layout] = {}


def layout(tp: type) -> Layout:
    """How attributes of ``tp`` instances are read (cached; see Layout). The
    instance dict and namespaces come from ``introspect.shape``."""
    mro = MRO_OF(tp)
    entry = _LAYOUTS.get(id(tp))
    if entry is not None and entry[0] is tp and entry[1] is mro:
        return entry
    found = introspect.shape(tp)
    scan = []
    untrusted = []
    for klass in mro:
        if klass is object:
            continue
        ns = _TYPE_DICT(klass)
        scan.append(ns)
        if id(klass) not in _TRUSTED:
            untrusted.append(ns)
    if tp is types.ModuleType:
        mode = MODE_MODULE
    elif (
        not found.clean
        or found.dict_computed
        or is_in(type, mro)
        or len(scan) > len(untrusted)
        or any(_GA in ns for ns in untrusted)
    ):
        # Classes, objects with a computed __dict__, subclasses of builtin
        # types (whose namespaces hold __getattribute__ slots), classes
        # overriding __getattribute__ and namespaces that cannot be searched
        # take the slow path.
        mode = MODE_SLOW
    else:
        mode = MODE_FAST
    entry = (tp, mro, tuple(scan), tuple(untrusted), found.dict_get, mode, found)
    if len(_LAYOUTS) >= _CACHE_SIZE:
        _LAYOUTS.clear()
    _LAYOUTS[id(tp)] = entry
    return entry


NO_LAYOUT: Final[Layout] = (NoneType, (), (), (), None, MODE_SLOW, None)


FOUND, ABSENT, COMPUTED, METHOD = range(4)

_SAFE_GETSET_OWNERS: Final = frozenset(
    map(
        id,
        (
            int,
            bool,
            float,
            complex,
            decimal.Decimal,
            _dt.date,
            _dt.datetime,
            _dt.time,
            _dt.timedelta,
            _dt.timezone,
            BaseException,
            range,
            slice,
        ),
    )
)
# Properties of trusted standard library classes: pure functions of the value.
_SAFE_PROPERTIES: Final = frozenset(
    (id(owner), name)
    for owner, names in (
        (fractions.Fraction, ("numerator", "denominator")),
        (
            uuid.UUID,
            (
                "bytes",
                "bytes_le",
                "fields",
                "time_low",
                "time_mid",
                "time_hi_version",
                "clock_seq_hi_variant",
                "clock_seq_low",
                "time",
                "clock_seq",
                "node",
                "hex",
                "urn",
                "variant",
                "version",
            ),
        ),
    )
    for name in names
)
_METHOD_TYPES: Final = frozenset(
    map(
        id,
        (
            types.FunctionType,
            types.BuiltinFunctionType,
            types.MethodDescriptorType,
            types.WrapperDescriptorType,
            types.ClassMethodDescriptorType,
            classmethod,
            staticmethod,
        ),
    )
)


def _describe_descriptor(descr: Any, owner: str, name: str) -> tuple[int, str]:
    kind = type(descr)
    if id(kind) in _METHOD_TYPES:
        return METHOD, (
            f"{owner}.{name} is a method: not evaluated, calls are limited to builtin "
            "functions and methods of builtin types"
        )
    if inherits(kind, property):
        return COMPUTED, f"{owner}.{name} is a property: not evaluated, it could change the service"
    if tname(kind) == "cached_property":
        return COMPUTED, (
            f"{owner}.{name} is a cached_property not computed yet: not evaluated, "
            "computing it runs application code"
        )
    return COMPUTED, (
        f"{owner}.{name} is computed by {an(kind)} descriptor: not evaluated, it runs code"
    )


def _is_data_descriptor(descr: Any) -> bool:
    kind = type(descr)
    return (
        static_lookup(kind, "__set__") is not _MISSING
        or static_lookup(kind, "__delete__") is not _MISSING
    )


def _has_get(value: Any) -> bool:
    kind = type(value)
    if id(kind) in SIMPLE_IDS:
        return False
    return static_lookup(kind, "__get__") is not _MISSING


def lookup_attribute(o: Any, name: str) -> tuple[int, Any]:
    """Static attribute lookup, like ``inspect.getattr_static`` but stricter.

    ``(FOUND, value)``; ``(ABSENT, message)``; ``(METHOD, reason)`` for a
    method; ``(COMPUTED, reason)`` when only running code (a property, a
    descriptor, ``__getattr__``...) could produce the value, or when a
    namespace holds a key that a lookup would compare with its own ``__eq__``.
    """
    tp = type(o)
    lay = layout(tp)
    T = tname(tp)
    if not lay[6].clean:
        return COMPUTED, (
            f"a class of {T} has a namespace key that is not a str: not evaluated, "
            "looking names up in it could run that key's code"
        )
    for ns in lay[3]:
        if _GA in ns:
            return COMPUTED, (
                f"{T} overrides __getattribute__: not evaluated, reading its attributes "
                "runs its code"
            )
    if lay[5] == MODE_MODULE:
        return _module_attribute(o, name)
    if is_in(type, lay[1]):
        return _class_attribute(o, name, lay)
    found = _MISSING
    owner: type = object
    for klass in lay[1]:
        ns = _TYPE_DICT(klass)
        if name in ns:
            found = ns[name]
            owner = klass
            break
    getter = lay[4]
    if found is not _MISSING:
        kind = type(found)
        if kind is MEMBER or kind is _TUPLEGETTER:
            try:
                return FOUND, found.__get__(o, tp)
            except (AttributeError, IndexError):
                return ABSENT, f"attribute {name!r} of {an(tp)} is not set"
        if kind is _GETSET:
            if id(found.__objclass__) in _SAFE_GETSET_OWNERS:
                return FOUND, found.__get__(o, tp)
            return COMPUTED, (
                f"{tname(owner)}.{name} is computed by C code: not evaluated, only plain "
                "data is read"
            )
        if owner is enum.Enum and name in ("name", "value"):
            ns = introspect.instance_dict(o)
            v = (
                introspect.scan_for(ns, "_name_" if name == "name" else "_value_")
                if ns is not None
                else _MISSING
            )
            if v is not _MISSING:
                return FOUND, v
        if kind is property and tp is owner and (id(owner), name) in _SAFE_PROPERTIES:
            return FOUND, found.__get__(o, tp)
        if _is_data_descriptor(found):
            return _describe_descriptor(found, tname(owner), name)
    if lay[6].dict_computed:
        return COMPUTED, f"{T}.__dict__ is computed by code: not evaluated"
    d = _stored_dict(o, getter)
    if d is not None:
        if not introspect.str_keys(d):
            return COMPUTED, (
                f"the __dict__ of {an(tp)} has a key that is not a str: not evaluated, "
                "looking a name up would compare it with that key's code"
            )
        v = _DGET(d, name, _MISSING)
        if v is not _MISSING:
            return FOUND, v
    if found is not _MISSING:
        if _has_get(found):
            return _describe_descriptor(found, tname(owner), name)
        return FOUND, found
    if tp is not types.ModuleType and is_in(types.ModuleType, lay[1]) and getter is not None:
        return _module_attribute(o, name)
    if static_lookup(tp, "__getattr__") is not _MISSING:
        return COMPUTED, (
            f"{an(tp)} has no attribute {name!r} in its __dict__ and {T} defines __getattr__: "
            "not evaluated, it runs application code"
        )
    return ABSENT, f"{an(tp)} has no attribute {name!r}{_attribute_hint(d)}"


def _stored_dict(o: Any, getter: Any) -> dict[Any, Any] | None:
    """The instance dict through its C slot (maybe a dict subclass), or None."""
    if getter is None:
        return None
    d = getter(o)
    return d if inherits(type(d), dict) else None


def _attribute_hint(d: dict[Any, Any] | None) -> str:
    if d is None:
        return ""
    size = length(d, dict)
    if not size:
        return ""
    names = []
    for k in _DKEYS(d):
        if type(k) is str:
            names.append(k)
            if len(names) == 12:
                break
    more = ", ..." if size > len(names) else ""
    return f"; it has: {', '.join(names)}{more}"


def _module_attribute(m: Any, name: str) -> tuple[int, Any]:
    ns = MODULE_DICT(m)
    if not inherits(type(ns), dict):
        return COMPUTED, "the module has no plain namespace: not evaluated"
    v = _DGET(ns, name, _MISSING)
    if v is not _MISSING:
        return FOUND, v
    mod = introspect.scan_for(ns, "__name__")
    label = repr(mod) if type(mod) is str else "the module"
    if "__getattr__" in ns:
        return COMPUTED, (
            f"module {label} has no {name!r} yet and defines __getattr__: not evaluated, "
            "it runs application code"
        )
    return ABSENT, f"module {label} has no attribute {name!r}"


def _class_attribute(cls: Any, name: str, lay: Layout) -> tuple[int, Any]:
    """``cls.name`` for a class: the metaclass's data descriptors first, then
    the class's own MRO, like ``type.__getattribute__``, without calling them."""
    T = tname(cls)
    meta = _MISSING
    for klass in lay[1]:
        ns = _TYPE_DICT(klass)
        if name in ns:
            meta = ns[name]
            break
    if meta is not _MISSING and _is_data_descriptor(meta):
        return _describe_descriptor(meta, tname(lay[0]), name)
    owner = introspect.defining_class(cls, name)
    if owner is not None:
        if not introspect.clean_namespace(owner):
            return COMPUTED, (
                f"class {tname(owner)} has a namespace key that is not a str: not evaluated"
            )
        v = _TYPE_DICT(owner)[name]
        if _has_get(v):
            return _describe_descriptor(v, tname(owner), name)
        return FOUND, v
    if meta is not _MISSING:
        if _has_get(meta):
            return _describe_descriptor(meta, tname(lay[0]), name)
        return FOUND, meta
    if static_lookup(lay[0], "__getattr__") is not _MISSING:
        return COMPUTED, (
            f"class {T} has no attribute {name!r} and its metaclass defines __getattr__: "
            "not evaluated"
        )
    return ABSENT, f"class {T} has no attribute {name!r}"


def class_attribute_site(cls: Any, name: str) -> tuple[Any, ...] | None:
    """Where ``cls.name`` lives, for the attribute node's cache of class reads
    (``Status.PAID``): ``(cls, namespace, type of the value, namespaces that
    must not define the name)``, or None when the read is not a plain value
    of a class with a trusted metaclass whose namespaces can be searched."""
    meta = type(cls)
    if id(meta) not in _TRUSTED or not is_in(type, MRO_OF(meta)):
        return None
    shadows = [_TYPE_DICT(k) for k in MRO_OF(meta)]
    for klass in MRO_OF(cls):
        if not introspect.clean_namespace(klass):
            return None
        ns = _TYPE_DICT(klass)
        if name in ns:
            value = ns[name]
            if _has_get(value):
                return None
            return (cls, ns, type(value), tuple(shadows))
        shadows.append(ns)
    return None


def get_attribute(o: Any, name: str, where: str) -> Any:
    """``o.name`` read statically; NotEvaluated or EvaluationFailure otherwise."""
    opaque(o, where)
    status, value = lookup_attribute(o, name)
    if status == FOUND:
        return value
    if status == ABSENT:
        raise EvaluationFailure(f"{where}: {value}")
    raise NotEvaluated(f"{where}: {value}")


# -- truth ---------------------------------------------------------------------


def truth(v: Any, where: str) -> bool:
    """``bool(v)`` when no application ``__bool__``/``__len__`` is involved."""
    if v is True:
        return True
    if v is False or v is None:
        return False
    tp = type(v)
    if id(tp) in SIMPLE_IDS:
        return bool(v)
    info = type_info(tp)
    if info[0] == K_SECRET:
        return truth(v.value, where)  # presence: allowed on a secret
    if info[2] & TRUTH:
        refuse(tp, info, info[2] & TRUTH, where, v)
    return bool(v)


# -- operators -----------------------------------------------------------------


def compare(
    opf: Callable[[Any, Any], Any], need: int, a: Any, b: Any, B: cost.Budget, where: str
) -> Any:
    """``opf(a, b)`` for ==, !=, <, <=, >, >=. Elements are checked only when
    both sides are containers (or slices, which compare their parts):
    otherwise no element comparison can happen."""
    ia, fa = check_value(a, need, where)
    if type(b) is type(a) and not fa and ia[0] != K_TZ:
        ib, fb = ia, 0
    else:
        ib, fb = check_value(b, need, where)
    flags = fa | fb
    if (ia[0] in _CONTAINER_KINDS or ia[1] is slice) and (
        ib[0] in _CONTAINER_KINDS or ib[1] is slice
    ):
        flags |= check_deep(a, need, B, where) | check_deep(b, need, B, where)
    if flags:
        if flags & F_FRACTION and need & ORDER:
            _fraction_order_cost(a, b, ia[1], ib[1], B, where)
        return guarded(flags, B, where, opf, a, b)
    return opf(a, b)


def contains(x: Any, c: Any, B: cost.Budget, where: str) -> bool:
    """``x in c`` without calling application ``__contains__``/``__eq__``/``__hash__``."""
    tc = type(c)
    info = type_info(tc)
    if info[2] & CONTAINER:
        refuse(tc, info, info[2] & CONTAINER, where, c)
    kind, base = info[0], info[1]
    if inherits(tc, type):
        raise EvaluationFailure(f"{where}: `in` on a class is not evaluated")
    flags = check_value(x, EQ | CONVERT if base in _TEXT_BASES else EQ, where)[1]
    if base in _TEXT_BASES:
        pass
    elif base is range:
        if type(x) is not int and type(x) is not bool:
            # range.__contains__ compares element by element for non-ints.
            _charge_len(B, c, where)
            flags |= check_deep(x, EQ, B, where)
    elif kind == K_MAP:
        flags |= check_deep(x, EQ, B, where) | check_keys(c, B, where)
    elif kind in _CONTAINER_KINDS:
        flags |= check_deep(x, EQ, B, where) | check_deep(c, EQ, B, where)
    else:
        # Never the native `in` on anything else: a generator would be run
        # (and consumed) by it.
        raise EvaluationFailure(
            f"{where}: `in` needs a builtin container, str, bytes or range, not {an(tc)}"
        )
    if flags:
        if kind == K_MAP:  # a lookup converts the key, not the mapping's values
            _charge_conversions((x,), B, where, flags)
            return guarded(flags, None, where, operator.contains, c, x)
        return guarded(flags, B, where, operator.contains, c, x)
    return x in c


def _charge_len(B: cost.Budget, c: Any, where: str) -> int:
    try:
        n = len(c)
    except OverflowError:
        too_big(where, "the container is too large to iterate")
    charge(B, n, where)
    return n


def _index(v: Any, where: str) -> int:
    """An int-like value as an int (bool and int subclasses without their own
    conversions included)."""
    tp = type(v)
    if tp is int:
        return v
    info = type_info(tp)
    if info[2] & CONVERT:
        refuse(tp, info, info[2] & CONVERT, where, v)
    if info[1] not in _INT_BASES:
        raise EvaluationFailure(f"{where}: {an(tp)} is not an integer")
    return operator.index(v)


def _bits(v: Any) -> int:
    return int.bit_length(v)


def _int_guard(bits: int, where: str) -> None:
    if bits > MAX_INT_BITS:
        too_big(where, f"the result would have about {bits} bits (limit {MAX_INT_BITS})")


def _size_guard(op: str, a: Any, b: Any, ia: Info, ib: Info, B: cost.Budget, where: str) -> None:
    """Check and charge ``a <op> b`` by the sizes of its operands, before it runs."""
    ba, bb = ia[1], ib[1]
    if ba in _INT_BASES and bb in _INT_BASES:
        _int_cost(op, a, b, B, where)
    elif op == "*":
        if ba in _SEQ_LIMITS and bb in _INT_BASES:
            _repeat_cost(a, ba, length(a, ba) * max(_index(b, where), 0), B, where)
        elif bb in _SEQ_LIMITS and ba in _INT_BASES:
            _repeat_cost(b, bb, length(b, bb) * max(_index(a, where), 0), B, where)
        elif ba is fractions.Fraction or bb is fractions.Fraction:
            _fraction_cost(op, a, b, B, where)
    elif op == "+" and ba in _SEQ_LIMITS and bb in _SEQ_LIMITS:
        _repeat_cost(a, ba, length(a, ba) + length(b, bb), B, where, b)
    elif op == "**":
        _pow_guard(a, b, ia, ib, B, where)
    elif ba is fractions.Fraction or bb is fractions.Fraction:
        _fraction_cost(op, a, b, B, where)
    elif op in _SET_OPS and ia[0] in _CONTAINER_KINDS and ib[0] in _CONTAINER_KINDS:
        na, nb = length(a, ba), length(b, bb)
        n = na + nb if op in ("|", "^") else na if op == "-" else min(na, nb)
        produce(B, cost.hashed_bytes(n), where)


def _int_cost(op: str, a: Any, b: Any, B: cost.Budget, where: str) -> None:
    """Charge int arithmetic by operand bits: the work, and the bytes of the result."""
    xa, xb = _bits(a), _bits(b)
    out = max(xa, xb) + 1
    if op == "*":
        out = xa + xb
        _int_guard(out, where)
        steps = cost.multiply(xa, xb)
    elif op in ("//", "%"):
        steps = cost.divide(xa, xb)
    elif op == "/":
        steps, out = cost.linear(out), 0  # a float
    elif op == "**":
        exponent = _index(b, where)
        if exponent <= 0 or xa <= 1:
            steps, out = 1, 64  # a float, or a power of 0, 1 or -1
        else:
            out = int(exponent * math.log2(abs(a))) + 1
            _int_guard(out, where)
            steps = cost.power(out, exponent)
    elif op == "<<":
        shift = _index(b, where)
        if shift > 0:
            out = xa + shift
            _int_guard(out, where)
        steps = cost.linear(out)
    else:  # + - >> & | ^: one pass over the digits
        steps = cost.linear(out)
    charge(B, steps, where)
    produce(B, cost.int_bytes(out), where)


def _repeat_cost(
    seq: Any, base: type, n: int, B: cost.Budget, where: str, other: Any = None
) -> None:
    """Check and charge a str, bytes or sequence of ``n`` elements built from
    ``seq`` (and ``other``, for a concatenation)."""
    if n > _SEQ_LIMITS[base]:
        too_big(where, f"the {tname(base)} would have {n} elements")
    if base is str:
        wide = not str.isascii(seq) or (inherits(type(other), str) and not str.isascii(other))
        produce(B, cost.text_bytes(n, wide), where)
    elif base in _TEXT_BASES:
        produce(B, cost.bytes_bytes(n), where)
    else:
        produce(B, cost.sequence_bytes(n), where)


def _exact_bits(v: Any, base: type) -> int:
    """Bits of an int, or of the larger part of a Fraction; 0 for other values."""
    if base in _INT_BASES:
        return _bits(v)
    if base is fractions.Fraction:
        return max(_bits(v.numerator), _bits(v.denominator))
    return 0


def _fraction_order_cost(a: Any, b: Any, ba: type, bb: type, B: cost.Budget, where: str) -> None:
    """Charge ordering a Fraction and an exact number: by cross products
    (``a.numerator * b.denominator``...), whose sizes are the operands'."""
    xa, xb = _exact_bits(a, ba), _exact_bits(b, bb)
    if xa > 64 and xb > 64:
        charge(B, 2 * cost.multiply(xa, xb), where)
        produce(B, 2 * cost.int_bytes(xa + xb), where)


def _fraction_bits(v: Any) -> int:
    if type(v) is fractions.Fraction:
        return max(_bits(v.numerator), _bits(v.denominator))
    if type(v) is int or type(v) is bool:
        return _bits(v)
    return 64


def _fraction_cost(op: str, a: Any, b: Any, B: cost.Budget, where: str) -> None:
    """Fraction arithmetic multiplies and reduces (gcd) numerators and denominators."""
    xa, xb = _fraction_bits(a), _fraction_bits(b)
    if op == "*":
        _int_guard(xa + xb, where)
    bits = max(xa, xb)
    charge(B, 4 * cost.multiply(bits, bits) + cost.divide(2 * bits, bits), where)
    produce(B, 2 * cost.int_bytes(xa + xb), where)


def _pow_guard(a: Any, b: Any, ia: Info, ib: Info, B: cost.Budget, where: str) -> None:
    ba, bb = ia[1], ib[1]
    exponent: int | None = None
    if bb in _INT_BASES:
        exponent = _index(b, where)
    elif bb is fractions.Fraction and b.denominator == 1:
        exponent = b.numerator
    if exponent is None:
        return  # float, complex or Decimal exponents give bounded results
    if ba in _INT_BASES:
        _int_cost("**", a, exponent, B, where)
    elif ba is fractions.Fraction:
        bits = _fraction_bits(a) * abs(exponent)
        _int_guard(bits, where)
        charge(B, 2 * cost.power(bits, abs(exponent)), where)
        produce(B, 2 * cost.int_bytes(bits), where)


ARITH_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
    "**": operator.pow,
    "<<": operator.lshift,
    ">>": operator.rshift,
    "&": operator.and_,
    "|": operator.or_,
    "^": operator.xor,
    "@": operator.matmul,
}
_SET_OPS: Final = frozenset({"|", "&", "^", "-"})


def arithmetic(op: str, a: Any, b: Any, B: cost.Budget, where: str) -> Any:
    """``a <op> b`` for operands whose arithmetic is trusted, sizes checked first."""
    ia, fa = check_value(a, ARITH | CONVERT, where)
    ib, fb = check_value(b, ARITH | CONVERT, where)
    flags = fa | fb
    if op == "%" and ia[1] in _TEXT_BASES:
        raise EvaluationFailure(f"{where}: %-formatting is not evaluated; use an f-string")
    _size_guard(op, a, b, ia, ib, B, where)
    ka, kb = ia[0], ib[0]
    if ia[1] is collections.Counter or ib[1] is collections.Counter:
        flags |= check_deep(a, ALL, B, where) | check_deep(b, ALL, B, where)
    elif op in _SET_OPS and (ka in _CONTAINER_KINDS or kb in _CONTAINER_KINDS):
        flags |= check_deep(a, EQ, B, where) | check_deep(b, EQ, B, where)
    elif op == "+" and ka in _CONTAINER_KINDS and kb in _CONTAINER_KINDS:
        charge(B, (length(a, ia[1]) + length(b, ib[1])) // 64, where)
    opf = ARITH_OPS[op]
    if flags:
        return guarded(flags, B, where, opf, a, b)
    return opf(a, b)


def unary(op: str, v: Any, where: str) -> Any:
    """``-v``, ``+v`` or ``~v`` for numbers with trusted arithmetic."""
    info, flags = check_value(v, ARITH | CONVERT, where)
    if op == "~" and info[1] is bool:
        return -int(v) - 1  # ~True warns on 3.12+ (a warning hook is application code)
    fn = operator.neg if op == "-" else operator.pos if op == "+" else operator.invert
    if flags:
        return guarded(flags, None, where, fn, v)
    return fn(v)


def subscript(c: Any, k: Any, B: cost.Budget, where: str) -> Any:
    """``c[k]`` for builtin sequences and mappings (never a ``__missing__`` factory)."""
    tc = type(c)
    info = type_info(tc)
    kind, base = info[0], info[1]
    if info[2] & CONTAINER:
        refuse(tc, info, info[2] & CONTAINER, where, c)
    if kind == K_MAP:
        flags = check_deep(k, EQ, B, where) | check_keys(c, B, where)
        if flags:
            _charge_conversions((k,), B, where, flags)  # the key: a lookup reads no values
            v = guarded(flags, None, where, _DGET, c, k, _MISSING)
        else:
            v = _DGET(c, k, _MISSING)
        if v is _MISSING:
            if base is collections.Counter:
                return 0
            note = (
                " (a defaultdict's factory is not run)" if base is collections.defaultdict else ""
            )
            raise EvaluationFailure(f"{where}: key {short_repr(k)} not found{note}{_keys_hint(c)}")
        return v
    if inherits(tc, type):
        return _class_subscript(c, k, where)
    if kind == K_SEQ or base in _TEXT_BASES or base is range:
        tk = type(k)
        if tk is slice:
            _check_slice(k, where)
            if base is not range:  # a slice of a range is a range
                n = len(range(length(c, base))[k])
                charge(B, n // 64, where)
                if base is str:
                    produce(B, cost.text_bytes(n, not str.isascii(c)), where)
                elif base in _TEXT_BASES:
                    produce(B, cost.bytes_bytes(n), where)
                else:
                    produce(B, cost.sequence_bytes(n), where)
        elif tk is not int:
            k = _index(k, where)  # an exact int: the message below formats it
        if kind == K_SEQ and tc is not base and B[1] is not None:
            # A named tuple read by position: its field's name decides.
            name = B[1].field_name(tc, None if tk is slice else k)
            if name is not None:
                if tk is slice:
                    raise redacted_read(name, where, f" (a field of {tname(tc)})")
                return Secret(name, c[k])
        try:
            return c[k]
        except IndexError:
            raise EvaluationFailure(
                f"{where}: index {short_repr(k)} out of range for {an(tc)} of length "
                f"{length(c, base)}"
            ) from None
    if kind in (K_OPAQUE, K_OBJECT, K_EXC, K_ENUM, K_ATOM, K_TZ, K_DECIMAL, K_SIMPLE):
        raise EvaluationFailure(f"{where}: {an(tc)} is not subscriptable")
    return c[k]  # sets and views: TypeError in C


def _class_subscript(cls: Any, k: Any, where: str) -> Any:
    if type(cls) is enum.EnumMeta and type(k) is str:
        members = _TYPE_DICT(cls).get("_member_map_")
        if type(members) is dict:
            v = _DGET(members, k, _MISSING)
            if v is not _MISSING:
                return v
            raise EvaluationFailure(f"{where}: {tname(cls)} has no member {k!r}")
    raise EvaluationFailure(
        f"{where}: subscripting a class is not evaluated (it could run __class_getitem__)"
    )


def _check_slice(s: slice, where: str) -> None:
    for part in (s.start, s.stop, s.step):
        if part is not None and type(part) is not int and type(part) is not bool:
            _index(part, where)


def make_slice(lo: Any, hi: Any, step: Any, where: str) -> slice:
    """``slice(lo, hi, step)`` with int or None parts only."""
    for part in (lo, hi, step):
        if part is not None and type(part) is not int and type(part) is not bool:
            _index(part, where)
    return slice(lo, hi, step)


def short_repr(v: Any) -> str:
    """repr() of a scalar, truncated; a type name for anything else."""
    if id(type(v)) in SIMPLE_IDS:
        if type(v) is int and _bits(v) > 256:
            return f"<{_bits(v)}-bit int>"
        text = repr(v)
        return text if len(text) <= 60 else text[:57] + "..."
    return f"<{tname(type(v))}>"


def _keys_hint(d: Any) -> str:
    size = length(d, dict)
    if size > 2000:
        return f" among {size} keys"
    keys = [k for k in _DKEYS(d) if type(k) is str or type(k) is int][:10]
    if not keys:
        return ""
    more = ", ..." if size > len(keys) else ""
    return f"; keys: {', '.join(short_repr(k) for k in keys)}{more}"


# -- text ----------------------------------------------------------------------


def check_spec(spec: Any, where: str) -> int:
    """A format spec with bounded width and precision (at most 4 digits each);
    returns the characters of padding and precision it can add."""
    if type(spec) is not str:
        raise EvaluationFailure(f"{where}: the format spec must be a str")
    if len(spec) > 64:
        too_big(where, "the format spec is longer than 64 characters")
    run = 0
    number = 0
    padding = 0
    for ch in spec:
        if "0" <= ch <= "9":
            run += 1
            number = number * 10 + ord(ch) - 48
            if run > 4:
                too_big(where, "widths and precisions in format specs are limited to 9999")
        else:
            padding += number
            run = number = 0
    return padding + number


def format_value(v: Any, conversion: int, spec: str, B: cost.Budget, where: str) -> str:
    """An f-string field: ``format(v, spec)`` after an optional !s/!r/!a conversion."""
    tp = type(v)
    if tp is str and not spec and conversion < 0:
        return v
    padding = check_spec(spec, where) if spec else 0
    flags = check_display(v, B, where, conversion, padding)
    if conversion == ord("s"):
        v = str(v)
    elif conversion == ord("r"):
        v = repr(v)
    elif conversion == ord("a"):
        v = ascii(v)
    if flags:
        return guarded(flags, None, where, format, v, spec)
    return format(v, spec)


# -- builtin functions ---------------------------------------------------------

Builtin = Callable[[tuple[Any, ...], dict[str, Any], cost.Budget, str], Any]


#: Characters of a str iterated per step, and the bytes of a character object.
_CHAR_ELEMENT_RATE: Final = 4
_CHAR_OBJECT_BYTES: Final = 64


def _iterable(v: Any, need: int, B: cost.Budget, where: str, fn: str) -> int:
    """Check a value iterated by a builtin: a builtin container, str, bytes or
    range; its elements checked for ``need`` and the iteration charged."""
    tp = type(v)
    info, flags = check_value(v, CONTAINER, where)
    kind, base = info[0], info[1]
    if kind in _CONTAINER_KINDS:
        if need:
            flags |= check_deep(v, need, B, where)  # one step per element
        else:
            charge(B, length(v, base), where)
            secrecy = B[1]
            if secrecy is not None and _keyed(kind, tp, base):
                secrecy.check_container(v, kind, base, where)
        return flags
    if base in _TEXT_BASES:
        n = length(v, base)
        if base is str:
            # One str per character: cached for Latin-1, new objects beyond.
            charge(B, n // _CHAR_ELEMENT_RATE, where)
            if not str.isascii(v):
                produce(B, n * _CHAR_OBJECT_BYTES, where)
        else:
            charge(B, n // 64, where)
        return flags
    if base is range:
        _charge_len(B, v, where)
        return flags
    # An application iterable was refused above (its __iter__ is application
    # code); generators and other iterators are never consumed.
    raise EvaluationFailure(
        f"{where}: {fn}() needs a builtin container, str, bytes or range, not {an(tp)}"
    )


def _len(args: tuple[Any, ...], kw: dict[str, Any], B: cost.Budget, where: str) -> int:
    (v,) = args
    tp = type(v)
    info = type_info(tp)
    if info[2] & CONTAINER:
        refuse(tp, info, info[2] & CONTAINER, where, v)
    kind, base = info[0], info[1]
    if kind in _CONTAINER_KINDS or base in _TEXT_BASES:
        return length(v, base)  # overrides of __len__ were refused above
    if base is range:
        try:
            return len(v)
        except OverflowError:
            raise EvaluationFailure(f"{where}: the range is too large for len()") from None
    raise EvaluationFailure(f"{where}: {an(tp)} has no len()")


def _text(conv: Callable[[Any], str]) -> Builtin:
    def impl(args: tuple[Any, ...], kw: dict[str, Any], B: cost.Budget, where: str) -> str:
        if not args:
            return ""
        v = args[0]
        if conv is str and (len(args) > 1 or kw):
            return _decode(v, args[1:], kw, B, where)
        if conv is str and type(v) is str:
            return v  # str() of a str is that str: nothing is built
        conversion = -1 if conv is str else ord("r") if conv is repr else ord("a")
        flags = check_display(v, B, where, conversion)
        if flags:
            return guarded(flags, None, where, conv, v)
        return conv(v)

    return impl


_CODECS: Final = frozenset(
    {"utf-8", "utf8", "ascii", "latin-1", "latin1", "iso-8859-1", "utf-16", "utf-32"}
)
_ERRORS: Final = frozenset(
    {"strict", "ignore", "replace", "backslashreplace", "surrogateescape", "xmlcharrefreplace"}
)


def _codec_args(args: tuple[Any, ...], kw: dict[str, Any], where: str) -> tuple[str, str]:
    names = ("encoding", "errors")
    values = dict(zip(names, args, strict=False))
    for key, value in kw.items():
        if key not in names:
            raise EvaluationFailure(f"{where}: unexpected keyword argument {key!r}")
        values[key] = value
    encoding = values.get("encoding", "utf-8")
    errors = values.get("errors", "strict")
    if type(encoding) is not str or encoding.lower().replace("_", "-") not in _CODECS:
        raise EvaluationFailure(
            f"{where}: encoding must be one of {', '.join(sorted(_CODECS))} "
            "(other codecs are looked up in a registry the application can extend)"
        )
    if type(errors) is not str or errors not in _ERRORS:
        raise EvaluationFailure(f"{where}: errors must be one of {', '.join(sorted(_ERRORS))}")
    return encoding, errors


def _decode(v: Any, args: tuple[Any, ...], kw: dict[str, Any], B: cost.Budget, where: str) -> str:
    if type(v) is not bytes and type(v) is not bytearray:
        raise EvaluationFailure(f"{where}: str() with an encoding needs bytes")
    encoding, errors = _codec_args(args, kw, where)
    _codec_cost(v, bytes, B, where)
    return str(v, encoding, errors)


def _int(args: tuple[Any, ...], kw: dict[str, Any], B: cost.Budget, where: str) -> int:
    if not args:
        return 0
    v = args[0]
    base = kw.get("base", args[1] if len(args) > 1 else None)
    b = check_value(v, CONVERT, where)[0][1]
    if b in _TEXT_BASES:
        n = length(v, b)
        if n > MAX_PARSE:
            too_big(where, f"parsing {n} characters as an int is too costly")
        charge(B, cost.text_to_int(n), where)
        produce(B, cost.int_bytes(4 * n), where)
        return int(v) if base is None else int(v, _index(base, where))
    if base is not None:
        raise EvaluationFailure(f"{where}: int() can't convert non-string with explicit base")
    if b is decimal.Decimal:
        if v.is_finite() and v.adjusted() > MAX_INT_TEXT_BITS // 3:
            too_big(where, "the Decimal is too large to convert to an int")
        return guarded(F_DECIMAL, None, where, int, v)
    if b is fractions.Fraction:
        _fraction_cost("//", v, 1, B, where)
    if b in _INT_BASES or b is float or b is fractions.Fraction:
        return int(v)
    raise EvaluationFailure(f"{where}: int() of {an(type(v))} is not supported")


def _float(args: tuple[Any, ...], kw: dict[str, Any], B: cost.Budget, where: str) -> float:
    if not args:
        return 0.0
    (v,) = args
    b = check_value(v, CONVERT, where)[0][1]
    if b in _TEXT_BASES and length(v, b) > MAX_PARSE:
        too_big(where, f"parsing {length(v, b)} characters as a float is too costly")
    if b in _TEXT_BASES or b in _INT_BASES or b is float or b is fractions.Fraction:
        return float(v)
    if b is decimal.Decimal:
        return guarded(F_DECIMAL, None, where, float, v)
    raise EvaluationFailure(f"{where}: float() of {an(type(v))} is not supported")


def _bool(args: tuple[Any, ...], kw: dict[str, Any], B: cost.Budget, where: str) -> bool:
    return truth(args[0], where) if args else False


def _number(v: Any, where: str, fn: str, extra: tuple[type, ...] = ()) -> int:
    info, flags = check_value(v, ARITH | CONVERT, where)
    b = info[1]
    if not (
        b in _INT_BASES or b in (float, complex, decimal.Decimal, fractions.Fraction) or b in extra
    ):
        raise EvaluationFailure(f"{where}: {fn}() needs a number, not {an(type(v))}")
    return flags


def _abs(args: tuple[Any, ...], kw: dict[str, Any], B: cost.Budget, where: str) -> Any:
    (v,) = args
    flags = _number(v, where, "abs", (_dt.timedelta,))
    if flags:
        return guarded(flags, B, where, abs, v)
    return abs(v)


def _round(args: tuple[Any, ...], kw: dict[str, Any], B: cost.Budget, where: str) -> Any:
    v = args[0]
    nd = kw.get("ndigits", args[1] if len(args) > 1 else None)
    flags = _number(v, where, "round")
    if type(v) is complex:
        raise EvaluationFailure(f"{where}: round() of a complex is not defined")
    if nd is None:
        if type(v) is float and not math.isfinite(v):
            raise EvaluationFailure(f"{where}: cannot round {v!r} to an int")
        if flags:
            return guarded(flags, B, where, round, v)
        return round(v)
    n = _index(nd, where)
    if abs(n) > MAX_NDIGITS:
        too_big(where, f"round() to {n} digits is limited to +-{MAX_NDIGITS}")
    if n < 0 and (type(v) is int or type(v) is bool):
        ten = 4 * -n  # bits of 10 ** -n, rounded up
        charge(B, cost.power(ten, -n) + cost.divide(_bits(v), ten), where)
        produce(B, 2 * cost.int_bytes(max(_bits(v), ten)), where)
    if flags:
        return guarded(flags, B, where, round, v, n)
    return round(v, n)


def _elements(args: tuple[Any, ...], need: int, B: cost.Budget, where: str, fn: str) -> Any:
    if len(args) == 1:
        it = args[0]
        flags = _iterable(it, need, B, where, fn)
    else:
        it = args
        charge(B, len(args), where)
        flags = check_deep(args, need, B, where)
    return it, flags


def _minmax(fn: Callable[..., Any], label: str) -> Builtin:
    def impl(args: tuple[Any, ...], kw: dict[str, Any], B: cost.Budget, where: str) -> Any:
        it, flags = _elements(args, EQ | ORDER, B, where, label)
        if "default" in kw and len(args) > 1:
            raise EvaluationFailure(f"{where}: {label}() takes default= with one iterable only")
        if flags:
            return guarded(flags, B, where, fn, it, **kw)
        return fn(it, **kw)

    return impl


_SUMMABLE: Final = (decimal.Decimal, fractions.Fraction, _dt.timedelta)


def _sum(args: tuple[Any, ...], kw: dict[str, Any], B: cost.Budget, where: str) -> Any:
    it = args[0]
    start = kw.get("start", args[1] if len(args) > 1 else 0)
    flags = _iterable(it, 0, B, where, "sum")
    flags |= _number(start, where, "sum", _SUMMABLE)
    base = type_info(type(it))[1]
    if not _numbers(_iter_stored(it, base)):
        for e in _iter_stored(it, base):
            flags |= _number(e, where, "sum", _SUMMABLE)
    if flags:
        return guarded(flags, B, where, sum, it, start)
    return sum(it, start)


def _numbers(items: Iterable[Any]) -> bool:
    for e in items:
        t = type(e)
        if t is not int and t is not float and t is not bool and t is not complex:
            return False
    return True


def _sorted(args: tuple[Any, ...], kw: dict[str, Any], B: cost.Budget, where: str) -> list[Any]:
    (it,) = args
    flags = _iterable(it, EQ | ORDER, B, where, "sorted")
    reverse = kw.get("reverse", False)
    if type(reverse) is not bool and type(reverse) is not int:
        raise EvaluationFailure(f"{where}: sorted(reverse=) takes a bool")
    charge(B, _size(it), where)  # the sort itself
    produce(B, cost.sequence_bytes(_size(it)), where)
    if flags:
        return guarded(flags, B, where, sorted, it, reverse=reverse)
    return sorted(it, reverse=reverse)


def _size(it: Any) -> int:
    try:
        return length(it, type_info(type(it))[1])
    except (TypeError, OverflowError):
        return MAX_ITEMS


def _truths(fn: Callable[[Any], bool], label: str) -> Builtin:
    def impl(args: tuple[Any, ...], kw: dict[str, Any], B: cost.Budget, where: str) -> bool:
        (it,) = args
        _iterable(it, 0, B, where, label)
        info = type_info(type(it))
        if info[0] in _CONTAINER_KINDS:
            if not _simple(_stored(it, info)):
                for e in _stored(it, info):
                    tp = type(e)
                    if id(tp) not in SIMPLE_IDS:
                        ie = type_info(tp)
                        if ie[2] & TRUTH:
                            refuse(tp, ie, ie[2] & TRUTH, where, e)
            return fn(_stored(it, info))
        return fn(it)

    return impl


def _stored(it: Any, info: Info) -> Iterable[Any]:
    """The stored elements of a builtin container (a dict's keys), read by C code."""
    return _DKEYS(it) if info[0] == K_MAP else _iter_stored(it, info[1])


def _classes(classinfo: Any, where: str) -> list[type]:
    out: list[type] = []
    stack = [classinfo]
    while stack:
        c = stack.pop()
        tc = type(c)
        if tc is tuple:
            stack.extend(c)
        elif tc is types.UnionType:
            stack.extend(c.__args__)
        elif inherits(tc, type):
            out.append(c)
        else:
            raise EvaluationFailure(
                f"{where}: isinstance() takes a class, a tuple of classes or an X | Y union, "
                f"not {an(tc)}"
            )
        if len(out) > 64:
            too_big(where, "isinstance() with more than 64 classes")
    return out


def _abc_table() -> dict[tuple[int, int], bool]:
    """isinstance answers for the builtin value types against the standard
    abstract classes, computed once at import: at evaluation time an ABC's
    checks could reach application hooks (``__subclasshook__``, register())."""
    table = {}
    abcs = [getattr(collections.abc, n) for n in collections.abc.__all__]
    abcs += [numbers.Number, numbers.Complex, numbers.Real, numbers.Rational, numbers.Integral]
    for key, info in _TRUSTED.items():
        if info[0] in (K_OPAQUE, K_OBJECT, K_EXC, K_ENUM):
            continue
        for a in abcs:
            if isinstance(a, type):
                table[(key, id(a))] = issubclass(info[1], a)
    return table


_ABCS: Final = _abc_table()


def _isinstance(args: tuple[Any, ...], kw: dict[str, Any], B: cost.Budget, where: str) -> bool:
    v, classinfo = args
    opaque(v, where)
    tp = type(v)
    mro = MRO_OF(tp)
    for cls in _classes(classinfo, where):
        if is_in(cls, mro):
            return True
        meta = type(cls)
        if meta is type or meta is enum.EnumMeta:
            continue
        known = _ABCS.get((id(tp), id(cls)))
        if known is not None:
            if known:
                return True
            continue
        hook = static_lookup(meta, "__instancecheck__")
        if hook is not _MISSING and hook is not type.__dict__["__instancecheck__"]:
            raise NotEvaluated(
                f"{where}: not evaluated, {tname(cls)} decides isinstance() with code "
                f"({tname(meta)}.__instancecheck__), and {an(tp)} does not inherit from it"
            )
    return False


def _type(args: tuple[Any, ...], kw: dict[str, Any], B: cost.Budget, where: str) -> type:
    opaque(args[0], where)
    return type(args[0])


def _hasattr(args: tuple[Any, ...], kw: dict[str, Any], B: cost.Budget, where: str) -> bool:
    o, name = args
    opaque(o, where)
    if type(name) is not str:
        opaque(name, where)
        raise EvaluationFailure(f"{where}: hasattr() needs a str name")
    if name[:2] == "__" and name[-2:] == "__":
        raise EvaluationFailure(f"{where}: hasattr() of dunder names is not evaluated")
    status, value = lookup_attribute(o, name)
    if status == ABSENT:
        return False
    if status == COMPUTED:
        raise NotEvaluated(f"{where}: {value}")
    return True  # a value or a method: getattr() would succeed


def _divmod(args: tuple[Any, ...], kw: dict[str, Any], B: cost.Budget, where: str) -> Any:
    a, b = args
    flags = _number(a, where, "divmod", (_dt.timedelta,)) | _number(
        b, where, "divmod", (_dt.timedelta,)
    )
    if (type(a) is int or type(a) is bool) and (type(b) is int or type(b) is bool):
        _int_cost("//", a, b, B, where)
        produce(B, cost.int_bytes(_bits(b)), where)  # the remainder
    if flags:
        return guarded(flags, B, where, divmod, a, b)
    return divmod(a, b)


def _pow(args: tuple[Any, ...], kw: dict[str, Any], B: cost.Budget, where: str) -> Any:
    if len(args) == 2:
        return arithmetic("**", args[0], args[1], B, where)
    a, b, m = (_index(x, where) for x in args)
    if max(_bits(b), _bits(m)) > 16_384:
        too_big(where, "pow() with a modulus is limited to 16384-bit exponents and moduli")
    charge(B, cost.divide(_bits(a), _bits(m)) + cost.modular_power(_bits(b), _bits(m)), where)
    produce(B, cost.int_bytes(_bits(m)), where)
    return pow(a, b, m)


def _radix(fn: Callable[[int], str]) -> Builtin:
    def impl(args: tuple[Any, ...], kw: dict[str, Any], B: cost.Budget, where: str) -> str:
        n = _index(args[0], where)
        bits = _bits(n)
        _int_guard(bits, where)
        charge(B, cost.linear(bits), where)
        produce(B, cost.text_bytes(bits + 3, False), where)
        return fn(n)

    return impl


def _chr(args: tuple[Any, ...], kw: dict[str, Any], B: cost.Budget, where: str) -> str:
    return chr(_index(args[0], where))


def _ord(args: tuple[Any, ...], kw: dict[str, Any], B: cost.Budget, where: str) -> int:
    (c,) = args
    if type(c) is not str and type(c) is not bytes and type(c) is not bytearray:
        opaque(c, where)
        raise EvaluationFailure(f"{where}: ord() needs a str or bytes of length 1")
    return ord(c)


def _collection(fn: Callable[..., Any], need: int) -> Builtin:
    label = fn.__name__

    def impl(args: tuple[Any, ...], kw: dict[str, Any], B: cost.Budget, where: str) -> Any:
        if not args:
            return fn()
        (it,) = args
        flags = _iterable(it, need, B, where, label)
        if type(it) is range and len(it) > MAX_ITEMS:
            too_big(where, f"the {label} would have {len(it)} elements")
        n = _size(it)
        produce(B, cost.hashed_bytes(n) if need else cost.sequence_bytes(n), where)
        if flags:
            return guarded(flags, B, where, fn, it)
        return fn(it)

    return impl


def _range(args: tuple[Any, ...], kw: dict[str, Any], B: cost.Budget, where: str) -> range:
    return range(*(_index(a, where) for a in args))


def _callable(args: tuple[Any, ...], kw: dict[str, Any], B: cost.Budget, where: str) -> bool:
    opaque(args[0], where)
    return callable(args[0])  # reads the type's call slot only


def _hash(args: tuple[Any, ...], kw: dict[str, Any], B: cost.Budget, where: str) -> int:
    (v,) = args
    check_deep(v, EQ, B, where)
    return hash(v)


def _id(args: tuple[Any, ...], kw: dict[str, Any], B: cost.Budget, where: str) -> int:
    opaque(args[0], where)
    return id(args[0])


#: Builtin functions an expression may call: name -> (implementation,
#: min args, max args, keywords).
BUILTINS: dict[str, tuple[Builtin, int, int, frozenset[str]]] = {
    "len": (_len, 1, 1, frozenset()),
    "str": (_text(str), 0, 3, frozenset({"encoding", "errors"})),
    "repr": (_text(repr), 1, 1, frozenset()),
    "ascii": (_text(ascii), 1, 1, frozenset()),
    "int": (_int, 0, 2, frozenset({"base"})),
    "float": (_float, 0, 1, frozenset()),
    "bool": (_bool, 0, 1, frozenset()),
    "abs": (_abs, 1, 1, frozenset()),
    "round": (_round, 1, 2, frozenset({"ndigits"})),
    "min": (_minmax(min, "min"), 1, 64, frozenset({"default"})),
    "max": (_minmax(max, "max"), 1, 64, frozenset({"default"})),
    "sum": (_sum, 1, 2, frozenset({"start"})),
    "sorted": (_sorted, 1, 1, frozenset({"reverse"})),
    "any": (_truths(any, "any"), 1, 1, frozenset()),
    "all": (_truths(all, "all"), 1, 1, frozenset()),
    "isinstance": (_isinstance, 2, 2, frozenset()),
    "type": (_type, 1, 1, frozenset()),
    "hasattr": (_hasattr, 2, 2, frozenset()),
    "divmod": (_divmod, 2, 2, frozenset()),
    "pow": (_pow, 2, 3, frozenset()),
    "hex": (_radix(hex), 1, 1, frozenset()),
    "oct": (_radix(oct), 1, 1, frozenset()),
    "bin": (_radix(bin), 1, 1, frozenset()),
    "chr": (_chr, 1, 1, frozenset()),
    "ord": (_ord, 1, 1, frozenset()),
    "list": (_collection(list, 0), 0, 1, frozenset()),
    "tuple": (_collection(tuple, 0), 0, 1, frozenset()),
    "set": (_collection(set, EQ), 0, 1, frozenset()),
    "frozenset": (_collection(frozenset, EQ), 0, 1, frozenset()),
    "range": (_range, 1, 3, frozenset()),
    "callable": (_callable, 1, 1, frozenset()),
    "hash": (_hash, 1, 1, frozenset()),
    "id": (_id, 1, 1, frozenset()),
}

#: Builtin names an expression may read as values (isinstance(x, int)...).
BUILTIN_VALUES: dict[str, Any] = {name: getattr(builtins, name) for name in BUILTINS}
BUILTIN_VALUES.update(
    {
        name: getattr(builtins, name)
        for name in (
            (
                "bytes",
                "bytearray",
                "complex",
                "dict",
                "object",
                "slice",
                "Ellipsis",
                "NotImplemented",
            )
        )
    }
)
BUILTIN_VALUES.update({tname(e): e for e in _EXCEPTIONS})

# -- methods of builtin types ---------------------------------------------------

Method = Callable[[Any, tuple[Any, ...], dict[str, Any], cost.Budget, str], Any]


def _check_args(args: tuple[Any, ...], kw: dict[str, Any], where: str, label: str) -> None:
    for a in (*args, *kw.values()):
        if id(type(a)) in _ARG_IDS:
            continue
        if type(a) is tuple and len(a) <= 64 and all(id(type(x)) in _ARG_IDS for x in a):
            continue
        opaque(a, where)
        raise EvaluationFailure(
            f"{where}: arguments of {label}() must be str, bytes, int, float, bool, None "
            f"or tuples of them, not {an(type(a))}"
        )


def _plain_method(owner: type, name: str) -> Method:
    """A pure method of a builtin scalar type, called with scalar arguments only."""
    fn = static_lookup(owner, name)
    label = f"{tname(owner)}.{name}"

    def impl(
        recv: Any, args: tuple[Any, ...], kw: dict[str, Any], B: cost.Budget, where: str
    ) -> Any:
        if args or kw:
            _check_args(args, kw, where, label)
        return fn(recv, *args, **kw)

    return impl


#: str and bytes methods that build nothing sized (a bool, an int, ints).
_TEXT_SCANS: Final = frozenset(
    {"startswith", "endswith", "find", "rfind", "index", "rindex", "count"}
    | {n for n in dir(str) if n.startswith("is")}
)
#: Case mappings: up to three characters per character beyond ASCII (ß -> SS).
_TEXT_CASES: Final = frozenset({"upper", "lower", "casefold", "title", "capitalize", "swapcase"})
_TEXT_SPLITS: Final = frozenset({"split", "rsplit", "splitlines"})
#: Line boundaries of str.splitlines (bytes split at \n and \r only).
_ASCII_BREAKS: Final = "\n\r\x0b\x0c\x1c\x1d\x1e"
_WIDE_BREAKS: Final = "\x85\u2028\u2029"


def _text_method(owner: type, name: str) -> Method:
    """A pure str or bytes method, charged by the receiver's length (the scan)
    and by the size of what it builds."""
    if name in _TEXT_SPLITS:
        return _split_method(owner, name)
    fn = static_lookup(owner, name)
    label = f"{tname(owner)}.{name}"

    def impl(
        recv: Any, args: tuple[Any, ...], kw: dict[str, Any], B: cost.Budget, where: str
    ) -> Any:
        if args or kw:
            _check_args(args, kw, where, label)
        n = length(recv, owner)
        if name in _TEXT_SCANS:
            charge(B, n // (16 if name[:2] == "is" else 128), where)
        elif name in _TEXT_CASES:
            wide = _is_wide(recv)
            fast = not wide and name in {"upper", "lower"}
            charge(B, n // (64 if fast else 8), where)
            produce(B, _text_result_bytes(owner, 3 * n if wide else n, wide), where)
        elif name == "hex":
            charge(B, n // 64, where)
            produce(B, cost.text_bytes(3 * n, False), where)  # with separators
        else:  # strip, partition, removeprefix...: parts of the receiver
            charge(B, n // 128, where)
            produce(B, 3 * _text_result_bytes(owner, 0, False) + _text_bytes_of(recv), where)
        return fn(recv, *args, **kw)

    return impl


def _text_bytes_of(text: Any) -> int:
    if type(text) is str or inherits(type(text), str):
        return cost.text_bytes(length(text, str), not str.isascii(text))
    return cost.bytes_bytes(length(text, bytearray if inherits(type(text), bytearray) else bytes))


def _split_method(owner: type, name: str) -> Method:
    """split, rsplit and splitlines: charged per part before the parts are built."""
    fn = static_lookup(owner, name)
    count = static_lookup(owner, "count")
    label = f"{tname(owner)}.{name}"
    is_str = owner is str

    def impl(
        recv: Any, args: tuple[Any, ...], kw: dict[str, Any], B: cost.Budget, where: str
    ) -> Any:
        if args or kw:
            _check_args(args, kw, where, label)
        n = length(recv, owner)
        wide = _is_wide(recv)
        charge(B, n // (8 if wide else 128), where)  # counting separators
        if name == "splitlines":
            if is_str:
                breaks = _ASCII_BREAKS + (_WIDE_BREAKS if wide else "")
                parts = sum(count(recv, c) for c in breaks) + 1
            else:
                parts = count(recv, b"\n") + count(recv, b"\r") + 1
            _charge_parts(parts, n, wide, B, where)
            return fn(recv, *args, **kw)
        sep = args[0] if args else kw.get("sep")
        most = args[1] if len(args) > 1 else kw.get("maxsplit", -1)
        if type(most) is not int:
            return fn(recv, *args, **kw)  # TypeError, from the method itself
        if sep is not None:
            parts = count(recv, sep) + 1 if len(sep) else 1  # an empty sep: ValueError
            if most >= 0:
                parts = min(parts, most + 1)
            _charge_parts(parts, n, wide, B, where)
            return fn(recv, *args, **kw)
        # Whitespace: no cheap count, so split into no more parts than the
        # budget affords (the split is then paid for), and refuse if the
        # string has more.
        affordable = max(min(B[0], B[2] // 128), 1)
        limit = min(most if most >= 0 else n, affordable)
        result = fn(recv, None, limit)
        if len(result) > limit and (most < 0 or most > limit):
            rest = result[0] if name == "rsplit" else result[-1]
            if len(fn(rest, None, 1)) > 1:
                _charge_parts(n // 2 + 1, n, wide, B, where)
        _charge_parts(len(result), n, wide, B, where)
        return result

    return impl


def _charge_parts(parts: int, chars: int, wide: bool, B: cost.Budget, where: str) -> None:
    """Charge a split of ``chars`` characters into ``parts`` strings."""
    charge(B, parts, where)
    produce(B, cost.parts_bytes(parts, chars, wide), where)


def _sized_text_method(owner: type, name: str) -> Method:
    """center/ljust/rjust/zfill/expandtabs/replace: the result size is checked."""
    fn = static_lookup(owner, name)
    count = static_lookup(owner, "count")
    label = f"{tname(owner)}.{name}"

    def impl(
        recv: Any, args: tuple[Any, ...], kw: dict[str, Any], B: cost.Budget, where: str
    ) -> Any:
        _check_args(args, kw, where, label)
        n = length(recv, owner)
        steps = 0
        wide = _is_wide(recv)
        if name == "replace":
            if len(args) < 2:
                return fn(recv, *args, **kw)
            old, new = args[0], args[1]
            most = args[2] if len(args) > 2 else kw.get("count", -1)
            charge(B, n // 128, where)  # counting the matches first
            hits = count(recv, old) if len(old) else n + 1
            if type(most) is int and most >= 0:
                hits = min(hits, most)
            n += hits * (len(new) - len(old))
            steps = hits // 4  # each replacement is a copy and a search
            wide = wide or _is_wide(new)
        elif name == "expandtabs":
            size = args[0] if args else kw.get("tabsize", 8)
            if type(size) is int:
                n += count(recv, "\t" if owner is str else b"\t") * max(size, 0)
            steps = length(recv, owner) // 8  # column by column
        elif args and type(args[0]) is int:
            n = max(n, args[0])
        if n > MAX_TEXT:
            too_big(where, f"the result would have {n} characters")
        charge(B, steps + n // 128, where)
        produce(B, _text_result_bytes(owner, n, wide), where)
        return fn(recv, *args, **kw)

    return impl


def _join_method(owner: type) -> Method:
    join = static_lookup(owner, "join")

    def impl(
        recv: Any, args: tuple[Any, ...], kw: dict[str, Any], B: cost.Budget, where: str
    ) -> Any:
        if len(args) != 1 or kw:
            raise EvaluationFailure(f"{where}: join() takes one iterable")
        (it,) = args
        _iterable(it, 0, B, where, "join")
        info = type_info(type(it))
        elements = _DKEYS(it) if info[0] == K_MAP else _iter_stored(it, info[1])
        want = (str,) if owner is str else (bytes, bytearray)
        total = 0
        count = 0
        wide = False
        for e in elements:
            te = type(e)
            if not is_in(te, want):  # `in` would compare classes with ==
                raise EvaluationFailure(
                    f"{where}: join() takes {tname(want[0])} elements only, got {an(type(e))}"
                )
            total += len(e)
            count += 1
            if owner is str and not wide:
                wide = not str.isascii(e)
        total += length(recv, owner) * max(count - 1, 0)
        if total > MAX_TEXT:
            too_big(where, f"the result would have {total} characters")
        charge(B, total // 128, where)
        wide = owner is str and (wide or _is_wide(recv))
        produce(B, _text_result_bytes(owner, total, wide), where)
        return join(recv, it)

    return impl


def _is_wide(text: Any) -> bool:
    """Whether a str may take more than one byte per character (bytes never do)."""
    return type(text) is str and not str.isascii(text)


def _text_result_bytes(owner: type, chars: int, wide: bool) -> int:
    if owner is str:
        return cost.text_bytes(chars, wide)
    return cost.bytes_bytes(chars)


def _codec_cost(value: Any, owner: type, B: cost.Budget, where: str) -> None:
    """Charge str.encode (up to 4 bytes a character, utf-32) or bytes.decode."""
    n = length(value, bytearray if inherits(type(value), bytearray) else owner)
    if n > 4 * MAX_TEXT:
        too_big(where, f"coding {n} characters is too costly")
    charge(B, n // 16, where)
    if owner is str:
        produce(B, cost.bytes_bytes(n if str.isascii(value) else 4 * n + 4), where)
    else:
        ascii_test = bytearray.isascii if inherits(type(value), bytearray) else bytes.isascii
        produce(B, cost.text_bytes(n, not ascii_test(value)), where)


def _codec_method(owner: type, name: str) -> Method:
    fn = static_lookup(owner, name)

    def impl(
        recv: Any, args: tuple[Any, ...], kw: dict[str, Any], B: cost.Budget, where: str
    ) -> Any:
        encoding, errors = _codec_args(args, kw, where)
        _codec_cost(recv, owner, B, where)
        return fn(recv, encoding, errors)

    return impl


def _search_method(owner: type, name: str) -> Method:
    """list/tuple/deque index and count: elements are compared with ``==``."""
    fn = static_lookup(owner, name)

    def impl(
        recv: Any, args: tuple[Any, ...], kw: dict[str, Any], B: cost.Budget, where: str
    ) -> Any:
        if not args or kw:
            raise EvaluationFailure(f"{where}: {name}() takes a value (and start, stop)")
        for extra in args[1:]:
            _index(extra, where)
        flags = check_deep(args[0], EQ, B, where) | check_deep(recv, EQ, B, where)
        charge(B, length(recv, owner), where)
        if flags:
            return guarded(flags, B, where, fn, recv, *args)
        return fn(recv, *args)

    return impl


def _dict_get(
    recv: Any, args: tuple[Any, ...], kw: dict[str, Any], B: cost.Budget, where: str
) -> Any:
    if not 1 <= len(args) <= 2 or kw:
        raise EvaluationFailure(f"{where}: get() takes a key and an optional default")
    key = args[0]
    flags = check_deep(key, EQ, B, where) | check_keys(recv, B, where)
    if flags:
        _charge_conversions(args[:1], B, where, flags)  # the key: a lookup reads no values
        return guarded(flags, None, where, _DGET, recv, *args)
    return _DGET(recv, *args)


def _dict_view(name: str) -> Method:
    fn = _TYPE_DICT(dict)[name]
    reads_values = name != "keys"

    def impl(
        recv: Any, args: tuple[Any, ...], kw: dict[str, Any], B: cost.Budget, where: str
    ) -> Any:
        if args or kw:
            raise EvaluationFailure(f"{where}: {name}() takes no arguments")
        secrecy = B[1]
        if reads_values and secrecy is not None:
            charge(B, length(recv, dict) // KEY_SCAN_RATE, where)
            secrecy.check_container(recv, K_MAP, dict, where)
        return fn(recv)

    return impl


def _set_method(owner: type, name: str) -> Method:
    fn = static_lookup(owner, name)

    def impl(
        recv: Any, args: tuple[Any, ...], kw: dict[str, Any], B: cost.Budget, where: str
    ) -> Any:
        if kw or len(args) > 16:
            raise EvaluationFailure(f"{where}: {name}() takes containers only")
        flags = check_deep(recv, EQ, B, where)
        for other in args:
            flags |= _iterable(other, EQ, B, where, name)
        if not name.startswith("is"):
            produce(B, cost.hashed_bytes(_size(recv) + sum(_size(o) for o in args)), where)
        if flags:
            return guarded(flags, B, where, fn, recv, *args)
        return fn(recv, *args)

    return impl


def _tz_method(owner: type, name: str) -> Method:
    """datetime/time methods: the tzinfo must be trusted (the receiver is
    checked by the caller); strftime formats cannot ask for huge widths."""
    plain = _plain_method(owner, name)

    def impl(
        recv: Any, args: tuple[Any, ...], kw: dict[str, Any], B: cost.Budget, where: str
    ) -> Any:
        if name == "strftime" and args and type(args[0]) is str:
            fmt = args[0]
            if len(fmt) > 256 or any(
                fmt[i] == "%" and fmt[i + 1 : i + 2].lstrip("-_0^#")[:1].isdigit()
                for i in range(len(fmt) - 1)
            ):
                raise EvaluationFailure(f"{where}: strftime() formats without widths only")
        return plain(recv, args, kw, B, where)

    return impl


#: Pure str methods taking str and int arguments, linear in the string.
STR_PLAIN = (
    "startswith", "endswith", "upper", "lower", "strip", "lstrip", "rstrip", "split", "rsplit",
    "splitlines", "partition", "rpartition", "find", "rfind", "index", "rindex", "count",
    "casefold", "title", "capitalize", "swapcase", "isdigit", "isalpha", "isalnum", "isspace",
    "islower", "isupper", "isdecimal", "isnumeric", "isidentifier", "isascii", "istitle",
    "isprintable", "removeprefix", "removesuffix",
)  # fmt: skip
_BYTES_PLAIN = (
    "startswith", "endswith", "upper", "lower", "strip", "lstrip", "rstrip", "split", "rsplit",
    "splitlines", "partition", "rpartition", "find", "rfind", "index", "rindex", "count",
    "title", "capitalize", "swapcase", "isdigit", "isalpha", "isalnum", "isspace", "islower",
    "isupper", "isascii", "istitle", "removeprefix", "removesuffix", "hex",
)  # fmt: skip
_SIZED = ["center", "ljust", "rjust", "zfill", "expandtabs", "replace"]


def _methods() -> dict[type, dict[str, Method]]:
    table: dict[type, dict[str, Method]] = {}
    s = table[str] = {n: _text_method(str, n) for n in STR_PLAIN}
    s.update({n: _sized_text_method(str, n) for n in _SIZED})
    s["join"] = _join_method(str)
    s["encode"] = _codec_method(str, "encode")
    for owner in (bytes, bytearray):
        m = table[owner] = {n: _text_method(owner, n) for n in _BYTES_PLAIN}
        m.update({n: _sized_text_method(owner, n) for n in _SIZED})
        m["join"] = _join_method(owner)
        m["decode"] = _codec_method(owner, "decode")
    views = {n: _dict_view(n) for n in ("keys", "values", "items")}
    for owner in (dict, collections.OrderedDict, collections.defaultdict, collections.Counter):
        table[owner] = {"get": _dict_get, **views}
    for owner in (list, tuple, collections.deque):
        table[owner] = {n: _search_method(owner, n) for n in ("index", "count")}
    for owner in (set, frozenset):
        table[owner] = {
            n: _set_method(owner, n)
            for n in (
                "issubset",
                "issuperset",
                "isdisjoint",
                "union",
                "intersection",
                "difference",
                "symmetric_difference",
            )
        }
    for owner in {type({}.keys()), type({}.items()), type(_od.keys()), type(_od.items())}:
        table[owner] = {"isdisjoint": _set_method(owner, "isdisjoint")}
    ints = ["bit_length", "bit_count", "conjugate", "as_integer_ratio", "is_integer"]
    for owner in (int, bool):
        table[owner] = {n: _plain_method(int, n) for n in ints if n in _TYPE_DICT(int)}
    table[float] = {
        n: _plain_method(float, n) for n in ("is_integer", "hex", "as_integer_ratio", "conjugate")
    }
    table[complex] = {"conjugate": _plain_method(complex, "conjugate")}
    table[range] = {n: _search_method(range, n) for n in ("index", "count")}
    date_names = (
        "isoformat", "weekday", "isoweekday", "isocalendar", "strftime", "toordinal", "ctime",
    )  # fmt: skip
    table[_dt.date] = {n: _tz_method(_dt.date, n) for n in date_names}
    table[_dt.datetime] = {
        n: _tz_method(_dt.datetime, n)
        for n in [*date_names, "date", "time", "timetz", "timestamp", "utcoffset", "tzname", "dst"]
    }
    table[_dt.time] = {
        n: _tz_method(_dt.time, n) for n in ("isoformat", "strftime", "utcoffset", "tzname", "dst")
    }
    table[_dt.timedelta] = {"total_seconds": _plain_method(_dt.timedelta, "total_seconds")}
    table[decimal.Decimal] = {
        n: _plain_method(decimal.Decimal, n)
        for n in (
            "is_nan",
            "is_finite",
            "is_infinite",
            "is_zero",
            "is_signed",
            "adjusted",
            "as_integer_ratio",
            "conjugate",
        )
    }
    table[fractions.Fraction] = {
        n: _plain_method(fractions.Fraction, n)
        for n in ("as_integer_ratio", "limit_denominator", "is_integer")
        if n in _TYPE_DICT(fractions.Fraction)
    }
    return table


METHODS: Final = _methods()
#: The types of METHODS, by id (a class is looked up there only once known).
_METHOD_OWNERS: Final = frozenset(map(id, METHODS))
#: Every method name an expression may call (on values of the right type).
METHOD_NAMES: Final = frozenset(name for names in METHODS.values() for name in names)


def call_method(
    recv: Any, name: str, args: tuple[Any, ...], kw: dict[str, Any], B: cost.Budget, where: str
) -> Any:
    """``recv.name(*args, **kw)`` for the allowed methods of builtin types."""
    tp = type(recv)
    info = type_info(tp)
    kind, base = info[0], info[1]
    if kind == K_SECRET:
        raise redacted_read(recv.name, where)
    table = METHODS.get(base)
    impl = table.get(name) if table is not None else None
    if impl is None or info[2] == ALL:
        if kind == K_OPAQUE and inherits(tp, type):
            return _unbound_call(recv, name, args, kw, B, where)
        _no_method(recv, tp, name, table, where)
    if kind == K_TZ:
        _check_tz(recv, base, where)
    if kind == K_DECIMAL:
        return guarded(F_DECIMAL, None, where, impl, recv, args, kw, B, where)
    return impl(recv, args, kw, B, where)


def _unbound_call(
    cls: Any, name: str, args: tuple[Any, ...], kw: dict[str, Any], B: cost.Budget, where: str
) -> Any:
    """``str.upper(s)``: an allowed method of a builtin type called through the
    class, on the value passed first; as Python does, it needs one."""
    if id(cls) not in _METHOD_OWNERS or name not in METHODS[cls]:
        _no_method(cls, type(cls), name, None, where)
    label = f"{tname(cls)}.{name}()"
    if not args:
        raise EvaluationFailure(
            f"{where}: {label} called on the class needs {an(cls)} as its first argument"
        )
    value = args[0]
    opaque(value, where)
    if not inherits(type(value), cls):
        raise EvaluationFailure(f"{where}: {label} needs {an(cls)}, not {an(type(value))}")
    result = call_method(value, name, args[1:], kw, B, where)
    rule = B[1]
    if name == "get" and len(args) > 1 and rule is not None:
        # dict.get(d, key): the key names the value, as in d.get(key).
        secret = rule.key_name(args[1])
        if secret is not None:
            return rule.hide(secret, result)
    return result


def _no_method(
    recv: Any, tp: type, name: str, table: dict[str, Method] | None, where: str
) -> NoReturn:
    """Why ``recv.name()`` is not called: application code (NotEvaluated), or a
    builtin value without that allowed method (EvaluationFailure)."""
    label = short_label(recv)
    status, reason = lookup_attribute(recv, name)
    if status == COMPUTED:
        raise NotEvaluated(f"{where}: {reason}")
    if status == ABSENT:
        allowed = f"; its allowed methods: {', '.join(sorted(table))}" if table else ""
        raise EvaluationFailure(f"{where}: {reason}{allowed}")
    if status == FOUND and not callable(reason):  # callable() reads the type's call slot
        raise EvaluationFailure(
            f"{where}: {name} of {label} is {an(type(reason))}, which is not callable"
        )
    owner = introspect.defining_class(tp, name)
    if status == METHOD and owner is not None and id(owner) in _TRUSTED:
        allowed = f"; allowed: {', '.join(sorted(table))}" if table else ""
        raise EvaluationFailure(
            f"{where}: {tname(owner)}.{name}() is not among the allowed methods{allowed}"
        )
    what = f"{tname(owner)}.{name}()" if owner is not None else f"{name}() of {label}"
    raise NotEvaluated(
        f"{where}: not evaluated, {what} is application code; calls are limited to builtin "
        "functions and methods of builtin types"
    )


def short_label(v: Any) -> str:
    """A module or class described by its name, read statically."""
    if inherits(type(v), types.ModuleType):
        name = introspect.scan_for(MODULE_DICT(v), "__name__")
        return f"module {name}" if type(name) is str else "a module"
    if inherits(type(v), type):
        return f"class {tname(v)}"
    return f"{an(type(v))}"
