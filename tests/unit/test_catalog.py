"""The catalog: machines built from plain specs, every finding reported with where it is."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from stepd.catalog import Catalog, MachineSpec, build_catalog

ROUTES = {
    "StartRecording": "/recording/start",
    "SendLivePing": "/recording/ping",
    "StopRecording": "/recording/stop",
    "StopAfterFailure": "/recording/stop",
}


def _definition(folder: Path) -> Path:
    path = folder / "classroom.asl.yaml"
    path.write_text(
        resources.files("stepd").joinpath("examples/classroom.asl.yaml").read_text("utf-8"),
        encoding="utf-8",
    )
    return path


def test_a_spec_becomes_a_machine_whose_tasks_go_to_the_base_url(tmp_path: Path) -> None:
    """A clean spec gives a machine with its settings, its routes joined to `base_url`."""
    spec = MachineSpec(
        name="classroom",
        definition=_definition(tmp_path),
        endpoints=ROUTES,
        late_threshold_seconds=5.0,
        late_policy="fail",
    )
    catalog = build_catalog([spec], base_url="http://classroom.test", config_source="stepd.toml")
    machine = catalog.machines["classroom"]
    assert (catalog.reports, machine.late_threshold_seconds, machine.late_policy) == (
        (),
        5.0,
        "fail",
    )
    assert (
        machine.endpoints.resolve("StartRecording", None) == "http://classroom.test/recording/start"
    )


def test_every_problem_is_reported_where_it_is(tmp_path: Path) -> None:
    """A bad name and a Task without an endpoint are both reported; the machine is left out."""
    spec = MachineSpec(name="bad name", definition=_definition(tmp_path), endpoints={})
    catalog = build_catalog([spec], base_url="http://classroom.test", config_source="stepd.toml")
    assert catalog.machines == {}
    assert [(r.where.split("#")[0], r.code) for r in catalog.errors] == [
        ("stepd.toml", "INVALID_NAME"),
        *[(str(spec.definition), "UNMAPPED_TASK")] * len(ROUTES),  # one per Task state
    ]


def test_no_machines_is_a_finding() -> None:
    """An empty list of specs is reported, located at the config's machines."""
    catalog = build_catalog([], base_url="http://classroom.test", config_source="stepd.toml")
    assert [(r.where, r.code) for r in catalog.errors] == [("stepd.toml#/machines", "NO_MACHINES")]


def test_a_bad_input_schema_is_reported_where_it_is(tmp_path: Path) -> None:
    """An input_schema that is missing, not JSON, or not a valid JSON Schema is an error
    finding naming the file, and the machine is left out."""
    missing = tmp_path / "missing.json"
    not_json = tmp_path / "not.json"
    not_json.write_text("{", encoding="utf-8")
    invalid = tmp_path / "invalid.json"
    invalid.write_text('{"type": "objekt"}', encoding="utf-8")
    for path, words in ((missing, "No such file"), (not_json, "not JSON"), (invalid, "objekt")):
        spec = MachineSpec(
            name="classroom", definition=_definition(tmp_path), endpoints=ROUTES, input_schema=path
        )
        catalog = build_catalog([spec], base_url="http://classroom.test")
        assert catalog.machines == {}
        (report,) = catalog.errors
        assert report.code == "INVALID_SCHEMA"
        assert path.name in str(report)
        assert words in report.message


def _findings(catalog: Catalog) -> list[tuple[str, str, str]]:
    """(where after '#', code, severity) of each finding."""
    return [(r.where.split("#", 1)[1], r.code, r.severity) for r in catalog.reports]


@pytest.mark.parametrize(
    ("base_url", "message"),
    [
        pytest.param(
            "127.0.0.1:8080",
            "'127.0.0.1:8080' needs http:// or https:// (such as 'http://127.0.0.1:8080')",
            id="no-scheme",
        ),
        pytest.param(
            "ftp://classroom.test", "'ftp://classroom.test' is not an http(s) URL", id="ftp"
        ),
        pytest.param("http://", "'http://' is not an http(s) URL", id="no-host"),
    ],
)
def test_a_bad_base_url_is_one_finding(tmp_path: Path, base_url: str, message: str) -> None:
    """A base_url that cannot be called is reported once, at http.base_url; the Task states
    mapped to paths on it are not reported as unmapped."""
    spec = MachineSpec(name="classroom", definition=_definition(tmp_path), endpoints=ROUTES)

    catalog = build_catalog([spec], base_url=base_url, config_source="stepd.toml")

    assert [(r.where, r.code, r.message) for r in catalog.reports] == [
        ("stepd.toml#/http/base_url", "INVALID_BASE_URL", message)
    ]


def test_a_bad_endpoint_url_is_not_also_unmapped(tmp_path: Path) -> None:
    """An endpoint that is not an http(s) URL is INVALID_ENDPOINT; the other Tasks are mapped."""
    routes = ROUTES | {"StopRecording": "ftp://classroom.test/stop"}
    spec = MachineSpec(name="classroom", definition=_definition(tmp_path), endpoints=routes)

    catalog = build_catalog([spec], base_url="http://classroom.test", config_source="stepd.toml")

    assert _findings(catalog) == [("/machines/0/endpoints", "INVALID_ENDPOINT", "error")]


@pytest.mark.parametrize(
    ("key", "meant"),
    [
        pytest.param("SendLivePong", 'did you mean "SendLivePing"?', id="one-close"),
        pytest.param(
            "StopRecordin", 'did you mean "StopRecording" or "StartRecording"?', id="two-close"
        ),
        pytest.param(
            "Ping",
            'its Task states are "SendLivePing", "StopRecording", "StartRecording", '
            '"StopAfterFailure"',
            id="none-close",
        ),
    ],
)
def test_an_endpoint_no_task_goes_by_is_a_warning(tmp_path: Path, key: str, meant: str) -> None:
    """A misspelt endpoint key is reported where it is, with the Task states it may mean,
    the closest first, and what removing it does to executions of an earlier definition; it
    is a warning, and the machine still loads."""
    spec = MachineSpec(
        name="classroom", definition=_definition(tmp_path), endpoints=ROUTES | {key: "/x"}
    )

    catalog = build_catalog([spec], base_url="http://classroom.test", config_source="stepd.toml")

    assert [(r.where, r.code, r.severity, r.message) for r in catalog.reports] == [
        (
            f"stepd.toml#/machines/0/endpoints/{key}",
            "UNUSED_ENDPOINT",
            "warning",
            (
                f'"{key}" is neither a Task state nor a Task Resource of machine "classroom", '
                "so executions of this definition never call it; executions still running an "
                "earlier definition keep the endpoints it was served with, so removing the "
                f"line does not stop them (unless only stepd 0.1 ran that definition); {meant}"
            ),
        )
    ]
    assert list(catalog.machines) == ["classroom"]


def test_each_task_states_endpoint_is_kept_by_state_name_as_configured(tmp_path: Path) -> None:
    """What goes with the definition into the store: each Task state's endpoint, found by its
    name or its Resource, as written in the config (a path stays a path); an endpoint no Task
    state goes by is not among them."""
    routes = {
        "StartRecording": "/recording/start",
        "classroom-SendLivePing": "https://other.test/ping",
        "arn:aws:lambda:ap-southeast-1:123456789012:function:classroom-StopRecorder": "/stop",
        "Unused": "/unused",
    }
    spec = MachineSpec(name="classroom", definition=_definition(tmp_path), endpoints=routes)

    catalog = build_catalog([spec], base_url="http://classroom.test", config_source="stepd.toml")

    assert catalog.machines["classroom"].state_endpoints == {
        "StartRecording": "/recording/start",
        "SendLivePing": "https://other.test/ping",
        "StopRecording": "/stop",
        "StopAfterFailure": "/stop",
    }


def test_endpoints_by_resource_are_used(tmp_path: Path) -> None:
    """Keys that name a Task's Resource (its ARN or function name) are not reported."""
    routes = {
        "StartRecording": "/recording/start",
        "classroom-SendLivePing": "/recording/ping",
        "arn:aws:lambda:ap-southeast-1:123456789012:function:classroom-StopRecorder": "/stop",
    }
    spec = MachineSpec(name="classroom", definition=_definition(tmp_path), endpoints=routes)

    catalog = build_catalog([spec], base_url="http://classroom.test", config_source="stepd.toml")

    assert catalog.reports == ()


def _invoke(function_name: str, **parameters: str) -> dict[str, Any]:
    """A `lambda:invoke` Task naming `function_name`, keeping the data."""
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": function_name, "Payload.$": "$", **parameters},
        "ResultPath": None,
    }


def test_lambda_invoke_tasks_are_mapped_by_the_function_they_name(tmp_path: Path) -> None:
    """A `lambda:invoke` Task mapped by its FunctionName's function needs no other key, and
    that key is not reported unused; one naming no mapped function is UNMAPPED_TASK; one
    whose function is named only when it runs is not judged."""
    definition = {
        "StartAt": "Add",
        "States": {
            "Add": {
                **_invoke("arn:aws:lambda:us-east-1:123456789012:function:adder"),
                "Next": "Sub",
            },
            "Sub": {**_invoke("subtract"), "Next": "Any"},
            "Any": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName.$": "$.function"},
                "End": True,
            },
        },
    }
    path = tmp_path / "math.asl.json"
    path.write_text(json.dumps(definition), encoding="utf-8")
    spec = MachineSpec(name="math", definition=path, endpoints={"adder": "/add"})

    catalog = build_catalog([spec], base_url="http://math.test", config_source="stepd.toml")

    assert [(r.where, r.code) for r in catalog.reports] == [
        (f"{path}#/States/Sub", "UNMAPPED_TASK")
    ]


def test_lambda_invoke_tasks_keep_the_endpoint_of_the_function_they_name(tmp_path: Path) -> None:
    """What goes with the definition into the store for `lambda:invoke` Tasks: the endpoint
    of the function a Task names, under its state name; a Task whose function is named only
    when it runs has one only when mapped by its state name."""
    definition = {
        "StartAt": "Add",
        "States": {
            "Add": {
                **_invoke("arn:aws:lambda:us-east-1:123456789012:function:adder"),
                "Next": "Any",
            },
            "Any": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName.$": "$.function"},
                "Next": "Named",
            },
            "Named": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName.$": "$.function"},
                "End": True,
            },
        },
    }
    path = tmp_path / "math.asl.json"
    path.write_text(json.dumps(definition), encoding="utf-8")
    routes = {"adder": "/add", "multiply": "/mul", "Named": "/named"}
    spec = MachineSpec(name="math", definition=path, endpoints=routes)

    catalog = build_catalog([spec], base_url="http://math.test", config_source="stepd.toml")

    assert catalog.machines["math"].state_endpoints == {"Add": "/add", "Named": "/named"}
