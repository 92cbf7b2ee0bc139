"""The engine's outbox: a bounded queue of plain JSON-serialisable dicts.

Hooks append from any thread without locking (``deque.append`` is atomic);
when the queue is full the oldest events go first and are counted, so a slow
reader costs data, never memory or the host's time. An engine-wide cap on
events per second protects the process when many actions fire at once.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from runtime_agent.clock import monotonic

Event = dict[str, Any]


class Outbox:
    """Bounded, drop-oldest event queue with a per-second cap on new events."""

    def __init__(self, capacity: int = 10_000, max_per_second: int = 1_000) -> None:
        self._queue: deque[Event] = deque(maxlen=capacity)
        self.capacity = capacity
        self.max_per_second = max_per_second
        self._window = 0
        self._in_window = 0
        self.dropped_overflow = 0
        self.dropped_rate = 0

    def put(self, event: Event) -> bool:
        """Queue an event; False when the engine-wide rate cap dropped it."""
        second = int(monotonic())
        if second != self._window:
            self._window, self._in_window = second, 0
        if self._in_window >= self.max_per_second:
            self.dropped_rate += 1
            return False
        self._in_window += 1
        self._put(event)
        return True

    def put_control(self, event: Event) -> None:
        """Queue a state change or aggregate: never subject to the rate cap."""
        self._put(event)

    def _put(self, event: Event) -> None:
        if len(self._queue) >= self.capacity:
            self.dropped_overflow += 1
        self._queue.append(event)

    def drain(self) -> list[Event]:
        """Every queued event, oldest first, emptying the queue.

        Log lines are finished here (``PendingMessage.text``): on the drainer's
        thread, not on the host thread that hit the line.
        """
        out: list[Event] = []
        pop = self._queue.popleft
        try:
            while True:
                event = pop()
                message = event.get("message")
                if message is not None and type(message) is not str:
                    try:
                        event["message"] = message.text()
                    except Exception as exc:  # never lose the rest of the queue
                        event["message"] = f"<message failed: {type(exc).__name__}>"
                out.append(event)
        except IndexError:
            return out

    def clear(self) -> None:
        """Forget every queued event (a forked child must not resend its parent's)."""
        self._queue.clear()

    def __len__(self) -> int:
        return len(self._queue)
