"""README's test example in a project of its own: strict and auto mode, no deprecation warning.

``pytester`` runs pytest in a subprocess in an empty directory, so the plugin loads through its
entry point exactly as in a user's project; the fresh-virtualenv test also proves that the
``testing`` extra alone brings everything the fixtures need.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow  # each test runs pytest or pip in a subprocess


def readme_test_example() -> str:
    """The Python block of README's "Testing your integration" section, verbatim."""
    section = (ROOT / "README.md").read_text().split("## Testing your integration", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None
    return match.group(1)


def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Our own suite's choices must not leak into the user's run.
    for name in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "COV_CORE_SOURCE", "PYTHONWARNINGS"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_readme_example_passes_in_a_fresh_project(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """The example passes as written, with pytest-asyncio in either mode, and warns nothing."""
    _clean_env(monkeypatch)
    pytester.makepyfile(test_readme=readme_test_example())
    if mode == "auto":
        pytester.makeini("[pytest]\nasyncio_mode = auto\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error", "-rA")
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.OK, output
    result.assert_outcomes(passed=1)
    assert "Warning" not in output
    assert f"mode=Mode.{mode.upper()}" in output  # pytest-asyncio's header: the mode in force


def test_the_testing_extra_alone_runs_the_readme_example(tmp_path: Path) -> None:
    """A fresh venv with only ``pip install "actionstep-async[testing]"`` runs the example."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "COV_", "VIRTUAL"))}
    install = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", f"{ROOT}[testing]"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_readme.py").write_text(readme_test_example())
    run = subprocess.run(
        [python, "-m", "pytest", "-p", "no:cacheprovider", "-W", "error", "-q"],
        cwd=project,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "1 passed" in run.stdout
    assert "Warning" not in run.stdout + run.stderr
    assert sys.executable != str(python)
