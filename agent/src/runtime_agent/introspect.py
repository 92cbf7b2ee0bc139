"""Reading live objects without running any of their code: the agent's one
object reader.

The sandbox (``safeops``, ``sandbox``), capture, snapshots, templates,
placement (``locate``) and the truth of conditions read application objects
only through this module. What holds for everything here: no ``len``,
iteration, ``getattr``, ``hasattr``, ``isinstance`` (which reads
``__class__``), ``hash``, ``==``, ``str``, ``bool`` or ``repr`` is applied to
anything but an exact builtin, so no ``__len__``, ``__iter__``,
``__getattr__``, ``__getattribute__``, ``__eq__``, ``__hash__``, ``__str__``,
``__bool__``, property, other descriptor or metaclass hook can run. How:

* **Type slots.** A class is read through the C descriptors of ``type``
  itself (``type.__dict__['__mro__']``, ``['__dict__']``, ``['__name__']``,
  ...), which a metaclass cannot override; classes are compared by identity
  (``is_in``), never with ``==`` or by hashing.
* **Static lookup.** ``static_lookup`` finds a name in the namespaces of the
  MRO without calling descriptors (like ``inspect.getattr_static``). A class
  namespace may only be searched when all its keys are exact str: a stored key
  of another type whose hash matches the name would be compared with its own
  ``__eq__``. Namespaces are checked once per class (``clean_namespace``;
  later assignments to a class always store exact str keys), and one that
  fails reads as ``UNREADABLE``, which callers treat as "defined by code".
* **Instance state.** ``shape(tp)`` finds, once per type, the C ``__dict__``
  slot (a getset or member descriptor owned by a class of the MRO: heap
  classes and a few builtins whose slot only returns the stored dict), the
  ``__slots__`` members in declared order and pydantic's
  ``__pydantic_extra__``. ``instance_dict`` reads the dict through that slot;
  a dict subclass put there is read with ``dict``'s own C methods. Before a
  name is looked up in an instance dict, its keys are checked to be exact
  str (``str_keys``), for the same reason as class namespaces.
* **Exact builtins.** ``length(v, base)`` and ``elements(v, base)`` read the
  storage of a builtin container or text through ``base``'s C slot
  (``list.__len__``, ``dict.keys``, ``set.__iter__``...), so a subclass's
  ``__len__`` or ``__iter__`` never runs; callers that must answer as Python
  would (``len(x)``, iterating ``x``) refuse such subclasses first.
* **Exceptions.** ``args``, the traceback, cause and context are read through
  ``BaseException``'s slots; ``text_parts`` names every value that ``str()``
  of a builtin exception formats besides its args (``SyntaxError.msg``,
  ``OSError.strerror``, ``UnicodeError.reason``...), so a caller can check
  them before converting.
* **Modules.** ``module_dict`` reads a module's namespace through its member
  slot; ``loaded_namespace`` gives it only for a module that is fully loaded
  (never a ``LazyLoader`` module whose body has not run, nor one still
  initialising), and ``scan_for`` reads a name from a namespace by scanning
  its first entries, without a hashed lookup.
"""

from __future__ import annotations

import abc
import collections
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any, Final, final

__all__ = [
    "FRAME_LOCALS",
    "MISSING",
    "UNREADABLE",
    "Shape",
    "abc_checks_run_code",
    "clean_namespace",
    "defining_class",
    "elements",
    "exc_args",
    "exc_cause",
    "exc_context",
    "exc_suppress_context",
    "exc_traceback",
    "inherits",
    "instance_dict",
    "is_heap_type",
    "is_in",
    "length",
    "loaded_namespace",
    "module_dict",
    "mro",
    "plain_str",
    "qualified_name",
    "scan_for",
    "shape",
    "static_lookup",
    "str_keys",
    "text_parts",
    "type_dict",
    "type_name",
]

#: "Not found" for the lookups here.
MISSING: Final = object()
#: Found in a namespace that cannot be searched without running code: callers
#: treat it as a definition made by application code.
UNREADABLE: Final = object()

# -- type slots -------------------------------------------------------------------

#: A type's MRO, read from its slot (a metaclass's ``mro()`` ran at creation).
mro: Final[Callable[[type], tuple[type, ...]]] = type.__dict__["__mro__"].__get__
#: A class's own namespace (a read-only proxy of the real dict).
type_dict: Final[Callable[[type], Any]] = type.__dict__["__dict__"].__get__
_TYPE_NAME: Final = type.__dict__["__name__"].__get__
_TYPE_QUALNAME: Final = type.__dict__["__qualname__"].__get__
_TYPE_MODULE: Final = type.__dict__["__module__"].__get__
_TYPE_FLAGS: Final = type.__dict__["__flags__"].__get__
_HEAPTYPE: Final = 1 << 9
_GETSET: Final = types.GetSetDescriptorType
_MEMBER: Final = types.MemberDescriptorType
_GETSET_OWNER: Final = _GETSET.__dict__["__objclass__"].__get__
_MEMBER_OWNER: Final = _MEMBER.__dict__["__objclass__"].__get__
_DITEMS: Final = dict.items
_DKEYS: Final = dict.keys
_DLEN: Final = dict.__len__


def type_name(tp: type) -> str:
    """A type's ``__name__``, from the type slot, as an exact str (it may have
    been set to a str subclass); ``"object"`` if unreadable."""
    try:
        name = _TYPE_NAME(tp)
    except Exception:
        return "object"
    return name if type(name) is str else str.__str__(name)  # type: ignore[no-any-return]


def qualified_name(tp: type) -> str:
    """``module.Qualname`` of a class (``Qualname`` for builtins), from its
    slots, as an exact str."""
    qualname = _TYPE_QUALNAME(tp)
    if type(qualname) is not str:
        qualname = str.__str__(qualname)
    try:
        module = _TYPE_MODULE(tp)
    except AttributeError:
        return qualname  # type: ignore[no-any-return]
    if type(module) is not str or module == "builtins":
        return qualname  # type: ignore[no-any-return]
    return f"{module}.{qualname}"


def is_heap_type(tp: type) -> bool:
    """Whether ``tp`` was made by a class statement or ``type()`` (not C code)."""
    return bool(_TYPE_FLAGS(tp) & _HEAPTYPE)


def is_in(cls: Any, classes: tuple[Any, ...]) -> bool:
    """``cls in classes`` by identity: ``in`` would compare classes with ``==``,
    which a metaclass can define."""
    for k in classes:  # noqa: SIM110 - a loop is twice as fast as any() here
        if k is cls:
            return True
    return False


def inherits(tp: type, cls: type) -> bool:
    """Is ``cls`` in the MRO of ``tp``? (``issubclass`` without any hook.)"""
    return is_in(cls, mro(tp))


# Classes whose namespaces hold exact str keys only, by id (strong references
# keep the ids from being reused while cached).
_CLEAN: dict[int, type] = {}
_DIRTY: dict[int, type] = {}
_CACHE_SIZE: Final = 4096


def clean_namespace(klass: type) -> bool:
    """Whether every key of ``klass``'s namespace is an exact str, so that it
    can be searched by name without comparing a key of another type.

    Checked once per class: assignments to a class store exact str keys
    (``type.__setattr__`` copies a str subclass), so a clean class stays clean.
    """
    ident = id(klass)
    if _CLEAN.get(ident) is klass:
        return True
    if _DIRTY.get(ident) is klass:
        return False
    clean = True
    for key in type_dict(klass):  # iterates the real dict in C
        if type(key) is not str:
            clean = False
            break
    table = _CLEAN if clean else _DIRTY
    if len(table) >= _CACHE_SIZE:
        table.clear()
    table[ident] = klass
    return clean


def static_lookup(tp: type, name: str) -> Any:
    """The first definition of ``name`` in the namespaces of ``tp``'s MRO,
    without calling descriptors; MISSING when none defines it, UNREADABLE
    when a namespace on the way cannot be searched (see ``clean_namespace``)."""
    for klass in mro(tp):
        if not clean_namespace(klass):
            return UNREADABLE
        ns = type_dict(klass)
        if name in ns:
            return ns[name]
    return MISSING


def defining_class(tp: type, name: str) -> type | None:
    """The class of ``tp``'s MRO whose namespace defines ``name`` (or the
    first whose namespace cannot be searched), or None."""
    for klass in mro(tp):
        if not clean_namespace(klass) or name in type_dict(klass):
            return klass
    return None


# -- abstract base classes --------------------------------------------------------

_SUBCLASSES: Final = type.__dict__["__subclasses__"]
_ABC_DUMP: Final = getattr(sys.modules.get("_abc"), "_get_dump", None)
_ABC_META: Final = abc.ABCMeta
#: More classes than this under one ABC: treated as running code (a bound on the walk).
_ABC_WALK_LIMIT: Final = 2000


def abc_checks_run_code(root: type) -> bool:
    """Whether an ``isinstance``/``issubclass`` check against ``root`` (an ABC)
    or a class under it could run application code.

    ``ABCMeta``'s check of a type it has not cached asks every class under the
    ABC, by subclassing or registration: its ``__subclasshook__``, and the
    ``__subclasscheck__`` of its metaclass. So an application class anywhere
    under ``numbers.Number`` that defines ``__subclasshook__`` (or whose
    metaclass is neither ``type`` nor exactly ``ABCMeta``) runs whenever the
    native code of ``Fraction`` or ``Decimal`` checks a new type. Read through
    type slots and ``_abc``'s registry dump, without calling anything of theirs.
    """
    if _ABC_DUMP is None:  # the pure-Python abc: its registries are not readable safely
        return True
    stack: list[type] = [root]
    seen: dict[int, type] = {}
    while stack:
        klass = stack.pop()
        if id(klass) in seen:
            continue
        seen[id(klass)] = klass
        if len(seen) > _ABC_WALK_LIMIT:
            return True
        meta = type(klass)
        if meta is type:
            continue  # type.__subclasscheck__ is native and reads only the MRO
        if meta is not _ABC_META:
            return True
        if not clean_namespace(klass) or "__subclasshook__" in type_dict(klass):
            return True
        stack.extend(_SUBCLASSES(klass))
        registry = _ABC_DUMP(klass)[0]
        for ref in registry:
            registered = ref()
            if registered is not None:
                stack.append(registered)
    return False


# -- frames --------------------------------------------------------------------------


def _function_locals_type() -> type:
    return type(sys._getframe().f_locals)


#: The type of a function frame's ``f_locals``: 3.13's ``FrameLocalsProxy``
#: (C code that reads the frame, trusted like a dict), a dict before 3.13.
#: Any other namespace type (a class body's ``__prepare__`` mapping) is
#: application code.
FRAME_LOCALS: Final[type] = _function_locals_type()


# -- instance state -----------------------------------------------------------------

# Builtin classes whose __dict__ getset only returns the dict stored in the
# instance (creating an empty one at most). Others are C code of their own:
# ``threading.local``'s builds a per-thread dict and runs ``__init__``.
_PLAIN_DICT_OWNERS: Final = frozenset(
    map(
        id,
        (
            BaseException,
            types.FunctionType,
            type,
            classmethod,
            staticmethod,
            collections.OrderedDict,
        ),
    )
)


@final
class Shape:
    """How the state of a type's instances is stored, found once per type.

    ``dict_get`` reads the instance ``__dict__`` through its C slot (None when
    instances have none); ``slots`` are the ``__slots__`` member descriptors
    (dunder names left out), base class first and each class's in declared
    order; ``pydantic_extra`` is pydantic's ``__pydantic_extra__`` slot;
    ``clean`` says whether every namespace of the MRO can be searched by name;
    ``dict_computed`` whether a class defines something else named
    ``__dict__`` (a property) before the slot: attribute lookup still reads
    the stored dict, but the class says its namespace is something else.
    """

    __slots__ = ("clean", "cls", "dict_computed", "dict_get", "mro", "pydantic_extra", "slots")

    def __init__(
        self,
        cls: type,
        mro: tuple[type, ...],
        dict_get: Callable[[Any], Any] | None,
        slots: tuple[tuple[str, Any], ...],
        pydantic_extra: Any,
        clean: bool,
        dict_computed: bool,
    ) -> None:
        self.cls = cls  # a strong reference: keeps id(cls) from being reused while cached
        self.mro = mro
        self.dict_get = dict_get
        self.slots = slots
        self.pydantic_extra = pydantic_extra
        self.clean = clean
        self.dict_computed = dict_computed


_SHAPES: dict[int, Shape] = {}


def shape(tp: type) -> Shape:
    """The ``Shape`` of ``tp`` (cached; recomputed when its MRO changes)."""
    found = _SHAPES.get(id(tp))
    if found is not None and found.cls is tp and found.mro is mro(tp):
        return found
    found = _compute_shape(tp)
    if len(_SHAPES) >= _CACHE_SIZE:
        _SHAPES.clear()
    _SHAPES[id(tp)] = found
    return found


def _compute_shape(tp: type) -> Shape:
    classes = mro(tp)
    clean = True
    dict_get = None
    dict_computed = False
    for klass in classes:
        if not clean_namespace(klass):
            clean = False
            continue
        if dict_get is not None:
            continue
        # A scan of the namespace, not a lookup: nothing is compared.
        for key, attr in type_dict(klass).items():
            if key == "__dict__":
                dict_get = _dict_slot(attr, classes)
                dict_computed = dict_computed or dict_get is None
                break
    members: dict[str, Any] = {}
    pydantic_extra = None
    for klass in reversed(classes):
        if not clean_namespace(klass):
            continue
        for key, attr in _own_members(klass):
            if key == "__pydantic_extra__":
                pydantic_extra = attr
            elif not (key[:2] == "__" and key[-2:] == "__"):
                members[key] = attr
    slots = tuple(members.items())
    return Shape(tp, classes, dict_get, slots, pydantic_extra, clean, dict_computed)


def _dict_slot(attr: Any, classes: tuple[type, ...]) -> Callable[[Any], Any] | None:
    """The ``__get__`` of a C ``__dict__`` slot owned by a class of the MRO,
    or None (a property or anything else named ``__dict__`` is never called:
    attribute lookup reads the stored dict, not that attribute)."""
    kind = type(attr)
    if kind is _MEMBER:
        owner = _MEMBER_OWNER(attr)
        return attr.__get__ if is_in(owner, classes) else None  # type: ignore[no-any-return]
    if kind is _GETSET:
        owner = _GETSET_OWNER(attr)
        if is_in(owner, classes) and (is_heap_type(owner) or id(owner) in _PLAIN_DICT_OWNERS):
            return attr.__get__  # type: ignore[no-any-return]
    return None


def _own_members(klass: type) -> list[tuple[str, Any]]:
    """A class's own C member descriptors (its ``__slots__``), in declared order."""
    members: list[tuple[str, Any]] = []
    declared: Any = None
    for key, attr in type_dict(klass).items():
        if type(attr) is _MEMBER and _MEMBER_OWNER(attr) is klass:
            members.append((key, attr))
        elif key == "__slots__":
            declared = attr
    if type(declared) is str:
        declared = (declared,)
    if (type(declared) is tuple or type(declared) is list) and len(members) > 1:
        order = {_mangle(klass, n): i for i, n in enumerate(declared) if type(n) is str}
        members.sort(key=lambda item: order.get(item[0], len(order)))
    return members


def _mangle(klass: type, name: str) -> str:
    """The class-dict key of a private slot: ``__x`` in ``Foo`` is ``_Foo__x``."""
    if name[:2] == "__" and name[-2:] != "__":
        return f"_{_TYPE_NAME(klass).lstrip('_')}{name}"
    return name


def instance_dict(o: object) -> dict[Any, Any] | None:
    """The instance ``__dict__`` of ``o`` through its C slot (a dict, or a dict
    subclass to be read with ``dict``'s methods), or None."""
    get = shape(type(o)).dict_get
    if get is None:
        return None
    try:
        d = get(o)
    except Exception:  # e.g. a C type whose dict cannot be made
        return None
    return d if inherits(type(d), dict) else None


def str_keys(d: dict[Any, Any]) -> bool:
    """Whether every key of the dict (or dict subclass) ``d`` is an exact str,
    so that a lookup by an exact str name compares no other key with its
    ``__eq__``. About 25 ns a key."""
    for key in d if type(d) is dict else _DKEYS(d):  # noqa: SIM110 - a loop is faster
        if type(key) is not str:
            return False
    return True


def plain_str(value: Any) -> str | None:
    """An exact str of a str or str subclass (read by str's C method), else None."""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[no-any-return]
    return str.__str__(value) if inherits(kind, str) else None


# -- exact builtins: storage read through the builtin's own C slots ------------

_STORAGE: Final = (
    list,
    tuple,
    str,
    bytes,
    bytearray,
    dict,
    set,
    frozenset,
    collections.deque,
    collections.OrderedDict,
    collections.defaultdict,
    range,
    memoryview,
)
_LENGTH: dict[int, Callable[[Any], int]] = {}
_ITERATE: dict[int, Callable[[Any], Iterator[Any]]] = {}


def _storage_slots() -> None:
    od: collections.OrderedDict[Any, Any] = collections.OrderedDict()
    views = {*map(type, ({}.keys(), {}.values(), {}.items(), od.keys(), od.values(), od.items()))}
    for base in (*_STORAGE, *views):
        # C slot wrappers: calling one on a subclass runs the builtin's code.
        for table, name in ((_LENGTH, "__len__"), (_ITERATE, "__iter__")):
            fn = static_lookup(base, name)
            if type(fn) is not types.WrapperDescriptorType:
                raise TypeError(f"{type_name(base)}.{name} is not a C slot")
            table[id(base)] = fn


_storage_slots()


def length(v: Any, base: type) -> int:
    """The number of stored elements of ``v``, a value of the builtin
    container or text type ``base`` or of a subclass of it, read through
    ``base``'s C slot: a subclass's ``__len__`` never runs. Raises TypeError
    when ``base`` is not such a type (``collections.Counter`` counts as
    ``dict``)."""
    fn = _LENGTH.get(id(base))
    if fn is not None and type(v) is base:
        return len(v)  # an exact builtin: len() is that same slot, called faster
    if fn is None:
        fn = _LENGTH.get(id(_storage_base(base)))
        if fn is None:
            raise TypeError(f"{type_name(base)} is not a builtin container")
    return fn(v)


def elements(v: Any, base: type) -> Iterator[Any]:
    """An iterator over the stored elements of ``v`` (a dict's keys), through
    ``base``'s C slot as for ``length``: a subclass's ``__iter__`` never runs."""
    fn = _ITERATE.get(id(base))
    if fn is not None and type(v) is base:
        return iter(v)
    if fn is None:
        fn = _ITERATE.get(id(_storage_base(base)))
        if fn is None:
            raise TypeError(f"{type_name(base)} is not a builtin container")
    return fn(v)


def _storage_base(tp: type) -> type | None:
    """The builtin storage type of a trusted Python subclass (Counter: dict)."""
    for klass in mro(tp):
        if id(klass) in _LENGTH:
            return klass
    return None


# -- exceptions ------------------------------------------------------------------------

_EXC: Final = type_dict(BaseException)
exc_args: Final[Callable[[BaseException], Any]] = _EXC["args"].__get__
exc_traceback: Final[Callable[[BaseException], Any]] = _EXC["__traceback__"].__get__
exc_cause: Final[Callable[[BaseException], Any]] = _EXC["__cause__"].__get__
exc_context: Final[Callable[[BaseException], Any]] = _EXC["__context__"].__get__
exc_suppress_context: Final[Callable[[BaseException], Any]] = _EXC["__suppress_context__"].__get__


def _members(owner: type, *names: str) -> tuple[Callable[[Any], Any], ...]:
    ns = type_dict(owner)
    return tuple(ns[n].__get__ for n in names if n in ns)


# The values the C ``__str__`` of each builtin exception formats besides its
# args, by the class that defines that ``__str__`` (found by probing every
# member of every builtin exception with a recording object).
_TEXT_FIELDS: Final[dict[int, tuple[Callable[[Any], Any], ...]]] = {
    id(OSError): _members(OSError, "errno", "strerror", "filename", "filename2", "winerror"),
    id(SyntaxError): _members(SyntaxError, "msg", "filename", "lineno"),
    id(ImportError): _members(ImportError, "msg"),
    **{
        id(kind): _members(kind, "encoding", "object", "start", "end", "reason")
        for kind in (UnicodeEncodeError, UnicodeDecodeError, UnicodeTranslateError)
    },
}


def text_parts(e: BaseException) -> tuple[Any, ...]:
    """The values ``str(e)`` formats for a builtin exception (or a subclass
    that keeps its ``__str__``): its args, and the fields its C ``__str__``
    reads (``SyntaxError.msg``, ``OSError.strerror``, ...)."""
    parts = [exc_args(e)]
    for klass in mro(type(e)):
        fields = _TEXT_FIELDS.get(id(klass))
        if fields is not None:
            parts.extend(get(e) for get in fields)
            break
        if klass is BaseException:
            break
    return tuple(parts)


# -- modules ------------------------------------------------------------------------

#: A module's namespace through the module type's member slot: a module
#: subclass's ``__getattribute__`` (a lazy module's loader) never runs.
module_dict: Final[Callable[[types.ModuleType], Any]] = type_dict(types.ModuleType)[
    "__dict__"
].__get__


def scan_for(ns: Any, name: str, limit: int = 16) -> Any:
    """``ns[name]`` found by scanning the first ``limit`` entries of the dict
    ``ns`` (dunder entries such as ``__name__`` and ``__file__`` come first in
    a module's namespace), comparing exact str keys only: MISSING otherwise.
    No hashed lookup, so no stored key of another type is compared."""
    for n, (key, value) in enumerate(_DITEMS(ns), 1):
        if type(key) is str and key == name:
            return value
        if n >= limit:
            break
    return MISSING


def loaded_namespace(m: Any) -> dict[str, Any] | None:
    """The namespace of the module ``m`` once it is fully loaded, else None.

    None for anything that is not a module, a ``LazyLoader`` module whose body
    has not run yet (reading it through its class would run it), and a
    module still initialising (its spec's ``_initializing``).
    """
    tp = type(m)
    if tp is not types.ModuleType and (not inherits(tp, types.ModuleType) or _is_lazy(tp)):
        return None
    ns = module_dict(m)
    if type(ns) is not dict:
        return None
    spec = scan_for(ns, "__spec__")
    if spec is not MISSING and spec is not None:
        state = instance_dict(spec)
        if state is not None and scan_for(state, "_initializing", 64) is True:
            return None
    return ns


_LAZY: list[type] = []


def _is_lazy(tp: type) -> bool:
    """Whether ``tp`` is importlib's class of lazy modules not loaded yet."""
    if not _LAZY:
        util = sys.modules.get("importlib.util")
        if util is None or type(util) is not types.ModuleType:
            return False  # LazyLoader was never imported: no module can be lazy
        lazy = scan_for(module_dict(util), "_LazyModule", limit=1000)
        if type(lazy) is not type:
            return False
        _LAZY.append(lazy)
    return inherits(tp, _LAZY[0])
