"""Cases A59-A61: an import of a distribution declared only through another (a transitive dependency, SB020).

The dependency comes from the project's environment (its Requires-Dist, read by importlib.metadata in that
interpreter) or from the lock's ``# via`` annotations; the distribution stays required (in the image, pinned by
the lock) and ``check`` passes with a warning."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from slimbuild.locking.lockfile import inputs_digest, lock_requires, render_lock_text
from slimbuild.locking.target import Target
from tests.conftest import Run
from tests.constants import FINDINGS, OK

Project = Callable[[dict[str, str | bytes]], Path]
CLI = Callable[..., Run]
H = "sha256:" + "a" * 64
APP = {"main.py": "import jinja2\nimport markupsafe\n", "requirements.txt": "jinja2\n"}


def _venv(root: Path, dists: dict[str, list[str]]) -> None:
    """A real virtualenv (no pip) holding bare .dist-info of each distribution, with its Requires-Dist lines."""
    venv = root / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
    (site,) = venv.glob("lib/python3*/site-packages")
    for name, requires in dists.items():
        info = site / f"{name}-1.0.dist-info"
        info.mkdir()
        lines = "".join(f"Requires-Dist: {r}\n" for r in requires)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n{lines}")
        (info / "top_level.txt").write_text(f"{name.lower()}\n")


def _required(run: Run) -> dict[str, dict[str, object]]:
    return {r["name"]: r for r in json.loads(run.out)["required"]}


def test_A59_an_import_a_declared_dependency_brings_is_a_warning_from_the_environment(
    project: Project, run_cli: CLI
) -> None:
    root = project(APP)
    assert "SB001" in run_cli("check", str(root)).err  # no environment: nothing says jinja2 brings it
    _venv(root, {"Jinja2": ["MarkupSafe>=2.0"], "MarkupSafe": []})
    run = run_cli("check", str(root))
    assert run.code == OK, run.err
    assert "SB001" not in run.err
    assert "main.py:2:1: SB020 'markupsafe' is imported directly, but 'markupsafe' is declared only through 'jinja2'" in run.err
    assert "declare it" in run.err
    req = _required(run_cli("analyze", str(root), "--json"))
    assert req["markupsafe"]["through"] == ["jinja2"] and req["markupsafe"]["declared"] is False  # still in the image
    assert req["jinja2"]["through"] == []
    missing = json.loads(run_cli("analyze", str(root), "--json").out)["missing"]
    assert missing == []


def test_A59_a_dependency_two_steps_away_counts_and_the_text_report_names_it(project: Project, run_cli: CLI) -> None:
    root = project({"main.py": "import flask\nimport markupsafe\n", "requirements.txt": "flask\n"})
    _venv(root, {"flask": ["Jinja2>=3", "click; extra == 'cli'"], "Jinja2": ["MarkupSafe>=2.0"], "MarkupSafe": []})
    run = run_cli("check", str(root))
    assert run.code == OK and "SB020" in run.err and "through 'flask'" in run.err, run.err
    assert re.search(r"^ +markupsafe +through flask +via ", run_cli("analyze", str(root)).out, re.M)


def test_A60_the_locks_via_annotations_say_what_a_declared_distribution_brings(project: Project, run_cli: CLI) -> None:
    body = (
        f"jinja2==3.1.4 \\\n    --hash={H}\n    # via -r requirements.in\n"
        f"markupsafe==3.0.2 \\\n    --hash={H}\n    # via\n    #   -r requirements.in\n    #   jinja2\n"
    )
    assert lock_requires(body) == {"jinja2": ("markupsafe",)}
    root = project(APP)
    target = Target(f"{sys.version_info[0]}.{sys.version_info[1]}")
    (root / "slimbuild.lock").write_text(
        render_lock_text(body, target, inputs_digest(["jinja2", "markupsafe"], target))
    )
    run = run_cli("check", str(root))
    assert run.code == OK, run.err
    assert "SB020" in run.err and "through 'jinja2'" in run.err and "SB012" not in run.err


def test_A60_lock_requires_reads_one_line_and_split_annotations() -> None:
    text = (
        "a==1 --hash=sha256:00\n    # via b\n"
        "Gamma_Pkg[x]==3.0 \\\n    --hash=sha256:11\n    # via\n    #   -c constraints.txt\n    #   a\n    #   b\n"
        "c==2 --hash=sha256:22\n"
        "# a comment\n"
    )
    assert lock_requires(text) == {"a": ("gamma-pkg",), "b": ("a", "gamma-pkg")}
    assert lock_requires("") == {}


def test_A61_a_dependency_under_a_marker_that_excludes_the_target_brings_nothing(
    project: Project, run_cli: CLI
) -> None:
    root = project(APP)
    _venv(root, {"Jinja2": ['MarkupSafe>=2.0; python_version < "3.0"'], "MarkupSafe": []})
    run = run_cli("check", str(root))
    assert run.code == FINDINGS and "SB001" in run.err and "SB020" not in run.err


def test_A61_an_unused_declaration_brings_nothing_into_the_image(project: Project, run_cli: CLI) -> None:
    # jinja2 declared but not imported: it stays out of the image, so it brings nothing into it
    other = project({"main.py": "import markupsafe\n", "requirements.txt": "jinja2\n"})
    _venv(other, {"Jinja2": ["MarkupSafe>=2.0"], "MarkupSafe": []})
    run = run_cli("check", str(other))
    assert run.code == FINDINGS and "SB001" in run.err and "SB020" not in run.err and "SB002" in run.err


def test_A59_a_requirement_of_an_extra_brings_nothing(project: Project, run_cli: CLI) -> None:
    root = project({"main.py": "import flask\nimport click\n", "requirements.txt": "flask\n"})
    _venv(root, {"flask": ["Jinja2>=3", "click; extra == 'cli'"], "Jinja2": [], "click": []})
    run = run_cli("check", str(root))
    assert run.code == FINDINGS and "main.py:2:1: SB001 'click' needs distribution 'click'" in run.err, run.err
    assert "SB020" not in run.err
