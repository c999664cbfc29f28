"""`xpm-sync`: the command line of the practice's XPM integration."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import sys
from collections.abc import Callable, Sequence

from xpm_sync import activity, settings
from xpm_sync.store import migrate
from xpm_sync.store.engine import get_engine, session_scope

Handler = Callable[[argparse.Namespace], int]


def _db(args: argparse.Namespace) -> int:
    engine = get_engine()
    if args.action == "upgrade":
        migrate.upgrade(engine, args.revision or "head")
    elif args.action == "downgrade":
        if not args.revision:
            print("Say which revision to go down to, e.g. `xpm-sync db downgrade base`.", file=sys.stderr)
            return 2
        migrate.downgrade(engine, args.revision)
    current = migrate.current_revision(engine)
    where = engine.url.render_as_string(hide_password=True)
    newest = migrate.head_revision()
    print(f"Practice database {where} is at revision {current or '(empty)'}; newest is {newest}.")
    return 0


def _setup(_args: argparse.Namespace) -> int:
    from xpm_sync.airflow_setup import ensure_pool

    migrate.upgrade()
    name, slots = ensure_pool()
    revision = migrate.current_revision()
    print(f"Practice database is at revision {revision}; Airflow pool {name} has {slots} slots.")
    return 0


def _settings(args: argparse.Namespace) -> int:
    with session_scope() as session:
        if args.name:
            current = settings.change(session, args.name, args.value, actor=args.by)
        else:
            current = settings.load(session)
    for name, label in settings.LABELS.items():
        print(f"{label:<30} {'on' if getattr(current, name) else 'off'}")
    return 0


def _activity(args: argparse.Namespace) -> int:
    with session_scope() as session:
        entries = activity.recent(session, args.limit)
        rows = [
            {
                "time": e.occurred_at.isoformat(timespec="seconds"),
                "status": e.status,
                "category": e.category,
                "message": e.message,
                "actor": e.actor,
                "details": e.details,
            }
            for e in entries
        ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        print(f"{row['time']}  {row['status']:<15} {row['category']:<12} {row['message']}")
    if not rows:
        print("No Practice Activity yet.")
    return 0


def _sandbox(args: argparse.Namespace) -> int:
    from xpm_sandbox.server import serve

    serve(host=args.host, port=args.port, seed=args.seed, clients=args.clients, jobs=args.jobs, staff=args.staff)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, exposed for tests and documentation."""
    parser = argparse.ArgumentParser(prog="xpm-sync", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="show library log lines too")
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="practice database migrations")
    db.add_argument("action", choices=["upgrade", "downgrade", "current"])
    db.add_argument("revision", nargs="?", help="target revision (default: head for upgrade)")
    db.set_defaults(handler=_db)

    setup = sub.add_parser("setup", help="migrate the practice database and create the Airflow pool")
    setup.set_defaults(handler=_setup)

    st = sub.add_parser("settings", help="show or change the practice settings")
    st.add_argument("name", nargs="?", choices=list(settings.LABELS), help="setting to change")
    st.add_argument("value", nargs="?", help="on or off")
    st.add_argument("--by", default=getpass.getuser(), help="who is making the change")
    st.set_defaults(handler=_settings)

    sb = sub.add_parser("sandbox", help="serve the XPM sandbox (a stand-in for XPM and Xero identity)")
    sb.add_argument("--host", default="127.0.0.1")
    sb.add_argument("--port", type=int, default=8700)
    sb.add_argument("--seed", type=int, default=1)
    sb.add_argument("--clients", type=int, default=200)
    sb.add_argument("--jobs", type=int, default=600)
    sb.add_argument("--staff", type=int, default=12)
    sb.set_defaults(handler=_sandbox)

    act = sub.add_parser("activity", help="show the newest Practice Activity entries")
    act.add_argument("--limit", type=int, default=20)
    act.add_argument("--json", action="store_true")
    act.set_defaults(handler=_activity)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    args = build_parser().parse_args(argv)
    if not args.verbose:
        logging.getLogger("alembic").setLevel(logging.WARNING)
    if getattr(args, "name", None) and getattr(args, "value", None) is None:
        print(f"Say on or off, e.g. `xpm-sync settings {args.name} on`.", file=sys.stderr)
        return 2
    handler: Handler = args.handler
    try:
        return handler(args)
    except settings.SettingRefused as exc:
        print(str(exc), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
