"""The README's architecture section names every module of the programs, the shared
package and the testing toolkit (issue 10): a module added, moved or removed without the
README fails here. A package's ``__init__.py`` is named through its modules."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTED = ("chat", "chatd", "chatctl", "director", "chat_testing")


def architecture_section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("### Architecture")
    end = readme.index("\n### ", start + 1)
    return readme[start:end]


def modules() -> list[str]:
    found = []
    for package in DOCUMENTED:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name == "__init__.py":
                continue
            found.append(path.relative_to(ROOT).as_posix())
    return found


def named(section: str) -> set[str]:
    """The module paths the section names, each written in full (``chatd/core/node.py``)."""
    return set(re.findall(r"[\w/]+\.py", section))


def test_every_module_is_named_in_the_architecture_section() -> None:
    section = architecture_section()
    paths = named(section)
    missing = [m for m in modules() if m not in paths]
    assert not missing, f"README's Architecture does not name: {', '.join(missing)}"


def test_the_section_names_no_module_that_is_gone() -> None:
    gone = [p for p in named(architecture_section()) if not (ROOT / p).is_file()]
    assert not gone, f"README's Architecture names modules that do not exist: {gone}"
