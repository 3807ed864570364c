"""`stepd graph`: a configured machine drawn from the config file, as the README shows it."""

from __future__ import annotations

import re

import pytest
from tests.unit.graph.graph_support import REPO, SHIPPED

from stepd.cli import main
from stepd.graph import render
from stepd.graph.model import build_graph
from stepd.graph.text import to_mermaid

CONFIG = REPO / "config" / "stepd.toml"
README = REPO / "README.md"
EX_OK = 0
EX_CONFIG = 78


def run_graph(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["graph", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_command_draws_a_configured_machine(capsys: pytest.CaptureFixture[str]):
    """`stepd graph classroom -c config/stepd.toml` prints the Mermaid flowchart."""
    code, out, err = run_graph(capsys, "classroom", "-c", str(CONFIG))
    assert (code, err, out) == (EX_OK, "", to_mermaid(build_graph(SHIPPED)))


@pytest.mark.parametrize("fmt", ["dot", "svg"])
def test_the_command_draws_in_other_formats(capsys: pytest.CaptureFixture[str], fmt: str):
    """`--format dot|svg` prints that drawing."""
    code, out, _ = run_graph(capsys, "classroom", "-c", str(CONFIG), "--format", fmt)
    assert (code, out) == (EX_OK, render(SHIPPED, fmt, title="classroom"))


def test_the_command_names_an_unknown_machine(capsys: pytest.CaptureFixture[str]):
    """A machine the config does not name exits 78, listing the ones it does."""
    code, out, err = run_graph(capsys, "nosuch", "-c", str(CONFIG))
    assert (code, out) == (EX_CONFIG, "")
    assert "no state machine named 'nosuch' (configured: classroom)" in err


def test_the_readme_shows_the_classroom_diagram(capsys: pytest.CaptureFixture[str]):
    """The README's Mermaid block is what `stepd graph classroom --format mermaid` prints."""
    _, out, _ = run_graph(capsys, "classroom", "-c", str(CONFIG), "--format", "mermaid")
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```mermaid\n(.*?)```", text, re.DOTALL)
    assert blocks == [out]
