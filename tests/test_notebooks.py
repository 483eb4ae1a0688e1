"""The notebooks (jupytext percent-format .py in notebooks/) execute top to bottom without errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.py"))


def test_there_are_at_least_a_quickstart_and_a_fragmentation_study() -> None:
    names = {p.stem for p in NOTEBOOKS}
    assert {"quickstart", "fragmentation_study"} <= names


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes_without_errors(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    # the kernel inherits the environment: HOME and Jupyter dirs are already in tmp (conftest); make
    # sure it imports this checkout whatever the cwd
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = jupytext.read(path)
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=600,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute(cwd=str(tmp_path))
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors


def test_notebooks_name_scaled_columns_in_the_unit_they_hold() -> None:
    # a seconds column multiplied into milliseconds must be renamed (est_setup_s * 1e3 -> est_setup_ms)
    import re

    for path in NOTEBOOKS:
        for m in re.finditer(r'pl\.col\("(\w+)_s"\) \* 1e3\)?(\.alias\("(\w+)"\))?', path.read_text()):
            assert m.group(3) == f"{m.group(1)}_ms", (path.name, m.group(0))


def test_readme_documents_the_command_that_runs_the_notebooks() -> None:
    readme = (REPO / "README.md").read_text()
    for path in NOTEBOOKS:
        text = path.read_text()
        cmd = f"jupytext --to ipynb notebooks/{path.name} && jupyter execute notebooks/{path.stem}.ipynb"
        assert cmd in text, path.name
    assert "jupyter execute notebooks/" in readme


@pytest.mark.slow
def test_the_documented_command_runs_the_quickstart(tmp_path: Path) -> None:
    import shutil
    import subprocess

    pytest.importorskip("jupytext")
    pytest.importorskip("nbclient")
    if shutil.which("jupyter-execute") is None:
        pytest.skip("jupyter-execute (nbclient) not on PATH")
    nb = tmp_path / "notebooks"
    nb.mkdir()
    shutil.copy(REPO / "notebooks" / "quickstart.py", nb)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
               MEMMODEL_NOTEBOOK_TRACE=str(REPO / "traces" / "stream.lackey.xz"))
    cmd = "jupytext --to ipynb notebooks/quickstart.py && jupyter execute notebooks/quickstart.ipynb"
    res = subprocess.run(cmd, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
                         check=False)
    assert res.returncode == 0, res.stderr[-3000:]
