"""Activities over the AWS protocol: CreateActivity, DeleteActivity, DescribeActivity,
ListActivities and GetActivityTask (a long poll of up to 60 s, as AWS's)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from stepd.api import fields
from stepd.api.operations_tags import MAX_TAGS, given_tags
from stepd.engine.activities import Activities
from stepd.engine.tags import Tags
from stepd.errors import InvalidToken, TooManyTags, ValidationException
from stepd.store.records import Activity

MAX_WORKER_NAME = 80  # AWS: workerName is at most 80 characters
MAX_LIST = 1000


class ActivityOperations:
    def __init__(self, activities: Activities, tags: Tags) -> None:
        self.activities = activities
        self.tags = tags

    def handlers(self) -> dict[str, fields.Handler]:
        return {
            "CreateActivity": self.create_activity,
            "DeleteActivity": self.delete_activity,
            "DescribeActivity": self.describe_activity,
            "ListActivities": self.list_activities,
            "GetActivityTask": self.get_activity_task,
        }

    def _shown(self, activity: Activity) -> dict[str, Any]:
        return {
            "activityArn": self.activities.arn(activity.name),
            "name": activity.name,
            "creationDate": activity.created_at,
        }

    async def create_activity(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create (or find: AWS's CreateActivity is idempotent) the activity, with `tags`."""
        name = fields.required_string(body, "name")
        tags = given_tags(body) if body.get("tags") is not None else {}
        if len(tags) > MAX_TAGS:
            raise TooManyTags(f"Too many tags: an activity may have at most {MAX_TAGS}")
        activity = await self.activities.create(name)
        if tags and not await self.tags.add(self.activities.arn(activity.name), tags, MAX_TAGS):
            raise TooManyTags(f"Too many tags: an activity may have at most {MAX_TAGS}")
        return {
            "activityArn": self.activities.arn(activity.name),
            "creationDate": activity.created_at,
        }

    async def delete_activity(self, body: dict[str, Any]) -> dict[str, Any]:
        await self.activities.delete(fields.required_string(body, "activityArn"))
        return {}

    async def describe_activity(self, body: dict[str, Any]) -> dict[str, Any]:
        arn = fields.required_string(body, "activityArn")
        return self._shown(await self.activities.describe(arn))

    async def list_activities(self, body: dict[str, Any]) -> dict[str, Any]:
        limit = fields.integer(body, "maxResults", default=MAX_LIST, maximum=MAX_LIST)
        after = _after(fields.string(body, "nextToken"))
        listed = [a for a in await self.activities.list() if after is None or a.name > after]
        answer: dict[str, Any] = {"activities": [self._shown(a) for a in listed[:limit]]}
        if len(listed) > limit:
            last = listed[limit - 1].name
            answer["nextToken"] = base64.urlsafe_b64encode(last.encode()).decode()
        return answer

    async def get_activity_task(self, body: dict[str, Any]) -> dict[str, Any]:
        arn = fields.required_string(body, "activityArn")
        worker = fields.string(body, "workerName")
        if worker is not None and len(worker) > MAX_WORKER_NAME:
            raise ValidationException(
                f"workerName: at most {MAX_WORKER_NAME} characters, not {len(worker)}"
            )
        task = await self.activities.get_task(arn, worker=worker)
        if task is None:
            return {}  # no task in time: AWS answers without a token
        return {"taskToken": task.token, "input": task.input}


def _after(token: str | None) -> str | None:
    if token is None:
        return None
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidToken(f"Invalid Token: '{token[:64]}'") from None
