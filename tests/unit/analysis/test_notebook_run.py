"""A52: ``%run`` in a notebook: read as IPython reads it, and the image's script runs what Jupyter runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from slimbuild.analysis.notebook import notebook_script, parse_notebook


def _nb(*sources: str) -> bytes:
    cells = [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": s} for s in sources]
    meta = {"language_info": {"name": "python"}}
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": meta, "cells": cells}).encode()


def test_A52_run_lines_become_scripts_modules_and_findings() -> None:
    data = _nb(
        "import os\n%run -t helper.py --n 3\n",
        "%%time\n%run -i lib/other\n",
        "%%bash\n%run not_python.py\n",
        "%run -m tool.cli arg\n",
        "%run $script\n",
        "%run {name}.py\n",
        "%run old.ipynb\n",
        "%run\n",
    )
    parsed = parse_notebook(data, "nb.ipynb")
    assert [(loc.cell, loc.line, target) for loc, target in parsed.run_scripts] == [
        (1, 2, "helper.py"), (2, 2, "lib/other")
    ]
    assert [(i.module, i.cell) for i in parsed.imports if i.module != "os"] == [("tool.cli", 4)]
    found = sorted((f.location.cell, f.code) for f in parsed.findings)
    assert found == [(5, "SB004"), (6, "SB004"), (7, "SB011"), (8, "SB011")]


def test_A52_script_runs_the_helper_as_jupyter_does(tmp_path: Path) -> None:
    """The generated script: the helper runs as __main__ with its argv and its directory on sys.path, its names
    land in the notebook's namespace (-i: it sees the notebook's), $name / {expr} are expanded, paths are the
    notebook directory's, and a sys.exit in the helper does not end the notebook."""
    nbdir = tmp_path / "nbs"
    (nbdir / "lib").mkdir(parents=True)
    (nbdir / "lib" / "helper.py").write_text(
        "import sys\nimport sibling\nARGS = sys.argv[1:]\nWHO = __name__\nSIB = sibling.X\n"
        "if __name__ == '__main__':\n    MAIN = True\n"
    )
    (nbdir / "lib" / "sibling.py").write_text("X = 'sib'\n")
    (nbdir / "lib" / "inner.py").write_text("SEEN = BASE * 2\nimport sys\nsys.exit(0)\n")
    data = _nb(
        "n = 5\n%run lib/helper.py --n {n} $n $$\n",
        "print(ARGS, WHO, MAIN, SIB, __name__)\n",
        "BASE = 21\nif True:\n    %run -i lib/inner\nprint(SEEN)\n",
    )
    script = nbdir / "nb.py"
    script.write_text(notebook_script(data, "nbs/nb.ipynb"))
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["['--n', '5', '5', '$'] __main__ True sib __main__", "42"]
    assert "__slimbuild_run" not in notebook_script(_nb("import os\n%time x = 1\n"), "nb.ipynb")  # no %run: as before

