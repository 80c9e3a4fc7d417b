"""Administration: ``user`` (team-mode accounts), ``datasets`` (list, add FILE, remove) and
``token`` (worker tokens for hosts without a shared disk: create, list, revoke)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def add_user(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="user_command", required=True)
    add = sub.add_parser("add", help="create a user (asks for the password twice)")
    add.add_argument("name")
    add.add_argument(
        "--admin", action="store_true", help="may cancel and delete anyone's runs and datasets"
    )
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    sub.add_parser("list", help="list users")
    rm = sub.add_parser("remove", help="delete a user and end their sessions")
    rm.add_argument("name")
    pw = sub.add_parser("passwd", help="set a new password (ends the user's sessions)")
    pw.add_argument("name")
    pw.add_argument("--password-stdin", action="store_true")


def _read_password(args: argparse.Namespace) -> str:
    import getpass

    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise SystemExit("the two passwords differ; nothing was changed")
    return first


def cmd_user(args: argparse.Namespace) -> int:
    from jobs import service

    auth = service.auth
    db = service.connect()
    try:
        if args.user_command == "add":
            user = auth.add_user(db, args.name, _read_password(args), admin=args.admin)
            print(f"user {user['name']} created{' (admin)' if user['is_admin'] else ''}")
            if not auth.team_mode():
                print("note: team mode is off; set TRAINBOARD_TEAM=1 to require logins")
        elif args.user_command == "list":
            for u in auth.list_users(db):
                print(f"{u['name']}{'  (admin)' if u['is_admin'] else ''}")
        elif args.user_command == "remove":
            auth.remove_user(db, args.name)
            print(f"user {args.name} removed")
        else:
            auth.set_password(db, args.name, _read_password(args))
            print(f"password of {args.name} changed; their sessions were ended")
    except auth.AuthError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


# --- datasets ---------------------------------------------------------------------------------


def add_datasets(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="datasets_command", required=True)
    sub.add_parser("list", help="list datasets")
    add = sub.add_parser(
        "add", help="check a file exactly as an upload is checked, and add it as a dataset"
    )
    add.add_argument("file")
    add.add_argument(
        "--target",
        help="target column (default: one named like a label, else the last unless it is an ID, a date or free text)",
    )
    add.add_argument("--name", help="the dataset's name (default: the file's name)")
    add.add_argument("--owner", default="local", help="who owns it (default: local)")
    rm = sub.add_parser("remove", help="delete a dataset and its file")
    rm.add_argument("dataset_id", type=int)


def cmd_datasets(args: argparse.Namespace) -> int:
    from jobs import service

    db = service.connect()
    if args.datasets_command == "list":
        rows = [
            (
                str(d["id"]),
                d["name"][:40],
                d["format"] or "-",
                d["target"] or "-",
                str((d["report"] or {}).get("rows", "-")),
                d["owner"] or "-",
            )
            for d in service.list_datasets(db)
        ]
        _table(("ID", "NAME", "FORMAT", "TARGET", "ROWS", "OWNER"), rows)
        return 0
    if args.datasets_command == "add":
        try:
            row = service.add_file(
                db, Path(args.file), target=args.target, name=args.name, owner=args.owner
            )
        except service.DataError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        report = row["report"] or {}
        print(
            f"dataset {row['id']} added: {row['name']} ({report.get('rows', '?')} rows, "
            f"target {row['target'] or 'folders'}, {row['task']})"
        )
        return 0
    try:
        service.delete_dataset(db, args.dataset_id, None)
    except service.StoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"dataset {args.dataset_id} removed")
    return 0


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(x) for x in col) for col in zip(header, *rows, strict=False)]
    for line in (header, *rows):
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


# --- token ----------------------------------------------------------------------------------


def add_token(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="token_command", required=True)
    new = sub.add_parser("create", help="a token for a worker on another host (shown once)")
    new.add_argument("--worker", required=True, help="the worker's name")
    sub.add_parser("list", help="list worker tokens (names and dates, never the tokens)")
    rm = sub.add_parser("revoke", help="refuse a worker's token and requeue its running runs")
    rm.add_argument("name")


def cmd_token(args: argparse.Namespace) -> int:
    from jobs import service

    db = service.connect()
    try:
        if args.token_command == "create":
            token = service.create_worker_token(db, args.worker)
            print(
                f"Token for worker {args.worker} (shown once; set it as TRAINBOARD_WORKER_TOKEN "
                "on that host):"
            )
            print(token)
        elif args.token_command == "list":
            for t in service.list_worker_tokens(db):
                state = "revoked" if t["revoked_at"] else "active"
                last = t["last_used_at"]
                used = time.strftime("%Y-%m-%d %H:%M", time.localtime(last)) if last else "never"
                print(f"{t['name']}  {state}  last used: {used}")
        else:
            runs = service.revoke_worker_token(db, args.name)
            print(f"token of worker {args.name} revoked")
            if runs:
                print(f"running runs handed back to the queue: {', '.join(map(str, runs))}")
    except ValueError as e:  # a bad or unknown worker name (jobs.remote.tokens.TokenError)
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
