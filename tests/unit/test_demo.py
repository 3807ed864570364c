"""`stepd demo`'s timeline: the daemon's events and the server's POSTs, merged."""

from __future__ import annotations

from stepd.demo import merge_lines

T0 = 1_800_000_000.0


def test_events_of_one_millisecond_keep_their_history_order():
    """Events sharing a timestamp are printed in history order, not sorted by their text."""
    events = [
        (T0, "stepd   WaitStateExited"),
        (T0, "stepd   enter StartRecording"),
        (T0, "stepd   call  arn:aws:lambda:us-east-1:123456789012:function:start"),
        (T0 + 0.004, "stepd   TaskSucceeded"),
    ]
    posts = [(T0 + 0.002, "server  POST /recording/start")]

    merged = [text for _, text in merge_lines(events, posts)]

    assert merged == [
        "stepd   WaitStateExited",
        "stepd   enter StartRecording",
        "stepd   call  arn:aws:lambda:us-east-1:123456789012:function:start",
        "server  POST /recording/start",
        "stepd   TaskSucceeded",
    ]


def test_a_post_in_the_same_millisecond_as_an_event_comes_after_it():
    """On a tie the daemon's event (the call it made) comes before the POST it caused."""
    merged = merge_lines([(T0, "stepd   call  x")], [(T0, "server  POST /x")])

    assert [text for _, text in merged] == ["stepd   call  x", "server  POST /x"]
