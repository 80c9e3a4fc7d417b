"""Babel extractors for the texts the dashboard shows but the engine owns: every preset's
title, summary, "good for" and each setting's "why" (``engine/presets/*.toml``), the tip
titles (``engine/tips.py``), the bundled samples' descriptions (``engine/data/builtins.py``)
and the run statuses' words (``engine/vocab.py``). ``app/locale/babel.cfg`` names them; see
docs/dashboard.md, "Languages". Standard library only: ``pybabel extract`` imports this module."""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from typing import Any, BinaryIO

Extracted = tuple[int, str | None, str, list[str]]


def _line_of(lines: list[str], text: str) -> int:
    """The first line holding the start of ``text`` (for the reference in the catalogue)."""
    head = text[:40]
    for i, line in enumerate(lines, 1):
        if head in line:
            return i
    return 1


def extract_presets(
    fileobj: BinaryIO, keywords: Any, comment_tags: Any, options: dict[str, Any]
) -> Iterator[Extracted]:
    """A preset file's texts: title, summary, suited_for, and each [[set]]'s why."""
    source = fileobj.read().decode("utf-8")
    lines = source.splitlines()
    preset = tomllib.loads(source)
    name = preset.get("name", "?")
    for key in ("title", "summary", "suited_for"):
        if preset.get(key):
            yield _line_of(lines, preset[key]), None, preset[key], [f"preset {name}: {key}"]
    for s in preset.get("set", []):
        if s.get("why"):
            comment = f"preset {name}: why {s.get('field')} = {s.get('value')!r} ({s.get('tip')})"
            yield _line_of(lines, s["why"]), None, s["why"], [comment]


def extract_dict(
    fileobj: BinaryIO, keywords: Any, comment_tags: Any, options: dict[str, Any]
) -> Iterator[Extracted]:
    """The string values of a module-level dict literal: option ``name`` names it (``TIPS``
    in engine/tips.py, ``BUILTINS`` in engine/data/builtins.py, ``STATUS_WORDS`` in
    engine/vocab.py, whose keys are enum members)."""
    name = options.get("name", "")
    tree = ast.parse(fileobj.read().decode("utf-8"))
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        if not (isinstance(target, ast.Name) and target.id == name):
            continue
        value = node.value
        if isinstance(value, ast.Dict):
            for k, v in zip(value.keys, value.values, strict=True):
                if k is not None and isinstance(v, ast.Constant) and isinstance(v.value, str):
                    key = repr(k.value) if isinstance(k, ast.Constant) else ast.unparse(k)
                    yield v.lineno, None, v.value, [f"{name}[{key}]"]
