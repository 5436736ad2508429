"""The set-up installs exactly the locked dependency set (requirements.lock), and the lock
is whole: it satisfies pyproject.toml's ranges and every locked package's requirements."""

from __future__ import annotations

import importlib.metadata
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
# `make setup` installs these extras; the data packages go in --no-deps, outside the lock.
EXTRAS = ("test", "llamacpp", "ray")
UNLOCKED = {"personasim", "pip", "wheel"}

pytestmark = pytest.mark.skipif(
    Path(sys.prefix).resolve() != (ROOT / ".venv").resolve(),
    reason="checks the .venv that `make setup` builds",
)


def _pins(path: Path) -> dict[str, Version]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", f"{path.name}: {line} is not an exact pin"
            pins[canonicalize_name(req.name)] = Version(spec.version)
    return pins


def _data_packages() -> set[str]:
    return set(_pins(ROOT / "requirements-data.txt"))


def test_the_venv_holds_the_locked_versions_and_nothing_else():
    lock = _pins(ROOT / "requirements.lock")
    # What pip installed (packages that vendor others, as Ray does, put them elsewhere).
    site = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    installed = {
        canonicalize_name(d.metadata["Name"]): Version(d.version)
        for d in importlib.metadata.distributions(path=site)
    }
    # torch's local label (+cpu) names its build, which is the machine's.
    wrong = {
        n: (str(v), str(lock[n]))
        for n, v in installed.items()
        if n in lock and Version(v.public) != lock[n]
    }
    missing = sorted(set(lock) - set(installed))
    extra = sorted(set(installed) - set(lock) - UNLOCKED - _data_packages())
    assert not wrong, f"installed (not locked) versions: {wrong}; run `make setup`"
    assert not missing, f"locked but not installed: {missing}; run `make setup`"
    assert not extra, f"installed but not locked: {extra}; add them to pyproject and `make lock`"


def test_the_lock_satisfies_pyproject_and_every_locked_requirement():
    lock = _pins(ROOT / "requirements.lock")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in project["dependencies"]]
    for extra in EXTRAS:
        wanted += [Requirement(r) for r in project["optional-dependencies"][extra]]
    seen: set[tuple[str, frozenset[str]]] = set()
    problems = []
    while wanted:
        req = wanted.pop()
        name = canonicalize_name(req.name)
        if (name, frozenset(req.extras)) in seen:
            continue
        seen.add((name, frozenset(req.extras)))
        if name not in lock:
            problems.append(f"{req} is not in the lock")
            continue
        if not req.specifier.contains(lock[name], prereleases=True):
            problems.append(f"the lock's {name}=={lock[name]} does not satisfy {req}")
        for sub in importlib.metadata.requires(name) or []:
            sub_req = Requirement(sub)
            envs = [{**default_environment(), "extra": e} for e in ("", *req.extras)]
            if sub_req.marker is None or any(sub_req.marker.evaluate(env) for env in envs):
                wanted.append(sub_req)
    assert not problems, "; ".join(problems) + ": run `make lock`"


def test_setup_installs_the_pinned_torch():
    """`make setup` installs torch first, on its own: the version it names is the pin
    of constraints.txt and of the lock."""
    import re

    makefile = (ROOT / "Makefile").read_text()
    named = re.findall(r"install --quiet torch==(\S+)$", makefile, re.M)
    assert len(named) == 1, "make setup must install exactly one pinned torch"
    for pins in ("constraints.txt", "requirements.lock"):
        assert f"torch=={named[0]}\n" in (ROOT / pins).read_text(), pins
