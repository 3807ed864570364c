"""The catalog: machines built from plain specs, every finding reported with where it is."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from stepd.catalog import MachineSpec, build_catalog

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
