"""Tags over the AWS protocol: TagResource, UntagResource and ListTagsForResource, on the
configured state machines and the activities, as AWS tags them (executions carry none)."""

from __future__ import annotations

from typing import Any, Final

from stepd.api import fields
from stepd.engine.executor import Engine
from stepd.errors import (
    ActivityDoesNotExist,
    InvalidArn,
    ResourceNotFound,
    StateMachineDoesNotExist,
    TooManyTags,
    ValidationException,
)

MAX_TAGS: Final = 50  # AWS: tags per resource
MAX_KEY: Final = 128
MAX_VALUE: Final = 256
_ARN_PARTS: Final = 7  # arn:aws:states:region:account:kind:name
_EXECUTION_ARN_PARTS: Final = 8  # arn:aws:states:region:account:execution:machine:name
_UNTAGGED_KINDS: Final = ("execution", "express")


def given_tags(body: dict[str, Any]) -> dict[str, str]:
    """The request's `tags` ([{key, value}]) as a dict; ValidationException naming what is
    wrong with them."""
    given = body.get("tags")
    if not isinstance(given, list):
        raise ValidationException("'tags' must be a list of {key, value}")
    tags: dict[str, str] = {}
    for tag in given:
        key = tag.get("key") if isinstance(tag, dict) else None
        value = tag.get("value", "") if isinstance(tag, dict) else None
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY:
            raise ValidationException(f"tags: each key is 1 to {MAX_KEY} characters")
        if not isinstance(value, str) or len(value) > MAX_VALUE:
            raise ValidationException(f"tags: each value is 0 to {MAX_VALUE} characters")
        tags[key] = value
    return tags


class TagOperations:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def handlers(self) -> dict[str, fields.Handler]:
        return {
            "TagResource": self.tag_resource,
            "UntagResource": self.untag_resource,
            "ListTagsForResource": self.list_tags_for_resource,
        }

    async def _tagged(self, body: dict[str, Any]) -> str:
        """The `resourceArn` of the request: a configured machine's or an activity's."""
        arn = fields.required_string(body, "resourceArn")
        parts = arn.split(":")
        if parts[:3] == ["arn", "aws", "states"] and (
            len(parts) == _EXECUTION_ARN_PARTS and parts[5] in _UNTAGGED_KINDS
        ):
            raise ResourceNotFound(f"Resource not found: '{arn[:256]}' (executions carry no tags)")
        if len(parts) != _ARN_PARTS or parts[:3] != ["arn", "aws", "states"]:
            raise InvalidArn(f"Invalid Arn: '{arn[:256]}'")
        try:
            if parts[5] == "stateMachine" and self.engine.arns.is_ours(arn):
                self.engine.machine(self.engine.arns.machine_of(arn))
                return arn
            if parts[5] == "activity":
                await self.engine.activities.describe(arn)
                return arn
        except (StateMachineDoesNotExist, ActivityDoesNotExist):
            pass
        raise ResourceNotFound(f"Resource not found: '{arn[:256]}'")

    async def list_tags_for_resource(self, body: dict[str, Any]) -> dict[str, Any]:
        tags = await self.engine.tags.of(await self._tagged(body))
        return {"tags": [{"key": k, "value": v} for k, v in tags.items()]}

    async def tag_resource(self, body: dict[str, Any]) -> dict[str, Any]:
        arn = await self._tagged(body)
        tags = given_tags(body)
        if not await self.engine.tags.add(arn, tags, MAX_TAGS):
            raise TooManyTags(f"Too many tags: '{arn[:256]}' may have at most {MAX_TAGS}")
        return {}

    async def untag_resource(self, body: dict[str, Any]) -> dict[str, Any]:
        arn = await self._tagged(body)
        keys = body.get("tagKeys")
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise ValidationException("'tagKeys' must be a list of strings")
        await self.engine.tags.remove(arn, keys)
        return {}
