"""The conda environments of the rule groups pin the same versions as pyproject.toml."""

from __future__ import annotations

import re
import tomllib

import pytest
import yaml

from conftest import REPO

PIN = re.compile(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==(\S+)$")


def pins(requirements) -> dict[str, str]:
    out = {}
    for req in requirements:
        m = PIN.match(req.strip())
        if m:
            out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


PROJECT = pins(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"])


@pytest.mark.parametrize("env", sorted((REPO / "envs").glob("*.yaml")), ids=lambda p: p.name)
def test_env_pins_match_pyproject(env):
    spec = yaml.safe_load(env.read_text())
    pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict) and "pip" in d)
    env_pins = pins(pip)
    assert env_pins, f"{env.name} pins nothing"
    for name, version in env_pins.items():
        assert PROJECT.get(name) == version, f"{env.name}: {name}=={version}, pyproject has {PROJECT.get(name)}"


def test_rules_use_existing_envs():
    for smk in (REPO / "rules").glob("*.smk"):
        for env in re.findall(r'conda:\s*\n\s*"\.\./(envs/[^"]+)"', smk.read_text()):
            assert (REPO / env).exists(), f"{smk.name} names {env}"
