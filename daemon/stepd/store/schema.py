"""Schema migrations. `PRAGMA user_version` holds the number of migrations applied."""

from __future__ import annotations

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
)

SCHEMA_VERSION = len(MIGRATIONS)
