"""Schema migrations and the store's version.

`PRAGMA user_version` holds the number of migrations applied (the schema version); the `meta`
table (from schema 3) holds the format of the records in it and the stepd that last opened it,
so that an older stepd can say which newer one wrote a store it cannot read.
"""

from __future__ import annotations

from dataclasses import dataclass

MIGRATIONS: tuple[str, ...] = (
    # 1: executions, their definitions and their history
    """
    CREATE TABLE definitions (
        id INTEGER PRIMARY KEY,
        machine TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at REAL NOT NULL,
        UNIQUE (machine, sha256)
    );
    CREATE TABLE executions (
        id INTEGER PRIMARY KEY,
        machine TEXT NOT NULL,
        name TEXT NOT NULL,
        definition_id INTEGER NOT NULL REFERENCES definitions (id),
        status TEXT NOT NULL,
        input TEXT NOT NULL,
        start_date REAL NOT NULL,
        stop_date REAL,
        output TEXT,
        error TEXT,
        cause TEXT,
        state TEXT,
        phase TEXT,
        data TEXT,
        pending TEXT,
        state_entered_event INTEGER NOT NULL DEFAULT 0,
        state_entered_at REAL,
        attempt INTEGER NOT NULL DEFAULT 0,
        retry_counts TEXT NOT NULL DEFAULT '[]',
        due_at REAL,
        last_event_id INTEGER NOT NULL DEFAULT 0,
        version INTEGER NOT NULL DEFAULT 0,
        UNIQUE (machine, name)
    );
    CREATE INDEX executions_due ON executions (due_at) WHERE due_at IS NOT NULL;
    CREATE INDEX executions_by_status ON executions (machine, status, start_date);
    CREATE INDEX executions_by_start ON executions (start_date);
    CREATE TABLE events (
        execution_id INTEGER NOT NULL REFERENCES executions (id),
        id INTEGER NOT NULL,
        previous_id INTEGER NOT NULL,
        ts REAL NOT NULL,
        type TEXT NOT NULL,
        details TEXT NOT NULL,
        PRIMARY KEY (execution_id, id)
    ) WITHOUT ROWID;
    """,
    # 2: closed executions by when they closed, for retention
    """
    CREATE INDEX executions_closed ON executions (stop_date) WHERE stop_date IS NOT NULL;
    """,
    # 3: what wrote the store, for the next release to read; a unique id per execution, so
    # that a name used again (after retention, or a restored backup) gets new task call keys
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    ALTER TABLE executions ADD COLUMN uid TEXT;
    """,
    # 4: the children of Parallel and Map states (the root cursor stays the executions row)
    """
    CREATE TABLE cursors (
        execution_id INTEGER NOT NULL REFERENCES executions (id),
        id TEXT NOT NULL,
        parent TEXT NOT NULL,
        slot INTEGER NOT NULL,
        status TEXT NOT NULL,
        state TEXT,
        phase TEXT,
        data TEXT,
        pending TEXT,
        state_entered_event INTEGER NOT NULL DEFAULT 0,
        state_entered_at REAL,
        attempt INTEGER NOT NULL DEFAULT 0,
        retry_counts TEXT NOT NULL DEFAULT '[]',
        due_at REAL,
        stop_date REAL,
        output TEXT,
        error TEXT,
        cause TEXT,
        PRIMARY KEY (execution_id, id)
    ) WITHOUT ROWID;
    CREATE INDEX cursors_by_status ON cursors (execution_id, status, parent, slot);
    CREATE INDEX cursors_by_parent ON cursors (execution_id, parent, slot);
    """,
    # 5: redrives (RedriveExecution): how many, when the last one was, its client token; and
    # the variables `Assign` set (a variables record, stepd.store.formats), per cursor
    """
    ALTER TABLE executions ADD COLUMN redrive_count INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE executions ADD COLUMN redrive_date REAL;
    ALTER TABLE executions ADD COLUMN redrive_token TEXT;
    ALTER TABLE executions ADD COLUMN variables TEXT;
    ALTER TABLE cursors ADD COLUMN variables TEXT;
    """,
    # 6: the outbox: executions that closed FAILED, TIMED_OUT or ABORTED, until they are told
    # of (written with the closing); running executions by machine and due instant, for the
    # agenda
    """
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL,
        execution_id INTEGER NOT NULL,
        machine TEXT NOT NULL,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        error TEXT,
        cause TEXT,
        stop_date REAL NOT NULL
    );
    CREATE INDEX executions_due_by_machine ON executions (machine, due_at)
        WHERE due_at IS NOT NULL;
    """,
    # 7: activities (CreateActivity) and the tasks waiting in their queues for a worker
    """
    CREATE TABLE activities (name TEXT PRIMARY KEY, created_at REAL NOT NULL);
    CREATE TABLE activity_tasks (
        token TEXT PRIMARY KEY,
        activity TEXT NOT NULL,
        input TEXT NOT NULL,
        queued_at REAL NOT NULL
    );
    CREATE INDEX activity_tasks_queue ON activity_tasks (activity, queued_at, token);
    """,
    # 8: executions started by a Task state (states:startExecution), linked to their parent
    """
    CREATE TABLE child_links (
        child_id INTEGER PRIMARY KEY,
        parent_id INTEGER NOT NULL,
        mode TEXT NOT NULL,
        token TEXT
    );
    CREATE INDEX child_links_by_parent ON child_links (parent_id, child_id);
    """,
    # 9: tags of state machines and activities (TagResource), by ARN
    """
    CREATE TABLE tags (
        resource TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (resource, key)
    ) WITHOUT ROWID;
    """,
    # 10: the events one write appends, in one row: its first event in the row's columns,
    # the ones after it in `more` (JSON [[ts, type, details], ...]); older rows hold one each
    """
    ALTER TABLE events ADD COLUMN more TEXT;
    """,
    # 11: the endpoints a definition was served with (JSON {Task state name: path or URL}),
    # for its executions once the config names them no more; NULL in rows written before
    """
    ALTER TABLE definitions ADD COLUMN endpoints TEXT;
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)


@dataclass(frozen=True, kw_only=True)
class StoreVersion:
    """What a store says of itself: schema, record format and the stepd that wrote it."""

    schema: int
    record_format: int | None  # None: before schema 3, format 0
    written_by: str | None  # None: before schema 3 (stepd 0.1)


def too_new(found: StoreVersion, *, schema: int, record_format: int, version: str) -> str | None:
    """Why this stepd (`version`, reading `schema` and `record_format`) cannot use a store
    that says `found`; None when it can."""
    if found.schema <= schema and (found.record_format or 0) <= record_format:
        return None
    writer = f"stepd {found.written_by}" if found.written_by else "a newer stepd"
    return (
        f"the store was written by {writer} (schema {found.schema}, record format "
        f"{found.record_format}); this is stepd {version} (schema {schema}, record format "
        f"{record_format}), which cannot read it: upgrade stepd, or restore a backup taken "
        "before the store was upgraded"
    )
