"""The hub's core, free of HTTP: live agents, action placement, long polls.

Each agent registers once and gets a credential (``auth.py``); only its hash
is kept, here and in the store. The hub then takes from that agent only what
concerns it: its own polls and heartbeats, events of the actions sent to it
(or that target it), answers to the queries asked of it.

Agents' desired action sets are computed from the store on demand. Any change
to actions bumps ``generation`` (a millisecond clock, so it keeps growing
across hub restarts) and wakes every waiting poll; any batch of events wakes
whoever waits for results. Liveness lives in memory and is written to the
store now and then.

Registrations are bounded (``runtime-mcp serve --max-agents`` and
``--max-registrations``): whoever may register, which on an open loopback hub
is anyone, cannot fill the hub's memory and store with agent records. At the
cap, a new agent takes the place of the longest-silent lost one; with every
known agent live, or too many new records in the last minute, it gets a
``CapacityError`` (429) and the agent retries with backoff.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections import deque
from typing import Any

import anyio
import structlog

from runtime_mcp.auth import credential_hash, credential_matches, new_credential
from runtime_mcp.selectors import Selector, parse_selector
from runtime_mcp.settings import MAX_AGENTS, MAX_REGISTRATIONS, REGISTRATION_WINDOW
from runtime_mcp.store import AUDIT_MAX_AGE, AUDIT_MAX_ROWS, Store

log = structlog.get_logger("runtime_mcp.hub")

LOST_AFTER = 15.0
FORGET_AFTER = 600.0
MAX_WAIT = 30.0
#: States an agent reports once it has dealt with an action.
ANSWERED = frozenset({"installed", "pending", "error", "exhausted", "expired", "paused", "removed"})


class QueryError(Exception):
    """An agent could not answer a query; the message says why."""


class PlacementError(Exception):
    """An action cannot be placed (no matching agent, bad target); the message says why."""


class ClaimError(Exception):
    """A registration names the instance id of an agent it cannot prove to be."""


class CapacityError(Exception):
    """A new agent record would pass a registration bound; ``code`` says which one,
    ``retry_after`` in how many seconds to try again."""

    def __init__(self, code: str, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after


class Hub:
    """Live agents and their actions."""

    def __init__(
        self,
        store: Store,
        *,
        lost_after: float = LOST_AFTER,
        forget_after: float = FORGET_AFTER,
        audit_max_rows: int = AUDIT_MAX_ROWS,
        audit_max_age: float = AUDIT_MAX_AGE,
        max_agents: int = MAX_AGENTS,
        max_registrations: int = MAX_REGISTRATIONS,
        registration_window: float = REGISTRATION_WINDOW,
    ) -> None:
        self.store = store
        self.max_agents = max_agents
        self.max_registrations = max_registrations
        self.registration_window = registration_window
        #: When the new records of the last window were made (at most max_registrations).
        self._registered: deque[float] = deque()
        #: Held while agent records are added or dropped (both run in worker threads),
        #: so that two registrations cannot both take the last place.
        self._records = threading.Lock()
        self.lost_after = lost_after
        self.forget_after = forget_after
        self.audit_max_rows = audit_max_rows
        self.audit_max_age = audit_max_age
        self.generation = int(time.time() * 1000)
        self._changed = anyio.Event()
        self._activity = anyio.Event()
        self._agents: dict[str, dict[str, Any]] = {a["id"]: a for a in store.agents()}
        self._credentials: dict[str, str | None] = store.credential_hashes()
        self._seen: dict[str, float] = {}
        self._seen_dirty: dict[str, float] = {}
        #: Per agent, the actions it is recorded as sent.
        self._assigned: dict[str, set[str]] = {}
        self._queries: dict[str, list[dict[str, Any]]] = {}
        self._waiting: dict[str, tuple[str, anyio.Event, dict[str, Any]]] = {}
        self.started = time.time()
        # Restarted hub: agents are live only once they speak again.
        for agent in self._agents.values():
            self._seen[agent["id"]] = 0.0

    # -- agents ----------------------------------------------------------------

    def register(self, info: dict[str, Any], credential: str | None = None) -> tuple[str, str]:
        """Register (or re-register) an agent; returns its id and credential.

        Registering again under a known instance id needs that record's
        ``credential`` (ClaimError otherwise), so no one takes over another
        agent's record or keeps it live. A new record must fit the bounds
        (CapacityError otherwise).
        """
        with self._records:
            return self._register(info, credential)

    def _register(self, info: dict[str, Any], credential: str | None) -> tuple[str, str]:
        existing = next(
            (a for a in self._agents.values() if a["instance_id"] == info["instance_id"]), None
        )
        if existing is not None:
            stored = self._credentials.get(existing["id"])
            given = (credential or "").encode()
            if stored is not None and not credential_matches(given, stored):
                raise ClaimError(
                    f"instance id {info['instance_id']} is registered to agent {existing['id']}; "
                    "register again with that agent's credential, or with a new instance id"
                )
            if stored is None:  # a record from before credentials: whoever comes first
                credential = None
        if existing is None:
            self._make_room()
        if existing is None or credential is None:
            credential = new_credential()
        agent_id = existing["id"] if existing else f"ag-{info['instance_id'][:12]}"
        if existing is None and agent_id in self._agents:
            agent_id = f"ag-{secrets.token_hex(6)}"
        record = {**info, "id": agent_id}
        hashed = credential_hash(credential)
        self.store.upsert_agent(record, hashed)
        self._credentials[agent_id] = hashed
        now = time.time()
        record.update(registered_at=existing["registered_at"] if existing else now, last_seen=now)
        self._agents[agent_id] = record
        self.seen(agent_id)
        if existing is None:
            self.store.record(
                f"agent:{agent_id}",
                "register",
                {
                    "service": info["service"],
                    "tags": info["tags"],
                    "host": info.get("host"),
                    "pid": info.get("pid"),
                },
                agent_id=agent_id,
            )
        log.info(
            "agent registered",
            agent_id=agent_id,
            service=info["service"],
            tags=info["tags"],
            again=existing is not None,
        )
        return agent_id, credential

    def _make_room(self, now: float | None = None) -> None:
        """Admit one more agent record: within the window's budget, and under the cap
        once the longest-silent lost agent is reaped; CapacityError otherwise."""
        now = time.time() if now is None else now
        window = self._registered
        while window and now - window[0] >= self.registration_window:
            window.popleft()
        if len(window) >= self.max_registrations:
            wait = max(1, math.ceil(window[0] + self.registration_window - now))
            raise CapacityError(
                "too_many_registrations",
                f"the hub took {len(window)} new agent registrations in the last "
                f"{self.registration_window:g}s, its limit (--max-registrations "
                f"{self.max_registrations}); retry in {wait}s",
                wait,
            )
        if len(self._agents) >= self.max_agents:
            lost = [a for a in self._agents if not self.is_live(a, now)]
            lost.sort(key=lambda a: self._seen.get(a) or self._agents[a].get("last_seen", 0.0))
            for agent_id in lost[: len(self._agents) - self.max_agents + 1]:
                self._forget(agent_id, "reap", {"reason": "room for a new agent (--max-agents)"})
        if len(self._agents) >= self.max_agents:
            raise CapacityError(
                "too_many_agents",
                f"the hub already has {len(self._agents)} live agents, its limit "
                f"(--max-agents {self.max_agents}); stop some or raise the limit",
                math.ceil(self.lost_after),
            )
        window.append(now)

    def _forget(self, agent_id: str, op: str, detail: dict[str, Any]) -> None:
        """Drop an agent record everywhere: memory, credential, store (with its rows)."""
        del self._agents[agent_id]
        self._seen.pop(agent_id, None)
        self._seen_dirty.pop(agent_id, None)
        self._credentials.pop(agent_id, None)
        self._queries.pop(agent_id, None)
        self._assigned.pop(agent_id, None)
        self.store.forget_agent(agent_id)
        self.store.record("hub", op, detail, agent_id=agent_id)

    def known(self, agent_id: str) -> bool:
        """Whether the hub knows this agent id."""
        return agent_id in self._agents

    def authenticate(self, agent_id: str, given: bytes) -> bool:
        """Whether ``given`` is the credential of agent ``agent_id``."""
        return credential_matches(given, self._credentials.get(agent_id))

    def seen(self, agent_id: str) -> None:
        """Note that an agent just spoke (not one reaped meanwhile, so none is kept)."""
        if agent_id not in self._agents:
            return
        now = time.time()
        self._seen[agent_id] = now
        self._seen_dirty[agent_id] = now

    def gone(self, agent_id: str) -> None:
        """An agent's connection dropped mid-poll: lost until it speaks again."""
        if agent_id in self._seen:
            self._seen[agent_id] = 0.0
            log.info("agent disconnected", agent_id=agent_id)

    def is_live(self, agent_id: str, now: float | None = None) -> bool:
        """Heard from within ``lost_after`` seconds."""
        now = time.time() if now is None else now
        return now - self._seen.get(agent_id, 0.0) <= self.lost_after

    def agents(self, include_lost: bool = True) -> list[dict[str, Any]]:
        """Agents with their liveness and action counts."""
        now = time.time()
        # A copy: registrations and the sweep change the records from worker threads.
        listed = list(self._agents.values())
        counts: dict[str, int] = {}
        for action in self.store.live_actions(now):
            selector = parse_selector(action["target"])
            for agent in listed:
                if selector.matches(agent):
                    counts[agent["id"]] = counts.get(agent["id"], 0) + 1
        out = []
        for agent in listed:
            live = self.is_live(agent["id"], now)
            if not live and not include_lost:
                continue
            seen = self._seen.get(agent["id"]) or agent.get("last_seen") or 0.0
            out.append(
                {
                    **agent,
                    "status": "live" if live else "lost",
                    "last_seen": seen,
                    "actions": counts.get(agent["id"], 0),
                }
            )
        return out

    def sweep(self) -> None:
        """Forget agents gone for long and persist last-seen times."""
        now = time.time()
        with self._records:
            for agent_id in list(self._agents):
                last = self._seen.get(agent_id) or self._agents[agent_id].get("last_seen", 0.0)
                if now - max(last, self.started) > self.forget_after:
                    self._forget(agent_id, "forget", {"idle_seconds": round(now - last)})
        dirty, self._seen_dirty = self._seen_dirty, {}
        self.store.touch_agents(dirty)
        self.store.trim_audit(self.audit_max_rows, self.audit_max_age, now)

    # -- actions for agents ------------------------------------------------------

    def desired(self, agent_id: str) -> list[dict[str, Any]]:
        """The actions an agent should run now (and record late assignments); none for
        an agent reaped while its poll waited (its next request gets 404)."""
        agent = self._agents.get(agent_id)
        if agent is None:
            return []
        out = []
        for action in self.store.live_actions():
            if parse_selector(action["target"]).matches(agent):
                out.append({k: v for k, v in action.items() if k not in ("target", "ttl_seconds")})
                sent = self._assigned.setdefault(agent_id, set())
                if action["id"] not in sent:
                    self.store.assign(action["id"], agent_id)
                    sent.add(action["id"])
        return out

    async def poll(self, agent_id: str, version: int, wait: float) -> dict[str, Any]:
        """The long poll: answer when the generation passes ``version``, a query is
        waiting for this agent, or at ``wait`` seconds."""
        self.seen(agent_id)
        deadline = anyio.current_time() + max(0.0, min(wait, MAX_WAIT))
        while version >= self.generation and not self._queries.get(agent_id):
            left = deadline - anyio.current_time()
            if left <= 0:
                break
            changed = self._changed
            with anyio.move_on_after(left):
                await changed.wait()
        self.seen(agent_id)
        reply: dict[str, Any] = {"version": version, "changed": False}
        queries = self._queries.pop(agent_id, None)
        if queries:
            reply["queries"] = queries
        if version < self.generation:
            generation = self.generation
            reply["actions"] = await anyio.to_thread.run_sync(self.desired, agent_id)
            reply.update(version=generation, changed=True)
        return reply

    async def query(
        self, agent_id: str, kind: str, args: dict[str, Any], timeout: float = 5.0
    ) -> dict[str, Any]:
        """Ask one agent a question through its long poll; QueryError on error or silence."""
        if not self.is_live(agent_id):
            raise QueryError(f"agent {agent_id} is not live; list live agents first")
        query_id = f"q-{secrets.token_hex(6)}"
        done = anyio.Event()
        self._waiting[query_id] = (agent_id, done, {})
        self._queries.setdefault(agent_id, []).append({"id": query_id, "kind": kind, "args": args})
        self._wake()
        try:
            with anyio.move_on_after(timeout):
                await done.wait()
        finally:
            _, _, answer = self._waiting.pop(query_id)
            pending = self._queries.get(agent_id)
            if pending:
                pending[:] = [q for q in pending if q["id"] != query_id]
        if not answer:
            raise QueryError(f"agent {agent_id} did not answer within {timeout:g}s")
        if "error" in answer:
            raise QueryError(str(answer["error"]))
        return dict(answer.get("result") or {})

    def answer(self, agent_id: str, query_id: str, answer: dict[str, Any]) -> bool:
        """An agent's answer to a query asked of it; False when nobody waits for it any
        more, or it was asked of another agent."""
        waiting = self._waiting.get(query_id)
        if waiting is None or waiting[0] != agent_id:
            return False
        _, done, slot = waiting
        slot.update(answer)
        done.set()
        return True

    def _wake(self) -> None:
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    def _bump(self) -> None:
        self.generation = max(self.generation + 1, int(time.time() * 1000))
        self._wake()

    def _activity_happened(self) -> None:
        activity, self._activity = self._activity, anyio.Event()
        activity.set()

    async def wait_activity(self, timeout: float) -> None:
        """Sleep until events arrive from any agent, or ``timeout``."""
        activity = self._activity
        with anyio.move_on_after(timeout):
            await activity.wait()

    # -- events ----------------------------------------------------------------

    async def ingest(
        self, agent_id: str, batch: int, events: list[dict[str, Any]], dropped: int
    ) -> dict[str, Any]:
        """Store a batch; acknowledged only once committed. Events of actions neither
        sent to this agent nor targeting it are counted as ``refused``, not stored."""
        self.seen(agent_id)
        allowed = await anyio.to_thread.run_sync(
            self.targeted, agent_id, {e["action"] for e in events}
        )
        accepted, duplicate = await anyio.to_thread.run_sync(
            self.store.ingest, agent_id, batch, events, allowed
        )
        if dropped:
            log.warning("agent dropped events", agent_id=agent_id, dropped=dropped)
        refused = 0 if duplicate else sum(e["action"] not in allowed for e in events)
        if refused:
            log.warning("events for foreign actions refused", agent_id=agent_id, refused=refused)
        self._activity_happened()
        return {"accepted": accepted, "duplicate": duplicate, "refused": refused}

    def targeted(self, agent_id: str, action_ids: set[str]) -> set[str]:
        """Which of ``action_ids`` an agent may report on: those sent to it, and live ones
        whose target matches it (a forked worker reports its inherited actions before
        its first poll); the latter are recorded as sent."""
        allowed = self.store.assigned(agent_id, action_ids)
        rest = action_ids - allowed
        agent = self._agents.get(agent_id)
        if rest and agent is not None:
            for action in self.store.live_actions():
                if action["id"] in rest and parse_selector(action["target"]).matches(agent):
                    self.store.assign(action["id"], agent_id)
                    self._assigned.setdefault(agent_id, set()).add(action["id"])
                    allowed.add(action["id"])
        return allowed

    # -- actions for users -------------------------------------------------------

    def matching(self, selector: Selector) -> list[dict[str, Any]]:
        """Live agents a target reaches."""
        now = time.time()
        return [
            a
            for a in list(self._agents.values())
            if self.is_live(a["id"], now) and selector.matches(a)
        ]

    def describe_live(self) -> str:
        """The live services and their tags, for error messages."""
        seen: dict[str, set[str]] = {}
        for agent in self.matching(Selector("all")):
            tags = ",".join(f"{k}={v}" for k, v in sorted(agent["tags"].items()))
            seen.setdefault(agent["service"], set()).add(tags)
        if not seen:
            return "no agent is live: start one with runtime-agent run or runtime_agent.start()"
        parts = [
            f"{svc} ({'; '.join(sorted(t for t in tags if t)) or 'no tags'})"
            for svc, tags in sorted(seen.items())
        ]
        return "live services: " + ", ".join(parts)

    async def place(self, spec: dict[str, Any], actor: str, wait: float) -> dict[str, Any]:
        """Store an action for every matching live agent and wait for their answers."""
        selector = parse_selector(spec.get("target"))
        agents = self.matching(selector)
        if not agents:
            raise PlacementError(
                f"no live agent matches target {selector.text!r}; {self.describe_live()}"
            )
        action_id = f"a-{secrets.token_hex(4)}"
        now = time.time()
        action = {
            **spec,
            "id": action_id,
            "target": selector.text,
            "expires_at": now + float(spec["ttl_seconds"]),
        }
        await anyio.to_thread.run_sync(
            self.store.add_action, action, [a["id"] for a in agents], actor
        )
        self._bump()
        log.info(
            "action placed",
            action_id=action_id,
            kind=spec["kind"],
            location=spec["location"],
            target=selector.text,
            agents=len(agents),
        )
        return await self.wait_answers(action_id, wait)

    async def wait_answers(self, action_id: str, wait: float) -> dict[str, Any]:
        """The action once every assigned agent answered, or after ``wait`` seconds."""
        deadline = time.monotonic() + max(0.0, min(wait, MAX_WAIT))
        while True:
            action = await anyio.to_thread.run_sync(self.store.action, action_id)
            assert action is not None
            pending = [a for a in action["agents"] if a["state"] not in ANSWERED]
            left = deadline - time.monotonic()
            if not pending or left <= 0:
                return action
            await self.wait_activity(min(left, 0.5))

    async def remove(self, action_ids: list[str] | None, actor: str) -> list[str]:
        """Remove the given actions (None: all live ones); returns what was removed."""
        if action_ids is None:
            action_ids = [a["id"] for a in await anyio.to_thread.run_sync(self.store.live_actions)]
        removed = await anyio.to_thread.run_sync(self.store.remove_actions, action_ids, actor)
        if removed:
            self._bump()
        return removed
