"""Static checks of the dependency locks that `make lock` writes (README, Dependencies).

The three locks must be complete (every entry pinned and hashed, pip and setuptools too),
must agree with each other (the runtime and bench locks are made under the dev lock as a
constraint, so a shared package has one version everywhere) and must cover what
pyproject.toml asks for. A lock edited by hand or left stale after a dependency change
fails here before a fresh machine installs something CI never ran.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCKS = ("requirements.lock", "requirements-dev.lock", "requirements-bench.lock")
# One requirement of a pip-compile --generate-hashes file: `name==version \` and its hashes.
ENTRY = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)(?P<rest>.*)$")
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


def parse_lock(name: str) -> dict[str, str]:
    """The lock's pins, canonical name -> version; fails on anything but hashed pins."""
    text = (ROOT / name).read_text()
    # Join continuation lines: each requirement becomes one logical line.
    logical = re.sub(r"\\\n\s*", " ", text)
    pins: dict[str, str] = {}
    for line in logical.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = ENTRY.match(line)
        assert match, f"{name}: not a pinned requirement: {line[:80]!r}"
        key = canonicalize_name(match["name"])
        assert key not in pins, f"{name}: {key} pinned twice"
        assert HASH.search(match["rest"]), f"{name}: {key} has no sha256 hash"
        pins[key] = match["version"]
    return pins


def pyproject_names(*extras: str) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in extras:
        wanted += project["optional-dependencies"][extra]
    return {canonicalize_name(Requirement(spec).name) for spec in wanted}


@pytest.mark.parametrize("lock", LOCKS)
def test_every_entry_is_pinned_and_hashed_pip_and_setuptools_included(lock: str) -> None:
    pins = parse_lock(lock)
    assert {"pip", "setuptools"} <= pins.keys(), sorted(pins)


@pytest.mark.parametrize("lock", LOCKS)
def test_no_machine_specific_index_or_editable_lines(lock: str) -> None:
    text = (ROOT / lock).read_text()
    for option in ("--index-url", "--extra-index-url", "--find-links", "-e ", "file://"):
        assert option not in text, f"{lock} names {option.strip()}"


@pytest.mark.parametrize(
    ("lock", "extras"),
    [
        ("requirements.lock", ()),
        ("requirements-dev.lock", ("dev",)),
        ("requirements-bench.lock", ("dev", "bench")),
    ],
)
def test_each_lock_covers_what_pyproject_asks_for(lock: str, extras: tuple[str, ...]) -> None:
    missing = pyproject_names(*extras) - parse_lock(lock).keys()
    assert not missing, f"{lock} lacks {sorted(missing)}: run make lock"


def test_the_locks_nest_with_one_version_per_package() -> None:
    run, dev, bench = (parse_lock(lock) for lock in LOCKS)
    for small, small_name, big, big_name in (
        (run, "requirements.lock", dev, "requirements-dev.lock"),
        (dev, "requirements-dev.lock", bench, "requirements-bench.lock"),
    ):
        outside = sorted(small.keys() - big.keys())
        assert not outside, f"in {small_name} but not {big_name}: {outside}"
        differ = {k: (v, big[k]) for k, v in small.items() if big[k] != v}
        assert not differ, f"{small_name} vs {big_name}: {differ}"
    # matplotlib stays out of the venv `make test` builds.
    assert "matplotlib" in bench and "matplotlib" not in dev


def test_no_file_names_the_removed_constraints() -> None:
    files = ["Makefile", "Containerfile", "README.md", "deploy/README.md", "bench/README.md"]
    files += [str(p.relative_to(ROOT)) for p in (ROOT / "systemd").glob("*.service")]
    stale = [f for f in files if "constraints.txt" in (ROOT / f).read_text()]
    assert not stale, f"still naming constraints.txt: {stale}"
