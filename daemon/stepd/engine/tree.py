"""One transition of an execution whose Parallel or Map states run children (cursors).

A `Work` holds the execution's root row and its running child cursors as read under the
execution's lock, and builds one `Transition` from the steps of any number of them: their
events (numbered in one sequence), the cursors they change, the subtrees they delete. When a
child ends, its parent's fan-out record counts it in the same transition; when the last child
ends, or one fails beyond the tolerance, the parent state goes on (or fails) like a Task.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from stepd.asl import interpreter
from stepd.asl.failures import STATES_RUNTIME
from stepd.engine import history
from stepd.engine.steps import Step
from stepd.store.records import (
    ABORTED,
    PHASE_ENTER,
    PROGRESS_FIELDS,
    ROOT,
    RUNNING,
    SUCCEEDED,
    Cursor,
    Execution,
    Fanout,
    NewEvent,
    Progress,
    Resume,
    Transition,
)

EXCEEDED_ERROR = "States.ExceedToleratedFailureThreshold"
EXCEEDED_CAUSE = "The specified tolerated failure threshold was exceeded"

MakeStep = Callable[..., Step]


class Work:
    def __init__(
        self,
        execution: Execution,
        definition: Mapping[str, Any],
        children: list[Cursor],
        *,
        now: float,
        make_step: MakeStep,
        deadline: float | None,
    ) -> None:
        self.execution = execution
        self.definition = definition
        self.root: Progress = execution.progress
        self.cursors: dict[str, Cursor] = {c.id: c for c in children}
        self.now = now
        self.deadline = deadline
        self._make_step = make_step
        self.events: list[NewEvent] = []
        self.changed: dict[str, Cursor] = {}
        self.pruned: list[str] = []
        # (cursor, re-send) of the task calls that go out once this commits
        self.calls: list[tuple[str, bool]] = []
        # (cursor, url, limit) of the calls that wait for their host once this commits
        self.host_waits: list[tuple[str, str, float]] = []
        self._definitions: dict[str, Mapping[str, Any]] = {ROOT: definition}
        self._run_children: dict[str, dict[str, int] | None] = {}  # cursor -> map_run_child
        self._aborted: set[str] = set()  # the Map cursors whose run MapRunAborted ended here

    # -- reading ---------------------------------------------------------------------

    def progress_of(self, cursor_id: str) -> Progress:
        return self.root if cursor_id == ROOT else self.cursors[cursor_id]

    def live(self, cursor_id: str) -> bool:
        """Whether `cursor_id` is still a running cursor in this work."""
        if cursor_id == ROOT:
            return self.root.status == RUNNING
        cursor = self.cursors.get(cursor_id)
        return cursor is not None and cursor.status == RUNNING

    def own_due(self, progress: Progress) -> float | None:
        """When a cursor has something to do: its `due_at`, or for a Parallel or Map state
        running its children, the instant of its retry, or now when it has children to start
        or results to gather (else None: its children's dues count)."""
        fan = progress.fanout
        if fan is None:
            return progress.due_at
        if fan.retry_at is not None:
            return fan.retry_at
        if fan.complete or (fan.next_slot < fan.total and fan.running < fan.limit):
            return self.now
        return None

    def running(self) -> list[tuple[str, Progress]]:
        """The root and every running child, root first, then by (parent, slot)."""
        children = sorted(
            (c for c in self.cursors.values() if c.status == RUNNING),
            key=lambda c: (c.parent, c.slot),
        )
        root: list[tuple[str, Progress]] = (
            [(ROOT, self.root)] if self.root.status == RUNNING else []
        )
        return root + [(c.id, c) for c in children]

    def definition_of(self, cursor_id: str) -> Mapping[str, Any]:
        known = self._definitions.get(cursor_id)
        if known is None:
            cursor = self.cursors[cursor_id]
            parent = self.progress_of(cursor.parent)
            known = interpreter.branch(
                self.definition_of(cursor.parent), parent.state or "", cursor.slot
            )
            self._definitions[cursor_id] = known
        return known

    @property
    def empty(self) -> bool:
        return not (self.events or self.changed or self.pruned) and self.root == (
            self.execution.progress
        )

    # -- building --------------------------------------------------------------------

    def step(self, cursor_id: str) -> Step:
        step = self._make_step(
            self.execution,
            self.definition_of(cursor_id),
            self.now,
            cursor=self.progress_of(cursor_id),
            cursor_id=cursor_id,
            events=self.events,
            last_event_id=self.execution.last_event_id,
        )
        step.run_child = self.map_run_child(cursor_id)
        return step

    def map_run_child(self, cursor_id: str) -> dict[str, int] | None:
        """For a cursor below a DISTRIBUTED Map (the outermost one, when they nest): which of
        its children it is part of ({"run": the id of its MapRunStarted event, "index": the
        child's slot}); None for the others."""
        if cursor_id in self._run_children:
            return self._run_children[cursor_id]
        found: dict[str, int] | None = None
        if cursor_id != ROOT:
            cursor = self.cursors[cursor_id]
            parent = self.progress_of(cursor.parent)
            found = self.map_run_child(cursor.parent)
            resume = parent.resume
            fan = parent.fanout or (resume.fanout if resume is not None else None)
            if found is None and fan is not None and fan.map_run is not None:
                found = {"run": fan.map_run, "index": cursor.slot}
        self._run_children[cursor_id] = found
        return found

    def save(self, cursor_id: str, step: Step) -> None:
        """Keep what `step` did to its cursor (and the children it created)."""
        progress = step.progress()
        if cursor_id == ROOT:
            self.root = progress
        else:
            old = self.cursors[cursor_id]
            cursor = Cursor(
                id=old.id,
                parent=old.parent,
                slot=old.slot,
                **{name: getattr(progress, name) for name in PROGRESS_FIELDS},
            )
            self.put(cursor)
        for child in step.children:
            self.put(child)
        step.children.clear()
        if cursor_id != ROOT and step.status != RUNNING:
            self.settle(cursor_id)

    def put(self, cursor: Cursor) -> None:
        self.cursors[cursor.id] = cursor
        self.changed[cursor.id] = cursor

    def abort_runs(self, cursor_id: str) -> None:
        """MapRunAborted for each Map Run running below `cursor_id` (its children stop); not
        for one that ended (MapRunFailed) and waits for its state's Retry."""
        prefix = cursor_id + "/"
        for cursor in [c for c in self.cursors.values() if c.id.startswith(prefix)]:
            fan = cursor.fanout
            if cursor.status != RUNNING or fan is None or fan.map_run is None:
                continue
            if fan.retry_at is not None or cursor.id in self._aborted:
                continue
            self._aborted.add(cursor.id)
            self.step(cursor.id).add("MapRunAborted", history.map_run_ended(fan.map_run))

    def prune(self, cursor_id: str) -> None:
        """Delete every descendant of `cursor_id` (running ones are aborted: no more calls)."""
        self.abort_runs(cursor_id)
        prefix = cursor_id + "/"
        self.pruned.append(cursor_id)
        for gone in [c for c in self.cursors if c.startswith(prefix)]:
            del self.cursors[gone]
        for gone in [c for c in self.changed if c.startswith(prefix)]:
            del self.changed[gone]

    def stop_descendants(self, cursor_id: str) -> None:
        """Abort every running descendant of `cursor_id` (no more calls), keeping where each
        stood for a redrive."""
        self.abort_runs(cursor_id)
        for cursor in aborted(list(self.cursors.values()), cursor_id, self.now):
            self.put(cursor)

    def settle(self, child_id: str) -> None:
        """The child `child_id` ended: its parent counts it, and goes on when it must."""
        child = self.cursors[child_id]
        parent = self.step(child.parent)
        fan = parent.fanout
        ok = child.status == SUCCEEDED
        if fan.kind == "Map":
            if ok:
                parent.add_iteration("MapIterationSucceeded", child.slot)
            else:
                parent.add_iteration(
                    "MapIterationFailed", child.slot, error=child.error, cause=child.cause
                )
        if (
            not ok
            and fan.map_run is None
            and not parent.history_full
            and self._state_type(child) == "Task"
        ):
            # the task failed and nothing caught it: AWS ends the state's events so
            self.step(child_id).add("TaskStateAborted", {})
        fan = replace(
            fan,
            running=fan.running - 1,
            succeeded=fan.succeeded + ok,
            failed=fan.failed + (not ok),
        )
        parent.pending = fan
        # a child that found the execution's history full fails the state whatever the
        # tolerance (a Map Run's children's events are kept in it too)
        full = not ok and child.error == STATES_RUNTIME and parent.history_full
        if full:
            self.fail_fanout(child.parent, parent, child.error, child.cause)
            return
        if not ok and not _tolerated(fan):
            # a Map Run fails with its own error whatever its tolerance (0 by default)
            tolerance = fan.tolerated_count is not None or fan.tolerated_percentage is not None
            if tolerance or fan.map_run is not None:
                self.fail_fanout(child.parent, parent, EXCEEDED_ERROR, EXCEEDED_CAUSE)
            else:
                self.fail_fanout(child.parent, parent, child.error, child.cause)
            return
        if not ok:  # a tolerated failure: its error output stands in for its output
            error = {"Error": child.error or "", "Cause": child.cause or ""}
            self.put(replace(child, output=history.dumps(error)))
        if fan.complete or (fan.next_slot < fan.total and fan.running < fan.limit):
            parent.due_at = self.now  # gather the results, or start the next children
        self.save(child.parent, parent)

    def fail_fanout(self, cursor_id: str, step: Step, error: str | None, cause: str | None) -> None:
        """The Parallel or Map state `step` runs at `cursor_id` fails with `error`: its Retry
        and Catch apply, and its children stop (the runs among them first: before the
        events of the state's failure)."""
        self.abort_runs(cursor_id)
        self._abort_siblings(cursor_id, step)
        step.fanout_failed(error, cause)
        if step.status == RUNNING:  # retried or caught: done with these children
            self.prune(cursor_id)
        else:  # the state failed: its children stay for a redrive, the running ones stop
            self.stop_descendants(cursor_id)
        self.save(cursor_id, step)

    def _abort_siblings(self, cursor_id: str, step: Step) -> None:
        """The events of the children of `cursor_id` still running when its state fails, as
        AWS records them: MapIterationAborted (a Map's), then the state each was in aborted
        (`TaskStateAborted`, `WaitStateAborted`...). A Map Run's children are executions of
        their own: its MapRunAborted says it."""
        fan = step.fanout
        if fan is None or fan.map_run is not None or step.history_full:
            return
        running = sorted(
            (c for c in self.cursors.values() if c.parent == cursor_id and c.status == RUNNING),
            key=lambda c: c.slot,
        )
        for child in running:
            if fan.kind == "Map":
                step.add_iteration("MapIterationAborted", child.slot)
            kind = self._state_type(child)
            if kind is not None and child.phase != PHASE_ENTER:
                self.step(child.id).add(f"{kind}StateAborted", {})

    def _state_type(self, cursor: Cursor) -> str | None:
        """The Type of the state `cursor` is in (None when it is not in one)."""
        state = self.definition_of(cursor.id).get("States", {}).get(cursor.state or "")
        kind = state.get("Type") if isinstance(state, Mapping) else None
        return kind if isinstance(kind, str) else None

    def transition(self) -> Transition:
        dues = [due for _, p in self.running() if (due := self.own_due(p)) is not None]
        if self.deadline is not None and self.root.status == RUNNING:
            dues.append(self.deadline)
        root = self.root
        if root.status == RUNNING:
            root = replace(root, due_at=min(dues) if dues else None)
        return Transition(
            base=self.execution,
            progress=root,
            events=tuple(self.events),
            pruned=tuple(self.pruned),
            cursors=tuple(self.changed.values()),
        )


def _tolerated(fan: Fanout) -> bool:
    if fan.tolerated_count is None and fan.tolerated_percentage is None:
        return False
    if fan.tolerated_count is not None and fan.failed > fan.tolerated_count:
        return False
    percentage = fan.tolerated_percentage
    return not (percentage is not None and fan.failed * 100 > percentage * fan.total)


def aborted(cursors: list[Cursor], ancestor: str, now: float) -> list[Cursor]:
    """The running ones of `cursors` below `ancestor`, aborted at `now`: they make no more
    calls, and keep their state, its input and their fan-out record for a redrive."""
    prefix = ancestor + "/"
    return [
        replace(
            cursor,
            status=ABORTED,
            phase=None,
            due_at=None,
            pending=Resume(fanout=cursor.fanout),
            stop_date=now,
        )
        for cursor in cursors
        if cursor.status == RUNNING and cursor.id.startswith(prefix)
    ]
