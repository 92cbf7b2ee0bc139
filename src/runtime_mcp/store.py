"""The hub's storage: agents, actions and their per-agent status, hits, audit.

Behind a narrow interface so another database could replace SQLite without
touching the rest. SQLite runs in WAL mode with ``synchronous=FULL``: a batch
the hub acknowledged must survive a ``kill -9`` of the hub or a power cut.
All methods are synchronous and thread-safe (one connection behind a lock);
the async app calls them from a worker thread. Agents are stored with the
SHA-256 of their credential, never the credential. The audit trail is
bounded: ``trim_audit`` keeps rows by count (agents' own entries going first)
and age, and an agent's state
changes are audited at most ``AUDITED_STATES`` times per action. So are the
rows agents leave: each keeps only its newest ``BATCHES_KEPT`` batch numbers,
and forgetting an agent deletes its record, batch numbers and per-action rows
(its stored hits stay, under their action's caps); the hub bounds how many
agent records there are.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 2
#: State changes audited per (action, agent); later ones only update the row,
#: so no agent can grow the audit trail without bound or flush it.
AUDITED_STATES = 16
#: Audit retention defaults: the newest rows, none older than the age.
AUDIT_MAX_ROWS = 100_000
AUDIT_MAX_AGE = 30 * 86400.0
#: Longest state texts kept (characters): an agent's own messages are one line,
#: and a longer one is cut rather than refused, since a refused batch is resent.
MAX_STATE_MESSAGE = 2000
MAX_STATE_FILE = 1024
MAX_STATE_FUNCTION = 512
#: Batch numbers remembered per agent to drop a resent batch: an agent resends
#: only its latest unacknowledged batch, so a few suffice.
BATCHES_KEPT = 64

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS agents (
    id TEXT PRIMARY KEY,
    instance_id TEXT NOT NULL UNIQUE,
    service TEXT NOT NULL,
    tags TEXT NOT NULL,
    host TEXT, pid INTEGER, python TEXT, agent_version TEXT, core TEXT, code_version TEXT,
    started_at REAL, registered_at REAL NOT NULL, last_seen REAL NOT NULL,
    credential_hash TEXT
);
CREATE TABLE IF NOT EXISTS actions (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    location TEXT NOT NULL,
    spec TEXT NOT NULL,
    target TEXT NOT NULL,
    created_at REAL NOT NULL,
    created_by TEXT NOT NULL,
    expires_at REAL NOT NULL,
    removed_at REAL,
    hits_stored INTEGER NOT NULL DEFAULT 0,
    hits_dropped INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS action_agents (
    action_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    state TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    hits INTEGER NOT NULL DEFAULT 0,
    file TEXT, line INTEGER, function TEXT,
    updated_at REAL NOT NULL,
    audited INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (action_id, agent_id)
);
CREATE TABLE IF NOT EXISTS hits (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    action_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    ts REAL NOT NULL,
    type TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS hits_by_action ON hits (action_id, seq);
CREATE TABLE IF NOT EXISTS batches (
    agent_id TEXT NOT NULL, batch INTEGER NOT NULL, received_at REAL NOT NULL,
    PRIMARY KEY (agent_id, batch)
);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    actor TEXT NOT NULL,
    op TEXT NOT NULL,
    action_id TEXT,
    agent_id TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_ts ON audit (ts);
"""

#: Columns added since schema 1: (table, column, declaration).
_ADDED_COLUMNS = (
    ("agents", "credential_hash", "TEXT"),
    ("action_agents", "audited", "INTEGER NOT NULL DEFAULT 0"),
)

#: Event types stored as hits; ``state`` events update action_agents instead.
HIT_TYPES = frozenset({"log", "snapshot", "metric"})


class Store:
    """SQLite storage for one hub."""

    def __init__(
        self, path: str | Path, *, max_hits_per_action: int = 1_000, max_hits_total: int = 100_000
    ) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.max_hits_per_action = max_hits_per_action
        self.max_hits_total = max_hits_total
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        for table, column, declaration in _ADDED_COLUMNS:
            present = {row["name"] for row in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in present:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        self._db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
        )

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _read(self, sql: str, args: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    # -- agents ----------------------------------------------------------------

    def upsert_agent(self, agent: dict[str, Any], credential_hash: str) -> None:
        """Insert or refresh an agent (keyed by its instance id) and its credential's hash."""
        with self._tx() as db:
            db.execute(
                """INSERT INTO agents (id, instance_id, service, tags, host, pid, python,
                       agent_version, core, code_version, started_at, registered_at, last_seen,
                       credential_hash)
                   VALUES (:id, :instance_id, :service, :tags, :host, :pid, :python,
                       :agent_version, :core, :code_version, :started_at, :now, :now, :hash)
                   ON CONFLICT(instance_id) DO UPDATE SET service=excluded.service,
                       tags=excluded.tags, host=excluded.host, pid=excluded.pid,
                       python=excluded.python, agent_version=excluded.agent_version,
                       core=excluded.core, code_version=excluded.code_version,
                       last_seen=excluded.last_seen, credential_hash=excluded.credential_hash""",
                {
                    **{k: agent.get(k) for k in _AGENT_FIELDS},
                    "tags": json.dumps(agent["tags"], sort_keys=True),
                    "now": time.time(),
                    "hash": credential_hash,
                },
            )

    def credential_hashes(self) -> dict[str, str | None]:
        """Each known agent's credential hash (None for records older than credentials)."""
        return {r[0]: r[1] for r in self._read("SELECT id, credential_hash FROM agents")}

    def agents(self) -> list[dict[str, Any]]:
        """Every known agent, oldest first."""
        rows = self._read("SELECT * FROM agents ORDER BY registered_at")
        return [_agent_row(r) for r in rows]

    def touch_agents(self, seen: dict[str, float]) -> None:
        """Record when agents were last heard from."""
        if not seen:
            return
        with self._tx() as db:
            db.executemany(
                "UPDATE agents SET last_seen = ? WHERE id = ?",
                [(ts, agent_id) for agent_id, ts in seen.items()],
            )

    def forget_agent(self, agent_id: str) -> None:
        """Remove an agent that has been gone for long."""
        with self._tx() as db:
            db.execute("DELETE FROM agents WHERE id = ?", (agent_id,))
            db.execute("DELETE FROM batches WHERE agent_id = ?", (agent_id,))
            db.execute("DELETE FROM action_agents WHERE agent_id = ?", (agent_id,))

    # -- actions ---------------------------------------------------------------

    def add_action(self, action: dict[str, Any], agent_ids: Iterable[str], actor: str) -> None:
        """Store a new action, its initial per-agent rows, and the audit entry."""
        now = time.time()
        with self._tx() as db:
            db.execute(
                """INSERT INTO actions (id, kind, location, spec, target, created_at, created_by,
                       expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    action["id"],
                    action["kind"],
                    action["location"],
                    json.dumps(action),
                    action["target"],
                    now,
                    actor,
                    action["expires_at"],
                ),
            )
            db.executemany(
                """INSERT OR IGNORE INTO action_agents (action_id, agent_id, state, updated_at)
                   VALUES (?, ?, 'sent', ?)""",
                [(action["id"], agent_id, now) for agent_id in agent_ids],
            )
            _audit(
                db,
                actor,
                "place",
                action["id"],
                None,
                {
                    "kind": action["kind"],
                    "location": action["location"],
                    "target": action["target"],
                    "agents": list(agent_ids),
                },
            )

    def assign(self, action_id: str, agent_id: str) -> None:
        """Record that a late-joining agent was sent an action."""
        with self._tx() as db:
            db.execute(
                """INSERT OR IGNORE INTO action_agents (action_id, agent_id, state, updated_at)
                   VALUES (?, ?, 'sent', ?)""",
                (action_id, agent_id, time.time()),
            )

    def assigned(self, agent_id: str, action_ids: Iterable[str]) -> set[str]:
        """Which of ``action_ids`` were sent to ``agent_id``."""
        ids = tuple(action_ids)
        if not ids:
            return set()
        marks = ",".join("?" * len(ids))
        rows = self._read(
            f"SELECT action_id FROM action_agents WHERE agent_id = ? AND action_id IN ({marks})",
            (agent_id, *ids),
        )
        return {r[0] for r in rows}

    def remove_actions(self, action_ids: Iterable[str], actor: str) -> list[str]:
        """Mark actions removed; returns the ids that were live."""
        now = time.time()
        removed: list[str] = []
        with self._tx() as db:
            for action_id in action_ids:
                cur = db.execute(
                    "UPDATE actions SET removed_at = ? WHERE id = ? AND removed_at IS NULL",
                    (now, action_id),
                )
                if cur.rowcount:
                    removed.append(action_id)
                    _audit(db, actor, "remove", action_id, None, {})
        return removed

    def live_actions(self, now: float | None = None) -> list[dict[str, Any]]:
        """Actions neither removed nor expired, oldest first."""
        now = time.time() if now is None else now
        rows = self._read(
            "SELECT spec FROM actions WHERE removed_at IS NULL AND expires_at > ? "
            "ORDER BY created_at",
            (now,),
        )
        return [json.loads(r["spec"]) for r in rows]

    def actions(self, include_removed: bool = True) -> list[dict[str, Any]]:
        """Every action with its per-agent status."""
        sql = "SELECT * FROM actions"
        if not include_removed:
            sql += " WHERE removed_at IS NULL"
        rows = self._read(sql + " ORDER BY created_at")
        statuses = self._statuses([r["id"] for r in rows])
        return [_action_row(r, statuses.get(r["id"], [])) for r in rows]

    def action(self, action_id: str) -> dict[str, Any] | None:
        """One action with its per-agent status, or None."""
        rows = self._read("SELECT * FROM actions WHERE id = ?", (action_id,))
        if not rows:
            return None
        return _action_row(rows[0], self._statuses([action_id]).get(action_id, []))

    def _statuses(self, action_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        if not action_ids:
            return {}
        marks = ",".join("?" * len(action_ids))
        rows = self._read(
            f"""SELECT aa.*, a.service, a.tags, a.host, a.pid FROM action_agents aa
                LEFT JOIN agents a ON a.id = aa.agent_id
                WHERE aa.action_id IN ({marks}) ORDER BY aa.agent_id""",
            action_ids,
        )
        out: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            out.setdefault(r["action_id"], []).append(
                {
                    "agent_id": r["agent_id"],
                    "service": r["service"],
                    "tags": json.loads(r["tags"]) if r["tags"] else {},
                    "host": r["host"],
                    "pid": r["pid"],
                    "state": r["state"],
                    "message": r["message"],
                    "hits": r["hits"],
                    "file": r["file"],
                    "line": r["line"],
                    "function": r["function"],
                    "updated_at": r["updated_at"],
                }
            )
        return out

    # -- events ----------------------------------------------------------------

    def ingest(
        self, agent_id: str, batch: int, events: list[dict[str, Any]], allowed: set[str]
    ) -> tuple[int, bool]:
        """Store one batch atomically; (events accepted, whether it was a duplicate).

        Only events of the actions in ``allowed`` (those sent to this agent) count.
        """
        now = time.time()
        with self._tx() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO batches (agent_id, batch, received_at) VALUES (?, ?, ?)",
                (agent_id, batch, now),
            )
            if not cur.rowcount:
                return 0, True
            # Measured from the highest number, not this one, so that a batch
            # numbered far ahead cannot pin older rows in place.
            db.execute(
                "DELETE FROM batches WHERE agent_id = ? AND batch <= "
                "(SELECT MAX(batch) FROM batches WHERE agent_id = ?) - ?",
                (agent_id, agent_id, BATCHES_KEPT),
            )
            hit_rows = []
            per_action: dict[str, int] = {}
            for event in events:
                action_id = event["action"]
                if action_id not in allowed:
                    continue
                if event["type"] == "state":
                    self._apply_state(db, agent_id, event, now)
                elif event["type"] in HIT_TYPES:
                    hit_rows.append(
                        (
                            action_id,
                            agent_id,
                            float(event.get("ts") or now),
                            event["type"],
                            json.dumps(event),
                        )
                    )
                    per_action[action_id] = per_action.get(action_id, 0) + 1
            db.executemany(
                "INSERT INTO hits (action_id, agent_id, ts, type, payload) VALUES (?, ?, ?, ?, ?)",
                hit_rows,
            )
            for action_id, count in per_action.items():
                db.execute(
                    "UPDATE actions SET hits_stored = hits_stored + ? WHERE id = ?",
                    (count, action_id),
                )
                self._trim_action(db, action_id)
            if hit_rows:
                self._trim_total(db)
        return len(hit_rows), False

    def _apply_state(
        self, db: sqlite3.Connection, agent_id: str, event: dict[str, Any], now: float
    ) -> None:
        action_id = event["action"]
        state = str(event.get("state", ""))
        message = _cut(event.get("message"), MAX_STATE_MESSAGE) or ""
        prior = db.execute(
            "SELECT state, audited FROM action_agents WHERE action_id = ? AND agent_id = ?",
            (action_id, agent_id),
        ).fetchone()
        db.execute(
            """INSERT INTO action_agents (action_id, agent_id, state, message, hits, file, line,
                   function, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT(action_id, agent_id) DO UPDATE SET state=excluded.state,
                   message=excluded.message, hits=MAX(action_agents.hits, excluded.hits),
                   file=COALESCE(excluded.file, action_agents.file),
                   line=COALESCE(excluded.line, action_agents.line),
                   function=COALESCE(excluded.function, action_agents.function),
                   updated_at=excluded.updated_at""",
            (
                action_id,
                agent_id,
                state,
                message,
                int(event.get("hits") or 0),
                _cut(event.get("file"), MAX_STATE_FILE),
                event.get("line"),
                _cut(event.get("function"), MAX_STATE_FUNCTION),
                now,
            ),
        )
        audited = prior["audited"] if prior is not None else 0
        if (prior is None or prior["state"] != state) and audited <= AUDITED_STATES:
            if audited < AUDITED_STATES:
                detail = {"message": message, "line": event.get("line")}
                op = state
            else:
                detail = {"message": f"more state changes are not audited (cap {AUDITED_STATES})"}
                op = "audit_capped"
            _audit(db, f"agent:{agent_id}", op, action_id, agent_id, detail)
            db.execute(
                "UPDATE action_agents SET audited = audited + 1 "
                "WHERE action_id = ? AND agent_id = ?",
                (action_id, agent_id),
            )

    def _trim_action(self, db: sqlite3.Connection, action_id: str) -> None:
        cap = self.max_hits_per_action
        (count,) = db.execute(
            "SELECT COUNT(*) FROM hits WHERE action_id = ?", (action_id,)
        ).fetchone()
        if count > cap:
            cur = db.execute(
                """DELETE FROM hits WHERE seq IN (SELECT seq FROM hits WHERE action_id = ?
                   ORDER BY seq LIMIT ?)""",
                (action_id, count - cap),
            )
            db.execute(
                "UPDATE actions SET hits_dropped = hits_dropped + ? WHERE id = ?",
                (cur.rowcount, action_id),
            )

    def _trim_total(self, db: sqlite3.Connection) -> None:
        (count,) = db.execute("SELECT COUNT(*) FROM hits").fetchone()
        excess = count - self.max_hits_total
        if excess > 0:
            for row in db.execute(
                "SELECT action_id, COUNT(*) FROM (SELECT action_id FROM hits ORDER BY seq "
                "LIMIT ?) GROUP BY action_id",
                (excess,),
            ).fetchall():
                db.execute(
                    "UPDATE actions SET hits_dropped = hits_dropped + ? WHERE id = ?",
                    (row[1], row[0]),
                )
            db.execute(
                "DELETE FROM hits WHERE seq IN (SELECT seq FROM hits ORDER BY seq LIMIT ?)",
                (excess,),
            )

    def hits(self, action_id: str, after: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        """Stored hits of an action with ``seq`` above ``after``, oldest first."""
        rows = self._read(
            "SELECT seq, agent_id, payload FROM hits WHERE action_id = ? AND seq > ? "
            "ORDER BY seq LIMIT ?",
            (action_id, after, limit),
        )
        out = []
        for r in rows:
            event = json.loads(r["payload"])
            event["seq"] = r["seq"]
            event["agent_id"] = r["agent_id"]
            out.append(event)
        return out

    def count_hits(self, action_id: str, after: int = 0) -> int:
        """How many stored hits of an action have ``seq`` above ``after``."""
        (count,) = self._read(
            "SELECT COUNT(*) FROM hits WHERE action_id = ? AND seq > ?", (action_id, after)
        )[0]
        return int(count)

    # -- audit -----------------------------------------------------------------

    def audit(self, limit: int = 200, action_id: str | None = None) -> list[dict[str, Any]]:
        """The newest audit entries, oldest first."""
        if action_id is None:
            rows = self._read("SELECT * FROM audit ORDER BY seq DESC LIMIT ?", (limit,))
        else:
            rows = self._read(
                "SELECT * FROM audit WHERE action_id = ? ORDER BY seq DESC LIMIT ?",
                (action_id, limit),
            )
        return [
            {
                "seq": r["seq"],
                "ts": r["ts"],
                "actor": r["actor"],
                "op": r["op"],
                "action_id": r["action_id"],
                "agent_id": r["agent_id"],
                "detail": json.loads(r["detail"]),
            }
            for r in reversed(rows)
        ]

    def trim_audit(self, max_rows: int, max_age: float, now: float | None = None) -> int:
        """Keep at most ``max_rows`` audit entries, none older than ``max_age`` seconds;
        returns how many were deleted.

        Over the row cap, the oldest entries agents and the hub wrote for themselves
        (registrations, reaps, state changes) go first: whoever can register cannot
        push out the record of what people placed and removed.
        """
        cutoff = (time.time() if now is None else now) - max_age
        with self._tx() as db:
            deleted = db.execute("DELETE FROM audit WHERE ts < ?", (cutoff,)).rowcount
            (count,) = db.execute("SELECT COUNT(*) FROM audit").fetchone()
            excess = count - max_rows
            if excess > 0:
                cut = db.execute(
                    f"DELETE FROM audit WHERE seq IN (SELECT seq FROM audit WHERE {_BY_AGENTS} "
                    "ORDER BY seq LIMIT ?)",
                    (excess,),
                ).rowcount
                deleted += cut
                excess -= cut
            if excess > 0:
                deleted += db.execute(
                    "DELETE FROM audit WHERE seq IN (SELECT seq FROM audit ORDER BY seq LIMIT ?)",
                    (excess,),
                ).rowcount
        return deleted

    def count_audit(self) -> int:
        """How many audit entries are kept."""
        return int(self._read("SELECT COUNT(*) FROM audit")[0][0])

    def record(
        self,
        actor: str,
        op: str,
        detail: dict[str, Any],
        action_id: str | None = None,
        agent_id: str | None = None,
    ) -> None:
        """Append an audit entry outside the operations that write their own."""
        with self._tx() as db:
            _audit(db, actor, op, action_id, agent_id, detail)


#: Audit entries written by agents or by the hub itself, not by people.
_BY_AGENTS = "(actor = 'hub' OR actor LIKE 'agent:%')"


def _cut(text: object, limit: int) -> str | None:
    """``text`` as a str of at most ``limit`` characters (None stays None)."""
    if text is None:
        return None
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _audit(
    db: sqlite3.Connection,
    actor: str,
    op: str,
    action_id: str | None,
    agent_id: str | None,
    detail: dict[str, Any],
) -> None:
    db.execute(
        "INSERT INTO audit (ts, actor, op, action_id, agent_id, detail) VALUES (?, ?, ?, ?, ?, ?)",
        (time.time(), actor, op, action_id, agent_id, json.dumps(detail)),
    )


_AGENT_FIELDS = (
    "id",
    "instance_id",
    "service",
    "host",
    "pid",
    "python",
    "agent_version",
    "core",
    "code_version",
    "started_at",
)


def _agent_row(r: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": r["id"],
        "instance_id": r["instance_id"],
        "service": r["service"],
        "tags": json.loads(r["tags"]),
        "host": r["host"],
        "pid": r["pid"],
        "python": r["python"],
        "agent_version": r["agent_version"],
        "core": r["core"],
        "code_version": r["code_version"],
        "started_at": r["started_at"],
        "registered_at": r["registered_at"],
        "last_seen": r["last_seen"],
    }


def _action_row(r: sqlite3.Row, agents: list[dict[str, Any]]) -> dict[str, Any]:
    spec = json.loads(r["spec"])
    now = time.time()
    status = "removed" if r["removed_at"] else ("expired" if r["expires_at"] <= now else "active")
    return {
        **spec,
        "created_at": r["created_at"],
        "created_by": r["created_by"],
        "removed_at": r["removed_at"],
        "status": status,
        "hits_stored": r["hits_stored"],
        "hits_dropped": r["hits_dropped"],
        "agents": agents,
    }
