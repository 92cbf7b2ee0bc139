"""The engine's outbox: a bounded queue of events, drained as plain JSON-serialisable dicts.

Hooks append from any thread without locking (``deque.append`` and
``popleft`` are atomic); when the queue is full the oldest events go first
and are counted, so a slow reader costs data, never memory or the host's
time. An engine-wide cap on events per second protects the process when many
actions fire at once.

An action's event is queued as a tuple whose first item is the action (a
``Source``): the queue holds thousands of them between drains, and a tuple
of the hit's few values is a fraction of the dict it becomes (a log line
~150 bytes instead of ~600). ``drain`` asks the action to build the dict, on
the drainer's thread rather than the host thread that hit the line. Every
event an action loses, to the rate cap or to a full queue, is counted on the
action (``dropped`` in its status) as well as engine-wide
(``dropped_rate``, ``dropped_overflow`` in ``Engine.stats`` and in the
channel's ``dropped``). State changes and aggregates are queued as dicts.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol

from runtime_agent.clock import monotonic

Event = dict[str, Any]
#: ``(source, *values)``: an action's hit, built into an ``Event`` when drained.
Entry = tuple[Any, ...]


class Source(Protocol):
    """An action as the outbox sees it."""

    #: Events of this action lost (rate limits, a full queue); in its status.
    dropped: int

    def event(self, entry: Entry) -> Event:
        """The finished event for one of this action's entries; never raises."""
        ...


class Outbox:
    """Bounded, drop-oldest event queue with a per-second cap on action events."""

    def __init__(self, capacity: int = 10_000, max_per_second: int = 1_000) -> None:
        # maxlen is a backstop only: _put makes room itself, to count what it evicts.
        self._queue: deque[Entry | Event] = deque(maxlen=capacity)
        self.capacity = capacity
        self.max_per_second = max_per_second
        self._window = 0
        self._in_window = 0
        self.dropped_overflow = 0
        self.dropped_rate = 0

    def put(self, entry: Entry) -> bool:
        """Queue an action's entry; False when the engine-wide rate cap dropped it."""
        second = int(monotonic())
        if second != self._window:
            self._window, self._in_window = second, 0
        if self._in_window >= self.max_per_second:
            self.dropped_rate += 1
            entry[0].dropped += 1
            return False
        self._in_window += 1
        self._put(entry)
        return True

    def put_control(self, event: Event) -> None:
        """Queue a state change or aggregate: never subject to the rate cap."""
        self._put(event)

    def _put(self, item: Entry | Event) -> None:
        queue = self._queue
        if len(queue) >= self.capacity:
            try:
                evicted = queue.popleft()  # exactly the one lost, even with racing threads
            except IndexError:  # drained meanwhile: there is room now
                pass
            else:
                self.dropped_overflow += 1
                if type(evicted) is tuple:
                    evicted[0].dropped += 1
        queue.append(item)

    def drain(self) -> list[Event]:
        """Every queued event, oldest first, emptying the queue.

        Action entries are built into dicts here (``Source.event``), log
        lines finished and masked: on the drainer's thread.
        """
        out: list[Event] = []
        pop = self._queue.popleft
        try:
            while True:
                item = pop()
                if type(item) is tuple:
                    try:
                        item = item[0].event(item)
                    except Exception:  # never lose the rest of the queue
                        item[0].dropped += 1
                        continue
                out.append(item)
        except IndexError:
            return out

    def clear(self) -> None:
        """Forget every queued event (a forked child must not resend its parent's)."""
        self._queue.clear()

    def __len__(self) -> int:
        return len(self._queue)
