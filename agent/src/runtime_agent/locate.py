"""Resolve a location string to the live code objects that run it.

Locations come from an assistant's checkout, not from the deployed tree, so
files match by path suffix (``shop/orders.py`` matches
``/srv/app/shop/orders.py``). Forms:

- ``path/to/file.py:LINE`` and ``package.module:LINE``: a line;
- ``package.module:Qualname`` and ``path/to/file.py:Qualname``: a function
  (``Class.method``, ``outer.<locals>.inner`` or plainly ``outer.inner``).

Live code is found through the function objects the garbage collector knows
and, recursively, the code objects they hold in ``co_consts`` (closures not yet
created, comprehensions, lambdas). Module-level code has already run by the
time anything can be placed in it, so it cannot carry actions.

The service owner's blocklist (``RUNTIME_AGENT_BLOCKLIST``, comma-separated)
is matched here, in the same location style (:class:`Blocklist`).
"""

from __future__ import annotations

import fnmatch
import gc
import os
import re
import sys
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import CodeType, FrameType, FunctionType, ModuleType
from typing import Any

from runtime_agent import clock, introspect
from runtime_agent.backends.base import CodePath
from runtime_agent.errors import BlockedLocation, LocationError

_MODULE_RE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")
_QUALNAME_RE = re.compile(r"^[A-Za-z_<][\w<>]*(\.[A-Za-z_<][\w<>]*)*$")
_SYNTAX_HELP = (
    "use path/to/file.py:LINE, package.module:LINE, or package.module:Qualname "
    "(for example shop/orders.py:42 or shop.orders:TradeService.execute_trade)"
)

#: Opcodes that set a frame up rather than run a line of the program.
_PREAMBLE_OPS = frozenset(
    {"RESUME", "RETURN_GENERATOR", "GEN_START", "NOP", "COPY_FREE_VARS", "MAKE_CELL", "CACHE"}
)

Canonical = Callable[[CodeType], CodeType]


@dataclass(frozen=True)
class LocationSpec:
    """A parsed location: a file or module, and a line or a qualified name."""

    text: str
    file: str | None = None
    module: str | None = None
    line: int | None = None
    qualname: str | None = None

    def matches_module(self, name: str, filename: str | None) -> bool:
        """Whether a module being imported could be the one this spec names."""
        if self.module is not None:
            return name == self.module
        return filename is not None and _suffix_match(self.file or "", filename)


@dataclass
class Resolution:
    """Where an action goes: the live file, the line or function, the code to instrument."""

    file: str
    module: str | None
    paths: list[CodePath]
    line: int | None = None
    function: str | None = None
    notes: list[str] = field(default_factory=list)


def parse_location(text: str) -> LocationSpec:
    """Parse ``text``; raise LocationError with the accepted forms when malformed."""
    raw = text.strip() if isinstance(text, str) else ""
    where, sep, what = raw.rpartition(":")
    if not sep or not where or not what:
        raise LocationError(f"cannot read location {text!r}: {_SYNTAX_HELP}")
    line: int | None = None
    qualname: str | None = None
    if what.isdigit():
        line = int(what)
        if line < 1:
            raise LocationError(f"line numbers start at 1, got {what} in {text!r}")
    elif _QUALNAME_RE.match(what):
        qualname = what
    else:
        raise LocationError(f"cannot read {what!r} in {text!r} as a line or a name: {_SYNTAX_HELP}")
    if where.endswith((".py", ".pyw")) or "/" in where or "\\" in where:
        return LocationSpec(raw, file=where.replace("\\", "/"), line=line, qualname=qualname)
    if _MODULE_RE.match(where):
        return LocationSpec(raw, module=where, line=line, qualname=qualname)
    raise LocationError(f"cannot read {where!r} as a file or module in {text!r}: {_SYNTAX_HELP}")


def _parts(path: str) -> list[str]:
    return [p for p in os.path.normcase(path).replace("\\", "/").split("/") if p not in ("", ".")]


def _suffix_match(suffix: str, filename: str) -> bool:
    want, have = _parts(suffix), _parts(filename)
    return len(want) <= len(have) and have[len(have) - len(want) :] == want


BLOCKLIST_ENV = "RUNTIME_AGENT_BLOCKLIST"
_MAX_CACHED_FILES = 4096


class Blocklist:
    """The files and modules the service owner closes to actions, source and captures.

    Entries are written as locations are (comma-separated in
    ``RUNTIME_AGENT_BLOCKLIST``), each with optional globs (``*``, ``?``,
    ``[...]``; ``*`` also crosses ``/``):

    - a path (it has a ``/`` or ends with ``.py``): matched against the end of
      a file's path, whole components only, so ``payments/charge.py`` closes
      ``/srv/app/payments/charge.py`` (not ``.../mypayments/charge.py``),
      ``payments/`` or ``payments/*`` every file under a ``payments``
      directory, ``*_secret.py`` any such file; an absolute path (``/srv/...``)
      is matched whole;
    - a module (a dotted name): the module and its submodules
      (``payments.charge``, ``payments`` for the whole package,
      ``payments.*``), by the name it was imported under and by its file's
      path, so a module imported under another name (``src.payments.charge``,
      ``__main__``) is closed too.

    A file is matched both as given and with its symlinks resolved.
    """

    def __init__(self, entries: Iterable[str] = ()) -> None:
        self.entries = tuple(
            e.strip() for e in entries if isinstance(e, str) and e.strip() and e.strip() != "."
        )
        self._paths: list[tuple[str, str, bool]] = []  # (entry, path glob, absolute)
        self._modules: list[tuple[str, str]] = []  # (entry, module glob)
        for entry in self.entries:
            text = entry.replace("\\", "/")
            if "/" in text or text.endswith((".py", ".pyw")):
                glob = os.path.normcase(text)
                absolute = os.path.isabs(text)
                while glob.startswith("./"):
                    glob = glob[2:]
                if glob.endswith("/"):
                    glob += "*"
                self._paths.append((entry, glob if absolute else glob.lstrip("/"), absolute))
            else:
                self._modules.append((entry, text))
                self._modules.append((entry, text + ".*"))
                as_path = os.path.normcase(text.replace(".", "/"))
                self._paths.append((entry, as_path + ".py", False))
                self._paths.append((entry, as_path + "/*", False))
        self._files: dict[tuple[str, str | None], str | None] = {}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Blocklist:
        """The entries of ``RUNTIME_AGENT_BLOCKLIST``."""
        env = os.environ if environ is None else environ
        return cls(env.get(BLOCKLIST_ENV, "").split(","))

    def __bool__(self) -> bool:
        return bool(self.entries)

    def match(self, filename: str | None, module: str | None = None) -> str | None:
        """The entry that closes this file or module, or None."""
        if not self.entries:
            return None
        key = (filename or "", module)
        if key in self._files:
            return self._files[key]
        found = self._match(filename, module)
        if len(self._files) >= _MAX_CACHED_FILES:
            self._files.clear()
        self._files[key] = found
        return found

    def closes_frame(self, frame: FrameType) -> bool:
        """Whether a running frame's file or module is closed (its locals stay hidden)."""
        if not self.entries:
            return False
        module = None
        g = frame.f_globals
        if introspect.inherits(type(g), dict):
            name = introspect.scan_for(g, "__name__")
            module = name if type(name) is str else None
        return self.match(frame.f_code.co_filename, module) is not None

    def check(self, what: str, filename: str | None, module: str | None) -> None:
        """Raise BlockedLocation, saying which entry closes ``what``, when one does."""
        entry = self.match(filename, module)
        if entry is not None:
            raise BlockedLocation(
                f"{what} is in {module or filename}, which the service owner's blocklist "
                f"({BLOCKLIST_ENV}: {entry}) closes to actions and source; pick a location "
                "outside it"
            )

    def _match(self, filename: str | None, module: str | None) -> str | None:
        if module:
            for entry, glob in self._modules:
                if fnmatch.fnmatchcase(module, glob):
                    return entry
        if not filename:
            return None
        paths = {filename.replace("\\", "/")}
        try:
            paths.add(os.path.realpath(filename).replace("\\", "/"))
        except (OSError, ValueError):
            pass
        for path in paths:
            parts = _parts(path)
            whole = os.path.normcase(path)
            for entry, glob, absolute in self._paths:
                if absolute:
                    if fnmatch.fnmatchcase(whole, glob):
                        return entry
                    continue
                # Suffixes that start at a path component, longest first.
                if any(fnmatch.fnmatchcase("/".join(parts[i:]), glob) for i in range(len(parts))):
                    return entry
        return None


def _module_file(module: Any, just_loaded: Any = None) -> str | None:
    """The ``.py`` file of a fully loaded module, read from its namespace
    through the module slot (never its class: a lazy module's would run its
    body); ``just_loaded`` is a module whose body has just run, still
    initialising."""
    if module is just_loaded and introspect.inherits(type(module), ModuleType):
        namespace = introspect.module_dict(module)
    else:
        namespace = introspect.loaded_namespace(module)
    if type(namespace) is not dict:
        return None
    filename = introspect.scan_for(namespace, "__file__", 32)
    if type(filename) is str and filename.endswith((".py", ".pyw")):
        return filename
    return None


def find_module(spec: LocationSpec, just_loaded: Any = None) -> tuple[str | None, str] | None:
    """The loaded module and file a spec names, or None when none is loaded yet.

    Modules not fully loaded (``introspect.loaded_namespace``) count as not
    loaded, except ``just_loaded``, whose body has just run. Raises
    LocationError when several loaded files match the path suffix.
    """
    if spec.module is not None:
        module = sys.modules.get(spec.module)
        if module is None:
            return None
        if module is not just_loaded and introspect.loaded_namespace(module) is None:
            return None  # a lazy module whose body has not run, or one still initialising
        filename = _module_file(module, just_loaded)
        if filename is None:
            raise LocationError(
                f"module {spec.module} has no Python source file (built-in or compiled); "
                "actions need Python source"
            )
        return spec.module, filename
    matches: dict[str, str | None] = {}
    for name, module in list(sys.modules.items()):
        filename = _module_file(module, just_loaded) if module is not None else None
        if filename and _suffix_match(spec.file or "", filename):
            matches.setdefault(os.path.realpath(filename), name)
    if not matches:
        return None
    if len(matches) > 1:
        listed = ", ".join(sorted(matches))
        raise LocationError(
            f"{spec.file} matches {len(matches)} loaded files: {listed}; "
            "give more of the path to pick one"
        )
    real, name = next(iter(matches.items()))
    module = sys.modules.get(name) if name else None
    filename = _module_file(module, just_loaded) if module is not None else real
    return name, filename or real


def live_code(filename: str, canonical: Canonical) -> list[tuple[CodePath, str]]:
    """Every live code object of ``filename`` with its parents and qualified name.

    Roots are the code of function objects the gc knows; nested code objects
    come from ``co_consts``. ``canonical`` maps a backend's instrumented copy
    back to the original, so repeated placements see the same objects.
    """
    index = _roots_by_file(canonical)
    # The same index gives the same walk: a burst of placements in one file
    # walks its code once. Per backend (``canonical``'s owner), as it maps copies.
    key = (filename, id(getattr(canonical, "__self__", canonical)))
    walked = _walks.get(key)
    if walked is not None and walked[0] is index:
        return list(walked[1])
    entries = index.get(filename)
    if entries is None:
        # The module's __file__ and its code's co_filename usually agree; when
        # they do not (symlinks, relative paths), compare real paths.
        real = os.path.realpath(filename)
        entries = [
            e
            for co_file, group in index.items()
            if os.path.realpath(co_file) == real
            for e in group
        ]
    roots: dict[int, tuple[CodeType, str]] = {}
    for code, qualname in entries:
        roots.setdefault(id(code), (code, qualname))
    found: dict[int, tuple[CodePath, str]] = {}
    for code, qualname in roots.values():
        for path, name in _walk(code, (), qualname, canonical):
            known = found.get(id(path.code))
            # A closure's code is reached both as a live function's code and
            # nested in its parent; keep the path with parents, which a
            # code-rewriting backend needs to rebuild them.
            if known is None or len(path.parents) > len(known[0].parents):
                found[id(path.code)] = (path, name)
    _walks[key] = (index, list(found.values()))
    return list(found.values())


#: One scan of the gc indexes every file's functions; a burst of placements
#: (the hub sending many actions at once) reuses it. It is rebuilt when the
#: set of loaded modules changes, and after INDEX_SECONDS in any case.
INDEX_SECONDS = 1.0
_index: tuple[float, int, dict[str, list[tuple[CodeType, str]]]] | None = None
#: (filename, id of the backend) -> (the index it was walked from, live_code's answer).
_walks: dict[tuple[str, int], tuple[object, list[tuple[CodePath, str]]]] = {}


def _roots_by_file(canonical: Canonical) -> dict[str, list[tuple[CodeType, str]]]:
    global _index
    now = clock.monotonic()
    if _index is not None and now - _index[0] < INDEX_SECONDS and _index[1] == len(sys.modules):
        return _index[2]
    by_file: dict[str, list[tuple[CodeType, str]]] = {}
    for obj in gc.get_objects():
        if type(obj) is not FunctionType:
            continue
        code = canonical(obj.__code__)
        qualname = getattr(code, "co_qualname", None)
        if type(qualname) is not str:
            qualname = _function_qualname(obj, code)
        by_file.setdefault(code.co_filename, []).append((code, qualname))
    _index = (now, len(sys.modules), by_file)
    _walks.clear()
    return by_file


def forget_index() -> None:
    """Drop the cached index (after a module was imported, for example)."""
    global _index
    _index = None
    _walks.clear()


def _function_qualname(func: FunctionType, code: CodeType) -> str:
    qualname = getattr(func, "__qualname__", None)  # an exact function's slot
    # functools.wraps copies the wrapped function's name onto the wrapper; the
    # code's own name tells them apart. ``type() is str``: a str subclass
    # could override rsplit.
    if type(qualname) is str and qualname.rsplit(".", 1)[-1] == code.co_name:
        return qualname
    return code.co_name


def _walk(
    code: CodeType, parents: tuple[CodeType, ...], qualname: str, canonical: Canonical
) -> Iterator[tuple[CodePath, str]]:
    yield CodePath(code, parents), qualname
    for const in code.co_consts:
        if type(const) is CodeType:  # isinstance would read an object's __class__
            child = canonical(const)
            child_name = (
                getattr(child, "co_qualname", None) or f"{qualname}.<locals>.{child.co_name}"
            )
            yield from _walk(child, (*parents, code), child_name, canonical)


#: id(code) -> (weak reference to it, its lines): a burst of placements in one
#: file asks about the same code objects once per action. Weak, and checked on
#: use, so an id reused by a new code object never answers with old lines.
_lines_cache: dict[int, tuple[weakref.ref[CodeType], frozenset[int]]] = {}


def code_lines(code: CodeType) -> frozenset[int]:
    """Lines where ``code`` runs program instructions (not just frame set-up)."""
    key = id(code)
    cached = _lines_cache.get(key)
    if cached is not None and cached[0]() is code:
        return cached[1]
    lines = _scan_lines(code)

    def forget(ref: weakref.ref[CodeType]) -> None:
        entry = _lines_cache.get(key)
        if entry is not None and entry[0] is ref:
            del _lines_cache[key]

    _lines_cache[key] = (weakref.ref(code, forget), lines)
    return lines


def _scan_lines(code: CodeType) -> frozenset[int]:
    """``code_lines`` without the cache."""
    raw = code.co_code
    lines: set[int] = set()
    from dis import opname

    for start, end, line in code.co_lines():
        if line is None or line in lines:
            continue
        for offset in range(start, end, 2):
            if opname[raw[offset]] not in _PREAMBLE_OPS:
                lines.add(line)
                break
    return frozenset(lines)


def resolve_line(
    spec: LocationSpec, module: str | None, filename: str, canonical: Canonical
) -> Resolution:
    """The code objects that run ``spec.line`` of ``filename``, or LocationError."""
    line = spec.line
    assert line is not None
    candidates = live_code(filename, canonical)
    hits = [(path, name) for path, name in candidates if line in code_lines(path.code)]
    if not hits:
        raise LocationError(_no_code_message(filename, line, candidates))
    hit_ids = {id(path.code) for path, _ in hits}
    # A line that builds a lambda, comprehension or closure also appears in the
    # nested code; the statement runs once, in the outermost code object.
    outer = [(p, n) for p, n in hits if not any(id(parent) in hit_ids for parent in p.parents)]
    function = ", ".join(sorted({n for _, n in outer}))
    return Resolution(
        file=filename, module=module, paths=[p for p, _ in outer], line=line, function=function
    )


def resolve_function(
    spec: LocationSpec, module: str | None, filename: str, canonical: Canonical
) -> Resolution:
    """The code objects of the function a spec names (by qualname, or the one around a line)."""
    candidates = live_code(filename, canonical)
    if spec.qualname is not None:
        want = _plain(spec.qualname)
        hits = [(p, n) for p, n in candidates if _plain(n) == want]
        if not hits:
            names = sorted({n for _, n in candidates if "<" not in n.rsplit(".", 1)[-1]})
            close = [n for n in names if n.rsplit(".", 1)[-1] == want.rsplit(".", 1)[-1]]
            listed = ", ".join((close or names)[:12]) or "none"
            raise LocationError(
                f"no live function {spec.qualname} in {filename}; functions there: {listed}"
            )
        return Resolution(
            file=filename, module=module, paths=[p for p, _ in hits], function=hits[0][1]
        )
    line = spec.line
    assert line is not None
    inside = [
        (p, n) for p, n in candidates if line in code_lines(p.code) or line == p.code.co_firstlineno
    ]
    if not inside:
        raise LocationError(_no_code_message(filename, line, candidates))
    # The innermost function around the line: the one with the most parents.
    path, name = max(inside, key=lambda item: len(item[0].parents))
    return Resolution(file=filename, module=module, paths=[path], line=line, function=name)


def _plain(qualname: str) -> str:
    return qualname.replace(".<locals>", "")


def _no_code_message(filename: str, line: int, candidates: Iterable[tuple[CodePath, str]]) -> str:
    live: set[int] = set()
    for path, _ in candidates:
        live |= code_lines(path.code)
    before = max((n for n in live if n < line), default=None)
    after = min((n for n in live if n > line), default=None)
    nearest = ", ".join(str(n) for n in (before, after) if n is not None)
    if _is_module_level(filename, line):
        why = (
            f"line {line} of {filename} is module-level code, which ran when the module was "
            "imported; actions go inside functions"
        )
    else:
        why = f"no code at line {line} of {filename}"
    return (
        f"{why}; nearest lines with code: {nearest}"
        if nearest
        else (f"{why}; no live function in that file has code")
    )


def _is_module_level(filename: str, line: int) -> bool:
    try:
        with open(filename, "rb") as fh:
            module_code = compile(fh.read(), filename, "exec", dont_inherit=True)
    except (OSError, SyntaxError, ValueError):
        return False
    return line in code_lines(module_code)
