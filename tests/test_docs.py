"""Docs match the code: every setting is documented, the quick start is the two commands."""

from __future__ import annotations

import re
from pathlib import Path

from gridmon.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_in_the_readme_configuration_table() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("<!-- config:start -->", 1)[1].split("<!-- config:end -->", 1)[0]
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        env_names = alias.choices if alias is not None else [name]  # type: ignore[union-attr]
        for env_name in env_names:
            assert f"`{env_name}`" in table, env_name


def test_quick_start_is_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", quick, flags=re.S)
    assert block is not None
    commands = [line.split("#", 1)[0].strip() for line in block.group(1).splitlines() if line.strip()]
    assert commands == ["make run", "make test"]


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in (ROOT / ".ci/run").read_text()
