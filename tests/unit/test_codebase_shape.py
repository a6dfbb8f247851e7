"""The shape the design promises a maintainer: small modules, short functions, one word per concept,
optional capabilities checked by type. Read as a newcomer would; fails naming the place."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "ingest_workers"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 50


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_module_is_over_400_lines() -> None:
    long = [f"{p.relative_to(PACKAGE)}: {n}" for p in _modules()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES]
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_no_function_is_over_50_lines() -> None:
    long = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}: {length}")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_capabilities_are_types_not_getattr_defaults() -> None:
    """An optional capability of a source, stage or sink is a runtime-checkable Protocol, never
    ``getattr(obj, "name", default)`` (which hides a misspelt attribute as 'not capable')."""
    found = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
                    and len(node.args) == 3 and isinstance(node.args[0], ast.Name)
                    and node.args[0].id in {"source", "stage", "sink", "s"}):
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not found, f"getattr with a default on a source, stage or sink: {found}"


def test_the_word_domain_is_only_the_catalog_alias() -> None:
    """One word per concept: dataset. ``domain`` survives only where an old catalog or an old queued
    job still says it (the lines say so with the word 'alias')."""
    found = [f"{path.relative_to(PACKAGE)}:{number}"
             for path in _modules()
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if re.search(r"domain", line, re.IGNORECASE) and "alias" not in line]
    assert not found, f"'domain' outside the catalog alias: {found}"
