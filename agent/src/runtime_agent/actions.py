"""Actions and their hot paths: what runs on every hit inside the host.

Everything here runs on the host's threads, in the middle of its code. The
rules: never raise (every entry point swallows and reports), never block (no
engine lock; only tiny uncontended locks around aggregate updates), bounded
work, and an exact hit count under concurrent threads (``itertools.count`` is
atomic in CPython). Every hit is timed for the CPU budget (a counter with no
condition reads no clock and is charged a fixed bound of its cost instead),
and a hook switches its action off as soon as it goes past the ceiling the
engine set at its last tick; the engine then pauses it.

Status texts leave the process like events do: every state message, and the
reason a failing condition or metric shows meanwhile, is masked by the
engine's redactor (``Host.mask``), with the secrets of the hit that failed
when there is one, so ``key 'hunter2...' not found`` never names a value the
same hit's snapshot would redact.
"""

from __future__ import annotations

import itertools
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from types import CodeType, FrameType
from typing import Any

from runtime_agent import framelocals, state
from runtime_agent.aggregate import Aggregate
from runtime_agent.clock import monotonic, perf, wall
from runtime_agent.locate import Blocklist
from runtime_agent.redact import Redactor
from runtime_agent.safeops import an, truth
from runtime_agent.sandbox import EvaluationFailure, Expression, NotEvaluated
from runtime_agent.snapshot import take_snapshot
from runtime_agent.template import Template, finish

#: A condition or metric expression failing this many times in a row (and
#: never succeeding in between) puts the action in state ``error``.
MAX_CONSECUTIVE_FAILURES = 20
#: Bounds the entry times kept for frames still running a timed function;
#: generators abandoned mid-way never exit.
MAX_OPEN_FRAMES = 10_000
#: What the CPU budget charges per hit of a counter with no condition, which
#: reads no clock: a generous bound of its measured cost (benchmarks/).
BARE_COUNTER_COST = 0.5e-6

DYNAMIC_LOGGER = logging.getLogger("runtime_agent.dynamic")
_INFO = logging.INFO

#: By id: hashing a class could run its metaclass's __hash__.
_NUMBER = frozenset(map(id, (int, float, bool)))


class Host:
    """What an action needs from its engine: outbox, redactor, blocklist,
    retirement, and the core's word on which caller frames' locals are safe
    to read."""

    def __init__(
        self,
        emit: Callable[[tuple[Any, ...]], bool],
        emit_control: Callable[[dict[str, Any]], None],
        retire: Callable[[Action], None],
        redactor: Redactor,
        locals_hazard: Callable[[CodeType], str | None] = lambda code: None,
        blocklist: Blocklist | None = None,
        release_locals: Callable[[FrameType, Any, Any], None] | None = None,
    ) -> None:
        self.redactor = redactor
        self.blocklist = blocklist
        self.emit = emit
        self.emit_control = emit_control
        self.retire = retire
        self.locals_hazard = locals_hazard
        # The last text masked with no secrets of a hit, and its masked form: a
        # condition failing on every hit repeats its reason (one tuple, so a
        # thread never sees a text with another's mask).
        self._last_masked = ("", "")
        #: Hands back the locals dict a hit read from the frame that fired
        #: (``Backend.release_locals``); None from 3.13, where nothing is kept.
        self.release_locals = release_locals
        #: ``[seconds]``: the hook time any one action may still spend before the
        #: engine's next tick (the CPU budget's room). One cell for every action,
        #: set once per tick: a ceiling per action would allocate a float for each
        #: of thousands of actions on every tick, memory a host measuring its own
        #: allocations would see.
        self.cpu_room = [float("inf")]

    def mask(
        self, text: str, code: CodeType | None = None, f_locals: Mapping[str, Any] | None = None
    ) -> str:
        """A status or error ``text`` as it may leave the process: the redactor's
        patterns masked and, given a hit's ``code`` and ``f_locals``, the values of
        that frame's sensitive-named locals too (as in that hit's events)."""
        if not text:
            return text
        try:
            redactor = self.redactor
            if code is not None and f_locals is not None and redactor.sensitive_locals(code):
                return redactor.mask_text(text, redactor.event_secrets(code, f_locals))
            last, masked = self._last_masked
            if text != last:
                masked = redactor.mask_text(text)
                self._last_masked = (text, masked)
            return masked
        except Exception:  # never let a message escape unmasked
            return "<message withheld: it could not be masked>"


class Action:
    """One placed action. Subclasses define what a hit records."""

    kind = "action"
    default_max_hits: int | None = None
    default_rate: float | None = None

    def __init__(
        self,
        host: Host,
        action_id: str,
        location: str,
        condition: Expression | None,
        max_hits: int | None,
        ttl_seconds: float,
        rate_limit: float | None,
    ) -> None:
        self.host = host
        self.id = action_id
        self.location = location
        self.condition = condition
        self.max_hits = max_hits
        self.ttl_seconds = ttl_seconds
        self.created = wall()
        self.expires_mono = monotonic() + ttl_seconds
        self.rate_limit = rate_limit
        self.state = state.PENDING
        self.message = ""
        self.live = False
        self.hits = 0
        self.dropped = 0
        self._cpu = 0.0
        self._cost_per_hit = 0.0
        #: ``cpu`` when the engine last saw it (each tick it changed, and on
        #: activation): a hook spending more than ``host.cpu_room`` beyond it
        #: switches the action off.
        self.cpu_mark = 0.0
        self._hook: Callable[[FrameType], bool] | None = None
        self.file: str | None = None
        self.line: int | None = None
        self.function: str | None = None
        self._counter = itertools.count(1)
        self._failures = 0
        self._rate_second = 0
        self._rate_used = 0

    # -- state -------------------------------------------------------------

    def set_state(self, new: str, message: str = "") -> bool:
        """Move to ``new`` and report it; False when already in a final state."""
        message = self.host.mask(message)
        if self.state in state.FINAL or (self.state == new and self.message == message):
            return False
        self.state, self.message = new, message
        self.live = new == state.INSTALLED
        self.host.emit_control(
            {
                "type": "state",
                "action": self.id,
                "ts": wall(),
                "state": new,
                "message": message,
                "hits": self.hits,
                "file": self.file,
                "line": self.line,
                "function": self.function,
            }
        )
        if new in state.FINAL:
            self.host.retire(self)
        return True

    def status(self) -> state.ActionStatus:
        """A snapshot of where this action stands."""
        remaining = self.expires_mono - monotonic()
        return state.ActionStatus(
            id=self.id,
            kind=self.kind,
            location=self.location,
            state=self.state,
            message=self.message,
            hits=self.hits,
            max_hits=self.max_hits,
            dropped=self.dropped,
            file=self.file,
            line=self.line,
            function=self.function,
            condition=self.condition.source if self.condition is not None else None,
            created=self.created,
            expires_in=max(0.0, round(remaining, 3)) if self.state not in state.FINAL else 0.0,
            cpu_seconds=round(self.cpu, 6),
        )

    # -- hot path ----------------------------------------------------------

    def over_ceiling(self) -> bool:
        """True when a hook switched this installed action off for going past its ceiling."""
        return (
            self.state == state.INSTALLED
            and not self.live
            and self.cpu - self.cpu_mark > self.host.cpu_room[0]
        )

    @property
    def cpu(self) -> float:
        """Seconds spent in this action's hooks (measured, or estimated for bare counters)."""
        return self._cpu + self.hits * self._cost_per_hit

    @cpu.setter
    def cpu(self, value: float) -> None:
        self._cpu = value - self.hits * self._cost_per_hit

    def line_hook(self) -> Callable[[FrameType], bool]:
        """The backend's line callback for this action, built once.

        A closure rather than a method: on the hot path, cell variables are
        cheaper than attribute lookups. It returns False when nothing is left
        to do at the line (the backend may then switch the location off).
        """
        if self._hook is None:
            self._hook = self._build_line_hook()
        return self._hook

    def _build_line_hook(self) -> Callable[[FrameType], bool]:
        action = self
        counter = self._counter
        limit = self.max_hits if self.max_hits is not None else sys.maxsize
        evaluate = self.condition.evaluate if self.condition is not None else None
        where = self.condition.source if self.condition is not None else ""
        record = None if type(self).record is Action.record else self.record
        release = self.host.release_locals
        keep = framelocals.keep
        timer = perf  # a cell, cheaper than a global on the hot path
        room = self.host.cpu_room
        failed = self._failed
        exhausted = f"reached max_hits={limit}"

        def hit(frame: FrameType) -> bool:
            # Read once per hit, handed back at its end (a kept locals() dict
            # as it was before the read): see framelocals.
            kept = keep(frame) if release is not None else None
            f_locals = frame.f_locals
            try:
                if evaluate is not None:
                    try:
                        held = evaluate(f_locals, frame.f_globals)
                        if held is not True and (held is False or not truth(held, where)):
                            return True
                    except EvaluationFailure as exc:
                        failed("condition", exc, frame.f_code, f_locals)
                        return action.live
                    if action._failures:
                        action._failures = 0
                n = next(counter)
                if n > limit:
                    return False
                action.hits = n
                if record is not None:
                    record(frame, f_locals)
                if n >= limit:
                    action.set_state(state.EXHAUSTED, exhausted)
                    return False
                return True
            finally:
                if release is not None:
                    release(frame, f_locals, kept)

        if evaluate is None and record is None:
            # A bare counter: no frame, no clock; its cost is estimated per hit.
            self._cost_per_hit = BARE_COUNTER_COST

            def count(frame: FrameType | None) -> bool:
                if not action.live:
                    return False
                try:
                    n = next(counter)
                    if n >= limit:
                        if n == limit:
                            action.hits = n
                            action.set_state(state.EXHAUSTED, exhausted)
                        return False
                    action.hits = n
                    return True
                except Exception as exc:  # a bug of ours must never reach the host
                    action._broken(exc)
                    return False

            count.wants_frame = False  # type: ignore[attr-defined]
            return count

        def timed(frame: FrameType) -> bool:
            if not action.live:
                return False
            start = timer()
            try:
                return hit(frame)
            except RecursionError:  # the host is near its limit: skip this hit only
                return True
            except Exception as exc:  # a bug of ours must never reach the host
                action._broken(exc, frame)
                return False
            finally:
                spent = action._cpu + (timer() - start)
                action._cpu = spent
                if spent - action.cpu_mark > room[0]:
                    action.live = False  # off now; paused by the engine's next tick

        return timed

    def record(self, frame: FrameType, f_locals: Mapping[str, Any]) -> None:
        """What one hit does; runs after the condition held and the count was taken.

        ``f_locals`` is the frame's locals, read once for the hit.
        """

    def allow_event(self) -> bool:
        """Per-action rate limit and expiry, checked before building an event."""
        now = monotonic()
        if now >= self.expires_mono:
            self.set_state(state.EXPIRED, f"expired after ttl_seconds={self.ttl_seconds:g}")
            return False
        if self.rate_limit is not None:
            second = int(now)
            if second != self._rate_second:
                self._rate_second, self._rate_used = second, 0
            if self._rate_used >= self.rate_limit:
                self.dropped += 1
                return False
            self._rate_used += 1
        return True

    def _failed(
        self,
        what: str,
        exc: EvaluationFailure,
        code: CodeType | None = None,
        f_locals: Mapping[str, Any] | None = None,
    ) -> None:
        """One failed evaluation at a hit of ``code`` (whose locals are ``f_locals``)."""
        self._failures += 1
        reason = f"{what} {exc}" if isinstance(exc, NotEvaluated) else f"{what} failed: {exc}"
        reason = self.host.mask(reason, code, f_locals)
        if self._failures >= MAX_CONSECUTIVE_FAILURES:
            self.set_state(state.ERROR, f"{reason} ({self._failures} times in a row)")
        elif self.message != reason and self.state == state.INSTALLED:
            # Shown in status while the action goes on trying.
            self.message = reason

    def _broken(self, exc: BaseException, frame: FrameType | None = None) -> None:
        try:
            text = f"internal error: {type(exc).__name__}: {exc}"
            if frame is not None:
                text = self.host.mask(text, frame.f_code, frame.f_locals)
            self.set_state(state.ERROR, text)
        except Exception:
            self.live = False

    def flush(self) -> None:
        """Emit pending aggregates (metrics); called periodically and when the action ends."""


class LogAction(Action):
    """A dynamic log line rendered from a template."""

    kind = "log"
    default_rate = 100.0

    def __init__(self, *args: Any, template: Template, output: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.template = template
        self.output = output

    def record(self, frame: FrameType, f_locals: Mapping[str, Any]) -> None:
        if not self.allow_event():
            return
        code = frame.f_code
        line = frame.f_lineno
        message = self.template.capture(f_locals, frame.f_globals, code)
        if self.output != "app":
            # A compact entry, built into the event (and the text finished) when
            # drained (events.Outbox); the line only when it is not the action's.
            self.host.emit((self, wall(), code, None if line == self.line else line, message))
        if self.output != "events":
            self._to_logging(message, code, line, f_locals)

    def _to_logging(
        self, message: Any, code: CodeType, line: int, f_locals: Mapping[str, Any]
    ) -> None:
        """Hand the line to the application's ``logging`` (logger ``runtime_agent.dynamic``).

        The record is built here rather than by ``Logger.info``: it names the
        host's line, not ours, and ``findCaller`` (which reads ``sys._getframe``
        when called) never runs. Logging is the host's: when it fails (a
        handler raises, the host patched ``time`` or ``threading`` away) the
        action goes on, its event already queued, and says why in its status.
        """
        logger = DYNAMIC_LOGGER
        try:
            if logger.isEnabledFor(_INFO):
                text = finish(message)
                extra = {"runtime_agent_action": self.id}
                record = logger.makeRecord(
                    logger.name, _INFO, code.co_filename, line, text, (), None, code.co_name, extra
                )
                logger.handle(record)
        except Exception as exc:
            reason = self.host.mask(
                f"application logging failed: {type(exc).__name__}: {exc}", code, f_locals
            )
            if self.message != reason and self.state == state.INSTALLED:
                self.message = reason

    def event(self, entry: tuple[Any, ...]) -> dict[str, Any]:
        """The ``log`` event of an entry queued by ``record``."""
        _, ts, code, line, message = entry
        try:
            text = finish(message)
        except Exception as exc:
            text = f"<message failed: {type(exc).__name__}>"
        return {
            "type": "log",
            "action": self.id,
            "ts": ts,
            "message": text,
            "file": code.co_filename,
            "line": self.line if line is None else line,
            "function": code.co_name,
        }


class SnapshotAction(Action):
    """A capture of the stack, locals, watch values and context."""

    kind = "snapshot"
    default_max_hits = 1
    default_rate = 10.0

    def __init__(self, *args: Any, watch: Sequence[Expression], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.watch = tuple(watch)

    def record(self, frame: FrameType, f_locals: Mapping[str, Any]) -> None:
        if not self.allow_event():
            return
        event = take_snapshot(
            frame,
            f_locals,
            self.watch,
            self.host.redactor,
            self.host.locals_hazard,
            self.host.blocklist,
            # Not on the settrace core: a caller that is traced too would get
            # the emptied dict written back at its next trace event.
            self.host.release_locals is not None,
        )
        event["action"] = self.id
        self.host.emit((self, event))

    def event(self, entry: tuple[Any, ...]) -> dict[str, Any]:
        """The ``snapshot`` event of an entry queued by ``record``."""
        event: dict[str, Any] = entry[1]
        return event


class CounterAction(Action):
    """Counts hits; reported as periodic totals."""

    kind = "counter"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reported = 0

    def flush(self) -> None:
        hits = self.hits
        if hits != self._reported:
            self.host.emit_control(
                {
                    "type": "metric",
                    "action": self.id,
                    "ts": wall(),
                    "metric": "count",
                    "count": hits - self._reported,
                    "total": hits,
                }
            )
            self._reported = hits


class MetricAction(Action):
    """Aggregates a numeric expression: count, min, max, mean, p50, p90, p99."""

    kind = "metric"

    def __init__(self, *args: Any, expression: Expression, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.expression = expression
        self.aggregate = Aggregate()
        self.total = 0

    def record(self, frame: FrameType, f_locals: Mapping[str, Any]) -> None:
        try:
            value = self.expression.evaluate(f_locals, frame.f_globals)
        except EvaluationFailure as exc:
            self._failed("expression", exc, frame.f_code, f_locals)
            return
        if id(type(value)) not in _NUMBER:
            self._failed(
                "expression",
                EvaluationFailure(f"{self.expression.source} is {an(type(value))}, not a number"),
            )
            return
        self.aggregate.add(float(value))

    def flush(self) -> None:
        self.total = _emit_aggregate(
            self, self.aggregate, self.total, metric="value", expression=self.expression.source
        )


class DurationAction(Action):
    """Times a function from entry to exit (return or exception), in milliseconds."""

    kind = "duration"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.aggregate = Aggregate()
        self.total = 0
        self._open: dict[int, float] = {}

    def on_enter(self, frame: FrameType) -> None:
        """Backend callback on entry: remember when this frame started."""
        if not self.live:
            return
        start = perf()
        try:
            if self.condition is not None:
                release = self.host.release_locals
                kept = framelocals.keep(frame) if release is not None else None
                f_locals = frame.f_locals
                try:
                    held = self.condition.evaluate(f_locals, frame.f_globals)
                    if not truth(held, self.condition.source):
                        return
                except EvaluationFailure as exc:
                    self._failed("condition", exc, frame.f_code, f_locals)
                    return
                finally:
                    if release is not None:
                        release(frame, f_locals, kept)
            if len(self._open) >= MAX_OPEN_FRAMES:
                self._open.clear()
            self._open[id(frame)] = start
        except RecursionError:  # the host is near its limit: skip this hit only
            pass
        except Exception as exc:
            self._broken(exc)
        finally:
            self._spent(perf() - start)

    def on_exit(self, frame: FrameType) -> None:
        """Backend callback on exit: fold the elapsed time in."""
        if not self.live:
            # Paused or ended: nothing is recorded, so nothing is charged
            # (like the line hooks' first test); forget the frame's start.
            if self._open:
                self._open.pop(id(frame), None)
            return
        end = perf()
        try:
            began = self._open.pop(id(frame), None)
            if began is None or not self.live:
                return
            limit = self.max_hits
            n = next(self._counter)
            if limit is not None and n > limit:
                return
            self.hits = n
            self.aggregate.add((end - began) * 1000.0)
            if limit is not None and n >= limit:
                self.set_state(state.EXHAUSTED, f"reached max_hits={limit}")
        except RecursionError:  # the host is near its limit: skip this hit only
            pass
        except Exception as exc:
            self._broken(exc)
        finally:
            self._spent(perf() - end)

    def _spent(self, seconds: float) -> None:
        spent = self._cpu = self._cpu + seconds
        if spent - self.cpu_mark > self.host.cpu_room[0]:
            self.live = False  # off now; paused by the engine's next tick

    def flush(self) -> None:
        self.total = _emit_aggregate(self, self.aggregate, self.total, metric="duration", unit="ms")


def _emit_aggregate(action: Action, aggregate: Aggregate, total: int, **labels: str) -> int:
    """Ship a metric window (if anything was added) and return the new running total."""
    figures = aggregate.take()
    if figures is None:
        return total
    total += figures["count"]
    action.host.emit_control(
        {
            "type": "metric",
            "action": action.id,
            "ts": wall(),
            **labels,
            "total": total,
            **figures,
        }
    )
    return total


__all__ = [
    "Action",
    "CounterAction",
    "DurationAction",
    "Host",
    "LogAction",
    "MetricAction",
    "SnapshotAction",
]
