"""The store port: everything the engine and the API need from persistent storage.

One implementation today (SQLite); PostgreSQL for several nodes is meant to be another.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from stepd.store.records import Event, Execution, NewExecution, Transition


class Store(ABC):
    @abstractmethod
    async def open(self) -> None:
        """Open, lock and migrate. Raises StoreLocked if another process holds it."""

    @abstractmethod
    async def close(self) -> None:
        """Finish pending writes and release the database."""

    @abstractmethod
    async def put_definition(self, machine: str, body: str) -> int:
        """Store a definition snapshot (deduplicated by content); return its id."""

    @abstractmethod
    async def first_registered(self, machine: str) -> float | None:
        """When a definition was first stored under `machine` (unix seconds), if ever."""

    @abstractmethod
    async def get_definition(self, definition_id: int) -> str:
        """The definition body stored under `definition_id`. Raises StoreError if unknown."""

    @abstractmethod
    async def create_execution(self, new: NewExecution) -> tuple[Execution, bool]:
        """Insert durably; if (machine, name) exists return the existing one and False."""

    @abstractmethod
    async def commit(self, transition: Transition) -> Execution | None:
        """Apply durably if the execution is still at `transition.base.version` and return
        the execution as it now is; else None."""

    @abstractmethod
    async def get_execution(self, execution_id: int) -> Execution | None:
        """One execution by id."""

    @abstractmethod
    async def find_execution(self, machine: str, name: str) -> Execution | None:
        """One execution by machine and name."""

    @abstractmethod
    async def list_executions(
        self, *, machine: str | None, status: str | None, limit: int, before_id: int | None
    ) -> list[Execution]:
        """Newest first; `before_id` continues a previous page."""

    @abstractmethod
    async def history(
        self, execution_id: int, *, reverse: bool, limit: int, after: int | None
    ) -> list[Event]:
        """Events in id order (or reversed), continuing after event id `after`."""

    @abstractmethod
    async def due(self, before: float, limit: int) -> Sequence[tuple[int, float]]:
        """(execution id, due_at) of running executions due before `before`, earliest first."""

    @abstractmethod
    async def purge_closed(self, before: float, limit: int) -> int:
        """Delete up to `limit` executions that closed before `before`, with their history.
        Returns how many were deleted."""

    @abstractmethod
    async def count_by_status(self) -> dict[str, int]:
        """Number of executions per status."""
