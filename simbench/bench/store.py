"""The results store: one SQLite file, one row per job key, safe to kill at any moment.

Why SQLite: embedded, one file to copy, concurrent readers while one process writes (WAL
mode), and atomic transactions, so a ``kill -9`` or a full disk leaves either the whole result
or nothing. Each result is written in its own transaction; the job key is the primary key, so
nothing is written twice; which stored rows a run may replace is :func:`job_state`'s rule.

Several runs may share one store: a run *claims* a job (a row in ``leases`` with its owner, pid,
host and an expiry) in the same transaction that checks the job has no result, renews its
claims while the jobs run, and drops each claim in the transaction that writes the result. A
run that dies leaves claims that expire (after ``SIMBENCH_LEASE_S`` seconds, default 60), then
another run takes them over; on the same host, a claim whose process is gone is taken over at
once.

Readers (``bench status``, ``leaderboard``) open the file read-only (``mode=ro``) and never
change it, not even its journal mode, so a store on a read-only disk or in someone else's
directory can be viewed. Writers use ``synchronous = NORMAL`` in WAL mode: a crashed or killed
process loses nothing that was committed; a power loss or an operating-system crash can lose
the last results committed before it (never corrupt the file), and a rerun recomputes them.

The schema version lives in ``PRAGMA user_version`` and the file is marked as a simbench store
by ``PRAGMA application_id`` and a ``meta`` row; a file that is not a simbench store, or that a
newer simbench wrote, is refused with a :class:`~simbench.errors.StoreError`. Version 1 stores
are upgraded in place to version 2 (:data:`_V2_TABLES`, and the result columns
``code_fingerprint`` and ``measure_meta``, NULL in older rows: those count as stale) when a run
writes to them, and read as they are otherwise.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import socket
import sqlite3
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from simbench.errors import StoreError

SCHEMA_VERSION = 2
APPLICATION_ID = 0x53424E43  # "SBNC"
APP = "simbench-results"
DEFAULT_LEASE_S = 60.0
TIMEOUT_S = 30.0  # how long a connection waits for another process's write lock

_RESULTS = """
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
    finished     REAL NOT NULL,
    code_fingerprint TEXT,
    measure_meta TEXT
);
CREATE INDEX IF NOT EXISTS results_measure ON results (measure, site);
CREATE INDEX IF NOT EXISTS results_status ON results (status);
CREATE INDEX IF NOT EXISTS results_systems ON results (system_a, system_b);
CREATE TABLE IF NOT EXISTS specs (
    name TEXT PRIMARY KEY, path TEXT, text TEXT NOT NULL, updated REAL NOT NULL
);
"""

_V2_TABLES = """
CREATE TABLE IF NOT EXISTS jobs (
    spec             TEXT NOT NULL,
    key              TEXT NOT NULL,
    label            TEXT NOT NULL,
    variant          TEXT NOT NULL,
    measure          TEXT NOT NULL,
    systems          TEXT NOT NULL,
    site             TEXT NOT NULL,
    task             TEXT,
    seed             INTEGER NOT NULL,
    categories       TEXT NOT NULL,
    code_version     TEXT NOT NULL,
    code_fingerprint TEXT NOT NULL,
    code_root        TEXT NOT NULL,
    measure_meta     TEXT,
    timeout          REAL,
    PRIMARY KEY (spec, key)
);
CREATE TABLE IF NOT EXISTS leases (
    key     TEXT PRIMARY KEY,
    owner   TEXT NOT NULL,
    pid     INTEGER NOT NULL,
    host    TEXT NOT NULL,
    taken   REAL NOT NULL,
    expires REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS leases_owner ON leases (owner);
CREATE TABLE IF NOT EXISTS measures (
    name TEXT PRIMARY KEY, meta TEXT NOT NULL, updated REAL NOT NULL
);
"""

_UPSERT = """
INSERT INTO results (key, status, spec, label, variant, measure, params, systems, sources,
    system_a, system_b, site, task, seed, categories, value, ci_low, ci_high, n_samples, score,
    error, traceback, runtime_s, device, host, code_version, attempts, finished,
    code_fingerprint, measure_meta)
VALUES (:key, :status, :spec, :label, :variant, :measure, :params, :systems, :sources,
    :system_a, :system_b, :site, :task, :seed, :categories, :value, :ci_low, :ci_high,
    :n_samples, :score, :error, :traceback, :runtime_s, :device, :host, :code_version, 1,
    :finished, :code_fingerprint, :measure_meta)
ON CONFLICT (key) DO UPDATE SET
    status = excluded.status, value = excluded.value, ci_low = excluded.ci_low,
    ci_high = excluded.ci_high, n_samples = excluded.n_samples, score = excluded.score,
    error = excluded.error, traceback = excluded.traceback, runtime_s = excluded.runtime_s,
    device = excluded.device, host = excluded.host, attempts = results.attempts + 1,
    finished = excluded.finished, code_version = excluded.code_version,
    code_fingerprint = excluded.code_fingerprint, measure_meta = excluded.measure_meta
WHERE results.status = 'failed' OR results.code_fingerprint IS NOT excluded.code_fingerprint
"""

_DAMAGED_FIX = ("if the file is damaged (`sqlite3 FILE 'PRAGMA integrity_check'`), save what it "
                "holds with `sqlite3 FILE .recover | sqlite3 NEW.sqlite`, or move it away and "
                "rerun into a new store")


def lease_seconds() -> float:
    """How long a claim lasts without renewal: ``$SIMBENCH_LEASE_S`` or 60 s."""
    try:
        value = float(os.environ.get("SIMBENCH_LEASE_S", DEFAULT_LEASE_S))
    except ValueError:
        return DEFAULT_LEASE_S
    return value if value > 0 else DEFAULT_LEASE_S


@dataclasses.dataclass(frozen=True)
class Owner:
    """Who holds a claim: one run (a random id), its process id and its host."""

    id: str
    pid: int
    host: str

    @classmethod
    def here(cls) -> Owner:
        host = socket.gethostname()
        return cls(f"{host}:{os.getpid()}:{uuid.uuid4().hex[:8]}", os.getpid(), host)


def job_state(job: Any, stored: tuple[str, str | None] | None, retry_failed: bool,
              rerun_stale: bool) -> str:
    """'todo', 'done', 'failed' (not retried) or 'stale' (not rerun) for one job, from its
    stored (status, code fingerprint) or None; what a run claims and what status counts."""
    if stored is None:
        return "todo"
    status, fprint = stored
    current = fprint == job.code_fingerprint
    if status == "failed" and retry_failed:
        return "todo"
    if not current:
        return "todo" if rerun_stale else "stale"
    return status if status in ("done", "failed") else "todo"


def _gone(host: str, pid: int) -> bool:
    """True when a claim's process is known to be dead: it ran on this host and no process has
    its pid any more. (A claim from another host can only expire.)"""
    if host != socket.gethostname() or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists, under another user
        return False
    return False


class Store:
    """A results store at ``path``.

    ``create=True`` (a run) creates the file if needed and opens it for writing;
    ``create=False`` (status, leaderboards) opens an existing store read-only (``mode=ro``),
    changing nothing in the file or its directory.
    """

    def __init__(self, path: str | Path, *, create: bool = True) -> None:
        self.path = Path(path)
        self.readonly = not create
        self._columns: set[str] | None = None
        if self.path.is_dir():
            raise StoreError("this is a directory, not a results store file", file=self.path,
                             fix=f"pass a file path, e.g. --store {self.path / 'results.sqlite'}")
        try:
            if not self.path.exists() or self.path.stat().st_size == 0:
                if not create:
                    raise StoreError("no results store here", file=self.path,
                                     fix="run `simbench bench run SPEC` first, or pass "
                                     "--store PATH")
                try:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StoreError(f"cannot create the store's directory {self.path.parent}: "
                                     f"{exc.strerror or exc}", file=self.path,
                                     fix="pass --store with a path in a directory you can "
                                     "create and write") from None
            else:
                with self.path.open("rb") as fh:
                    magic = fh.read(16)
                if magic != b"SQLite format 3\x00":
                    raise StoreError("not a simbench results store (not an SQLite file)",
                                     file=self.path, fix="pass --store with a new or existing "
                                     "simbench store path")
        except OSError as exc:
            raise StoreError(f"cannot read the results store: {exc.strerror or exc}",
                             file=self.path, fix="check the path and its permissions") from None
        try:
            if self.readonly:
                self._open_readonly()
            else:
                self._connect()
                self._init()
        except StoreError:
            self._close_quietly()
            raise
        except sqlite3.DatabaseError as exc:
            self._close_quietly()
            text = str(exc)
            raise StoreError(f"cannot open the results store: {text}", file=self.path,
                             fix="results are written next to the store (its -wal and -shm "
                             "files): run into a store in a directory you can write (--store "
                             "PATH)" if "readonly" in text or "unable to open" in text
                             else _DAMAGED_FIX) from None

    # ---- opening ------------------------------------------------------------------------
    def _connect(self, **uri_params: str) -> None:
        """``self.conn`` on the file, or on its URI with ``uri_params`` (``mode=ro``, ...)."""
        query = "&".join(f"{k}={v}" for k, v in uri_params.items())
        uri = f"file:{urllib.parse.quote(str(self.path.resolve()))}?{query}"
        self.conn = sqlite3.connect(uri if uri_params else self.path, uri=bool(uri_params),
                                    timeout=TIMEOUT_S, isolation_level=None,
                                    check_same_thread=False)

    def _open_readonly(self) -> None:
        """``mode=ro``; where SQLite cannot even create the shared-memory file next to a WAL
        store (a read-only directory) and no write-ahead log is pending, ``immutable=1``."""
        self._connect(mode="ro")
        try:
            self._check()
        except sqlite3.OperationalError as exc:
            self._close_quietly()
            wal = Path(f"{self.path}-wal")
            if "unable to open" not in str(exc) and "readonly" not in str(exc):
                raise
            if wal.exists() and wal.stat().st_size > 0:
                raise StoreError(
                    "cannot read the store: its -wal file holds results not yet in the main "
                    "file, and SQLite cannot create the -shm file it needs next to it",
                    file=self.path, fix="copy the store with its -wal file to a directory you "
                    "can write, or ask its owner to run `sqlite3 FILE 'PRAGMA "
                    "wal_checkpoint(TRUNCATE)'`") from None
            self._connect(mode="ro", immutable="1")
            self._check()

    def _check(self) -> set[str]:
        """Refuse files that are not simbench stores or come from a newer simbench."""
        c = self.conn
        c.execute(f"PRAGMA busy_timeout = {int(TIMEOUT_S * 1000)}")
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
        elif self.readonly:
            raise StoreError("no results store here (an empty SQLite file)", file=self.path,
                             fix="run `simbench bench run SPEC` first, or pass --store PATH")
        self.version = version
        return tables

    def _init(self) -> None:
        c = self.conn
        tables = self._check()
        c.execute("PRAGMA journal_mode = WAL")
        c.execute("PRAGMA synchronous = NORMAL")  # what a crash can lose: the module docstring
        if tables and self.version >= SCHEMA_VERSION:
            return
        with self.transaction():  # a new store, or version 1 -> 2 (new columns and tables only)
            for statement in (_RESULTS + _V2_TABLES).split(";"):  # all IF NOT EXISTS
                if statement.strip():
                    c.execute(statement)
            have = {r[1] for r in c.execute("PRAGMA table_info(results)")}
            for column in ("code_fingerprint", "measure_meta"):
                if column not in have:
                    c.execute(f"ALTER TABLE results ADD COLUMN {column} TEXT")
            if not tables:
                c.execute("INSERT OR REPLACE INTO meta VALUES ('app', ?)", (APP,))
                c.execute("INSERT OR REPLACE INTO meta VALUES ('created', ?)", (str(time.time()),))
                c.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            c.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _close_quietly(self) -> None:
        conn = getattr(self, "conn", None)
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

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
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot write to the store: {exc}", file=self.path,
                             fix=_DAMAGED_FIX if "malformed" in str(exc) else None) from None
        try:
            yield c
            c.execute("COMMIT")
        except BaseException as exc:
            if c.in_transaction:
                c.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                if ("full" in str(exc).lower()
                        or getattr(exc, "sqlite_errorname", "") == "SQLITE_FULL"):
                    raise StoreError("the disk (or the store's size limit) is full; the store "
                                     "is intact up to the last finished result", file=self.path,
                                     fix="free space and rerun: finished jobs are kept") from None
                raise StoreError(f"writing to the store failed: {exc}", file=self.path,
                                 fix=_DAMAGED_FIX if "malformed" in str(exc) else None) from None
            raise

    def _read(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        """A query whose SQLite error (a damaged page, a vanished file) is a StoreError."""
        try:
            return self.conn.execute(sql, params)
        except sqlite3.DatabaseError as exc:
            raise self._unreadable(exc) from None

    def _unreadable(self, exc: sqlite3.Error) -> StoreError:
        return StoreError(f"cannot read the results store: {exc}", file=self.path,
                          fix=_DAMAGED_FIX)

    def _dicts(self, sql: str, params: Any = (), json_columns: tuple[str, ...] = (),
               keys: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """The rows of a query (only those of ``keys``, if given) as dicts, ``json_columns``
        decoded (None where NULL or absent: a version 1 store lacks ``measure_meta``)."""
        cur = self._read(sql, params)
        names = [d[0] for d in cur.description]
        wanted, at = (None, 0) if keys is None else (set(keys), names.index("key"))
        try:
            rows = [dict(zip(names, values)) for values in cur
                    if wanted is None or values[at] in wanted]
        except sqlite3.DatabaseError as exc:
            raise self._unreadable(exc) from None
        for row in rows:
            for col in json_columns:
                row[col] = json.loads(row[col]) if row.get(col) else None
        return rows

    def _has(self, table: str, column: str | None = None) -> bool:
        if column is None:
            return table in {r[0] for r in self._read(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if self._columns is None:
            self._columns = {r[1] for r in self._read("PRAGMA table_info(results)")}
        return column in self._columns

    # ---- writing ------------------------------------------------------------------------
    def record_spec(self, name: str, path: str | None, text: str) -> None:
        """Remember the spec text, so ``simbench leaderboard`` works from the store alone."""
        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO specs VALUES (?, ?, ?, ?)",
                      (name, path, text, time.time()))

    def record_jobs(self, spec: str, jobs: Iterable[Any]) -> None:
        """Replace the stored job list of spec ``spec`` (what ``bench status`` counts)."""
        rows = [(spec, j.key, j.label, j.variant, j.measure, json.dumps(list(j.systems)),
                 j.site, j.task, j.seed, json.dumps(list(j.categories)), j.code_version,
                 j.code_fingerprint, json.dumps(j.code_root, sort_keys=True),
                 json.dumps(j.meta, sort_keys=True) if j.meta else None, j.timeout)
                for j in jobs]
        with self.transaction() as c:
            c.execute("DELETE FROM jobs WHERE spec = ?", (spec,))
            c.executemany("INSERT OR REPLACE INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                          "?, ?, ?, ?)", rows)

    def claim(self, job: Any, owner: Owner, *, lease_s: float | None = None,
              retry_failed: bool = False, rerun_stale: bool = False
              ) -> tuple[str, dict[str, Any] | None]:
        """Claim ``job`` for ``owner``, in one transaction, unless it needs no run or another
        run holds it. Returns ``("claimed", None)``, ``("done" | "failed" | "stale", None)``
        (a result this run must not replace) or ``("busy", lease)`` (another run's live claim:
        owner, pid, host, expires).
        """
        ttl = lease_seconds() if lease_s is None else lease_s
        with self.transaction() as c:
            row = c.execute("SELECT status, code_fingerprint FROM results WHERE key = ?",
                            (job.key,)).fetchone()
            state = job_state(job, row, retry_failed, rerun_stale)
            if state != "todo":
                return state, None
            now = time.time()
            lease = c.execute("SELECT owner, pid, host, expires FROM leases WHERE key = ?",
                              (job.key,)).fetchone()
            if (lease is not None and lease[0] != owner.id and lease[3] > now
                    and not _gone(lease[2], lease[1])):
                return "busy", {"owner": lease[0], "pid": lease[1], "host": lease[2],
                                "expires": lease[3]}
            c.execute("INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?, ?, ?)",
                      (job.key, owner.id, owner.pid, owner.host, now, now + ttl))
            return "claimed", None

    def release(self, owner: Owner) -> None:
        """Drop every claim ``owner`` still holds (a run's end, or its interruption)."""
        with self.transaction() as c:
            c.execute("DELETE FROM leases WHERE owner = ?", (owner.id,))

    def leases(self) -> list[dict[str, Any]]:
        """Every claim in the store (live or expired)."""
        if not self._has("leases"):
            return []
        return self._dicts("SELECT key, owner, pid, host, taken, expires FROM leases")

    def write(self, job: Any, outcome: dict[str, Any], *, spec: str | None = None,
              owner: Owner | None = None) -> bool:
        """Write one job's outcome (and drop ``owner``'s claim on it) in one transaction.

        False when the row already holds a result this one must not replace: a done row of the
        same code.
        """
        score = outcome.get("score") or {}
        ci = score.get("ci") or (None, None)
        row = {
            "key": job.key, "status": outcome["status"], "spec": spec, "label": job.label,
            "variant": job.variant, "measure": job.measure,
            "params": json.dumps({**job.params, **job.lm_params()}, sort_keys=True,
                                 default=str),
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
            "code_fingerprint": job.code_fingerprint or None,
            "measure_meta": json.dumps(job.meta, sort_keys=True) if job.meta else None,
        }
        with self.transaction() as c:
            cur = c.execute(_UPSERT, row)
            if owner is not None:
                c.execute("DELETE FROM leases WHERE key = ? AND owner = ?", (job.key, owner.id))
            return cur.rowcount > 0

    # ---- reading ------------------------------------------------------------------------
    def states(self, keys: Iterable[str] | None = None) -> dict[str, tuple[str, str | None]]:
        """key -> (status, code fingerprint or None) (all rows, or only ``keys``)."""
        column = "code_fingerprint" if self._has("results", "code_fingerprint") else "NULL"
        wanted = None if keys is None else set(keys)
        return {k: (s, f) for k, s, f in self._read(f"SELECT key, status, {column} FROM results")
                if wanted is None or k in wanted}

    def rows(self, keys: Iterable[str] | None = None, *, status: str | None = None,
             spec: str | None = None) -> list[dict[str, Any]]:
        """Result rows as dicts (JSON columns decoded; ``code_fingerprint`` and
        ``measure_meta`` are None in rows written before schema 2)."""
        given = {column: v for column, v in (("status", status), ("spec", spec)) if v}
        where = " AND ".join(f"{column} = ?" for column in given)
        rows = self._dicts("SELECT * FROM results" + (f" WHERE {where}" if where else ""),
                           list(given.values()),
                           ("params", "systems", "sources", "categories", "measure_meta"), keys)
        for row in rows:
            row.setdefault("code_fingerprint", None)
        return rows

    def spec_jobs(self, spec: str) -> list[dict[str, Any]] | None:
        """The job list of the last run of spec ``spec`` (None: no run recorded one)."""
        if not self._has("jobs"):
            return None
        return self._dicts("SELECT * FROM jobs WHERE spec = ?", (spec,),
                           ("systems", "categories", "code_root", "measure_meta")) or None

    def count(self, status: str | None = None) -> int:
        q = "SELECT COUNT(*) FROM results" + (" WHERE status = ?" if status else "")
        return self._read(q, (status,) if status else ()).fetchone()[0]

    def spec_text(self, name: str | None = None) -> tuple[str, str | None, str] | None:
        """(name, path, text) of the named spec, or of the one run last."""
        q = ("SELECT name, path, text FROM specs WHERE name = ?" if name else
             "SELECT name, path, text FROM specs ORDER BY updated DESC LIMIT 1")
        return self._read(q, (name,) if name else ()).fetchone()

    def spec_names(self) -> list[str]:
        """Names of the specs run into this store, the last one run first."""
        return [r[0] for r in self._read("SELECT name FROM specs ORDER BY updated DESC")]

    def record_measures(self, meta: dict[str, dict[str, Any]]) -> None:
        """Remember each measure's full metadata (family, direction, range, parameters, ...), so
        the leaderboard draws a store without importing any measure's code."""
        with self.transaction() as c:
            for name, data in meta.items():
                c.execute("INSERT OR REPLACE INTO measures VALUES (?, ?, ?)",
                          (name, json.dumps(data, sort_keys=True, default=str), time.time()))

    def measures(self) -> dict[str, dict[str, Any]]:
        """Stored measure metadata by name: the ``measures`` table, else the metadata each
        result row carries (the newest row per measure); empty for a store written before
        simbench kept either."""
        out: dict[str, dict[str, Any]] = {}
        if self._has("results", "measure_meta"):
            for name, meta in self._read(
                    "SELECT measure, measure_meta FROM results WHERE measure_meta IS NOT NULL "
                    "ORDER BY finished"):
                out[name] = _finite_range(json.loads(meta))
        if self._has("measures"):
            for name, meta in self._read("SELECT name, meta FROM measures"):
                out[name] = {**out.get(name, {}), **_finite_range(json.loads(meta))}
        return out

    def integrity(self) -> str:
        return self._read("PRAGMA integrity_check").fetchone()[0]


def _finite_range(meta: dict[str, Any]) -> dict[str, Any]:
    """Open range ends as ``None`` (JSON has no infinity)."""
    rng = meta.get("range")
    if isinstance(rng, list) and len(rng) == 2:
        meta["range"] = [x if x is None or math.isfinite(x) else None for x in rng]
    return meta


class LeaseKeeper:
    """Renews a run's claims (to ``now + lease_s``, every ``lease_s / 3`` seconds) from a
    thread with its own connection, while jobs run."""

    def __init__(self, path: Path, owner: Owner, lease_s: float) -> None:
        self.path, self.owner, self.lease_s = path, owner, lease_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="simbench-leases", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        # a store error here is the run's to report, from its own connection
        with contextlib.suppress(sqlite3.Error), contextlib.closing(
                sqlite3.connect(self.path, timeout=TIMEOUT_S, isolation_level=None)) as conn:
            while not self._stop.wait(self.lease_s / 3):
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("UPDATE leases SET expires = ? WHERE owner = ?",
                                 (time.time() + self.lease_s, self.owner.id))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
