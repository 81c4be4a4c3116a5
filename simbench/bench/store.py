"""The results store: one SQLite file, one row per job key, safe to kill at any moment.

Why SQLite: embedded, one file to copy, concurrent readers while one process writes (WAL
mode), and atomic transactions, so a ``kill -9`` or a full disk leaves either the whole result
or nothing. Each result is written in its own transaction; the job key is the primary key, so
nothing is written twice. A finished (``done``) row is never overwritten; a ``failed`` row is
replaced only when the run asks to retry failures.

The schema version lives in ``PRAGMA user_version`` and the file is marked as a simbench store
by ``PRAGMA application_id`` and a ``meta`` row; a file that is not a simbench store, or that a
newer simbench wrote, is refused with a :class:`~simbench.errors.StoreError`.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from simbench.errors import StoreError

SCHEMA_VERSION = 1
APPLICATION_ID = 0x53424E43  # "SBNC"
APP = "simbench-results"

# Measure metadata (JSON per measure name), so boards need no plugin code. It came after schema
# version 1 without changing it: a store that lacks the table gets it on the first run that
# records metadata, and older simbench versions ignore the extra table.
_MEASURES_TABLE = """CREATE TABLE IF NOT EXISTS measures (
    name TEXT PRIMARY KEY, meta TEXT NOT NULL, updated REAL NOT NULL
)"""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS results (
    key          TEXT PRIMARY KEY,
    status       TEXT NOT NULL CHECK (status IN ('done', 'failed')),
    spec         TEXT,
    label        TEXT NOT NULL,
    variant      TEXT NOT NULL,
    measure      TEXT NOT NULL,
    params       TEXT NOT NULL,
    systems      TEXT NOT NULL,
    sources      TEXT NOT NULL,
    system_a     TEXT,
    system_b     TEXT,
    site         TEXT NOT NULL,
    task         TEXT,
    seed         INTEGER NOT NULL,
    categories   TEXT NOT NULL,
    value        REAL,
    ci_low       REAL,
    ci_high      REAL,
    n_samples    INTEGER,
    score        TEXT,
    error        TEXT,
    traceback    TEXT,
    runtime_s    REAL,
    device       TEXT,
    host         TEXT,
    code_version TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 1,
    finished     REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS results_measure ON results (measure, site);
CREATE INDEX IF NOT EXISTS results_status ON results (status);
CREATE INDEX IF NOT EXISTS results_systems ON results (system_a, system_b);
CREATE TABLE IF NOT EXISTS specs (
    name TEXT PRIMARY KEY, path TEXT, text TEXT NOT NULL, updated REAL NOT NULL
);
""" + _MEASURES_TABLE + ";\n"

_UPSERT = """
INSERT INTO results (key, status, spec, label, variant, measure, params, systems, sources,
    system_a, system_b, site, task, seed, categories, value, ci_low, ci_high, n_samples, score,
    error, traceback, runtime_s, device, host, code_version, attempts, finished)
VALUES (:key, :status, :spec, :label, :variant, :measure, :params, :systems, :sources,
    :system_a, :system_b, :site, :task, :seed, :categories, :value, :ci_low, :ci_high,
    :n_samples, :score, :error, :traceback, :runtime_s, :device, :host, :code_version, 1,
    :finished)
ON CONFLICT (key) DO UPDATE SET
    status = excluded.status, value = excluded.value, ci_low = excluded.ci_low,
    ci_high = excluded.ci_high, n_samples = excluded.n_samples, score = excluded.score,
    error = excluded.error, traceback = excluded.traceback, runtime_s = excluded.runtime_s,
    device = excluded.device, host = excluded.host, attempts = results.attempts + 1,
    finished = excluded.finished
WHERE results.status = 'failed'
"""


def _disk_full(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "full" in text or getattr(exc, "sqlite_errorname", "") == "SQLITE_FULL"


class Store:
    """A results store at ``path`` (created on first write unless ``create=False``)."""

    def __init__(self, path: str | Path, *, create: bool = True, timeout: float = 30.0) -> None:
        self.path = Path(path)
        if not self.path.exists() or self.path.stat().st_size == 0:
            if not create:
                raise StoreError("no results store here", file=self.path,
                                 fix="run `simbench bench run SPEC` first, or pass --store PATH")
            self.path.parent.mkdir(parents=True, exist_ok=True)
        else:
            with self.path.open("rb") as fh:
                magic = fh.read(16)
            if magic != b"SQLite format 3\x00":
                raise StoreError("not a simbench results store (not an SQLite file)",
                                 file=self.path, fix="pass --store with a new or existing "
                                 "simbench store path")
        try:
            self.conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None,
                                        check_same_thread=False)
            self._init()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open the results store: {exc}", file=self.path) from None

    # ---- opening ------------------------------------------------------------------------
    def _init(self) -> None:
        c = self.conn
        c.execute("PRAGMA busy_timeout = 30000")
        app_id = c.execute("PRAGMA application_id").fetchone()[0]
        version = c.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if app_id not in (0, APPLICATION_ID) or (tables and "meta" not in tables):
            raise StoreError("not a simbench results store (an SQLite file of something else)",
                             file=self.path, fix="pass --store with a new file name")
        if tables:
            row = c.execute("SELECT value FROM meta WHERE key = 'app'").fetchone()
            if row is None or row[0] != APP:
                raise StoreError("not a simbench results store (no simbench marker)",
                                 file=self.path, fix="pass --store with a new file name")
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"the store has schema version {version}; this simbench reads up to "
                    f"{SCHEMA_VERSION}", file=self.path,
                    fix="upgrade simbench (pip install -U simbench), or use another store")
        c.execute("PRAGMA journal_mode = WAL")
        c.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: safe against process crashes
        if not tables:
            with self.transaction():
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        c.execute(statement)
                c.execute("INSERT OR REPLACE INTO meta VALUES ('app', ?)", (APP,))
                c.execute("INSERT OR REPLACE INTO meta VALUES ('created', ?)", (str(time.time()),))
                c.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                c.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; any error rolls the whole transaction back."""
        c = self.conn
        try:
            c.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreError(f"cannot write to the store: {exc}", file=self.path) from None
        try:
            yield c
            c.execute("COMMIT")
        except BaseException as exc:
            if c.in_transaction:
                c.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                if _disk_full(exc):
                    raise StoreError("the disk (or the store's size limit) is full; the store "
                                     "is intact up to the last finished result", file=self.path,
                                     fix="free space and rerun: finished jobs are kept") from None
                raise StoreError(f"writing to the store failed: {exc}", file=self.path) from None
            raise

    # ---- writing ------------------------------------------------------------------------
    def record_spec(self, name: str, path: str | None, text: str) -> None:
        """Remember the spec text, so ``simbench leaderboard`` works from the store alone."""
        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO specs VALUES (?, ?, ?, ?)",
                      (name, path, text, time.time()))

    def record_measures(self, meta: dict[str, dict[str, Any]]) -> None:
        """Remember each measure's metadata (family, direction, range, parameters, ...), so
        the leaderboard draws a store without importing any measure's code."""
        with self.transaction() as c:
            c.execute(_MEASURES_TABLE)
            for name, data in meta.items():
                c.execute("INSERT OR REPLACE INTO measures VALUES (?, ?, ?)",
                          (name, json.dumps(data, sort_keys=True, default=str), time.time()))

    def write(self, job: Any, outcome: dict[str, Any], *, spec: str | None = None) -> bool:
        """Write one job's outcome in one transaction; False when a done row already exists."""
        score = outcome.get("score") or {}
        ci = score.get("ci") or (None, None)
        row = {
            "key": job.key, "status": outcome["status"], "spec": spec, "label": job.label,
            "variant": job.variant, "measure": job.measure,
            "params": json.dumps(job.params, sort_keys=True, default=str),
            "systems": json.dumps(list(job.systems)), "sources": json.dumps(list(job.sources)),
            "system_a": job.systems[0], "system_b": job.systems[1] if len(job.systems) > 1 else None,
            "site": job.site, "task": job.task, "seed": job.seed,
            "categories": json.dumps(list(job.categories)),
            "value": score.get("value"), "ci_low": ci[0], "ci_high": ci[1],
            "n_samples": score.get("n_samples"),
            "score": json.dumps(score) if score else None,
            "error": outcome.get("error"), "traceback": outcome.get("traceback"),
            "runtime_s": outcome.get("runtime_s"), "device": outcome.get("device"),
            "host": outcome.get("host"), "code_version": job.code_version,
            "finished": time.time(),
        }
        with self.transaction() as c:
            cur = c.execute(_UPSERT, row)
            return cur.rowcount > 0

    # ---- reading ------------------------------------------------------------------------
    def statuses(self, keys: Iterable[str] | None = None) -> dict[str, str]:
        """key -> 'done' | 'failed' (all rows, or only ``keys``)."""
        rows = self.conn.execute("SELECT key, status FROM results").fetchall()
        out = dict(rows)
        if keys is not None:
            wanted = set(keys)
            out = {k: v for k, v in out.items() if k in wanted}
        return out

    def rows(self, keys: Iterable[str] | None = None, *, status: str | None = None
             ) -> list[dict[str, Any]]:
        """Result rows as dicts (JSON columns decoded)."""
        cur = self.conn.execute("SELECT * FROM results" + (" WHERE status = ?" if status else ""),
                                (status,) if status else ())
        names = [d[0] for d in cur.description]
        wanted = None if keys is None else set(keys)
        out = []
        for values in cur:
            row = dict(zip(names, values))
            if wanted is not None and row["key"] not in wanted:
                continue
            for col in ("params", "systems", "sources", "categories"):
                row[col] = json.loads(row[col])
            out.append(row)
        return out

    def count(self, status: str | None = None) -> int:
        q = "SELECT COUNT(*) FROM results" + (" WHERE status = ?" if status else "")
        return self.conn.execute(q, (status,) if status else ()).fetchone()[0]

    def spec_text(self, name: str | None = None) -> tuple[str, str | None, str] | None:
        """(name, path, text) of the named spec, or of the one run last."""
        q = ("SELECT name, path, text FROM specs WHERE name = ?" if name else
             "SELECT name, path, text FROM specs ORDER BY updated DESC LIMIT 1")
        row = self.conn.execute(q, (name,) if name else ()).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def measures(self) -> dict[str, dict[str, Any]]:
        """Stored measure metadata by name; empty for a store written before it was kept."""
        try:
            rows = self.conn.execute("SELECT name, meta FROM measures").fetchall()
        except sqlite3.OperationalError:  # no such table: an older store
            return {}
        return {name: json.loads(meta) for name, meta in rows}

    def integrity(self) -> str:
        return self.conn.execute("PRAGMA integrity_check").fetchone()[0]
