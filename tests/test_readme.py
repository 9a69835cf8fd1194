"""Docs are tested: the README's commands match CI and the CLI, and its Python example runs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_first_two_commands_install_and_ci_runs_the_second_verbatim() -> None:
    bash = _blocks("bash")
    assert 'ragkit ask "Why is data the bottleneck?"' in bash[0]
    test_command = bash[1].strip()
    assert "pytest" in test_command
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test_command in ci.splitlines()


def test_every_cli_command_is_documented() -> None:
    from ragkit.cli import app

    names = {c.name or c.callback.__name__ for c in app.registered_commands}  # type: ignore[union-attr]
    for name in names:
        assert f"ragkit {name}" in README, f"README does not document `ragkit {name}`"


@pytest.mark.integration
def test_python_example_runs(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "seeds", tmp_path / "seeds")
    code = _blocks("python")[0]
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600, env={**os.environ})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("1 ") and "spotlight-on-scale-ai-alexandr-wang.txt" in result.stdout
    assert (tmp_path / "indexes" / "example" / "manifest.json").is_file()
