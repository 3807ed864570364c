"""Tags of state machines and activities (TagResource), kept in the store by ARN."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from stepd.store.base import Store


class Tags:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def of(self, arn: str) -> dict[str, str]:
        return await self._store.tags_of(arn)

    async def add(self, arn: str, tags: Mapping[str, str], limit: int) -> bool:
        """Add (or replace) `tags`; False, adding none, when more than `limit` would result."""
        return await self._store.put_tags(arn, tags, limit)

    async def remove(self, arn: str, keys: Sequence[str]) -> None:
        await self._store.remove_tags(arn, keys)
