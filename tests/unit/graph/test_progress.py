"""An execution's progress over its machine: each state's status, and the edges it took."""

from __future__ import annotations

from tests.unit.graph.graph_support import (
    CLASSROOM_EDGES,
    CLASSROOM_STATES,
    SUCCEEDED,
    WAITING_FOR_PING,
    entered,
    event,
    exited,
)

from stepd.graph import build_graph, to_svg
from stepd.graph.progress import CURRENT, DONE, FAILED, NOT_REACHED, progress


def test_a_running_execution_has_done_states_a_current_one_and_the_rest_not_reached():
    """States exited are done, the one entered last is current, the others not reached."""
    seen = progress(WAITING_FOR_PING)
    assert [seen.status(name) for name in CLASSROOM_STATES] == [
        DONE,
        DONE,
        CURRENT,
        NOT_REACHED,
        NOT_REACHED,
        NOT_REACHED,
    ]


def test_a_task_that_fails_the_execution_is_failed():
    """A task whose failure ends the execution is marked failed, not current."""
    events = [*WAITING_FOR_PING[:6], event("TaskFailed"), event("ExecutionFailed")]
    assert progress(events).status("StartRecording") == FAILED


def test_a_task_that_succeeds_on_a_retry_is_done():
    """A failed attempt followed by a successful one leaves the state done."""
    events = [
        *WAITING_FOR_PING[:6],
        event("TaskFailed"),
        event("TaskSucceeded"),
        exited("StartRecording", "Task"),
    ]
    assert progress(events).status("StartRecording") == DONE


def test_an_activity_tasks_events_mark_its_state_as_task_events_do():
    """An activity Task (AWS's Activity events): a heartbeat timeout caught is failed, a
    retried attempt that succeeds is done."""
    caught = [
        *WAITING_FOR_PING[:6],
        event("ActivityScheduled"),
        event("ActivityStarted"),
        event("ActivityTimedOut"),
        exited("StartRecording", "Task"),
    ]
    assert progress(caught).status("StartRecording") == FAILED
    retried = [
        *WAITING_FOR_PING[:6],
        event("ActivityFailed"),
        event("ActivityScheduled"),
        event("ActivitySucceeded"),
        exited("StartRecording", "Task"),
    ]
    assert progress(retried).status("StartRecording") == DONE


def test_a_caught_failure_marks_the_state_failed_and_the_catcher_reached():
    """A task whose error a Catch handled is failed; the execution goes on from the catcher."""
    events = [
        event("ExecutionStarted"),
        entered("Check", "Choice"),
        exited("Check", "Choice"),
        entered("Big", "Task"),
        event("TaskFailed"),
        exited("Big", "Task"),
        entered("Oops", "Fail"),
        event("ExecutionFailed"),
    ]
    seen = progress(events)
    assert (seen.status("Check"), seen.status("Big"), seen.status("Oops")) == (
        DONE,
        FAILED,
        FAILED,
    )


def test_an_aborted_execution_marks_the_state_it_was_in_failed():
    """Stopping an execution leaves the state it was in red."""
    seen = progress([*WAITING_FOR_PING, event("ExecutionAborted")])
    assert seen.status("SendLivePingWait") == FAILED


def test_the_edges_taken_include_the_start_and_the_end():
    """A succeeded execution took its start edge, each transition and its end edge."""
    assert progress(SUCCEEDED).taken == CLASSROOM_EDGES


def test_a_map_counts_its_iterations_in_its_latest_run():
    """A Map's iterations are counted by name, from its latest MapStateStarted on, and the
    diagram writes the count beside the state's type."""
    events = [
        {"type": "ExecutionStarted"},
        {"type": "MapStateEntered", "stateEnteredEventDetails": {"name": "Each"}},
        {"type": "MapStateStarted", "mapStateStartedEventDetails": {"length": 3}},
        {"type": "MapIterationStarted", "mapIterationStartedEventDetails": {"name": "Each"}},
        {"type": "MapIterationFailed", "mapIterationFailedEventDetails": {"name": "Each"}},
        {"type": "MapStateStarted", "mapStateStartedEventDetails": {"length": 3}},  # retried
        {"type": "MapIterationSucceeded", "mapIterationSucceededEventDetails": {"name": "Each"}},
        {"type": "MapIterationSucceeded", "mapIterationSucceededEventDetails": {"name": "Each"}},
        {"type": "MapIterationFailed", "mapIterationFailedEventDetails": {"name": "Each"}},
    ]
    read = progress(events)
    assert read.iterations["Each"].text() == "2/3 done, 1 failed"
    definition = {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
                "End": True,
            }
        },
    }
    assert "Map · 2/3 done, 1 failed" in to_svg(build_graph(definition), read)
