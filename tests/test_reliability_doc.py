"""docs/reliability.md cites tests that exist: a renamed or deleted test breaks this, not the table."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")


def cited() -> list[tuple[str, str]]:
    """(file, test name) for every `tests/FILE::NAME` and every `::NAME` continuing the last file."""
    out, current = [], None
    for path, name in re.findall(r"`(tests/[\w/]+\.py)?::(\w+)`", DOC):
        current = path or current
        assert current, f"'::{name}' cites no file"
        out.append((current, name))
    return out


def test_the_table_cites_tests():
    assert len(cited()) >= 40


@pytest.mark.parametrize(("path", "name"), cited())
def test_every_cited_test_exists(path: str, name: str):
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    assert name in names, f"docs/reliability.md cites {path}::{name}, which does not exist"
