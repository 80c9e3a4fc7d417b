"""The layout's rules, checked on the source: one door from the app into jobs, no import
cycles, an engine that stays a plain library, short functions in the training loop, and a
dashboard that draws its charts without torch."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("app", "engine", "jobs")
# What a page may import besides the standard library and its own package.
# starlette: the server Streamlit runs on; app/server.py hands st.App its Middleware.
# uvicorn: the HTTP server under it, whose protocol gets the header timeout (app/hardening.py)
APP_THIRD_PARTY = {
    "streamlit",
    "starlette",
    "uvicorn",
    "pandas",
    "altair",
    "numpy",
    "sqlite_utils",
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(p): p
        for pkg in PACKAGES
        for p in (ROOT / pkg).rglob("*.py")
        if ".venv" not in p.parts
    }


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every module this file imports, at any depth (function-level imports count too)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            for a in node.names:  # `from jobs.store import registry` imports a submodule
                if f"{node.module}.{a.name}" in modules:
                    out.add(f"{node.module}.{a.name}")
    return out


# Tools that build the catalogues, run by hand and by the tests, never by the server.
APP_TOOLS = {"app.babel_hant": {"babel", "opencc"}}


def test_the_app_enters_jobs_through_the_service_module_only():
    modules = _modules()
    stdlib = set(sys.stdlib_module_names)
    bad = []
    for name, path in modules.items():
        if not name.startswith("app"):
            continue
        tools = APP_TOOLS.get(name, set())
        for imp in _imports(path, modules):
            top = imp.split(".")[0]
            if top == "app" or top in stdlib or top in APP_THIRD_PARTY or imp == "jobs.service":
                continue
            if top in tools:
                continue
            if imp == "jobs" and "from jobs import service" in path.read_text():
                continue
            bad.append(f"{name} imports {imp}")
    assert bad == [], (
        "app/ may import only jobs.service (plus streamlit, starlette, uvicorn, pandas, altair):\n"
        + "\n".join(bad)
    )


def test_the_cli_enters_jobs_through_the_service_module_only():
    """The CLI goes through jobs.service as the pages do (issue 19): of jobs, it imports only
    the service and its own modules."""
    modules = _modules()
    bad = [
        f"{name} imports {imp}"
        for name, path in modules.items()
        if name.startswith("jobs.cli")
        for imp in _imports(path, modules)
        if imp.split(".")[0] == "jobs"
        and imp != "jobs.service"
        and not imp.startswith("jobs.cli")
        and not (imp == "jobs" and "from jobs import service" in path.read_text())
    ]
    assert bad == []


def test_jobs_is_sub_packages_with_at_most_three_top_level_modules():
    """jobs/ by concept: the service (the door), the named errors and the package itself; every
    other module lives in a sub-package whose docstring says what it owns."""
    top = sorted(p.name for p in (ROOT / "jobs").glob("*.py"))
    assert len(top) <= 3, top
    for pkg in (ROOT / "jobs").iterdir():
        if pkg.is_dir() and (pkg / "__init__.py").exists():
            doc = ast.get_docstring(ast.parse((pkg / "__init__.py").read_text()))
            assert doc, f"jobs/{pkg.name}/__init__.py needs a docstring saying what it owns"


# A string literal that is a SQL statement, told from a label by the shape only SQL has
# ("Delete this run" is a label, "DELETE FROM runs" a statement; "Select runs" a label).
SQL_STATEMENT = re.compile(
    r"\s*(?:(?-i:SELECT)\s|SELECT\b.*\bFROM\b|INSERT\s+(?:OR\s+\w+\s+)?INTO\b"
    r"|REPLACE\s+INTO\b|UPDATE\s+\S+\s+SET\b|DELETE\s+FROM\b"
    r"|BEGIN(?:\s+(?:IMMEDIATE|EXCLUSIVE|DEFERRED))?(?:\s+TRANSACTION)?\s*;?\s*$"
    r"|(?:COMMIT|ROLLBACK)\s*;?\s*$|WITH\s+(?:RECURSIVE\s+)?\w+\s*(?:\([^)]*\))?\s+AS\s*\()",
    re.IGNORECASE | re.DOTALL,
)
# Where hand-written SQL belongs: the store.
SQL_HOMES = ("jobs/store/",)
# Not the store, so not counted: the spool of a worker on another host (issue 22) is that
# worker's private SQLite file on its own disk, opened with sqlite3 by the worker and its run
# processes; the server never opens it and it has none of the store's tables or migrations
# (docs/store.md, "Who owns which table"). Exactly this module, not the rest of jobs/remote/.
NOT_THE_STORE = ("jobs/remote/spool.py",)


def sql_outside_the_store(root: Path = ROOT) -> list[str]:
    """Every string literal in app/ and jobs/ outside SQL_HOMES and NOT_THE_STORE that is a
    SQL statement (an implicitly concatenated string counts once, a docstring not at all), as
    "path:line"."""
    found = []
    for pkg in ("app", "jobs"):
        for path in sorted((root / pkg).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if rel.startswith(SQL_HOMES) or rel in NOT_THE_STORE:
                continue
            tree = ast.parse(path.read_text(), rel)
            docs = {
                id(node.body[0].value)
                for node in ast.walk(tree)
                if isinstance(
                    node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
                )
                and node.body
                and isinstance(node.body[0], ast.Expr)
            }
            found += [
                f"{rel}:{node.lineno}"
                for node in ast.walk(tree)
                if isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in docs
                and SQL_STATEMENT.match(node.value)
            ]
    return found


def test_fewer_than_six_sql_statements_sit_outside_the_store():
    """The store owns the tables (issue 19): outside jobs/store/, code calls its functions or
    sqlite-utils' table API (get, rows_where, count_where, upsert, delete_where)."""
    found = sql_outside_the_store()
    assert len(found) < 6, "hand-written SQL outside jobs/store/:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "text, is_sql",
    [
        ("SELECT value FROM user_settings WHERE user = ?", True),
        ("select id from runs", True),
        ("INSERT OR IGNORE INTO runs (id) VALUES (?)", True),
        ("UPDATE users SET password_hash = ? WHERE name = ?", True),
        ("DELETE FROM sessions WHERE token = ?", True),
        ("BEGIN IMMEDIATE", True),
        ("WITH b AS (SELECT 1) SELECT * FROM b", True),
        ("Delete this run", False),
        ("Select runs", False),
        ("Update / weight ratio per layer (log scale; target ≈ 1e-3, T6)", False),
        ("with the change", False),
        ("delete a user and end their sessions", False),
    ],
)
def test_the_sql_count_tells_statements_from_labels(text, is_sql):
    assert bool(SQL_STATEMENT.match(text)) is is_sql


def test_the_sql_count_finds_a_statement_outside_the_store(tmp_path):
    (tmp_path / "jobs" / "store").mkdir(parents=True)
    (tmp_path / "app").mkdir()
    (tmp_path / "jobs" / "store" / "db.py").write_text('Q = "SELECT * FROM runs"\n')
    (tmp_path / "app" / "page.py").write_text(
        '"""SELECT a docstring FROM here."""\nLABEL = "Delete this run"\n'
        'def f(db):\n    return db.execute("SELECT count(*) "\n    "FROM runs WHERE id = ?")\n'
    )
    # jobs/remote/ counts like any package; only the worker's spool file is not the store
    (tmp_path / "jobs" / "remote").mkdir()
    (tmp_path / "jobs" / "remote" / "spool.py").write_text('Q = "DELETE FROM chunks"\n')
    (tmp_path / "jobs" / "remote" / "ingest.py").write_text('Q = "UPDATE runs SET x = 1"\n')
    assert sql_outside_the_store(tmp_path) == ["app/page.py:4", "jobs/remote/ingest.py:1"]


def test_the_engine_imports_neither_jobs_nor_app_nor_services():
    modules = _modules()
    banned = {"jobs", "app", "celery", "kombu", "streamlit", "sqlite3", "sqlite_utils", "redis"}
    bad = [
        f"{name} imports {imp}"
        for name, path in modules.items()
        if name.startswith("engine")
        for imp in _imports(path, modules)
        if imp.split(".")[0] in banned
    ]
    assert bad == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_between_modules():
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        # A package's __init__ is not an edge target for its own submodules' `from pkg import x`.
        graph[name] = {
            i
            for i in _imports(path, modules)
            if i in modules and i != name and not name.startswith(i + ".")
        }
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_cycle():
    # The checker itself must bite: tasks ↔ worker was the cycle this layout removed.
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_function_in_the_engine_is_longer_than_100_lines():
    long = []
    for name, path in _modules().items():
        if not name.startswith("engine"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > 100:
                    long.append(f"{name}.{node.name}: {n} lines")
    assert long == []


def test_drawing_a_runs_charts_imports_no_torch(tmp_path):
    """The dashboard process reads what the engine recorded (LR cuts, plateau hints) and draws
    it: no torch, not even for the "a cut would have helped" marks of a fixed-LR run."""
    script = textwrap.dedent(
        """
        import sys
        from jobs.store import registry
        from jobs.store.db import connect, db_path
        from jobs.store.writer import MetricWriter
        from app import charts

        db = connect()
        spec = {"schedule": {"enabled": False}, "train": {"clip_norm": None}}
        rid = registry.create_run(db, spec=spec, preset="quick")
        with MetricWriter(db_path(), rid) as w:
            for s in range(1, 41):
                w.log(s, {"train/loss": 1.0 / s, "lr": 0.1})
                if s % 10 == 0:
                    w.log(s, {"val/loss": 0.5})
            w.event(40, "plateau_hint", "a cut would have helped here", {"tip": "T7", "old_lr": 0.1, "new_lr": 0.05})
            w.event(20, "lr_cut", "cut", {"tip": "T7", "old_lr": 0.1, "new_lr": 0.05})
        data = charts.run_chart_data(db, rid, spec=spec, cache=charts.RunCache(rid))
        figs = charts.run_charts(data)
        assert list(data.hints["step"]) == [40], data.hints
        assert list(data.events["kind"]) == ["lr_cut"], data.events
        assert figs["loss"] is not None
        print("torch" in sys.modules)
        """
    )
    env = {"TRAINBOARD_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False", "drawing the charts imported torch"
