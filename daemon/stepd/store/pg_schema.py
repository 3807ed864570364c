"""The PostgreSQL store's schema migrations.

The tables have the SQLite store's columns (stepd.store.schema at its schema 11), with types
PostgreSQL has: instants are double precision (read back exactly as written), ids bigint, and
the texts that are compared or ordered by byte (names, cursor ids) use the "C" collation, so
that ordering and the cursor prefix ranges do not depend on the database's locale. The `meta`
table holds the schema version (the number of migrations applied), the record format and the
stepd that last opened the store.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: definitions, executions, their history and their children's cursors
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE definitions (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        machine TEXT COLLATE "C" NOT NULL,
        sha256 TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        UNIQUE (machine, sha256)
    );
    CREATE TABLE executions (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        machine TEXT COLLATE "C" NOT NULL,
        name TEXT COLLATE "C" NOT NULL,
        definition_id BIGINT NOT NULL REFERENCES definitions (id),
        status TEXT NOT NULL,
        input TEXT NOT NULL,
        start_date DOUBLE PRECISION NOT NULL,
        stop_date DOUBLE PRECISION,
        output TEXT,
        error TEXT,
        cause TEXT,
        state TEXT,
        phase TEXT,
        data TEXT,
        pending TEXT,
        state_entered_event BIGINT NOT NULL DEFAULT 0,
        state_entered_at DOUBLE PRECISION,
        attempt INTEGER NOT NULL DEFAULT 0,
        retry_counts TEXT NOT NULL DEFAULT '[]',
        due_at DOUBLE PRECISION,
        last_event_id BIGINT NOT NULL DEFAULT 0,
        version BIGINT NOT NULL DEFAULT 0,
        uid TEXT,
        redrive_count INTEGER NOT NULL DEFAULT 0,
        redrive_date DOUBLE PRECISION,
        redrive_token TEXT,
        variables TEXT,
        UNIQUE (machine, name)
    );
    CREATE INDEX executions_due ON executions (due_at, id) WHERE due_at IS NOT NULL;
    CREATE INDEX executions_by_status ON executions (machine, status, start_date);
    CREATE INDEX executions_closed ON executions (stop_date) WHERE stop_date IS NOT NULL;
    CREATE TABLE events (
        execution_id BIGINT NOT NULL REFERENCES executions (id),
        id BIGINT NOT NULL,
        previous_id BIGINT NOT NULL,
        ts DOUBLE PRECISION NOT NULL,
        type TEXT NOT NULL,
        details TEXT NOT NULL,
        PRIMARY KEY (execution_id, id)
    );
    CREATE TABLE cursors (
        execution_id BIGINT NOT NULL REFERENCES executions (id),
        id TEXT COLLATE "C" NOT NULL,
        parent TEXT COLLATE "C" NOT NULL,
        slot INTEGER NOT NULL,
        status TEXT NOT NULL,
        state TEXT,
        phase TEXT,
        data TEXT,
        pending TEXT,
        state_entered_event BIGINT NOT NULL DEFAULT 0,
        state_entered_at DOUBLE PRECISION,
        attempt INTEGER NOT NULL DEFAULT 0,
        retry_counts TEXT NOT NULL DEFAULT '[]',
        due_at DOUBLE PRECISION,
        stop_date DOUBLE PRECISION,
        output TEXT,
        error TEXT,
        cause TEXT,
        variables TEXT,
        PRIMARY KEY (execution_id, id)
    );
    CREATE INDEX cursors_by_status ON cursors (execution_id, status, parent, slot);
    CREATE INDEX cursors_by_parent ON cursors (execution_id, parent, slot);
    """,
    # 2: several nodes: each node's lease, and which node holds an execution while it runs
    # (NULL while it waits: any node may take it when it falls due)
    """
    CREATE TABLE nodes (
        id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        api TEXT NOT NULL,
        version TEXT NOT NULL,
        started_at TIMESTAMPTZ NOT NULL,
        renewed_at TIMESTAMPTZ NOT NULL,
        lease_until TIMESTAMPTZ NOT NULL
    );
    ALTER TABLE executions ADD COLUMN owner TEXT;
    CREATE INDEX executions_owner ON executions (owner) WHERE owner IS NOT NULL;
    """,
    # 3: what SQLite's migrations 6 to 9 add: the outbox of closings to tell of (written with
    # the closing; `claimed_by`: the node whose notifier tells of it while its lease runs),
    # running executions by machine and due instant (the agenda), activities and
    # the tasks in their queues, the links of executions started by a Task state to their
    # parent, and the tags of state machines and activities
    """
    CREATE TABLE outbox (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        key TEXT NOT NULL,
        execution_id BIGINT NOT NULL,
        machine TEXT COLLATE "C" NOT NULL,
        name TEXT COLLATE "C" NOT NULL,
        status TEXT NOT NULL,
        error TEXT,
        cause TEXT,
        stop_date DOUBLE PRECISION NOT NULL,
        claimed_by TEXT
    );
    CREATE INDEX executions_due_by_machine ON executions (machine, due_at)
        WHERE due_at IS NOT NULL;
    CREATE TABLE activities (
        name TEXT COLLATE "C" PRIMARY KEY,
        created_at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE activity_tasks (
        token TEXT COLLATE "C" PRIMARY KEY,
        activity TEXT COLLATE "C" NOT NULL,
        input TEXT NOT NULL,
        queued_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX activity_tasks_queue ON activity_tasks (activity, queued_at, token);
    CREATE TABLE child_links (
        child_id BIGINT PRIMARY KEY,
        parent_id BIGINT NOT NULL,
        mode TEXT NOT NULL,
        token TEXT
    );
    CREATE INDEX child_links_by_parent ON child_links (parent_id, child_id);
    CREATE TABLE tags (
        resource TEXT COLLATE "C" NOT NULL,
        key TEXT COLLATE "C" NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (resource, key)
    );
    """,
    # 4: the definitions a node serves: {machine name: hash of its definition}, written with
    # its lease, so that nodes serving different definitions under one name are reported
    """
    ALTER TABLE nodes ADD COLUMN definitions JSONB NOT NULL DEFAULT '{}'::jsonb;
    """,
    # 5: the history without a foreign key to the executions: its check ran a query for each
    # event written (about a fifth of the database's work in a herd of steps). The writes keep
    # the reference themselves: an event is inserted only by the statement (or transaction)
    # that applied its execution's write or created it, and purged in the transaction that
    # removes it.
    """
    ALTER TABLE events DROP CONSTRAINT IF EXISTS events_execution_id_fkey;
    """,
    # 6: SQLite's migration 10: the events one write appends, in one row (`more`)
    """
    ALTER TABLE events ADD COLUMN IF NOT EXISTS more TEXT;
    """,
    # 7: room left in each page of executions for the next version of its rows, so that a
    # write that changes no indexed column (a task's call, sent while it stays due at its
    # wait's end) updates its row in place (HOT) and writes no index entry; pages written
    # before keep theirs
    """
    ALTER TABLE executions SET (fillfactor = 70);
    """,
    # 8: what falls due that no node holds, by instant: a node's looks (its watch, its timers'
    # window and sweep) go straight to it, not through the rows the nodes hold (still due while
    # their calls are in flight: thousands of them, in a herd)
    """
    CREATE INDEX executions_unheld_due ON executions (due_at, id)
        WHERE due_at IS NOT NULL AND owner IS NULL;
    """,
    # 9: SQLite's migration 11: the endpoints a definition was served with ({Task state name:
    # path or URL}), for its executions once a node's config names them no more, or on a node
    # not reloaded yet; NULL in rows written before
    """
    ALTER TABLE definitions ADD COLUMN IF NOT EXISTS endpoints JSONB;
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)
