"""Team-mode accounts on a real SQLite file: hashing, sessions, expiry, back-off, ownership."""

from __future__ import annotations

import contextlib

import pytest

from jobs.people import auth
from jobs.store.db import connect


@pytest.fixture
def db(tmp_path):
    return connect(tmp_path / "tb.db")


def test_passwords_are_stored_as_argon2_hashes(db):
    auth.add_user(db, "ada", "correct horse battery")
    row = next(db.query("SELECT password_hash FROM users WHERE name = 'ada'"))
    assert row["password_hash"].startswith("$argon2id$")
    assert "correct horse" not in row["password_hash"]


def test_there_is_no_default_account(db):
    assert auth.list_users(db) == []
    for name, pw in [("admin", "admin"), ("admin", "password"), ("root", "")]:
        with pytest.raises(auth.InvalidCredentials):
            auth.login(db, name, pw)


@pytest.mark.parametrize(
    ("name", "pw", "error"),
    [("ada", "short", auth.WeakPassword), ("Bad Name", "long enough pw", auth.AuthError)],
)
def test_weak_passwords_and_bad_names_are_refused(db, name, pw, error):
    with pytest.raises(error):
        auth.add_user(db, name, pw)
    assert auth.list_users(db) == []


def test_duplicate_user_is_refused(db):
    auth.add_user(db, "ada", "correct horse battery")
    with pytest.raises(auth.UserExists):
        auth.add_user(db, "ada", "another long password")


def test_login_gives_a_session_that_expires(db, monkeypatch):
    auth.add_user(db, "ada", "correct horse battery")
    token = auth.login(db, "ada", "correct horse battery", now=1000.0)
    assert auth.session_user(db, token, now=1001.0)["name"] == "ada"
    assert auth.session_user(db, token, now=1000.0 + auth.session_ttl_s() + 1) is None
    assert auth.session_user(db, token, now=1001.0) is None, "an expired session is deleted"
    assert auth.session_user(db, "forged-token") is None


def test_logout_ends_the_session(db):
    auth.add_user(db, "ada", "correct horse battery")
    token = auth.login(db, "ada", "correct horse battery")
    auth.logout(db, token)
    assert auth.session_user(db, token) is None


def test_wrong_passwords_fail_and_then_back_off(db):
    auth.add_user(db, "ada", "correct horse battery")
    t = 5000.0
    for _ in range(auth.FREE_ATTEMPTS):
        with pytest.raises(auth.InvalidCredentials):
            auth.login(db, "ada", "guess", now=t)
    # the 4th failure starts the back-off …
    with pytest.raises(auth.InvalidCredentials):
        auth.login(db, "ada", "guess", now=t)
    # … during which even the right password is refused without being checked
    with pytest.raises(auth.TooManyAttempts) as e:
        auth.login(db, "ada", "correct horse battery", now=t + 0.5)
    assert 0 < e.value.retry_after <= 1
    # back-off doubles with each further failure
    with pytest.raises(auth.InvalidCredentials):
        auth.login(db, "ada", "guess", now=t + 1.1)
    with pytest.raises(auth.TooManyAttempts) as e:
        auth.login(db, "ada", "correct horse battery", now=t + 2.0)
    assert e.value.retry_after == pytest.approx(1.1 + 2 - 2.0)
    assert auth.login(db, "ada", "correct horse battery", now=t + 10)
    assert auth.get_user(db, "ada")["failed_attempts"] == 0, "a success resets the counter"


def test_backoff_is_capped():
    assert auth.backoff_s(3) == 0
    assert auth.backoff_s(4) == 1 and auth.backoff_s(5) == 2
    assert auth.backoff_s(100) == auth.MAX_BACKOFF_S


def test_only_owner_or_admin_may_modify(db):
    member = auth.add_user(db, "bob", "bobs long password")
    admin = auth.add_user(db, "ada", "correct horse battery", admin=True)
    assert auth.may_modify(member, "bob")
    assert not auth.may_modify(member, "carol")
    assert auth.may_modify(admin, "carol")
    with pytest.raises(auth.NotAllowed, match="carol"):
        auth.require_modify(member, "carol", "run 7")


def test_new_password_ends_existing_sessions(db):
    auth.add_user(db, "ada", "correct horse battery")
    token = auth.login(db, "ada", "correct horse battery")
    auth.set_password(db, "ada", "a brand new passphrase")
    assert auth.session_user(db, token) is None
    assert auth.login(db, "ada", "a brand new passphrase")


def test_cli_user_add_creates_a_hashed_user_and_refuses_weak_passwords(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "TRAINBOARD_HOME": str(tmp_path)}

    def tb(*args, stdin=""):
        return subprocess.run(
            [sys.executable, "-m", "jobs.cli", "user", *args],
            input=stdin,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    ok = tb("add", "ada", "--admin", "--password-stdin", stdin="correct horse battery\n")
    assert ok.returncode == 0 and "ada created (admin)" in ok.stdout
    weak = tb("add", "bob", "--password-stdin", stdin="short\n")
    assert weak.returncode == 2 and "at least 10 characters" in weak.stderr
    db = connect(tmp_path / "trainboard.db")
    assert [u["name"] for u in auth.list_users(db)] == ["ada"]
    assert auth.login(db, "ada", "correct horse battery")


# --- hardening (issue 12: findings 5, 6, 11) --------------------------------------------------


@pytest.mark.parametrize("pw", ["          ", "aaaaaaaaaaaa", "abababababab", "x" * 1025, "short"])
def test_passwords_need_some_strength_and_have_a_maximum(db, pw):
    with pytest.raises(auth.WeakPassword):
        auth.add_user(db, "ada", pw)
    auth.add_user(db, "ada", "correct horse battery")
    with pytest.raises(auth.WeakPassword):
        auth.set_password(db, "ada", pw)


def test_session_tokens_are_stored_hashed(db):
    auth.add_user(db, "ada", "correct horse battery")
    token = auth.login(db, "ada", "correct horse battery")
    stored = [r["token"] for r in db.query("SELECT token FROM sessions")]
    assert token not in stored and len(stored) == 1  # a copy of the database opens no session
    assert auth.session_user(db, token)["name"] == "ada"
    assert auth.session_user(db, stored[0]) is None  # the stored value is not a token


def test_someone_guessing_elsewhere_never_keeps_the_real_user_out(db):
    auth.add_user(db, "ada", "correct horse battery")
    t = 1000.0
    for i in range(40):  # an attacker guesses from one address, once every 5 minutes or faster
        with pytest.raises((auth.InvalidCredentials, auth.TooManyAttempts)):
            auth.login(db, "ada", f"guess {i}", client="203.0.113.9", now=t + i * 10)
    # ada, from her own browser, gets in at once with the right password
    assert auth.login(db, "ada", "correct horse battery", client="198.51.100.7", now=t + 400)
    # while the attacker's address stays in back-off
    with pytest.raises(auth.TooManyAttempts):
        auth.login(db, "ada", "correct horse battery", client="203.0.113.9", now=t + 401)


def test_unknown_and_known_names_answer_alike(db):
    """No enumeration: the sixth wrong password gets the same answer for a real user and for a
    name that doesn't exist."""
    auth.add_user(db, "ada", "correct horse battery")

    def answers(name: str) -> list[str]:
        out = []
        for i in range(8):
            try:
                auth.login(db, name, f"wrong {i}", client="c", now=5000.0 + i * 0.1)
            except auth.AuthError as e:
                out.append(type(e).__name__)
        return out

    assert (
        answers("ada")
        == answers("nobody")
        == ["InvalidCredentials"] * 3 + ["InvalidCredentials"] + ["TooManyAttempts"] * 4
    )


def test_parallel_guesses_cannot_slip_past_the_counter(tmp_path):
    """16 threads × 10 wrong passwords at once: every attempt is counted before its password is
    checked, so only the free attempts (and none during back-off) ever reach argon2."""
    import threading

    path = tmp_path / "tb.db"
    auth.add_user(connect(path), "ada", "correct horse battery")
    checked = []
    real_verify = auth._verify

    def counting_verify(hash_, password):
        checked.append(password)
        return real_verify(hash_, password)

    auth._verify = counting_verify
    try:

        def guess(k: int) -> None:
            db = connect(path)
            for i in range(10):
                with contextlib.suppress(auth.AuthError):
                    auth.login(db, "ada", f"t{k} guess {i}", client="one-place", now=9000.0)

        threads = [threading.Thread(target=guess, args=(k,)) for k in range(16)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    finally:
        auth._verify = real_verify
    assert len(checked) <= auth.FREE_ATTEMPTS + 1
