"""The store port: everything the engine and the API need from persistent storage.

Implementations: `stepd.store.sqlite.SqliteStore` (one node, the default) and
`stepd.store.memory.MemoryStore` (the unit tests'). The contract below is written so that a
store shared by several nodes (PostgreSQL) can keep it too; one test suite,
tests/unit/store/test_contract.py, holds every implementation to it.

Promises every method keeps:

- Acknowledged means committed. A write that returns is durable (on disk for SQLite; for
  the in-memory store, for the life of its `MemoryDatabase`) and visible to every read that
  starts after it, through this store object or any other open on the same data. A write is
  all or nothing: an execution's progress and the events of one transition appear together
  or not at all.
- A write that raises `StoreError` may or may not have been applied (a connection can be lost
  during its commit); read again to find out. Both writes that matter are safe to repeat:
  `create_execution` is idempotent by (machine, name) and `commit` is guarded by a version.
- Writes made concurrently are applied in some serial order; a write issued after another
  returned is ordered after it. An execution's events are numbered 1, 2, 3... in the order
  they were committed, each naming the one before (`previous_id`, 0 for the first).
- Values are returned as frozen records that the store never changes afterwards; an event's
  `details` is decoded afresh on each read, so changing it changes nothing stored. Instants are
  unix seconds (float) and read back exactly as written; texts read back unchanged. Event
  details must be JSON values: a write with details that are not raises TypeError or
  ValueError and writes nothing.
- Every method raises `StoreError` when the store cannot be used: not open (before `open`,
  after `close`), unreachable, or failing to read or write. Methods that return executions
  raise `RecordError` (a `StoreError`) when a stored record is in a format this stepd cannot
  read (written by a newer one, or damaged), naming the execution.
- Methods are called from the event loop that opened the store; they may be called
  concurrently from several of its tasks.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

from stepd.store.records import (
    Activity,
    ActivityTask,
    ChildLink,
    Cursor,
    Event,
    Execution,
    NewExecution,
    Notice,
    Transition,
)


class Store(ABC):
    """Definitions, executions and their histories; the source of truth."""

    @abstractmethod
    async def open(self) -> None:
        """Make the store ready for use: create it or migrate it to this stepd's schema, and
        take whatever it holds while open.

        Raises StoreTooNew when the store was written by a newer stepd (the message names that
        stepd's versions and this one's; nothing in the store is changed), StoreLocked when the
        store admits one user at a time and another holds it (SQLite: another process has the
        file; a store shared by several nodes does not raise it), StoreError when it cannot be
        reached, read or created. After a failed open nothing is held: opening it again, here
        or in another process, meets the same store. A store object is opened once.
        """

    @abstractmethod
    async def close(self) -> None:
        """Let the writes already issued finish (each is acknowledged or fails), then release
        what `open` took. Afterwards every method raises StoreError. Closing a store that is
        not open does nothing. What was acknowledged is there when the same data is opened
        again."""

    @abstractmethod
    async def put_definition(
        self, machine: str, body: str, endpoints: Mapping[str, str] | None = None
    ) -> int:
        """Store `body` as a definition of `machine`, unless that machine already has this
        exact body; return its id either way (durable on return, with its endpoints).

        Ids are positive and unique in the store: the same (machine, body) always gets the
        same id, another body or the same body under another machine gets another one.
        `endpoints` (Task state name -> path or URL, as configured) are merged into the ones
        stored with the definition: a state named here gets this value, the others keep
        theirs. Of concurrent puts of one definition, every state's value is one of the puts'.
        """

    @abstractmethod
    async def first_registered(self, machine: str) -> float | None:
        """When the first definition of `machine` was stored (unix seconds), or None if none
        ever was. Storing more definitions later does not change it."""

    @abstractmethod
    async def get_definition(self, definition_id: int) -> str:
        """The body stored under `definition_id`, exactly as it was put. Raises StoreError if
        no definition has that id."""

    @abstractmethod
    async def get_definition_endpoints(self, definition_id: int) -> dict[str, str]:
        """The endpoints stored with the definition `definition_id` (Task state name -> path
        or URL), merged over every put of it; empty when none were (a definition put only
        without endpoints, as stepd 0.1 put them). Raises StoreError if no definition has
        that id."""

    @abstractmethod
    async def create_execution(self, new: NewExecution) -> tuple[Execution, bool]:
        """Insert an execution with its first events, unless one of the same (machine, name)
        is in the store (in any status, until it is purged).

        Created: returns (the execution as stored, True): a new positive id, `version` 0,
        `new.progress` as given, its events numbered 1..n and `last_event_id` n, and
        `new.cursors` stored as its child cursors. An execution
        created after another one's create returned gets a larger id than it, as long as that
        one is still in the store (the id of a purged execution may be given again).
        Existing: returns (that execution as stored now, False) and writes nothing; `new` may
        differ from it in anything. Of concurrent creates of one (machine, name), from this
        node or others, exactly one creates it and the others get it with False.
        Raises StoreError, writing nothing, when `new.definition_id` names no definition.
        Created with a status in `NOTICED` (FAILED, TIMED_OUT, ABORTED): a `Notice` of it is
        added to the outbox in the same transaction (see `outbox`).
        """

    @abstractmethod
    async def commit(self, transition: Transition) -> Execution | None:
        """Apply `transition` if the stored execution is still at `transition.base.version`;
        return the execution as it now is, or None (writing nothing) if it is not.

        Applied, atomically and durably: the whole progress is replaced by
        `transition.progress`, `transition.events` are appended with the ids after
        `base.last_event_id`, `last_event_id` moves on by their number and `version` by exactly
        one (also for a transition that changes nothing); identity fields never change, and
        the redrive fields only with `transition.redrive` (set to its count, date, token), the
        `input` only with `transition.input` (set to it: an update of the execution); the
        descendants of every cursor id in `transition.pruned` are deleted (ids starting with
        that id and "/"; the cursor itself stays), then each of `transition.cursors` is stored,
        replacing the cursor of the same id if there is one. The
        returned execution equals what a read returns next. None: the execution changed or was
        purged since `base` was read, or never existed. So of two transitions computed from one
        version, from one node or two, exactly one applies. `base` is an execution as the store
        returned it. When `base.status` is RUNNING and `transition.progress.status` is in
        `NOTICED`, a `Notice` of the closing is added to the outbox in the same transaction.
        """

    @abstractmethod
    async def running_cursors(self, execution_id: int) -> list[Cursor]:
        """The execution's child cursors whose status is RUNNING, as last committed, ordered by
        (parent, slot); [] for an execution without any (or unknown). Raises RecordError if a
        cursor's record cannot be read."""

    @abstractmethod
    async def get_cursor(self, execution_id: int, cursor_id: str) -> Cursor | None:
        """One child cursor of the execution, whatever its status; None if there is none.
        Raises RecordError if its record cannot be read."""

    @abstractmethod
    async def finished_children(
        self, execution_id: int, parent: str, *, unsucceeded_only: bool = False
    ) -> list[Cursor]:
        """The children of cursor `parent` that finished (status neither RUNNING nor QUEUED),
        in slot order; with `unsucceeded_only`, only those whose status is not SUCCEEDED (what
        a redrive runs again, without reading the others). Raises RecordError if a record
        cannot be read."""

    @abstractmethod
    async def children_output(self, execution_id: int, parent: str) -> str:
        """The outputs of the finished children of cursor `parent` (status neither RUNNING nor
        QUEUED), in slot order, as the text of one JSON array: each output's stored text as it
        is, `null` for a child without one (`[]` for none). Made without reading the outputs
        as values, so that gathering many children costs their text and no more."""

    @abstractmethod
    async def get_execution(self, execution_id: int) -> Execution | None:
        """The execution with this id as last committed; None if there is none (never
        created, or purged). Raises RecordError if its record cannot be read."""

    async def held_here(self, execution_id: int) -> bool:  # noqa: ARG002 - one process: all
        """Whether this process may carry on with the execution as it now stands: with one
        process on the store, always; a node of several, only while it holds the execution
        (another node may be running it, its call in flight)."""
        return True

    @abstractmethod
    async def find_execution(self, machine: str, name: str) -> Execution | None:
        """The execution named (machine, name) as last committed; None if there is none.
        Raises RecordError if its record cannot be read."""

    @abstractmethod
    async def list_executions(
        self,
        *,
        machine: str | None,
        status: str | None,
        limit: int,
        before_id: int | None,
        redriven: bool | None = None,
    ) -> list[Execution]:
        """Up to `limit` (positive) executions, newest (largest id) first: only those of
        `machine` and of `status` when given, only ids below `before_id` when given, and only
        those redriven at least once (`redriven` True) or never (False) when given.

        Paging: the last id of a page, passed as `before_id`, gives the next page; pages never
        repeat an execution, and an execution created meanwhile (a larger id) does not show up
        in later pages. A page shorter than `limit` is the last one. Raises RecordError if a
        record on the page cannot be read.
        """

    @abstractmethod
    async def history(
        self, execution_id: int, *, reverse: bool, limit: int, after: int | None
    ) -> list[Event]:
        """Up to `limit` (positive) events of the execution in id order, or newest first when
        `reverse`; with `after`, only those that come after that event id in this order (ids
        above it, or below it when reversed).

        Paging: the last id of a page, passed as `after`, gives the next page. Committed events
        never change. An unknown or purged execution has no events ([]).
        """

    @abstractmethod
    async def due(self, before: float, limit: int) -> Sequence[tuple[int, float]]:
        """(id, due_at) of up to `limit` (positive) executions whose `due_at` is set and
        earlier than `before` (not equal), earliest `due_at` first, equal ones by id.

        Any execution with a `due_at` qualifies whatever its status; the engine clears `due_at`
        when an execution closes, so these are running ones. A read only: nothing is claimed.
        """

    @abstractmethod
    async def purge_closed(self, before: float, limit: int) -> int:
        """Delete, atomically, up to `limit` (positive) closed executions that stopped before
        `before` (status not RUNNING, no `due_at`, `stop_date` earlier than `before`), earliest
        stopped first, with all their events and cursors; return how many.

        Fewer than `limit` means none is left to purge: calling again until then deletes them
        all. Running executions and those that stopped at `before` or later are never touched.
        A purged execution's (machine, name) is free for a new one, and the child links that
        name it (as parent or as child) are deleted with it.
        """

    @abstractmethod
    async def count_by_status(self) -> dict[str, int]:
        """The number of executions in each status; a status no execution has is absent."""

    @abstractmethod
    async def falling_due(
        self, start: float, end: float, *, machine: str | None, limit: int
    ) -> list[Execution]:
        """Up to `limit` (positive) RUNNING executions whose `due_at` is at or after `start`
        and before `end`, only those of `machine` when given; earliest `due_at` first, equal
        ones by id. A read only. Raises RecordError if a record cannot be read."""

    @abstractmethod
    async def outbox(self, limit: int) -> list[Notice]:
        """Up to `limit` (positive) notices of the outbox, oldest (smallest id) first.

        A create or commit that closes an execution in a status of `NOTICED` adds one, in its
        own transaction: so every such closing that was acknowledged has its notice, until
        `outbox_done` removes it. Its fields are the execution's as that write left it (its
        `key` is `notice_key` of it: a redrive that fails again makes another notice with
        another key). Purging executions leaves their notices. On one node a read only; a
        store several nodes share may give a notice to one node's notifier at a time (the
        PostgreSQL store claims it for the node while the node's lease runs). Deliveries are
        at least once either way: receivers deduplicate by `key`.
        """

    @abstractmethod
    async def outbox_done(self, ids: Sequence[int]) -> None:
        """Remove the notices with these ids (durable on return); ids that are not in the
        outbox are ignored."""

    # -- activities ------------------------------------------------------------------

    @abstractmethod
    async def create_activity(self, name: str, created_at: float) -> Activity:
        """Store the activity `name` created at `created_at`, unless there is one of that name;
        return the activity as stored either way (an existing one keeps its date). Of
        concurrent creates of one name, all return the same activity."""

    @abstractmethod
    async def delete_activity(self, name: str) -> None:
        """Delete the activity `name` and every task waiting in its queue, atomically; nothing
        when there is none."""

    @abstractmethod
    async def list_activities(self) -> list[Activity]:
        """Every activity, by name."""

    @abstractmethod
    async def queue_activity_task(self, task: ActivityTask) -> None:
        """Put `task` in its activity's queue, replacing a task of the same token wherever it
        was (a retried task is queued again with its token). Does not check that the activity
        exists."""

    @abstractmethod
    async def take_activity_task(self, activity: str) -> ActivityTask | None:
        """Remove and return the task of `activity`'s queue queued first (equal `queued_at`
        by token), or None when its queue is empty. Of concurrent takes, from this node or
        others, each task is returned by at most one."""

    # -- nested executions -----------------------------------------------------------

    @abstractmethod
    async def link_child(self, link: ChildLink) -> None:
        """Store `link` (durable on return), unless a link of the same child is stored: then
        nothing changes. Does not check that either execution exists."""

    @abstractmethod
    async def child_links(
        self, *, parent_id: int | None = None, child_id: int | None = None
    ) -> list[ChildLink]:
        """The links of the children of `parent_id` (by child id), or the link of `child_id`
        (at most one), whichever is given; [] when there are none."""

    @abstractmethod
    async def live_links(self, limit: int) -> list[ChildLink]:
        """Up to `limit` (positive) links whose parent or child execution is RUNNING, by
        child id: what may still need its parent told or its child stopped."""

    # -- tags ------------------------------------------------------------------------

    @abstractmethod
    async def put_tags(self, resource: str, tags: Mapping[str, str], limit: int) -> bool:
        """Add `tags` to `resource` (an ARN), replacing the values of keys it has, unless it
        would then have more than `limit` tags: then write nothing and return False. Atomic:
        of concurrent puts, each sees the others' tags whole or not at all."""

    @abstractmethod
    async def remove_tags(self, resource: str, keys: Sequence[str]) -> None:
        """Remove the tags of these keys from `resource`; keys it does not have are ignored."""

    @abstractmethod
    async def tags_of(self, resource: str) -> dict[str, str]:
        """The tags of `resource`, by key; {} when it has none."""
