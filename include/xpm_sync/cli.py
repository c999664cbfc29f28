"""`xpm-sync`: the command line of the practice's XPM integration."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
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

    serve(
        host=args.host,
        port=args.port,
        seed=args.seed,
        clients=args.clients,
        jobs=args.jobs,
        staff=args.staff,
        per_minute=args.per_minute,
    )
    return 0


def _demo(args: argparse.Namespace) -> int:
    from xpm_sync import demo

    return demo.run(clients=args.clients, jobs=args.jobs, serve=args.serve)


def _connect(args: argparse.Namespace) -> int:
    from xpm_sync.oauth import callback, flow
    from xpm_sync.oauth.settings import load

    settings, engine = load(args.conn_id), get_engine()
    url = flow.start(settings, engine, requested_by=args.by, switch_practice=args.switch_practice)
    if args.sandbox_user:
        redirect = callback.sandbox_consent(settings, url, args.sandbox_user)
    else:
        print("Sign in to Xero as an XPM Administrator with 'Authorise 3rd Party Full Access' at:\n")
        print(f"  {url}\n")
        if callback.is_loopback(settings.redirect_uri) and not args.paste:
            print(f"Waiting for Xero to send the browser back to {settings.redirect_uri} ...")
            redirect = callback.wait_for_redirect(settings.redirect_uri)
        else:
            redirect = input("Paste the address your browser was sent to: ")

    def choose(found: list[flow.Practice]) -> str | None:
        if not sys.stdin.isatty():
            return None
        print(flow.WRONG_PRACTICE_WARNING)
        for number, practice in enumerate(found, 1):
            print(f"  {number}. {practice.name} (practice id {practice.tenant_id})")
        answer = input("Which practice? ").strip()
        return found[int(answer) - 1].tenant_id if answer.isdigit() and 0 < int(answer) <= len(found) else answer

    result = flow.complete(settings, engine, redirect, practice=args.practice, choose=choose)
    verb = "Reconnected" if result.reconnected else ("Switched" if result.switched else "Connected")
    print(f"{verb}: XPM practice {result.tenant_name!r} ({result.tenant_id}), signed in as {result.connected_by}.")
    if result.was_broken:
        _sync_after_reconnect(args, result.connected_by)
    return 0


def _sync_after_reconnect(args: argparse.Namespace, person: str) -> None:
    """After a reconnect: a full manual sync of Clients, Jobs, Staff, Tax Returns and custom fields."""
    from xpm_sync import airflow_api, catalog

    conf = {"entities": list(catalog.AFTER_RECONNECT), "full": True}
    run_id = airflow_api.trigger("xpm_manual_sync", conf, note=f"Full sync after XPM was reconnected by {person}")
    with session_scope() as session:
        if run_id:
            activity.record(
                session,
                "In Progress",
                "Sync",
                f"Full sync after the reconnect started in Airflow ({run_id})",
                details={"run_id": run_id, **conf},
                actor=args.by,
            )
    if run_id:
        print(f"Started xpm_manual_sync in Airflow ({run_id}) for: {', '.join(catalog.AFTER_RECONNECT)}.")
    else:
        print(
            "Airflow's API is not reachable from here, so no sync was started. Trigger xpm_manual_sync "
            "in the Airflow UI, or run `xpm-sync sync --full`."
        )


def _status(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from xpm_sync.api.usage import calls_today
    from xpm_sync.store.models import XpmConnection

    engine = get_engine()
    with session_scope(engine) as session:
        row = session.scalars(
            select(XpmConnection).where(XpmConnection.conn_id == args.conn_id, XpmConnection.active.is_(True))
        ).first()
        if row is None:
            info: dict[str, object] = {"conn_id": args.conn_id, "status": "not connected"}
        else:
            calls, left = calls_today(engine, row.tenant_id)
            info = {
                "conn_id": args.conn_id,
                "practice": row.tenant_name,
                "tenant_id": row.tenant_id,
                "status": row.status,
                "connected_by": row.connected_by,
                "connected_at": row.connected_at.isoformat(timespec="seconds") if row.connected_at else None,
                "last_refresh_at": row.last_refresh_at.isoformat(timespec="seconds") if row.last_refresh_at else None,
                "last_error": row.last_error,
                "calls_today": calls,
                "calls_left_today": left,
            }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    if info["status"] == "needs_reconnect":
        print("XPM needs to reconnect.")
    for key, value in info.items():
        if value is not None:
            print(f"{key.replace('_', ' '):<18} {value}")
    return 0


def _disconnect(args: argparse.Namespace) -> int:
    from xpm_sync.errors import XpmError
    from xpm_sync.oauth import flow
    from xpm_sync.oauth.settings import load
    from xpm_sync.oauth.tokens import TokenStore

    settings, engine = load(args.conn_id), get_engine()
    try:
        access: str | None = TokenStore(settings, engine).access_token()
    except XpmError:
        access = None
    name = flow.disconnect(settings, engine, access_token=access, requested_by=args.by)
    print(f"Disconnected from {name}." if name else "XPM was not connected.")
    return 0


def _sync(args: argparse.Namespace) -> int:
    from xpm_sync import catalog
    from xpm_sync.sync import runner

    names = runner.order(args.entities or list(catalog.ALL))
    request = runner.Request(
        manual=True,
        full=args.full,
        dry_run=args.dry_run,
        actor=args.by,
        run_id=f"cli-{getpass.getuser()}-{os.getpid()}",
        client_uuid=args.client,
        job_number=args.job,
        conn_id=args.conn_id,
    )
    problem = runner.connection_problem(get_engine(), args.conn_id)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    results = []
    for name in names:
        result = runner.pull(name, request)
        results.append(result.as_dict())
        state = result.skipped or f"read {result.fetched}, wrote {result.written}, {result.calls} calls"
        print(f"{name:<26} {result.mode:<12} {state}")
    summary = runner.summarise(results, request)
    print(f"{'total':<26} {'':<12} wrote {summary['written']}, {summary['calls']} XPM calls")
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
    sb.add_argument("--per-minute", type=int, default=60, help="calls a minute allowed (XPM: 60)")
    sb.set_defaults(handler=_sandbox)

    demo = sub.add_parser("demo", help="sandbox, OAuth connect and an overnight sync on real Airflow")
    demo.add_argument("--serve", action="store_true", help="then keep Airflow running (airflow standalone)")
    demo.add_argument("--clients", type=int, default=300)
    demo.add_argument("--jobs", type=int, default=1500)
    demo.set_defaults(handler=_demo)

    conn = sub.add_parser("connect", help="connect XPM through Xero's sign-in (or reconnect it)")
    conn.add_argument("--practice", help="practice id or name, when the sign-in reaches several")
    conn.add_argument("--switch-practice", action="store_true", help="allow moving to another practice")
    conn.add_argument("--paste", action="store_true", help="paste the redirect URL instead of listening for it")
    conn.add_argument("--sandbox-user", help="sandbox only: complete consent as this seeded user")
    conn.set_defaults(handler=_connect)

    status = sub.add_parser("status", help="show the XPM connection and today's API calls")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=_status)

    disc = sub.add_parser("disconnect", help="revoke the XPM connection and forget its tokens")
    disc.set_defaults(handler=_disconnect)

    from xpm_sync import catalog

    sy = sub.add_parser("sync", help="run the sync now, outside Airflow")
    sy.add_argument("--entities", nargs="+", choices=list(catalog.ALL), help="default: all")
    sy.add_argument("--full", action="store_true", help="read everything, not only changes")
    sy.add_argument("--dry-run", action="store_true", help="count what would change; write nothing")
    sy.add_argument("--client", help="one client (UUID)")
    sy.add_argument("--job", help="one job (number)")
    sy.set_defaults(handler=_sync)

    for command in (conn, status, disc, sy):
        command.add_argument("--conn-id", default=None, help="the xpm connection (default: [xpm_sync] conn_id)")
        command.add_argument("--by", default=getpass.getuser(), help="who is acting")

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
    if hasattr(args, "conn_id") and args.conn_id is None:
        from xpm_sync import config

        args.conn_id = config.get("conn_id")
    handler: Handler = args.handler
    from xpm_sync.errors import XpmError

    try:
        return handler(args)
    except (settings.SettingRefused, XpmError) as exc:
        print(str(exc), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
