"""The control channel: one daemon thread between the engine and the hub.

The thread registers, keeps a long poll open for action changes and, while
that poll waits, ships the engine's events in batches (every 50 ms at most
when there are any). It never blocks the host: it owns its sockets, waits
with ``select`` and reaches the engine only through its thread-safe API.

Registration (with the shared agent token) returns this agent's own
credential, which every later request carries. When the hub does not know
the agent or its credential any more (it forgot it, or lost its database) the
channel registers again at once, presenting the credential it holds; when the
hub has the instance id on record under a credential this process cannot
show (a register reply lost on the way), it registers under a new instance id.

While the hub is unreachable it backs off exponentially with jitter; actions
keep running until they expire and their events queue up (bounded by the
engine's outbox) until the hub is back. A batch is resent until the hub
acknowledges it, under the same batch number, so nothing is stored twice.
Batches stay under the hub's body limits (1 MiB compressed, 8 MiB inflated):
at most ``MAX_BATCH`` events and about ``MAX_BATCH_BYTES`` of JSON, so even
text that does not compress fits. A batch the hub still will not take as it
is (413, or 400: an event it refuses) is split in halves, sent in turn, down
to single events; a single event refused is dropped and counted in the next
batch's ``dropped``, so one bad batch never holds up every later event.
"""

from __future__ import annotations

import os
import random
import secrets
import select
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any

from runtime_agent import clock, source
from runtime_agent._version import VERSION as AGENT_VERSION
from runtime_agent.config import AgentConfig
from runtime_agent.engine import Engine
from runtime_agent.errors import ActionNotFound, AgentError
from runtime_agent.hubclient import HubConnection, HubError, encode

PROTOCOL = 1
POLL_WAIT = 10.0
UPLOAD_EVERY = 0.05
MAX_BATCH = 500
#: JSON bytes per batch, under the hub's 1 MiB compressed limit even when gzip
#: cannot shrink the text (random identifiers, already compressed data).
MAX_BATCH_BYTES = 900 << 10
#: What a log, state or metric event adds to a batch besides its message.
_EVENT_OVERHEAD = 512
BACKOFF_START = 0.25
BACKOFF_MAX = 30.0


class Channel:
    """Keeps one engine in step with the hub, on a daemon thread."""

    def __init__(self, engine: Engine, config: AgentConfig) -> None:
        self.engine = engine
        self.config = config
        self.agent_id: str | None = None
        # The identity this process registers under: the engine's, unless the
        # hub holds that one under a credential we never received.
        self._instance_id = engine.instance_id
        self._credential: str | None = None
        self.connected = False
        self.last_error = ""
        self._version = 0
        self._placed: dict[str, dict[str, Any]] = {}
        self._reports: list[dict[str, Any]] = []
        self._batch_no = 0
        self._pending: dict[str, Any] | None = None
        self._dropped_seen = 0
        #: Events the hub refused one by one (dropped, reported as dropped).
        self._refused_events = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._poll = HubConnection(config.hub)
        self._upload = HubConnection(config.hub)

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        """Start the thread (again, in a forked child)."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="runtime-agent-channel", daemon=True)
        self._thread.start()

    def stop(self, flush_timeout: float = 1.0) -> None:
        """Stop the thread, shipping what is queued if the hub answers quickly."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=flush_timeout + 1)
        try:
            self._upload.timeout = flush_timeout
            self._ship(force=True)
        except Exception:
            pass
        self._poll.close()
        self._upload.close()

    def after_fork_in_child(self) -> None:
        """A forked worker is a new agent: new connections, new identity, same actions."""
        self.engine._after_fork_in_child()  # the new identity before registering
        self._poll = HubConnection(self.config.hub)
        self._upload = HubConnection(self.config.hub)
        self.agent_id = None
        self._instance_id = self.engine.instance_id
        self._credential = None
        self._pending = None
        self._batch_no = 0
        self._version = 0
        self.start()

    # -- the thread ------------------------------------------------------------

    def _run(self) -> None:
        backoff = BACKOFF_START
        retried = False
        while not self._stop.is_set():
            try:
                if self.agent_id is None:
                    self._register()
                self._poll_once()
                backoff = BACKOFF_START
                retried = False
            except HubError as exc:
                self.connected = False
                self.last_error = str(exc)
                if exc.status in (401, 404) and self.agent_id is not None:
                    # The hub forgot this agent or its credential: register again,
                    # at once the first time (not in a loop if that keeps failing).
                    self.agent_id = None
                    if not retried:
                        retried = True
                        continue
                elif exc.status == 409 and self.agent_id is None:
                    # Our instance id is on record under a credential we never got.
                    self._instance_id = secrets.token_hex(6)
                    self._credential = None
                # Jitter keeps a fleet of workers from reconnecting in step.
                self._stop.wait(backoff * random.uniform(0.5, 1.5))
                backoff = min(backoff * 2, BACKOFF_MAX)
            except Exception as exc:  # a bug of ours: never let the thread die
                self.last_error = f"{type(exc).__name__}: {exc}"
                self._stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)

    def _register(self) -> None:
        engine = self.engine
        payload = {
            "protocol": PROTOCOL,
            "instance_id": self._instance_id,
            "service": self.config.service,
            "tags": self.config.tags,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "python": sys.version.split()[0],
            "agent_version": AGENT_VERSION,
            "core": engine.core_status,  # which core runs and why
            "code_version": self.config.code_version,
            "started_at": clock.wall(),
        }
        if self._credential:
            payload["credential"] = self._credential
        reply = self._upload.request(
            "POST", "/v1/agents/register", payload, token=self.config.token
        )
        agent_id, credential = reply.get("agent_id"), reply.get("credential")
        if not isinstance(agent_id, str) or not isinstance(credential, str):
            raise HubError(0, "bad_reply", "the hub's register reply has no agent_id or credential")
        self._credential = credential
        self.agent_id = agent_id
        self._version = 0
        self.connected = True
        self.last_error = ""
        self._announce()

    def _announce(self) -> None:
        """Tell a (new) agent id where this process's actions stand.

        A forked worker inherits its parent's actions, and a hub that forgot
        this agent lost their states: report each one afresh.
        """
        now = clock.wall()
        self._reports.extend(
            {
                "type": "state",
                "action": s.id,
                "ts": now,
                "state": s.state,
                "message": s.message,
                "hits": s.hits,
                "file": s.file,
                "line": s.line,
                "function": s.function,
            }
            for s in self.engine.actions()
            if s.id in self._placed
        )

    def _poll_once(self) -> None:
        """One long poll; ships events while it waits."""
        path = f"/v1/agents/{self.agent_id}/actions?version={self._version}&wait={POLL_WAIT:g}"
        conn = self._poll
        sock = conn.send_request("GET", path, timeout=POLL_WAIT + 10, token=self._credential)
        deadline = clock.monotonic() + POLL_WAIT + 10
        last_ship = 0.0
        while not self._stop.is_set():
            ready, _, _ = select.select([sock], [], [], UPLOAD_EVERY)
            if ready:
                reply = conn.read_response()
                self.connected = True
                if reply.get("changed"):
                    self._reconcile(reply.get("actions") or [])
                    self._version = int(reply.get("version", self._version))
                for query in reply.get("queries") or []:
                    self._answer(query)
                self._ship(force=True)
                return
            now = clock.monotonic()
            if now - last_ship >= UPLOAD_EVERY:
                self._ship()
                last_ship = now
            if now > deadline:
                conn.close()
                raise HubError(0, "timeout", "the hub did not answer a poll in time")
        conn.close()

    # -- actions ---------------------------------------------------------------

    def _reconcile(self, wanted: list[Any]) -> None:
        """Bring the engine's actions in line with the hub's set, as one batch:
        the code changes once per code object however many actions moved."""
        desired = {
            a["id"]: a for a in wanted if isinstance(a, dict) and isinstance(a.get("id"), str)
        }
        with self.engine.batch():
            self._reconcile_in_batch(desired)

    def _reconcile_in_batch(self, desired: dict[str, dict[str, Any]]) -> None:
        for action_id in list(self._placed):
            if action_id not in desired:
                self._placed.pop(action_id, None)
                try:
                    self.engine.remove(action_id)
                except ActionNotFound:
                    pass
        for action_id, spec in desired.items():
            if self._placed.get(action_id) == spec:
                continue
            if action_id in self._placed:  # changed: replace it
                try:
                    self.engine.remove(action_id)
                except ActionNotFound:
                    pass
            self._placed[action_id] = spec
            self._place(action_id, spec)

    def _place(self, action_id: str, spec: dict[str, Any]) -> None:
        try:
            place_from_spec(self.engine, action_id, spec)
        except AgentError as exc:
            self._reports.append(
                {
                    "type": "state",
                    "action": action_id,
                    "ts": clock.wall(),
                    "state": "error",
                    "message": self._masked(str(exc)),
                    "hits": 0,
                }
            )
        except Exception as exc:
            self._reports.append(
                {
                    "type": "state",
                    "action": action_id,
                    "ts": clock.wall(),
                    "state": "error",
                    "hits": 0,
                    "message": self._masked(f"invalid action: {type(exc).__name__}: {exc}"),
                }
            )

    def _answer(self, query: Any) -> None:
        """Answer one question from the hub (live source, for now)."""
        if not isinstance(query, dict) or not isinstance(query.get("id"), str):
            return
        answer: dict[str, Any] = {"protocol": PROTOCOL, "query": query["id"]}
        try:
            if query.get("kind") != "source":
                raise AgentError(f"unknown query {query.get('kind')!r}")
            args = query.get("args") or {}
            answer["result"] = source.describe(
                str(args.get("location", "")),
                int(args.get("context", 15)),
                canonical=self.engine.canonical,
                blocklist=self.engine.blocklist,
            )
        except AgentError as exc:
            answer["error"] = self._masked(str(exc))
        except Exception as exc:
            answer["error"] = self._masked(f"{type(exc).__name__}: {exc}")
        self._upload.request(
            "POST", f"/v1/agents/{self.agent_id}/answers", answer, token=self._credential
        )

    def _masked(self, text: str) -> str:
        """An error text for the hub, masked by the engine's redactor: an exception
        raised from the host's code (a module, a loader) may carry a secret."""
        try:
            return self.engine.redactor.mask_text(text)
        except Exception:
            return "<error withheld: it could not be masked>"

    # -- events ----------------------------------------------------------------

    def _ship(self, force: bool = False) -> None:
        """Upload the pending batch, or a new one if there are events; with ``force``,
        until nothing is left."""
        while self._ship_once() and force:
            if not (self._reports or self.engine.stats()["queued_events"]):
                return

    def _ship_once(self) -> bool:
        """Send one batch; False when there was none to send."""
        if self.agent_id is None:
            return False
        if self._pending is None:
            events = self._reports + self.engine.drain()
            self._reports = []
            if not events:
                return False
            stats = self.engine.stats()
            dropped = stats["dropped_overflow"] + stats["dropped_rate"] + self._refused_events
            self._batch_no += 1
            fits = _fitting(events)
            self._pending = {
                "protocol": PROTOCOL,
                "batch": self._batch_no,
                "dropped": dropped - self._dropped_seen,
                "events": events[:fits],
            }
            self._dropped_seen = dropped
            self._reports = events[fits:]  # shipped in the next batch
        try:
            self._upload.request(
                "POST", f"/v1/agents/{self.agent_id}/events", self._pending, token=self._credential
            )
        except HubError as exc:
            if exc.status not in (400, 413):
                raise  # the hub is away or forgot us: resend this batch as it is later
            self._refused(exc)
            return True
        self._pending = None
        return True

    def _refused(self, exc: HubError) -> None:
        """The hub will never take the pending batch as it is: keep its first half
        pending (the hub stored nothing, so under the same number) and put the rest
        back in front of the queue; a single event is dropped and counted."""
        pending = self._pending
        assert pending is not None
        events = pending["events"]
        if len(events) > 1:
            half = len(events) // 2
            pending["events"] = events[:half]
            self._reports[:0] = events[half:]
            return
        self._refused_events += 1
        self._pending = None
        self.last_error = f"the hub refused an event ({exc}); dropped it"


def _fitting(events: list[dict[str, Any]]) -> int:
    """How many of ``events``, from the first, make one batch (at least one)."""
    size = 0
    for n, event in enumerate(events[:MAX_BATCH]):
        if event.get("type") == "snapshot":  # the large ones: measure
            size += len(encode(event))
        else:  # a log line, a state or a metric: their text is the variable part
            message = event.get("message")
            size += _EVENT_OVERHEAD + (len(message) if type(message) is str else 0)
        if size > MAX_BATCH_BYTES and n:
            return n
    return min(len(events), MAX_BATCH)


_Placer = Callable[..., Any]


def place_from_spec(engine: Engine, action_id: str, spec: dict[str, Any]) -> None:
    """Place one action as the hub describes it (see docs/protocol.md)."""
    kind = spec.get("kind")
    location = spec.get("location")
    if not isinstance(location, str):
        raise AgentError("the action has no location")
    common: dict[str, Any] = {"condition": spec.get("condition"), "action_id": action_id}
    if spec.get("max_hits") is not None:
        common["max_hits"] = int(spec["max_hits"])
    expires_at = spec.get("expires_at")
    if expires_at is not None:
        remaining = float(expires_at) - clock.wall()
        if remaining <= 0:
            raise AgentError("the action expired before it reached this process")
        common["ttl_seconds"] = remaining
    if kind == "log":
        engine.add_log(
            location,
            str(spec.get("message", "")),
            output=spec.get("output", "events"),
            rate_limit=spec.get("rate_limit"),
            **common,
        )
    elif kind == "snapshot":
        engine.add_snapshot(
            location,
            watch=list(spec.get("watch") or []),
            rate_limit=spec.get("rate_limit"),
            **common,
        )
    elif kind == "counter":
        engine.add_counter(location, **common)
    elif kind == "metric":
        engine.add_metric(location, str(spec.get("expression", "")), **common)
    elif kind == "duration":
        engine.add_duration(location, **common)
    else:
        raise AgentError(f"unknown action kind {kind!r}")
