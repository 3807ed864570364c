"""Activities: Task states whose work a worker takes (GetActivityTask) instead of stepd
calling an endpoint.

A Task whose Resource is an activity ARN gets a task token, as a `.waitForTaskToken` Task
does. Its "call" puts the task (token and the state's effective input) in the activity's queue
in the store, and the task then waits, durably, for SendTaskSuccess/SendTaskFailure with the
token, its TimeoutSeconds or its HeartbeatSeconds. A worker's GetActivityTask takes the first
task from the queue (once: a worker that dies with it leaves the task to time out by its
heartbeat and be retried per the state's Retry, which queues it again), and counts as the
task's first heartbeat. Tasks left in a queue by executions that moved on meanwhile (stopped,
timed out) are dropped when they come up.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

from stepd import jsontext, logs
from stepd.asl.failures import STATES_RUNTIME
from stepd.engine.arns import Arns, check_name
from stepd.engine.tokens import same_token, token_target
from stepd.errors import ActivityDoesNotExist, ApiError, InvalidArn
from stepd.store.base import Store
from stepd.store.records import (
    PHASE_TASK,
    ROOT,
    RUNNING,
    Activity,
    ActivityTask,
    Progress,
    TaskCall,
)
from stepd.tasks.caller import TaskOutcome

log = logs.get_logger("stepd.activities")

MAX_POLL_SECONDS = 60.0  # GetActivityTask's long poll, as AWS's
STORE_POLL_SECONDS = 1.0  # a waiting poll looks at the store this often (tasks of other nodes)
ANSWER_WAIT_SECONDS = 2.0  # a task taken before its queueing was committed waits this long
ANSWER_POLL_SECONDS = 0.02

# What a taken task's token says of it
LIVE = "live"  # queued and committed as waiting: the worker gets it
QUEUEING = "queueing"  # queued, its commit not yet written: look again shortly
GONE = "gone"  # the task settled, timed out or its execution stopped: drop it


class Activities:
    """The activities of the store, their queues and their long polls."""

    def __init__(
        self,
        store: Store,
        *,
        arns: Arns,
        clock: Callable[[], float],
        taken: Callable[[str, str | None], Awaitable[None]],
    ) -> None:
        self._store = store
        self.arns = arns
        self._clock = clock
        self._taken = taken
        self._arrived: dict[str, asyncio.Event] = {}
        self._closing = asyncio.Event()

    def close(self) -> None:
        """Answer every waiting poll now (with no task) and every later one at once."""
        self._closing.set()

    def name_of(self, arn: str) -> str:
        """The activity name of an activity ARN of this region and account."""
        parts = arn.split(":")
        if len(parts) != 7 or parts[:3] != ["arn", "aws", "states"] or parts[5] != "activity":
            raise InvalidArn(f"Invalid Arn: '{arn[:256]}'")
        if not self.arns.is_ours(arn):
            raise ActivityDoesNotExist(f"Activity Does Not Exist: '{arn[:256]}'")
        return parts[6]

    def arn(self, name: str) -> str:
        return f"arn:aws:states:{self.arns.region}:{self.arns.account}:activity:{name}"

    # -- the API's operations --------------------------------------------------------

    async def create(self, name: str) -> Activity:
        """CreateActivity: idempotent by name."""
        check_name(name, "activity")
        return await self._store.create_activity(name, self._clock())

    async def delete(self, arn: str) -> None:
        """DeleteActivity: the activity, its queue and its tags."""
        await self._store.delete_activity(self.name_of(arn))
        await self._store.remove_tags(arn, list(await self._store.tags_of(arn)))

    async def describe(self, arn: str) -> Activity:
        name = self.name_of(arn)
        found = await self._find(name)
        if found is None:
            raise ActivityDoesNotExist(f"Activity Does Not Exist: '{arn[:256]}'")
        return found

    async def list(self) -> list[Activity]:
        return await self._store.list_activities()

    async def _find(self, name: str) -> Activity | None:
        return next((a for a in await self._store.list_activities() if a.name == name), None)

    async def get_task(
        self, arn: str, wait_seconds: float = MAX_POLL_SECONDS, *, worker: str | None = None
    ) -> ActivityTask | None:
        """GetActivityTask: the first live task of the activity's queue, waiting up to
        `wait_seconds` for one; None when none came (or the daemon is stopping). The task's
        history records `worker` (GetActivityTask's workerName) as having started it."""
        activity = await self.describe(arn)
        deadline = time.monotonic() + wait_seconds
        while not self._closing.is_set():
            arrived = self._arrived.setdefault(activity.name, asyncio.Event())
            arrived.clear()
            task = await self._store.take_activity_task(activity.name)
            if task is not None:
                if await self._hand_out(task, worker):
                    return task
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            waits = [
                asyncio.ensure_future(arrived.wait()),
                asyncio.ensure_future(self._closing.wait()),
            ]
            try:
                await asyncio.wait(
                    waits,
                    timeout=min(left, STORE_POLL_SECONDS),
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                for waiting in waits:
                    waiting.cancel()
        return None

    async def _hand_out(self, task: ActivityTask, worker: str | None) -> bool:
        """Whether the taken `task` is live; if so it is started and its heartbeat starts
        now."""
        waited = 0.0
        state = await self._state(task.token)
        while state == QUEUEING and waited < ANSWER_WAIT_SECONDS:
            await asyncio.sleep(ANSWER_POLL_SECONDS)
            waited += ANSWER_POLL_SECONDS
            state = await self._state(task.token)
        if state != LIVE:
            log.info("activity.task_dropped", activity=task.activity, reason=state)
            return False
        try:
            await self._taken(task.token, worker)
        except ApiError:  # settled or timed out just now
            return False
        log.info("activity.task_taken", activity=task.activity)
        return True

    async def _state(self, token: str) -> str:
        target = token_target(token)
        if target is None:
            return GONE
        machine, name, cursor_id = target
        execution = await self._store.find_execution(machine, name)
        if execution is None or execution.status != RUNNING:
            return GONE
        progress: Progress | None = execution
        if cursor_id != ROOT:
            progress = await self._store.get_cursor(execution.id, cursor_id)
        if progress is None or progress.status != RUNNING or progress.phase != PHASE_TASK:
            return GONE
        call = progress.task
        if call is None or not call.sent or not same_token(call.token, token):
            return GONE
        return LIVE if call.answered_at is not None else QUEUEING

    # -- the engine's side -----------------------------------------------------------

    async def queue(self, task: TaskCall) -> TaskOutcome:
        """Put a Task's work in its activity's queue; the task then waits for its result."""
        arn = str(task.resource)
        try:
            name = self.name_of(arn)
        except ApiError as exc:
            return TaskOutcome(error=STATES_RUNTIME, cause=str(exc))
        if task.token is None:
            raise TypeError(f"the activity task of '{arn}' has no token")
        if await self._find(name) is None:
            # AWS's words (CreateActivity makes one)
            return TaskOutcome(error=STATES_RUNTIME, cause=f"The activity {arn} does not exist.")
        payload = json.loads(task.payload)
        await self._store.queue_activity_task(
            ActivityTask(
                activity=name,
                token=task.token,
                input=jsontext.compact(payload),
                queued_at=self._clock(),
            )
        )
        arrived = self._arrived.get(name)
        if arrived is not None:
            arrived.set()
        log.info("activity.task_queued", activity=name)
        return TaskOutcome(result=None)
