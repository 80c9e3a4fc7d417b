"""Team mode in the dashboard (TRAINBOARD_TEAM=1), under AppTest on a real database: only the
login page without a session; wrong passwords fail and are slowed; owners and admins only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from jobs.people import auth
from jobs.runs.submit import submit
from jobs.store import registry
from jobs.store.db import connect

MAIN = str(Path(__file__).resolve().parents[1] / "app" / "main.py")
PAGES = ("home", "datasets", "new_run", "runs", "run_detail", "compare")


@pytest.fixture
def team(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINBOARD_HOME", str(tmp_path))
    monkeypatch.setenv("TRAINBOARD_TEAM", "1")
    db = connect()
    auth.add_user(db, "ada", "ada's long password", admin=True)
    auth.add_user(db, "bob", "bob's long password")
    auth.add_user(db, "carol", "carol's long password")
    return db


def app(token: str | None = None, **state) -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=60)
    if token:
        at.session_state["tb_session_token"] = token
    for k, v in state.items():
        at.session_state[k] = v
    return at.run()


def _login(at: AppTest, name: str, password: str) -> AppTest:
    at.text_input(key="login_name").set_value(name)
    at.text_input(key="login_password").set_value(password)
    at.button[0].click()
    return at.run()


def test_without_a_session_only_the_login_page_exists(team):
    at = app()
    assert not at.exception
    assert [t.value for t in at.title] == ["Trainboard"]
    assert at.text_input(key="login_password")
    for name in PAGES:  # deep links to every page land on the login page too
        with pytest.raises(Exception):  # noqa: B017 (AppTest raises a bare Exception for unknown pages)
            at.switch_page(f"screens/{name}.py").run()


def test_a_wrong_password_fails_and_repeated_failures_are_slowed(team, monkeypatch):
    # A long back-off, so the page's reruns (each spends argon2 time) can't outlast it.
    monkeypatch.setattr(auth, "backoff_s", lambda n: 60.0 if n > auth.FREE_ATTEMPTS else 0.0)
    at = app()
    for _ in range(auth.FREE_ATTEMPTS + 1):
        at = _login(at, "bob", "not bob's password")
        assert "Wrong user name or password." in [e.value for e in at.error]
    at = _login(at, "bob", "bob's long password")  # right password, but during the back-off
    assert any("Too many failed attempts" in e.value for e in at.error)
    assert "Runs" not in [t.value for t in at.title]


def test_the_right_password_opens_the_dashboard_and_log_out_closes_it(team):
    at = _login(app(), "bob", "bob's long password")
    assert not at.exception and not at.error
    assert any("Logged in as **bob**" in c.value for c in at.caption)
    at.button(key="logout").click()
    at.run()
    assert at.text_input(key="login_password"), "back to the login page"


def test_an_expired_session_shows_the_login_page(team):
    token = auth.login(team, "bob", "bob's long password", now=1.0)  # expired long ago
    at = app(token)
    assert at.text_input(key="login_password")


def _carols_run(db) -> int:
    return submit("quick", "builtin:digits", owner="carol", db=db).run_id


def _cancel_on_run_page(db, user: str, password: str, run_id: int) -> AppTest:
    token = auth.login(db, user, password)
    at = app(token, run_id=run_id)
    at.switch_page("screens/run_detail.py").run()
    next(b for b in at.button if b.label == "Cancel this run").click()
    return at.run()


def test_a_member_cannot_cancel_another_members_run(team):
    run_id = _carols_run(team)
    at = _cancel_on_run_page(team, "bob", "bob's long password", run_id)
    assert not at.exception
    # (the message is shown literally: Markdown escapes in its source)
    assert any("only 'carol' or an admin" in re.sub(r"\\(.)", r"\1", w.value) for w in at.warning)
    assert registry.get_run(team, run_id)["status"] == "queued"


def test_the_owner_can_cancel_their_run(team):
    run_id = _carols_run(team)
    _cancel_on_run_page(team, "carol", "carol's long password", run_id)
    assert registry.get_run(team, run_id)["status"] == "cancelled"


def test_an_admin_can_cancel_anyones_run(team):
    run_id = _carols_run(team)
    _cancel_on_run_page(team, "ada", "ada's long password", run_id)
    assert registry.get_run(team, run_id)["status"] == "cancelled"


def test_datasets_and_runs_created_in_team_mode_record_their_owner(team):
    token = auth.login(team, "bob", "bob's long password")
    at = app(token)
    at.switch_page("screens/datasets.py").run()
    at.button(key="builtin-builtin:digits").click()
    at.run()
    assert not at.exception
    (ds,) = registry.list_datasets(team)
    assert ds["owner"] == "bob"
    at = app(token, dataset_id=ds["id"])
    at.switch_page("screens/new_run.py").run()
    next(b for b in at.button if b.label == "Queue run").click()
    at.run()
    assert not at.exception
    (run,) = registry.list_runs(team)
    assert run["owner"] == "bob"


def test_a_removed_user_loses_an_open_live_page_within_one_refresh(team):
    """Bob watches a running run; an admin removes him. The page's 2-second refresh (a fragment
    rerun, which never passes main.py's login check) sends him to the login page (issue 12, #9)."""
    from tests.test_app import fragment_rerun

    run_id = registry.create_run(team, spec={}, preset="quick", owner="bob", name="bob's run")
    registry.claim_run(team, run_id, worker="w", device="cpu")  # running: the page is live
    at = app(auth.login(team, "bob", "bob's long password"), run_id=run_id)
    at.switch_page("screens/run_detail.py").run()
    assert "Run detail" in [t.value for t in at.title]
    fragment_rerun(at)  # still logged in: the refresh draws the live part
    assert "login_password" not in [w.key for w in at.text_input]
    auth.remove_user(team, "bob")
    fragment_rerun(at)
    assert at.text_input(key="login_password"), "back to the login page"


def test_a_download_checks_the_session_when_it_is_clicked(team):
    """ "Best model" and the metrics CSV are read when clicked; a user removed after the page was
    drawn gets nothing (issue 12, #9)."""
    from app import ui

    token = auth.login(team, "bob", "bob's long password")
    download = ui.guarded_download(lambda: b"weights", token)
    assert download() == b"weights"
    auth.remove_user(team, "bob")
    with pytest.raises(PermissionError, match="log in again"):
        download()


def test_without_an_address_logins_back_off_per_browser_session_and_by_a_shared_rate(
    team, monkeypatch
):
    """AppTest sessions have no browser address, like clients behind an untrusted proxy. One
    session guessing bob's password is slowed; bob, in another session, still logs in (before
    issue 18 all such clients shared one bucket, so anyone could lock bob out). Many sessions
    together hit the shared rate."""
    monkeypatch.setattr(auth, "backoff_s", lambda n: 60.0 if n > auth.FREE_ATTEMPTS else 0.0)
    guesser = app()
    for _ in range(auth.FREE_ATTEMPTS + 1):
        guesser = _login(guesser, "bob", "not bob's password")
    guesser = _login(guesser, "bob", "bob's long password")
    assert any("Too many failed attempts" in e.value for e in guesser.error)
    bob = _login(app(), "bob", "bob's long password")
    assert not bob.error, [e.value for e in bob.error]
    assert "tb_session_token" in bob.session_state
    # The shared rate: the attempts so far count; past the limit every address-less session
    # waits for the minute to end, whatever name it tries.
    so_far = auth.FREE_ATTEMPTS + 1 + 1 + 1  # the guesses, the slowed try, bob
    monkeypatch.setenv("TRAINBOARD_LOGIN_UNKNOWN_PER_MIN", str(so_far))
    fresh = _login(app(), "carol", "not carol's password")
    assert any("Too many failed attempts" in e.value for e in fresh.error), fresh.error
