"""The PostgreSQL audit backend: one database shared by several services.

Same records, same hash chain and same verification as SQLite (``_base``); what changes is
how writers that live in different processes and on different hosts are kept in order:

- every chain append runs in one transaction holding ``pg_advisory_xact_lock`` on this
  schema's chain, so the "read last hash, insert next" step never interleaves;
- the daily-quota counter is one ``INSERT … ON CONFLICT … DO UPDATE … RETURNING``, atomic
  in the database, so usage on service A counts on service B and concurrent requests at the
  boundary never approve more than the quota;
- triggers refuse UPDATE, DELETE and TRUNCATE on ``decisions`` (append-only). The one
  sanctioned deletion is a retention prune (``_prune``): in the transaction that writes the
  ``chain_anchor`` checkpoint, under the chain lock, it sets the transaction-local
  ``pygate.prune_through`` to the checkpoint's seq, and the trigger lets a DELETE through only
  for rows at or below it that a checkpoint covers; every other UPDATE, DELETE or TRUNCATE is
  still refused.
- the refusal-dataset extension tables (approvals, follow-ups, retention checkpoints) are
  ``EXTENSION_SCHEMA``, created at open under the same lock; checkpoints are append-only too.

Tables live in the connection's current schema (set ``options=-csearch_path=NAME`` in the URL
to keep several deployments in one database). Driver errors become ``AuditError`` in exactly
one place, ``_translate``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

from pygate._errors import AuditError
from pygate.audit._base import (
    ADDED_COLUMNS,
    CHAIN_USAGE,
    DEFAULT_AUDIT_TIMEOUT,
    DEFAULT_REDACT_KEYS,
    DEFAULT_REDACT_PATTERNS,
    EXTENSION_SCHEMA,
    GENESIS,
    STORED_COLUMNS,
    AuditLog,
    Check,
    canonical,
)
from pygate.audit._integrity import Integrity

#: First key of every pygate advisory lock ("pyga"); the second is the schema's hash.
_LOCK_NAMESPACE = 0x70796761

_SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    seq BIGSERIAL PRIMARY KEY,
    audit_id TEXT NOT NULL UNIQUE,
    ts TEXT NOT NULL,
    day TEXT NOT NULL,
    service TEXT,
    user_id TEXT,
    output TEXT NOT NULL,
    allowed INTEGER NOT NULL,
    reason TEXT NOT NULL,
    policy_id TEXT,
    policy_ids TEXT NOT NULL,
    action TEXT,
    decision_id TEXT,
    bundle_revision TEXT,
    fallback INTEGER NOT NULL,
    latency_ms DOUBLE PRECISION NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    key_id TEXT
);
CREATE INDEX IF NOT EXISTS decisions_usage ON decisions(user_id, day, allowed);
CREATE OR REPLACE FUNCTION pygate_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- A retention prune (and nothing else) sets pygate.prune_through for its own transaction.
    IF TG_OP = 'DELETE' THEN
        IF OLD.seq <= COALESCE(NULLIF(current_setting('pygate.prune_through', true), ''),
                               '0')::bigint
           AND EXISTS (SELECT 1 FROM chain_anchor WHERE through_seq >= OLD.seq) THEN
            RETURN OLD;
        END IF;
    END IF;
    RAISE EXCEPTION 'the audit log is append-only';
END $$;
CREATE OR REPLACE TRIGGER decisions_no_update BEFORE UPDATE OR DELETE ON decisions
    FOR EACH ROW EXECUTE FUNCTION pygate_append_only();
CREATE OR REPLACE TRIGGER decisions_no_truncate BEFORE TRUNCATE ON decisions
    FOR EACH STATEMENT EXECUTE FUNCTION pygate_append_only();
CREATE TABLE IF NOT EXISTS quota_usage (
    user_id TEXT NOT NULL,
    day TEXT NOT NULL,
    used INTEGER NOT NULL,
    PRIMARY KEY (user_id, day)
);
"""

# The portable extension schema, with counters that can exceed 2**31 widened.
_EXTENSION_SCHEMA = tuple(
    s.replace("through_seq INTEGER", "through_seq BIGINT").replace(
        "pruned INTEGER", "pruned BIGINT"
    )
    for s in EXTENSION_SCHEMA
)
_ANCHOR_GUARDS = (
    """CREATE OR REPLACE FUNCTION pygate_anchor_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'retention anchors are append-only'; END $$""",
    """CREATE OR REPLACE TRIGGER chain_anchor_no_change BEFORE UPDATE OR DELETE ON chain_anchor
    FOR EACH ROW EXECUTE FUNCTION pygate_anchor_append_only()""",
    """CREATE OR REPLACE TRIGGER chain_anchor_no_truncate BEFORE TRUNCATE ON chain_anchor
    FOR EACH STATEMENT EXECUTE FUNCTION pygate_anchor_append_only()""",
)

_LOCK = "SELECT pg_advisory_xact_lock(%s, hashtext(current_schema()))"

_INSERT = (
    f"INSERT INTO decisions ({', '.join(STORED_COLUMNS)}, prev_hash, hash) "
    f"VALUES ({', '.join(['%s'] * (len(STORED_COLUMNS) + 2))})"
)

# The counter never goes below the allowed decisions the chain holds for that user and day:
# a counter reset or deleted behind pygate's back is not honoured (``verify`` reports it).
_RESERVE = (
    "INSERT INTO quota_usage (user_id, day, used) VALUES (%(u)s, %(d)s, (SELECT count(*) "
    "FROM decisions WHERE user_id = %(u)s AND day = %(d)s AND allowed = 1) + 1) "
    "ON CONFLICT (user_id, day) DO UPDATE "
    "SET used = GREATEST(quota_usage.used + 1, EXCLUDED.used) RETURNING used"
)
_RELEASE = (
    "INSERT INTO quota_usage (user_id, day, used) VALUES (%s, %s, 0) "
    "ON CONFLICT (user_id, day) DO UPDATE SET used = GREATEST(quota_usage.used - 1, 0)"
)


def safe_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


class PostgresAuditLog(AuditLog):
    """PostgreSQL audit log. Thread-safe; any number of processes may share one database.

    Args:
        url: ``postgresql://user:password@host:port/database`` (libpq URL, query options
            such as ``sslmode`` or ``options=-csearch_path=…`` allowed).
        redact_keys: keys whose values are masked in the stored output.
        redact_patterns: regexes whose matches are masked inside any string of the output.
        integrity: the audit key and checkpoint store (default: a folder per database under
            ``$PYGATE_STATE_DIR``); services sharing one database must share one keyring.
        connect_timeout: seconds to wait for the server when (re)connecting.
        timeout: seconds one statement (a lock wait included) may take, and one caller may
            wait for this client's connection, before it fails (the decision is then refused).

    Raises:
        AuditError: the database cannot be reached or the schema cannot be created.
    """

    dialect = "postgres"
    _GREATEST = "GREATEST"

    def __init__(
        self,
        url: str,
        redact_keys: Iterable[str] = DEFAULT_REDACT_KEYS,
        redact_patterns: Iterable[str] = DEFAULT_REDACT_PATTERNS,
        integrity: Integrity | None = None,
        *,
        connect_timeout: float = 5.0,
        timeout: float = DEFAULT_AUDIT_TIMEOUT,
    ) -> None:
        super().__init__(redact_keys, redact_patterns, integrity, target=url)
        self.url = url
        self._connect_timeout = connect_timeout
        self.timeout = timeout
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        with self._lock, self._translate("open the audit log"):
            conn = self._connection()
            with conn.transaction():
                # Serialise schema creation: services starting together race on it.
                conn.execute(_LOCK, (_LOCK_NAMESPACE,))
                conn.execute(_SCHEMA)
                self._extend(conn)
        self.extensions = True

    def __repr__(self) -> str:
        return f"PostgresAuditLog({safe_url(self.url)!r})"

    @contextlib.contextmanager
    def _translate(self, what: str) -> Iterator[None]:
        """THE place where driver errors become AuditError (the password never shows)."""
        try:
            yield
        except psycopg.Error as exc:
            # A connection the error broke is closed; _connection() opens a new one next time.
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise AuditError(f"cannot {what} in {safe_url(self.url)}: {detail}") from exc

    @staticmethod
    def _extend(conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        """Add the appended hashed columns and the extension tables (idempotent; under the lock).

        The columns are looked up first so that an up-to-date database is not ALTERed (which
        would take an exclusive lock on ``decisions`` at every open).
        """
        for statement in (*_EXTENSION_SCHEMA, *_ANCHOR_GUARDS):
            conn.execute(statement)
        have = {
            (r[0], r[1])
            for r in conn.execute(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema()"
            ).fetchall()
        }
        for table, columns in ADDED_COLUMNS.items():
            for column in columns:
                if (table, column) not in have:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} TEXT")

    def _connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self.url, autocommit=True, connect_timeout=max(1, round(self._connect_timeout))
            )
        return self._conn

    def _bound(self, cur: psycopg.Cursor[tuple[Any, ...]]) -> None:
        """Bound this write transaction's statements, lock waits included, by the timeout.

        Transaction-local (``is_local``): a row, table or advisory lock held by another session
        cannot stall a decision past ``audit_timeout``, while long analytics reads on the same
        connection are not cut short.
        """
        cur.execute(
            "SELECT set_config('statement_timeout', %s, true)",
            (str(max(1, round(self.timeout * 1000))),),
        )

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """This client's connection, waited for at most ``timeout`` seconds."""
        if not self._lock.acquire(timeout=self.timeout):
            raise AuditError(
                f"audit log {safe_url(self.url)} busy for more than {self.timeout:g} s "
                "(audit_timeout)"
            )
        try:
            yield
        finally:
            self._lock.release()

    def close(self) -> None:
        self._close_checkpoint()
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _insert(
        self,
        rows: list[dict[str, Any]],
        releases: list[tuple[str, str]],
        checks: list[list[Check]] | None = None,
    ) -> list[int]:
        skipped = []
        with self._locked(), self._translate("write audit records"):
            conn = self._connection()
            with conn.transaction(), conn.cursor() as cur:
                self._bound(cur)
                cur.execute(_LOCK, (_LOCK_NAMESPACE,))
                prev = _last_hash(cur)
                params = []
                for n, row in enumerate(rows):
                    if not _checks_hold(cur, checks[n] if checks else []):
                        skipped.append(n)
                        continue
                    row["key_id"], digest = self.integrity.link(prev, canonical(row))
                    params.append((*(row.get(c) for c in STORED_COLUMNS), prev, digest))
                    prev = digest
                if params:
                    cur.executemany(_INSERT, params)
                if releases:
                    cur.executemany(_RELEASE, releases)
        return skipped

    def _execute(self, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
        with self._locked(), self._translate("write the extension tables"):
            conn = self._connection()
            with conn.transaction(), conn.cursor() as cur:
                self._bound(cur)
                for sql, params in statements:
                    cur.execute(sql.replace("?", "%s"), params)

    def _prune(self, through_seq: int, anchor: dict[str, Any]) -> int:
        columns = ", ".join(anchor)
        with self._locked(), self._translate("prune the audit log"):
            conn = self._connection()
            with conn.transaction(), conn.cursor() as cur:
                # Under the chain lock: no append reads the last hash while the prefix goes.
                cur.execute(_LOCK, (_LOCK_NAMESPACE,))
                cur.execute(
                    f"INSERT INTO chain_anchor ({columns}) "
                    f"VALUES ({', '.join(['%s'] * len(anchor))})",
                    tuple(anchor.values()),
                )
                # Transaction-local (is_local = true): gone at COMMIT or ROLLBACK.
                cur.execute(
                    "SELECT set_config('pygate.prune_through', %s, true)", (str(through_seq),)
                )
                cur.execute("DELETE FROM decisions WHERE seq <= %s", (through_seq,))
                deleted = cur.rowcount
                cur.execute("SELECT set_config('pygate.prune_through', '', true)")
        return int(deleted)

    def quota_used(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """The committed counters, read within ``audit_timeout`` (a decision waits on it)."""
        wanted = list(dict.fromkeys(keys))
        used = dict.fromkeys(wanted, 0)
        with self._locked(), self._translate("read the quota"):
            conn = self._connection()
            with conn.transaction(), conn.cursor() as cur:
                self._bound(cur)
                for user_id, day in wanted:
                    # Never below the chain's allowed records (a counter reset is not honoured).
                    cur.execute(
                        "SELECT GREATEST(coalesce((SELECT used FROM quota_usage "
                        "WHERE user_id = %s AND day = %s), 0), "
                        f"{CHAIN_USAGE.replace('?', '%s')})",
                        (user_id, day, user_id, day),
                    )
                    row = cur.fetchone()
                    used[(user_id, day)] = int(row[0]) if row else 0
        return used

    def reserve(self, user_id: str, day: str) -> int:
        with self._locked(), self._translate("reserve quota"):
            row = self._connection().execute(_RESERVE, {"u": user_id, "d": day}).fetchone()
        if row is None:  # RETURNING always yields a row; be loud if it ever does not
            raise AuditError("quota reservation returned nothing")
        return int(row[0]) - 1

    def _select_raw(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._locked(), self._translate("read the audit log"):
            cur = self._connection().execute(sql.replace("?", "%s"), params)
            names = [d.name for d in cur.description or ()]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def _select(self, sql_tail: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        return self._select_raw(f"SELECT * FROM decisions {sql_tail}", params)

    def _scalar(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        with self._locked(), self._translate("read the audit log"):
            row = self._connection().execute(sql.replace("?", "%s"), params).fetchone()
        return row[0] if row else None


def _checks_hold(cur: psycopg.Cursor[tuple[Any, ...]], checks: list[Check]) -> bool:
    """Run one row's checks in a savepoint; undo them and say so when one fails."""
    if not checks:
        return True
    cur.execute("SAVEPOINT pygate_checks")
    for sql, params, must_change in checks:
        cur.execute(sql.replace("?", "%s"), params)
        if cur.rowcount != 1 and must_change:
            cur.execute("ROLLBACK TO SAVEPOINT pygate_checks")
            cur.execute("RELEASE SAVEPOINT pygate_checks")
            return False
    cur.execute("RELEASE SAVEPOINT pygate_checks")
    return True


def _last_hash(cur: psycopg.Cursor[tuple[Any, ...]]) -> str:
    """The hash the next record chains to: the last record's, else the latest checkpoint's.

    A prune may have removed every record; the chain then continues from its checkpoint.
    """
    cur.execute("SELECT hash FROM decisions ORDER BY seq DESC LIMIT 1")
    last = cur.fetchone()
    if last:
        return str(last[0])
    cur.execute("SELECT through_hash FROM chain_anchor ORDER BY anchor_no DESC LIMIT 1")
    anchor = cur.fetchone()
    return str(anchor[0]) if anchor else GENESIS
