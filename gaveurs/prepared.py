"""Named prepared statements of a database session, run through Django's cursor.

PostgreSQL parses and plans a prepared statement once per connection instead of on every call
(planning is most of the server time of our hot one-row statements: the scan, the ledger
proof). The first call on a connection sends PREPARE and EXECUTE together (still one round
trip); the session keeps the statement until the connection closes (a PREPARE survives a
rollback). Runs through Django's cursor, so it is counted and logged like any query. Name a
statement with a version: a changed text gets a new name. Needs session-level state: behind
PgBouncer use session pooling (README), as for the rest of the application.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, ProgrammingError, connections
from psycopg import errors as psycopg_errors


class PreparedStatement:
    """``sql`` uses PostgreSQL's placeholders ($1…), of ``types``; ``params`` names them in
    order (the keys of the mapping ``rows`` takes)."""

    def __init__(self, name: str, types: Sequence[str], params: Sequence[str], sql: str) -> None:
        self.name = name
        self.params = tuple(params)
        self.prepare_sql = f"PREPARE {name} ({', '.join(types)}) AS {sql}"
        self.execute_sql = f"EXECUTE {name} (" + ", ".join(f"%({p})s" for p in params) + ")"
        # Integer parameters are written into the EXECUTE as literals (int() of each: nothing
        # else can get in), so that the driver has nothing to bind: measured cheaper per call.
        self._literal = all(t in ("integer", "bigint", "smallint") for t in types)
        # Database sessions (psycopg connections) on which the statement is prepared.
        self._sessions: weakref.WeakSet[Any] = weakref.WeakSet()

    def rows(self, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Run the statement on this thread's connection: one round trip."""
        args: dict[str, Any] | None = params
        execute_sql = self.execute_sql
        if self._literal:
            execute_sql = execute_sql % {p: int(params[p]) for p in self.params}
            args = None
        db = connections[DEFAULT_DB_ALIAS]  # this thread's: one lookup, not one per use
        with db.cursor() as cursor:
            session = db.connection
            for attempt in (1, 2):
                prepared = session in self._sessions
                try:
                    if prepared:
                        cursor.execute(execute_sql, args)
                    else:
                        cursor.execute(f"{self.prepare_sql};\n{execute_sql}", args)
                        cursor.nextset()  # PREPARE's result, then EXECUTE's
                        self._sessions.add(session)
                    return cursor.fetchall()
                except ProgrammingError as exc:
                    # Our record of the session was wrong: the statement was deallocated behind
                    # our back (DISCARD ALL, a pooler) or prepared by a call that failed
                    # afterwards. Nothing ran (a failed statement is rolled back whole): correct
                    # the record and, outside a transaction, try once more; inside one the
                    # transaction is aborted.
                    cause = exc.__cause__
                    if isinstance(cause, psycopg_errors.InvalidSqlStatementName):
                        self._sessions.discard(session)
                    elif isinstance(cause, psycopg_errors.DuplicatePreparedStatement):
                        self._sessions.add(session)
                    else:
                        raise
                    if attempt == 2 or db.in_atomic_block:
                        raise
        return []
