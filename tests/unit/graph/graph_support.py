"""Definitions and histories the diagram tests share: the blog post's classroom machine (fixed),
a branchy one with every kind of transition, a self-loop; an execution's history at two
moments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stepd.asl.loader import load_definition

REPO = Path(__file__).resolve().parents[3]

SHIPPED = load_definition(REPO / "config" / "classroom.asl.yaml").definition
CLASSROOM: dict[str, Any] = {
    "StartAt": "RecordingWait",
    "States": {
        "RecordingWait": {"Type": "Wait", "TimestampPath": "$.start", "Next": "StartRecording"},
        "StartRecording": {"Type": "Task", "Resource": "arn:start", "Next": "SendLivePingWait"},
        "SendLivePingWait": {"Type": "Wait", "Seconds": 60, "Next": "SendLivePing"},
        "SendLivePing": {"Type": "Task", "Resource": "arn:ping", "Next": "StoppingWait"},
        "StoppingWait": {"Type": "Wait", "TimestampPath": "$.end", "Next": "StopRecording"},
        "StopRecording": {"Type": "Task", "Resource": "arn:stop", "End": True},
    },
}
CLASSROOM_STATES = (
    "RecordingWait",
    "StartRecording",
    "SendLivePingWait",
    "SendLivePing",
    "StoppingWait",
    "StopRecording",
)
# (from, to) of every edge; None is the start or the end marker.
CLASSROOM_EDGES = {
    (None, "RecordingWait"),
    ("RecordingWait", "StartRecording"),
    ("StartRecording", "SendLivePingWait"),
    ("SendLivePingWait", "SendLivePing"),
    ("SendLivePing", "StoppingWait"),
    ("StoppingWait", "StopRecording"),
    ("StopRecording", None),
}

# A Choice with two rules and a Default, a Catch, a loop back up, a Parallel with two branches.
BRANCHY: dict[str, Any] = {
    "StartAt": "Check",
    "States": {
        "Check": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.n", "NumericGreaterThan": 3, "Next": "Big"},
                {"Variable": "$.again", "BooleanEquals": True, "Next": "Pause"},
            ],
            "Default": "Small",
        },
        "Big": {
            "Type": "Task",
            "Resource": "arn:aws:lambda:us-east-1:123456789012:function:big",
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Oops"}],
            "Next": "Fan",
        },
        "Small": {"Type": "Pass", "Next": "Done"},
        "Pause": {"Type": "Wait", "Seconds": 3, "Next": "Check"},
        "Fan": {
            "Type": "Parallel",
            "Branches": [
                {
                    "StartAt": "A1",
                    "States": {
                        "A1": {"Type": "Pass", "Next": "A2"},
                        "A2": {"Type": "Pass", "End": True},
                    },
                },
                {"StartAt": "B1", "States": {"B1": {"Type": "Pass", "End": True}}},
            ],
            "Next": "Done",
        },
        "Oops": {"Type": "Fail", "Error": "Big.Failed"},
        "Done": {"Type": "Succeed"},
    },
}
# A Choice whose Default is itself.
LOOPING: dict[str, Any] = {
    "StartAt": "Poll",
    "States": {
        "Poll": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.ready", "IsPresent": True, "Next": "Done"}],
            "Default": "Poll",
        },
        "Done": {"Type": "Succeed"},
    },
}
BRANCHY_EDGES = {
    (None, "Check", "start"),
    ("Check", "Big", "choice"),
    ("Check", "Pause", "choice"),
    ("Check", "Small", "default"),
    ("Big", "Fan", "next"),
    ("Big", "Oops", "catch"),
    ("Small", "Done", "next"),
    ("Pause", "Check", "next"),
    ("Fan", "A1", "branch"),
    ("Fan", "B1", "branch"),
    ("A1", "A2", "next"),
    ("Fan", "Done", "next"),
    ("Oops", None, "end"),
    ("Done", None, "end"),
}


def entered(name: str, state_type: str = "Wait") -> dict[str, Any]:
    return {"type": f"{state_type}StateEntered", "stateEnteredEventDetails": {"name": name}}


def exited(name: str, state_type: str = "Wait") -> dict[str, Any]:
    return {"type": f"{state_type}StateExited", "stateExitedEventDetails": {"name": name}}


def event(event_type: str) -> dict[str, Any]:
    return {"type": event_type}


# The classroom execution waiting before its live ping.
WAITING_FOR_PING = [
    event("ExecutionStarted"),
    entered("RecordingWait"),
    exited("RecordingWait"),
    entered("StartRecording", "Task"),
    event("TaskScheduled"),
    event("TaskStarted"),
    event("TaskSucceeded"),
    exited("StartRecording", "Task"),
    entered("SendLivePingWait"),
]
SUCCEEDED = [
    *WAITING_FOR_PING,
    exited("SendLivePingWait"),
    entered("SendLivePing", "Task"),
    event("TaskSucceeded"),
    exited("SendLivePing", "Task"),
    entered("StoppingWait"),
    exited("StoppingWait"),
    entered("StopRecording", "Task"),
    event("TaskSucceeded"),
    exited("StopRecording", "Task"),
    event("ExecutionSucceeded"),
]
