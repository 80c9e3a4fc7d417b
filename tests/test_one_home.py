"""One home per concept (issue 19, item 2): run statuses, event kinds, tips with their off switch
and the limits torch-free code shares are each defined in exactly one torch-free engine module.
Everyone else imports them. These tests read the source of app/, jobs/ and engine/ (not tests/)
and fail on a second definition: a name assigned again, or a literal list of the values.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.tips import TIP_OFF, TIPS
from engine.vocab import ACTIVE, STATUS_COLORS, STATUS_WORDS, TERMINAL, EventKind, RunStatus

ROOT = Path(__file__).resolve().parents[1]
TREES = ("app", "jobs", "engine")

# Each concept's home, and the names only it may assign.
HOMES: dict[str, tuple[str, ...]] = {
    "engine/vocab.py": (
        "RunStatus",
        "EventKind",
        "ACTIVE",
        "TERMINAL",
        "FINAL",
        "STATUS_WORDS",
        "STATUS_COLORS",
    ),
    "engine/tips.py": ("TIPS", "TIP_OFF"),
    "engine/limits.py": ("EXTENSIONS", "TABLE_EXTENSIONS", "MAX_COLUMNS", "CHECKPOINT", "MODEL"),
}
OWNER = {name: home for home, names in HOMES.items() for name in names}
FILE_NAMES = ("checkpoint.pt", "model.pt")  # engine.limits.CHECKPOINT and MODEL

# Copies still in files another change is rewriting; each goes once that file imports the name
# from its home (and this test fails on an entry that is no longer there, so the list shrinks).
PENDING: set[tuple[str, str]] = set()


def sources() -> Iterator[tuple[str, ast.Module]]:
    for tree in TREES:
        for path in sorted((ROOT / tree).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            yield rel, ast.parse(path.read_text(encoding="utf-8"), filename=rel)


def _assigned(module: ast.Module) -> Iterator[tuple[str, int]]:
    """Every name the module binds by assignment or as a class, at any depth."""
    for node in ast.walk(module):
        if isinstance(node, ast.ClassDef):
            yield node.name, node.lineno
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            targets = [node.target]
        for t in targets:
            for n in ast.walk(t):
                if isinstance(n, ast.Name):
                    yield n.id, node.lineno


def _literals(module: ast.Module) -> Iterator[tuple[set[str], int]]:
    """The string constants of every tuple, list, set or dict literal (a dict: its keys)."""
    for node in ast.walk(module):
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            items = node.elts
        elif isinstance(node, ast.Dict):
            items = [k for k in node.keys if k is not None]
        else:
            continue
        strings = {
            e.value for e in items if isinstance(e, ast.Constant) and isinstance(e.value, str)
        }
        if strings:
            yield strings, node.lineno


STATUSES = {str(s) for s in RunStatus}
KINDS = {str(k) for k in EventKind}
TIP_IDS = set(TIPS)


def _copy_of(strings: set[str]) -> str | None:
    """Which concept a literal spells out by hand, if any: most of its strings are values of
    one concept, and enough of them to be a list (a dict of mixed keys that names a status or
    two, like Home's counts, is not one)."""

    def mostly(values: set[str], enough: int) -> bool:
        hits = strings & values
        return len(hits) >= enough and 2 * len(hits) > len(strings)

    if mostly(STATUSES, 3) or ({"queued", "running"} <= strings and mostly(STATUSES, 2)):
        return "run statuses (engine.vocab.RunStatus, ACTIVE, TERMINAL)"
    if mostly(KINDS - STATUSES, 3):
        return "event kinds (engine.vocab.EventKind)"
    if mostly(TIP_IDS, 3):
        return "tips (engine.tips.TIPS, TIP_OFF)"
    return None


def second_definitions() -> list[str]:
    found = []
    for rel, module in sources():
        for name, line in _assigned(module):
            home = OWNER.get(name)
            if home is not None and home != rel:
                found.append((rel, name, f"{rel}:{line}: {name} is defined in {home}"))
        if rel in HOMES:
            continue
        for strings, line in _literals(module):
            if what := _copy_of(strings):
                found.append((rel, "literal", f"{rel}:{line}: a literal list of {what}"))
        for node in ast.walk(module):
            if isinstance(node, ast.Constant) and node.value in FILE_NAMES:
                found.append(
                    (rel, repr(node.value), f"{rel}:{node.lineno}: {node.value!r} is engine.limits")
                )
    return sorted(
        {(rel, what, msg) for rel, what, msg in found if (rel, what) not in PENDING},
        key=lambda x: x[2],
    )


def pending_left() -> set[tuple[str, str]]:
    seen = set()
    for rel, module in sources():
        seen |= {(rel, name) for name, _ in _assigned(module)}
        seen |= {
            (rel, repr(n.value))
            for n in ast.walk(module)
            if isinstance(n, ast.Constant) and n.value in FILE_NAMES
        }
    return PENDING & seen


def test_each_concept_is_defined_once():
    found = second_definitions()
    assert found == [], "a second definition; import it from its home instead:\n" + "\n".join(
        msg for _rel, _what, msg in found
    )


def test_the_pending_copies_are_still_there():
    """An entry of PENDING whose copy is gone: remove it from the list."""
    assert pending_left() == PENDING, sorted(PENDING - pending_left())


def test_the_check_finds_a_copy(tmp_path, monkeypatch):
    """The grep itself works: each kind of copy, written into a scratch tree, is found."""
    for tree in TREES:
        (tmp_path / tree).mkdir()
    (tmp_path / "jobs" / "copies.py").write_text(
        "ACTIVE = ('queued', 'running', 'lost')\n"
        "FINISHED = {'finished', 'failed', 'diverged'}\n"
        "KINDS = ['lr_cut', 'lr_floor', 'early_stop']\n"
        "OFF = {'T2': {}, 'T7': {}, 'T9': {}}\n"
        "def tip_off():\n"
        "    TIP_OFF = {}\n"
        "NAME = 'checkpoint.pt'\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = "\n".join(msg for _rel, _what, msg in second_definitions())
    for expect in (
        "copies.py:1: ACTIVE is defined in engine/vocab.py",
        "copies.py:1: a literal list of run statuses",
        "copies.py:2: a literal list of run statuses",
        "copies.py:3: a literal list of event kinds",
        "copies.py:4: a literal list of tips",
        "copies.py:6: TIP_OFF is defined in engine/tips.py",
        "copies.py:7: 'checkpoint.pt' is engine.limits",
    ):
        assert expect in found, found


def test_each_status_is_active_or_terminal_and_has_a_word_and_a_colour():
    assert set(ACTIVE) | set(TERMINAL) == set(RunStatus)
    assert not set(ACTIVE) & set(TERMINAL)
    assert set(STATUS_WORDS) == set(STATUS_COLORS) == set(RunStatus)


def test_every_tip_with_an_off_switch_is_a_tip():
    assert set(TIP_OFF) <= set(TIPS)


@pytest.mark.parametrize(
    "module", ["engine.vocab", "engine.tips", "engine.limits", "engine.shapes"]
)
def test_the_homes_import_no_torch(module):
    code = f"import sys, {module}; assert 'torch' not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_every_stop_reason_has_its_words_in_the_catalogue():
    """Stop reasons are defined once (engine.vocab.StopReason); their words are the message
    codes stop.<reason>, and nothing else spells them out."""
    from engine.catalogue import CATALOGUE
    from engine.vocab import StopReason

    assert {f"stop.{r}" for r in StopReason} == {c for c in CATALOGUE if c.startswith("stop.")}
    for rel, module in sources():
        for node in ast.walk(module):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "replace":
                args = [a.value for a in node.args if isinstance(a, ast.Constant)]
                assert args != ["_", " "], f"{rel}: a stop reason turned into words by hand"


# --- the door fails one way (issue 19) ---------------------------------------------------------


def test_every_error_the_door_raises_is_one_type_with_code_params_and_fields():
    """jobs.service fails only with engine.errors.Refused: the engine's, the store's, the
    logins' and the name guard's errors are its kinds, so a page catches one type."""
    from engine.errors import Refused
    from jobs import errors, service
    from jobs.people import auth
    from jobs.runs.names import TextRefused

    kinds = [
        service.ConfigError,
        service.DataError,
        service.StoreError,
        service.RunNotFound,
        service.DatasetNotFound,
        errors.RunActive,
        errors.DatasetInUse,
        auth.AuthError,
        auth.NotAllowed,
        auth.InvalidCredentials,
        auth.TooManyAttempts,
        TextRefused,
    ]
    assert service.Refused is Refused
    assert [k.__name__ for k in kinds if not issubclass(k, Refused)] == []
    e = errors.RunNotFound("no run with id 7")
    assert (e.code, e.params, e.fields) == ("run_not_found", {}, {})
    coded = TextRefused("run name", 201, 200)
    assert coded.code == "guard.too_long" and coded.params["length"] == 201


def test_a_refused_form_carries_each_field_and_the_message_of_one(tmp_path, monkeypatch):
    from jobs import service

    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path))
    ds = service.add_builtin(service.connect(), "builtin:breast-cancer", owner="local")
    with pytest.raises(service.Refused) as e:
        service.validate_run("quick", ds, {"train.epochs": 10_000})
    assert set(e.value.fields) == {"train.epochs"}
    assert (e.value.code, e.value.params["asked"]) == ("quota.epochs", 10_000)
    with pytest.raises(service.Refused) as e:
        service.validate_run("quick", ds, {"train.epochs": 10_000, "ensemble.members": 64})
    assert set(e.value.fields) == {"train.epochs", "ensemble.members"}
    with pytest.raises(service.Refused) as e:
        service.parse_lines("optim.lr=0.1\nnot a setting\n")
    assert e.value.fields
    assert service.parse_lines("optim.lr=0.1\n# a comment\n") == {"optim.lr": 0.1}
