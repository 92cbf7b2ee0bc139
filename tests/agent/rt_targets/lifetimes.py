"""Code whose objects must be freed when the code drops them, actions or not.

``# L:name`` marks the lines tests place actions on. Each generator drops its
object before it yields, so while it is suspended nothing of the
application's holds the object: only an agent could keep it alive.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator


class Tracked:
    """An application object that records when it is freed."""

    freed: list[str] = []

    def __init__(self, name: str) -> None:
        self.name = name

    def __del__(self) -> None:
        Tracked.freed.append(self.name)


def holder(names: list[str], on_free: Callable[[object], None]) -> Iterator[int]:
    for name in names:
        item = Tracked(name)
        watcher = weakref.ref(item, on_free)
        size = len(item.name)  # L:life_use
        del item
        yield size  # L:life_yield
        del watcher


def blocks(count: int, size: int) -> Iterator[int]:
    for _ in range(count):
        block = bytearray(size)
        used = len(block)  # L:mem_use
        del block
        yield used


async def handler(name: str) -> int:
    item = Tracked(name)
    size = len(item.name)  # L:async_use
    del item
    await _pause()
    return size


class _Pause:
    def __await__(self) -> Iterator[None]:
        yield None


def _pause() -> _Pause:
    return _Pause()


def keeps_its_locals(value: int) -> dict[str, object]:
    namespace = locals()  # the code's own dict: the agent must leave it alone
    doubled = value * 2  # L:own_locals
    namespace["seen"] = doubled
    return namespace
