"""The engine: places actions in live code and collects what they record.

``Engine`` is the whole in-process API; it needs no network. It owns one
instrumentation backend (chosen by ``backends.choose_backend``), a table of
*sites* (a code object and a line, or a function) with the actions on them, a
bounded outbox of events, and a housekeeping thread that expires actions,
enforces the CPU budget and ships metric aggregates.

Hooks never take the engine lock: an action that finishes on a host thread
only queues itself for retirement, and the next API call or housekeeping tick
removes it from the code.

Placement reaches the backend per code object (a *site*): every change to a
site's actions ends in one ``Backend.apply`` of what is live there. Inside
``Engine.batch()`` those applications wait for the end of the batch, so a
burst of placements or removals costs one change per code object (for the
bytecode core one rebuild per code object and one heap scan in all).
"""

from __future__ import annotations

import os
import secrets
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from types import CodeType, FrameType, ModuleType
from typing import Any

from runtime_agent import clock, framelocals, introspect, locate, state
from runtime_agent.actions import (
    Action,
    CounterAction,
    DurationAction,
    Host,
    LogAction,
    MetricAction,
    SnapshotAction,
)
from runtime_agent.backends import Backend, BackendError, Change, CodePath, choose_backend
from runtime_agent.budget import CpuBudget, check_fraction, fraction_from_env
from runtime_agent.errors import (
    ActionNotFound,
    AgentError,
    CoreRefused,
    ExpressionError,
    LocationError,
)
from runtime_agent.events import Outbox
from runtime_agent.importhook import ImportWatcher
from runtime_agent.redact import Redactor
from runtime_agent.sandbox import TOO_DEEP, Expression, Use, compile_expression
from runtime_agent.state import ActionStatus
from runtime_agent.template import Template

DEFAULT_TTL = 3600.0
MAX_TTL = 7 * 24 * 3600.0
MAX_WATCH = 20
TICK_SECONDS = 0.2
OUTPUTS = ("events", "app", "both")
BLOCKLIST_ENV = locate.BLOCKLIST_ENV


class _Site:
    """The actions on one code object: per line, and around the function."""

    __slots__ = ("func", "func_armed", "lines", "path")

    def __init__(self, path: CodePath) -> None:
        self.path = path
        self.lines: dict[int, list[Action]] = {}
        self.func: list[DurationAction] = []
        self.func_armed = False


class Engine:
    """Places temporary, read-only actions in this process and collects their results.

    Thread-safe. Every ``add_*`` method validates its arguments, compiles its
    expressions in the sandbox, resolves the location and returns the new
    action's ``ActionStatus``: ``installed`` (with the resolved file and
    line), or ``pending`` when the module is not imported yet. Bad input
    raises ``LocationError`` or ``ExpressionError`` and places nothing.
    """

    def __init__(
        self,
        *,
        core: str | None = None,
        redactor: Redactor | None = None,
        cpu_budget: float | None = None,
        metrics_interval: float = 10.0,
        max_events: int = 10_000,
        max_events_per_second: int = 1_000,
        blocklist: Iterable[str] | None = None,
    ) -> None:
        """``cpu_budget``: the share of one core the hooks may use, above 0 and at
        most 1 (``0.02`` is 2%); None reads ``RUNTIME_AGENT_CPU_BUDGET`` or takes
        the default 2%. AgentError for anything else, before any core is taken."""
        fraction = fraction_from_env() if cpu_budget is None else check_fraction(cpu_budget)
        self._backend: Backend = choose_backend(core)
        #: The core's name (``RUNTIME_AGENT_CORE`` spelling).
        self.core = self._backend.name
        self.redactor = redactor if redactor is not None else Redactor.from_env()
        self._budget = CpuBudget(fraction)
        self.metrics_interval = metrics_interval
        self._outbox = Outbox(max_events, max_events_per_second)
        #: The service owner's closed files and modules: no actions, source or caller locals.
        self.blocklist = (
            locate.Blocklist.from_env() if blocklist is None else locate.Blocklist(blocklist)
        )
        self._lock = threading.RLock()
        self._actions: dict[str, Action] = {}
        self._specs: dict[str, locate.LocationSpec] = {}
        self._sites: dict[int, _Site] = {}
        self._placed: dict[str, list[int]] = {}
        self._retired: deque[Action] = deque()
        # Inside batch(): how deep, the sites whose backend change waits for
        # its end, and the actions activated meanwhile (to blame for a refusal).
        self._batch_depth = 0
        self._dirty: dict[int, _Site] = {}
        self._fresh: list[Action] = []
        self._cpu_seen: dict[str, float] = {}
        self._host = Host(
            self._outbox.put,
            self._outbox.put_control,
            self._retired.append,
            self.redactor,
            self._backend.locals_hazard,
            self.blocklist,
            self._backend.release_locals if framelocals.CACHED else None,
        )
        self._host.cpu_room[0] = self._budget.room()
        self._watcher = ImportWatcher(self._wants_module, self._module_loaded)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_pid = 0
        self._last_flush = clock.monotonic()
        self._closed = False
        self.instance_id = secrets.token_hex(6)
        self._pid = os.getpid()
        _register_fork_handler(self)

    @property
    def core_status(self) -> str:
        """Which core runs and why, for people, as it stands now: "monitoring
        (tool id 4)", "settrace: bytecode is not installed; ...", or why the
        monitoring core holds no tool id."""
        return self._backend.status

    # -- public API ------------------------------------------------------------

    def add_log(
        self,
        location: str,
        message: str,
        *,
        condition: str | None = None,
        max_hits: int | None = None,
        ttl_seconds: float | None = None,
        rate_limit: float | None = None,
        output: str = "events",
        action_id: str | None = None,
    ) -> ActionStatus:
        """A log line rendered from ``message`` (``{expr}`` fields) on each hit.

        ``output``: ``"events"`` (drained by the caller), ``"app"`` (the
        process's own ``logging``, logger ``runtime_agent.dynamic``) or
        ``"both"``. Default rate limit: 100 lines per second, excess dropped
        and counted.
        """
        if output not in OUTPUTS:
            raise AgentError(f"output must be one of {', '.join(OUTPUTS)}, not {output!r}")
        try:
            template = Template(message, self.redactor)
        except RecursionError:  # compile_expression says TOO_DEEP itself; kept as a last guard
            raise ExpressionError(f"a field of the log message is {TOO_DEEP}") from None
        return self._place(
            LogAction,
            location,
            condition,
            max_hits,
            ttl_seconds,
            rate_limit,
            action_id,
            template=template,
            output=output,
        )

    def add_snapshot(
        self,
        location: str,
        *,
        condition: str | None = None,
        watch: Sequence[str] = (),
        max_hits: int | None = None,
        ttl_seconds: float | None = None,
        rate_limit: float | None = None,
        action_id: str | None = None,
    ) -> ActionStatus:
        """A snapshot of the stack, locals, ``watch`` values and context per hit (default 1 hit)."""
        if isinstance(watch, str):
            watch = [watch]
        if len(watch) > MAX_WATCH:
            raise ExpressionError(f"at most {MAX_WATCH} watch expressions, got {len(watch)}")
        compiled = [self._compile(w, "watch expression", "value") for w in watch]
        return self._place(
            SnapshotAction,
            location,
            condition,
            max_hits,
            ttl_seconds,
            rate_limit,
            action_id,
            watch=[e for e in compiled if e is not None],
        )

    def add_counter(
        self,
        location: str,
        *,
        condition: str | None = None,
        max_hits: int | None = None,
        ttl_seconds: float | None = None,
        action_id: str | None = None,
    ) -> ActionStatus:
        """Counts hits (where ``condition`` holds); totals go out as periodic ``metric`` events."""
        return self._place(
            CounterAction, location, condition, max_hits, ttl_seconds, None, action_id
        )

    def add_metric(
        self,
        location: str,
        expression: str,
        *,
        condition: str | None = None,
        max_hits: int | None = None,
        ttl_seconds: float | None = None,
        action_id: str | None = None,
    ) -> ActionStatus:
        """Aggregates a numeric ``expression`` per hit: count, min, max, mean, p50, p90, p99."""
        compiled = self._compile(expression, "metric expression", "metric")
        if compiled is None:
            raise ExpressionError("a metric needs an expression, for example len(cart.items)")
        return self._place(
            MetricAction,
            location,
            condition,
            max_hits,
            ttl_seconds,
            None,
            action_id,
            expression=compiled,
        )

    def add_duration(
        self,
        location: str,
        *,
        condition: str | None = None,
        max_hits: int | None = None,
        ttl_seconds: float | None = None,
        action_id: str | None = None,
    ) -> ActionStatus:
        """Times calls of a function, entry to exit, in ms (same aggregates as a metric).

        ``location`` names the function (``package.module:Class.method``) or
        a line inside it. ``condition`` is evaluated on entry, over the arguments.
        """
        return self._place(
            DurationAction, location, condition, max_hits, ttl_seconds, None, action_id
        )

    def status(self, action_id: str) -> ActionStatus:
        """Where the action stands; raises ActionNotFound for an unknown id."""
        with self._lock:
            self._housekeep_locked(clock.monotonic(), flush=False)
            return self._get(action_id).status()

    def actions(self) -> list[ActionStatus]:
        """The status of every action this engine holds, oldest first."""
        with self._lock:
            self._housekeep_locked(clock.monotonic(), flush=False)
            return [a.status() for a in self._actions.values()]

    def remove(self, action_id: str) -> ActionStatus:
        """Take an action out of the code, restoring it; its final metrics are emitted."""
        with self._lock:
            action = self._get(action_id)
            self._uninstall(action)
            action.flush()
            action.set_state(state.REMOVED, "removed")
            self._forget(action)
            return action.status()

    def resume(self, action_id: str) -> ActionStatus:
        """Switch an action the CPU budget paused back on, with a fresh budget window.

        An action that is installed or pending is left as it is; one that has
        ended (exhausted, expired, error, removed) cannot resume: place it again.
        """
        with self._lock:
            action = self._get(action_id)
            if action.state in state.FINAL:
                raise AgentError(
                    f"action {action_id!r} is {action.state} and cannot resume; place it again"
                )
            if action.state == state.PAUSED:
                self._budget.forget(action.id)
                # Like a placement: the core may have to claim what it let go
                # (a sys.monitoring tool id), and the action errs if it cannot.
                self._activate(action, "resumed by a caller")
            return action.status()

    def remove_all(self) -> int:
        """Remove every action; returns how many there were."""
        with self.batch():
            ids = list(self._actions)
            for action_id in ids:
                self.remove(action_id)
            return len(ids)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Apply the placements and removals made inside to the code at once, at the end.

        ``with engine.batch(): ...`` any ``add_*``, ``remove`` and ``resume``
        calls: each validates, resolves and raises as usual, but the code is
        changed once per code object when the outermost batch ends (on the
        bytecode core one rebuild per code object and one heap scan, instead
        of one of each per action). Inside, a new action reads ``installed``
        before its hooks are in; one the core then refuses ends in ``error``,
        as it would alone, and the others stay in. Holds the engine lock
        until the end: other threads' calls wait for the batch.
        """
        with self._lock:
            self._batch_depth += 1
            try:
                yield
            finally:
                self._batch_depth -= 1
                if not self._batch_depth:
                    self._apply_dirty()

    def drain(self) -> list[dict[str, Any]]:
        """Events since the last call, oldest first: plain JSON-serialisable dicts.

        ``type`` is ``log``, ``snapshot``, ``metric`` (periodic aggregates)
        or ``state`` (an action changed state).
        """
        with self._lock:
            self._housekeep_locked(clock.monotonic(), flush=False)
        return self._outbox.drain()

    def flush(self) -> None:
        """Emit metric and counter aggregates now instead of at the next interval."""
        with self._lock:
            self._housekeep_locked(clock.monotonic(), flush=True)

    def canonical(self, code: CodeType) -> CodeType:
        """The original of a code object the core may have replaced (for source lookups)."""
        return self._backend.canonical(code)

    def stats(self) -> dict[str, Any]:
        """Engine-wide figures: core, events queued and dropped, hook time in the budget window."""
        return {
            "core": self.core,
            "core_status": self.core_status,
            "instance_id": self.instance_id,
            "actions": len(self._actions),
            "queued_events": len(self._outbox),
            "dropped_overflow": self._outbox.dropped_overflow,
            "dropped_rate": self._outbox.dropped_rate,
            "cpu_window_seconds": round(self._budget.spent, 6),
            "cpu_budget_seconds": self._budget.limit,
        }

    def close(self) -> None:
        """Remove every action, stop the housekeeping thread and release the core."""
        with self._lock:
            if self._closed:
                return
            self.remove_all()
            self._closed = True
            self._watcher.uninstall()
            self._backend.close()
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2)

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- placement ---------------------------------------------------------------

    def _compile(self, source: str | None, what: str, use: Use) -> Expression | None:
        """``source`` compiled under this engine's secrecy rule (None when empty)."""
        if source is None:
            return None
        if not isinstance(source, str):
            raise ExpressionError(f"{what} must be a string, not {type(source).__name__}")
        if not source.strip():
            return None
        try:
            return compile_expression(source, redactor=self.redactor, use=use)
        except ExpressionError as exc:
            raise ExpressionError(f"{what} {source!r}: {exc}") from None
        except RecursionError:  # compile_expression says TOO_DEEP itself; kept as a last guard
            raise ExpressionError(f"{what} is {TOO_DEEP}") from None

    def _place(
        self,
        cls: type[Action],
        location: str,
        condition: str | None,
        max_hits: int | None,
        ttl_seconds: float | None,
        rate_limit: float | None,
        action_id: str | None,
        **extra: Any,
    ) -> ActionStatus:
        if self._closed:
            raise AgentError("this engine is closed; create a new Engine")
        cond = self._compile(condition, "condition", "condition")
        max_hits = _check_positive_int(max_hits, "max_hits", cls.default_max_hits)
        ttl = _check_ttl(ttl_seconds)
        rate = _check_rate(rate_limit, cls.default_rate)
        spec = locate.parse_location(location)
        with self._lock:
            action_id = action_id or secrets.token_hex(4)
            if action_id in self._actions:
                raise AgentError(f"an action with id {action_id!r} already exists")
            action = cls(self._host, action_id, spec.text, cond, max_hits, ttl, rate, **extra)
            found = locate.find_module(spec)
            if found is None:
                action.message = (
                    f"waiting for {spec.module or spec.file} to be imported; "
                    "installs automatically then"
                )
            else:
                note = self._install(action, spec, *found)  # raises to the caller, keeps nothing
            self._actions[action_id] = action
            self._specs[action_id] = spec
            if found is None:
                self._watcher.install()
            else:
                self._activate(action, note)
            self._ensure_thread()
            return action.status()

    def _install(
        self, action: Action, spec: locate.LocationSpec, module: str | None, filename: str
    ) -> str:
        """Resolve and register the action's sites; returns a note for its status.

        Raises LocationError (nothing registered) when the location cannot
        take it. The action stays inactive until ``_activate``.
        """
        self._check_blocklist(spec, module, filename)
        canonical = self._backend.canonical
        if isinstance(action, DurationAction):
            where = locate.resolve_function(spec, module, filename, canonical)
        elif spec.qualname is not None:
            raise LocationError(
                f"{spec.text} names a function; {action.kind} actions go at a line "
                "(file.py:LINE or package.module:LINE); durations take a function"
            )
        else:
            where = locate.resolve_line(spec, module, filename, canonical)
        for path in where.paths:
            refused = self._backend.refusal(path.code)
            if refused is not None:
                raise CoreRefused(
                    f"{spec.text}: the {self.core} core cannot run this {action.kind} "
                    f"read-only: {refused}"
                )
        action.file, action.line, action.function = where.file, where.line, where.function
        keys: list[int] = []
        for path in where.paths:
            site = self._sites.get(id(path.code))
            if site is None:
                site = self._sites[id(path.code)] = _Site(path)
            if isinstance(action, DurationAction):
                site.func.append(action)
            else:
                assert where.line is not None
                site.lines.setdefault(where.line, []).append(action)
            keys.append(id(path.code))
        self._placed[action.id] = keys
        if len(where.paths) == 1:
            return ""
        return f"installed in {len(where.paths)} code objects: {where.function}"

    def _activate(self, action: Action, note: str) -> None:
        action.cpu_mark = action.cpu
        self._host.cpu_room[0] = max(self._budget.room(), 0.0)
        action.set_state(state.INSTALLED, note)
        if self._batch_depth:
            self._fresh.append(action)
        try:
            self._rearm(action)
        except BackendError as exc:
            self._refused(action, exc)

    def _refused(self, action: Action, exc: BackendError) -> None:
        # The core refused a code object of this action (a 3.10 function
        # nested 20 blocks deep, say): the action fails, the code stays as it was.
        action.set_state(state.ERROR, f"cannot instrument here: {exc}")
        self._uninstall(action)

    def _check_blocklist(
        self, spec: locate.LocationSpec, module: str | None, filename: str
    ) -> None:
        self.blocklist.check(spec.text, filename, module)

    def _apply(self, site: _Site) -> None:
        """Tell the backend what is live on this code object now (in a batch: at its end).

        Raises BackendError when the core refuses it (not in a batch).
        """
        if self._batch_depth:
            self._dirty[id(site.path.code)] = site
            return
        error = self._apply_sites([site])[0]
        if error is not None:
            raise error

    def _apply_sites(self, sites: list[_Site]) -> list[BackendError | None]:
        """One backend change per site, all at once; per site None or the core's refusal."""
        changes = []
        for site in sites:
            lines = {
                line: _line_callback(acts)
                for line, acts in site.lines.items()
                if any(a.live for a in acts)
            }
            live = [a for a in site.func if a.live]
            changes.append(
                Change(
                    site.path,
                    lines,
                    set_function=bool(live) or site.func_armed,
                    function=_function_callbacks(live) if live else None,
                )
            )
        errors = self._backend.apply(changes)
        for site, change, error in zip(sites, changes, errors, strict=True):
            if error is None and change.set_function:
                site.func_armed = change.function is not None
            if not site.lines and not site.func:
                self._sites.pop(id(site.path.code), None)
        return errors

    def _apply_dirty(self) -> None:
        """End of a batch: apply every site it changed; a site the core refuses
        is settled one new action at a time, as if they had come alone."""
        sites, fresh = list(self._dirty.values()), self._fresh
        self._dirty, self._fresh = {}, []
        if not sites:
            return
        errors = self._apply_sites(sites)
        for site, error in zip(sites, errors, strict=True):
            if error is not None:
                self._settle(site, fresh)

    def _settle(self, site: _Site, fresh: list[Action]) -> None:
        """Add the batch's new actions on a site the core refused one by one,
        so only those it refuses alone fail."""
        on_site = {id(a) for acts in site.lines.values() for a in acts}
        on_site.update(id(a) for a in site.func)
        newcomers = [a for a in fresh if a.live and id(a) in on_site]
        for action in newcomers:
            action.live = False  # not in the code yet: left out of the site's change
        try:
            self._apply(site)  # what the site had, with the batch's removals
        except BackendError:
            pass
        for action in newcomers:
            if action.state != state.INSTALLED:
                continue
            action.live = True
            try:
                self._apply(site)
            except BackendError as exc:
                self._refused(action, exc)

    def _uninstall(self, action: Action) -> None:
        for key in self._placed.pop(action.id, ()):
            site = self._sites.get(key)
            if site is None:
                continue
            for line, acts in list(site.lines.items()):
                if action in acts:
                    acts.remove(action)
                if not acts:
                    del site.lines[line]
            if action in site.func:
                site.func.remove(action)  # type: ignore[arg-type]
            action.live = False
            try:
                self._apply(site)
            except BackendError:
                pass  # nothing more can be taken out of that code object
        action.live = False

    def _rearm(self, action: Action) -> None:
        for key in self._placed.get(action.id, ()):
            site = self._sites.get(key)
            if site is not None:
                self._apply(site)

    def _forget(self, action: Action) -> None:
        self._actions.pop(action.id, None)
        self._specs.pop(action.id, None)
        self._cpu_seen.pop(action.id, None)
        self._budget.forget(action.id)
        if not any(a.state == state.PENDING for a in self._actions.values()):
            self._watcher.uninstall()

    def _get(self, action_id: str) -> Action:
        action = self._actions.get(action_id)
        if action is None:
            raise ActionNotFound(f"no action {action_id!r} in this process")
        return action

    # -- pending actions ---------------------------------------------------------

    def _wants_module(self, name: str, filename: str | None) -> bool:
        return any(
            self._specs[a.id].matches_module(name, filename)
            for a in list(self._actions.values())
            if a.state == state.PENDING and a.id in self._specs
        )

    def _module_loaded(self, module: ModuleType) -> None:
        locate.forget_index()  # the new module's functions are not in it yet
        # Its name from the namespace slot: a lazy module's class would run code.
        name: Any = None
        if introspect.inherits(type(module), ModuleType):
            name = introspect.scan_for(introspect.module_dict(module), "__name__")
        if type(name) is not str:
            name = "its module"
        with self.batch():
            for action in list(self._actions.values()):
                spec = self._specs.get(action.id)
                if action.state != state.PENDING or spec is None:
                    continue
                try:
                    found = locate.find_module(spec, just_loaded=module)
                    if found is None:
                        continue
                    note = self._install(action, spec, *found)
                except AgentError as exc:
                    action.set_state(state.ERROR, str(exc))
                    continue
                self._activate(action, note or f"installed when {name} was imported")
            if not any(a.state == state.PENDING for a in self._actions.values()):
                self._watcher.uninstall()

    # -- housekeeping ------------------------------------------------------------

    def _ensure_thread(self) -> None:
        pid = os.getpid()
        if self._thread is not None and self._thread_pid == pid and self._thread.is_alive():
            return
        self._stop = threading.Event()
        self._thread_pid = pid
        self._thread = threading.Thread(
            target=_housekeeping_loop,
            args=(weakref.ref(self), self._stop),
            name="runtime-agent-housekeeping",
            daemon=True,
        )
        self._thread.start()

    def _tick(self) -> None:
        with self._lock:
            now = clock.monotonic()
            self._housekeep_locked(now, flush=now - self._last_flush >= self.metrics_interval)

    def _housekeep_locked(self, now: float, *, flush: bool) -> None:
        self._retire()
        # Only what changed is stored: a host measuring its own allocations
        # (tracemalloc) sees nothing of the thousands of actions it did not hit.
        costs: dict[str, float] = {}
        for action in list(self._actions.values()):
            if action.state in (state.INSTALLED, state.PAUSED, state.PENDING) and (
                now >= action.expires_mono
            ):
                action.set_state(state.EXPIRED, f"expired after ttl_seconds={action.ttl_seconds:g}")
            cpu = action.cpu
            seen = self._cpu_seen.get(action.id, 0.0)
            if cpu != seen:
                costs[action.id] = cpu - seen
                self._cpu_seen[action.id] = cpu
                action.cpu_mark = cpu
        self._retire()
        self._budget.add(now, costs)
        self._enforce_budget()
        if flush:
            self._last_flush = now
            for action in list(self._actions.values()):
                action.flush()

    def _retire(self) -> None:
        """Take the actions that ended (hits, expiry) out of the code, in one batch."""
        if not self._retired:
            return
        with self.batch():
            while self._retired:
                action = self._retired.popleft()
                self._uninstall(action)
                action.flush()

    def _enforce_budget(self) -> None:
        """Pause what costs too much; give the others the room left as their ceiling.

        A paused action stays paused until ``resume`` or until it is replaced.
        """
        budget = self._budget
        for action_id, seconds in budget.culprits():
            action = self._actions.get(action_id)
            if action is not None and action.state == state.INSTALLED:
                self._pause(action, seconds)
        for action in list(self._actions.values()):
            if action.over_ceiling():  # switched itself off between ticks
                self._pause(action, budget.cost_of(action.id))
        self._host.cpu_room[0] = max(budget.room(), 0.0)

    def _pause(self, action: Action, seconds: float) -> None:
        action.set_state(state.PAUSED, self._budget.describe(seconds))
        self._budget.forget(action.id)  # it spends nothing more until resumed

    def _after_fork_in_child(self) -> None:
        """A forked child: fresh locks, identity and thread; the actions stay.

        Idempotent per process: the channel calls it before re-registering,
        and the engine's own fork handler calls it again.
        """
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        # Locks may have been held by threads that do not exist in the child.
        self._lock = threading.RLock()
        # A batch another thread had open is gone with it: apply what it changed.
        self._batch_depth = 0
        try:
            self._apply_dirty()
        except Exception:
            pass
        self._outbox.clear()
        self.instance_id = secrets.token_hex(6)
        self._thread = None
        if self._actions:
            self._ensure_thread()


def _line_callback(actions: list[Action]) -> Callable[[FrameType], bool]:
    live = [a for a in actions if a.live]
    if len(live) == 1:
        return live[0].line_hook()
    hooks = tuple(a.line_hook() for a in live)

    def fire(frame: FrameType) -> bool:
        alive = False
        for hook in hooks:
            if hook(frame):
                alive = True
        return alive

    return fire


def _function_callbacks(
    actions: list[DurationAction],
) -> tuple[Callable[[FrameType], None], Callable[[FrameType], None]]:
    if len(actions) == 1:
        return actions[0].on_enter, actions[0].on_exit
    enters = tuple(a.on_enter for a in actions)
    exits = tuple(a.on_exit for a in actions)

    def on_enter(frame: FrameType) -> None:
        for hook in enters:
            hook(frame)

    def on_exit(frame: FrameType) -> None:
        for hook in exits:
            hook(frame)

    return on_enter, on_exit


def _housekeeping_loop(ref: weakref.ref[Engine], stop: threading.Event) -> None:
    while not stop.wait(TICK_SECONDS):
        engine = ref()
        if engine is None:
            return
        try:
            engine._tick()
        except Exception:  # housekeeping must outlive any one bad tick
            pass
        del engine


_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()
_FORK_HANDLER = []


def _after_fork() -> None:
    for engine in list(_ENGINES):
        try:
            engine._after_fork_in_child()
        except Exception:
            pass


def _register_fork_handler(engine: Engine) -> None:
    if not _FORK_HANDLER and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork)
        _FORK_HANDLER.append(True)
    _ENGINES.add(engine)


def _check_positive_int(value: int | None, name: str, default: int | None) -> int | None:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise AgentError(f"{name} must be a positive whole number, got {value!r}")
    return value


def _check_ttl(value: float | None) -> float:
    if value is None:
        return DEFAULT_TTL
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_TTL:
        raise AgentError(
            f"ttl_seconds must be above 0 and at most {MAX_TTL:g} (7 days), got {value!r}"
        )
    return float(value)


def _check_rate(value: float | None, default: float | None) -> float | None:
    if value is None:
        return default
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0 < value < float("inf")  # NaN fails both
    ):
        raise AgentError(f"rate_limit must be a positive number of hits per second, got {value!r}")
    return float(value)


__all__ = ["Engine"]
