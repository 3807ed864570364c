"""What the pages show of an execution's history: the timeline."""

from __future__ import annotations

from stepd.store.records import Event
from stepd.ui.views import MAX_TIMELINE_EVENTS, timeline

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
# One transition's events, all written in the same millisecond, in history order.
SAME_MILLISECOND = (
    "WaitStateExited",
    "TaskStateEntered",
    "TaskScheduled",
    "TaskStarted",
)


def event(event_id: int, kind: str, ts: float) -> Event:
    return Event(id=event_id, previous_id=event_id - 1, ts=ts, type=kind, details={})


def test_events_sharing_a_timestamp_are_in_event_id_order():
    """Events of one millisecond are listed by event id, whatever order they are given in."""
    events = [event(n, kind, T0 + 10) for n, kind in enumerate(SAME_MILLISECOND, start=3)]
    given = [events[2], events[0], events[3], events[1]]

    entries = timeline(given, T0).entries

    assert [(e.id, e.type) for e in entries] == [
        (3, "WaitStateExited"),
        (4, "TaskStateEntered"),
        (5, "TaskScheduled"),
        (6, "TaskStarted"),
    ]


def test_an_earlier_timestamp_does_not_move_a_later_event_up():
    """After the clock was set back, a later event keeps its place: history order wins."""
    events = [event(1, "ExecutionStarted", T0 + 5), event(2, "WaitStateEntered", T0)]

    entries = timeline(events, T0).entries

    assert [e.type for e in entries] == ["ExecutionStarted", "WaitStateEntered"]


def test_only_the_latest_events_are_shown():
    """Past MAX_TIMELINE_EVENTS, the earliest (by event id) are left out and counted."""
    events = [event(n, "PassStateEntered", T0) for n in range(MAX_TIMELINE_EVENTS + 3, 0, -1)]

    shown = timeline(events, T0)

    assert (shown.hidden, shown.entries[0].id, shown.entries[-1].id) == (
        3,
        4,
        MAX_TIMELINE_EVENTS + 3,
    )
