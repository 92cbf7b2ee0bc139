"""Notices the import of modules that pending actions wait for.

A meta-path finder sits first in ``sys.meta_path`` while any action is
pending. For each import it asks the other finders for the spec (so the
import system does not search twice), and only when a pending action names
that module or file does it wrap the loader to call back once the module has
executed. Other imports are left exactly as they were.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

#: Does a pending action wait for this module (name, file)?
Wanted = Callable[[str, "str | None"], bool]
#: Called with a freshly executed module.
Loaded = Callable[[ModuleType], None]


class ImportWatcher(importlib.abc.MetaPathFinder):
    """A pass-through finder that reports the imports the engine waits for."""

    def __init__(self, wanted: Wanted, loaded: Loaded) -> None:
        self._wanted = wanted
        self._loaded = loaded
        self._local = threading.local()

    def install(self) -> None:
        """Put the watcher first in ``sys.meta_path`` (idempotent)."""
        if self not in sys.meta_path:
            sys.meta_path.insert(0, self)

    def uninstall(self) -> None:
        """Take the watcher out of ``sys.meta_path`` (idempotent)."""
        try:
            sys.meta_path.remove(self)
        except ValueError:
            pass

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if getattr(self._local, "busy", False):
            return None
        self._local.busy = True
        try:
            spec = self._find(fullname, path, target)
            if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
                return spec
            try:
                wanted = self._wanted(fullname, spec.origin)
            except Exception:
                wanted = False
            if wanted:
                spec.loader = _NotifyingLoader(spec.loader, self._loaded)
            return spec
        finally:
            self._local.busy = False

    def _find(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None
    ) -> importlib.machinery.ModuleSpec | None:
        for finder in list(sys.meta_path):
            if finder is self:
                continue
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None:
                return spec
        return None


class _NotifyingLoader(importlib.abc.Loader):
    """Delegates to the real loader; calls back after the module body has run."""

    def __init__(self, loader: Any, loaded: Loaded) -> None:
        self._loader = loader
        self._loaded_cb = loaded

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        # Restore the real loader first, so the module looks as if we were
        # never there (importlib.resources and pkgutil read __loader__).
        module.__loader__ = self._loader
        spec = getattr(module, "__spec__", None)
        if spec is not None:
            spec.loader = self._loader
        self._loader.exec_module(module)
        try:
            self._loaded_cb(module)
        except Exception:  # installing actions must never fail an import
            pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)
