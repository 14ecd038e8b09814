"""docs/method.md keeps its numbered sections, and every citation of it points at one."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METHOD = (ROOT / "docs" / "method.md").read_text(encoding="utf-8")
CITATION = re.compile(r"docs/method\.md,? (?:section|§) ?(\d+)", re.I)
SEARCHED = ("spl_sdk", "plugins", "apps", "tests", "benchmarks", "docs")


def section_numbers() -> list[int]:
    """The numbers of the '## N. Title' headings, in order."""
    return [int(n) for n in re.findall(r"^## (\d+)\. \S", METHOD, flags=re.M)]


def test_sections_are_numbered_one_to_ten() -> None:
    assert section_numbers() == list(range(1, 11))


def test_every_citation_names_an_existing_section() -> None:
    known = set(section_numbers())
    files = [ROOT / "README.md", ROOT / "BENCHMARKS.md"]
    files += [p for folder in SEARCHED for p in (ROOT / folder).rglob("*")
              if p.suffix in (".py", ".md") and ".venv" not in p.parts]
    bad = [f"{p.relative_to(ROOT)}: section {n}" for p in files
           for n in CITATION.findall(p.read_text(encoding="utf-8", errors="replace"))
           if int(n) not in known]
    assert not bad, bad

