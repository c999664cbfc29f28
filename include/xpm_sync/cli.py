"""`xpm-sync`: the command line of the practice's XPM integration.

Exit codes: 0 done; 1 the command ran but was refused or partly failed (the reason is on stderr
and in Practice Activity); 2 nothing was done (a wrong value, a missing setup or connection).
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, NoReturn

from xpm_sync import activity, catalog, display, ids, settings
from xpm_sync.plain_errors import XpmConfigError, XpmError, XpmInputError
from xpm_sync.store import migrate
from xpm_sync.store.engine import get_engine, session_scope
from xpm_sync.store.models import ActivityStatus

# What `connect --paste` (or a redirect that is not on this machine) asks for.
PASTE_PROMPT = "Paste the address your browser was sent to: "

if TYPE_CHECKING:
    from xpm_sync.oauth.flow import ConnectResult

Handler = Callable[[argparse.Namespace], int]
DONE, REFUSED, NOT_DONE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """Wrong values get one line, not the whole usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(NOT_DONE, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


# The largest number a command takes (an id or a count): what both databases store as an integer.
LARGEST = 2**31 - 1


def _positive(text: str) -> int:
    digits = text.strip().removeprefix("-")
    if not (digits.isascii() and digits.isdigit()):
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a whole number")
    if len(digits) > len(str(LARGEST)) or int(digits) > LARGEST:
        raise argparse.ArgumentTypeError(f"must be at most {LARGEST:,}, not {text[:40]}")
    number = int(text)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {number}")
    return number


def _shell_user() -> str:
    """Who acts when no `--by` is given: this shell's account, named as that, not as a person."""
    return f"{getpass.getuser()} (command line)"


def _checked(check: Callable[[str], str]) -> Callable[[str], str]:
    def convert(text: str) -> str:
        try:
            return check(text)
        except XpmInputError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def _db(args: argparse.Namespace) -> int:
    from alembic.util import CommandError

    engine = migrate.ready_engine() if args.action == "current" else get_engine()
    try:
        if args.action == "upgrade":
            migrate.upgrade(engine, args.revision or "head")
        elif args.action == "downgrade":
            if not args.revision:
                print("Say which revision to go down to, e.g. `xpm-sync db downgrade base`.", file=sys.stderr)
                return NOT_DONE
            migrate.downgrade(engine, args.revision)
    except CommandError as exc:
        print(
            f"{exc}. The practice database's revisions run from base to {migrate.head_revision()} "
            "(`xpm-sync db current` shows where it is); nothing was changed.",
            file=sys.stderr,
        )
        return NOT_DONE
    current = migrate.current_revision(engine)
    where = engine.url.render_as_string(hide_password=True)
    print(f"Practice database {where} is at revision {current or '(empty)'}; newest is {migrate.head_revision()}.")
    return DONE


def _setup(_args: argparse.Namespace) -> int:
    from xpm_sync import practices
    from xpm_sync.airflow_setup import ensure_pool

    migrate.upgrade()
    pools = []
    for practice in practices.all_practices():
        with practices.using(practice):
            name, slots = ensure_pool()
        pools.append(f"Airflow pool {name} has {slots} slots" + (f" ({practice.label})" if practices.several() else ""))
    revision = migrate.current_revision()
    print(f"Practice database is at revision {revision}; {'; '.join(pools)}.")
    return DONE


def _settings(args: argparse.Namespace) -> int:
    with session_scope(migrate.ready_engine()) as session:
        if args.name:
            current = settings.change(session, args.name, args.value, actor=args.by)
        else:
            current = settings.load(session)
    for name, label in settings.LABELS.items():
        print(f"{label:<30} {'on' if getattr(current, name) else 'off'}")
    return DONE


def _activity(args: argparse.Namespace) -> int:
    with session_scope(migrate.ready_engine()) as session:
        entries = activity.recent(session, args.limit, status=args.status)
        rows = [
            {
                "time": display.when(e.occurred_at),
                "status": e.status,
                "category": e.category,
                "actor": e.actor,
                "message": e.message,
                "details": e.details,
            }
            for e in entries
        ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return DONE
    for row in rows:
        print(f"{row['time']}  {row['status']:<15} {row['actor'] or '-':<16} {row['message']}")
    if not rows:
        print("No Practice Activity yet.")
    return DONE


def _connect(args: argparse.Namespace) -> int:
    from xpm_sync.oauth import callback, flow
    from xpm_sync.oauth.connection_config import load

    xpm_settings, engine = load(args.conn_id), migrate.ready_engine()
    url = flow.start(xpm_settings, engine, requested_by=args.by, switch_practice=args.switch_practice)

    def choose(found: list[flow.Practice]) -> str | None:
        if not sys.stdin.isatty():
            return None
        print(flow.WRONG_PRACTICE_WARNING)
        for number, practice in enumerate(found, 1):
            print(f"  {number}. {practice.name} (practice id {practice.tenant_id})")
        answer = input("Which practice? ").strip()
        return found[int(answer) - 1].tenant_id if answer.isdigit() and 0 < int(answer) <= len(found) else answer

    def complete(redirect: str) -> flow.ConnectResult:
        return flow.complete(xpm_settings, engine, redirect, practice=args.practice, choose=choose)

    print("Sign in to Xero as an XPM Administrator with 'Authorise 3rd Party Full Access' at:\n")
    print(f"  {url}\n")
    if callback.is_loopback(xpm_settings.redirect_uri) and not args.paste:
        print(f"Waiting for Xero to send the browser back to {xpm_settings.redirect_uri} ...")
        result = callback.wait_for_redirect(xpm_settings.redirect_uri, complete, describe=flow.describe)
    else:
        result = complete(input(PASTE_PROMPT))
    print(flow.describe(result))
    _sync_after_connect(result, args)
    return DONE


def _sync_after_connect(result: ConnectResult, args: argparse.Namespace) -> None:
    """The full sync the XPM page would start after this connect (after_connect decides for both)."""
    from xpm_sync import airflow_runs
    from xpm_sync.sync import after_connect

    entities = after_connect.entities_to_sync(result)
    if not entities:
        return
    manual = catalog.dag_id("manual_sync")
    if args.no_sync:
        print(f"No sync started (--no-sync). Run `xpm-sync sync --full` or trigger {manual} when ready.")
        return
    try:
        run_id = after_connect.start_sync(result, airflow_runs.CommandLine(), user=args.by)
    except XpmError as exc:  # the DAG not loaded yet, or Airflow's command line could not reach its database
        why = str(exc)
    else:
        print(f"Started {manual} in Airflow ({run_id}) for: {', '.join(entities)}.")
        return
    print(
        f"No sync was started in Airflow ({why}). Trigger {manual} from the Airflow UI, "
        "or run `xpm-sync sync --full` now.",
        file=sys.stderr,
    )


def _status_info(args: argparse.Namespace) -> dict[str, Any]:
    from xpm_sync import status

    return status.read(migrate.ready_engine(), args.conn_id).as_dict()


def _status(args: argparse.Namespace) -> int:
    info = _status_info(args)
    if args.json:
        print(json.dumps(info, indent=2))
        return DONE
    if info["status"] == "needs_reconnect":
        print("XPM needs to reconnect.")
    elif info["status"] == "not connected":
        print("XPM is not connected: run `xpm-sync connect`.")
    elif info["missing_scopes"]:
        lacking = "; ".join(f"{m['scope']} ({m['why']})" for m in info["missing_scopes"])
        print(f"XPM needs more access: {lacking}. Reconnect (`xpm-sync connect`) to grant it.")
    shown = ("calls_left_counted", "custom_fields", "missing_scopes", "egress_", "scopes")
    for key, value in info.items():
        if value is not None and not key.startswith(shown):
            print(f"{key.replace('_', ' '):<18} {value}")
    if "scopes" in info:
        print(f"{'scopes':<18} {' '.join(info['scopes']) or 'none'}")
        print(f"{'data egress':<18} {_egress_line(info)}")
    if "custom_fields" in info:
        print(info["custom_fields"])
    return DONE


def _egress_line(info: dict[str, Any]) -> str:
    """Bytes of XPM's answers today and this month, against the tier's monthly allowance."""
    allowance = int(info["egress_allowance_bytes"])
    share = f" ({info['egress_bytes_month'] * 100 / allowance:.2f}%)" if allowance else ""
    return (
        f"{display.size(info['egress_bytes_today'])} today, {display.size(info['egress_bytes_month'])} this month "
        f"of {allowance / 1_000_000_000:,g} GB{share}"
    )


def _plan(args: argparse.Namespace) -> int:
    from xpm_sync.sync import plan

    found = plan.tonight(migrate.ready_engine(), what_if_budget=args.budget)
    if args.json:
        print(json.dumps(found.as_dict(), indent=2))
        return DONE
    if not found.rows:
        print("XPM is not connected: run `xpm-sync connect`.")
        return DONE
    print(f"{'Tonight':<26} {'calls':>7} {'data':>10}")
    for row in found.rows:
        print(f"{row.label:<26} {row.calls:>7,} {display.size(row.bytes):>10}" + (f"  {row.note}" if row.note else ""))
    print(f"{'total':<26} {found.calls:>7,} {display.size(found.bytes):>10}")
    for line in plan.backlog_lines(found):
        print(line)
    return DONE


def _disconnect(args: argparse.Namespace) -> int:
    from xpm_sync.oauth import flow
    from xpm_sync.oauth.connection_config import load
    from xpm_sync.oauth.tokens import TokenStore

    xpm_settings, engine = load(args.conn_id), migrate.ready_engine()
    try:
        access: str | None = TokenStore(xpm_settings, engine).access_token()
    except XpmError:
        access = None
    name = flow.disconnect(xpm_settings, engine, access_token=access, requested_by=args.by)
    print(f"Disconnected from {name}." if name else "XPM was not connected.")
    return DONE


def _sync(args: argparse.Namespace) -> int:
    from xpm_sync.sync import outcome, policy, runner

    if args.confirm_removals and not args.full:
        print("--confirm-removals applies to a full sync: add --full.", file=sys.stderr)
        return NOT_DONE
    names = policy.order(args.entities or list(catalog.ALL))
    request = policy.Request(
        manual=True,
        full=args.full,
        dry_run=args.dry_run,
        actor=args.by,
        run_id=f"cli-{getpass.getuser()}-{os.getpid()}",
        client_uuid=args.client,
        job_number=args.job,
        confirm_removals=args.confirm_removals,
        conn_id=args.conn_id,
    )
    problem = policy.connection_problem(migrate.ready_engine(), args.conn_id)
    if problem:
        print(problem, file=sys.stderr)
        return NOT_DONE
    results = []
    for name in names:
        try:
            result = runner.pull(name, request)
        except XpmError as exc:
            # Logged in Practice Activity where it happened; the other entities still run.
            print(f"{name:<26} {'failed':<12} {exc}", file=sys.stderr)
            continue
        results.append(result.as_dict())
        verb = "would write" if args.dry_run else "wrote"
        state = result.skipped or f"read {result.fetched}, {verb} {result.written}, {result.calls} calls"
        print(f"{name:<26} {result.mode:<12} {state}")
        for failure in result.failures:
            print(f"{name:<26} {'refused':<12} {failure['key']}: {failure['error']}", file=sys.stderr)
    summary = outcome.summarise(results, request)
    total = (
        f"would write {summary['written']} (a dry run: nothing was written)"
        if args.dry_run
        else (f"wrote {summary['written']}")
    )
    print(f"{'total':<26} {'':<12} {total}, {summary['calls']} XPM calls")
    if summary["failed"] or summary["refused"]:
        print(summary["message"], file=sys.stderr)
        return REFUSED
    return DONE


def _recorded(recorded: Any) -> int:
    from xpm_sync import airflow_runs

    print(recorded.message)
    if recorded.entry_id is not None:
        told = airflow_runs.notify_push(airflow_runs.CommandLine(), "xpm-sync")
        if told == airflow_runs.TOLD:
            print("xpm_push was told and runs now.")
        elif told == airflow_runs.PUSH_PAUSED:
            print("xpm_push is paused in Airflow: the change waits there until it is unpaused.")
    return DONE


def _job(args: argparse.Namespace) -> int:
    from xpm_sync import changes

    engine = migrate.ready_engine()
    if args.action == "set-state":
        return _recorded(changes.set_job_state(engine, args.number, args.state, actor=args.by))
    fields = {
        "name": args.name,
        "description": args.description,
        "start_date": args.start,
        "due_date": args.due,
        "budget": args.budget,
    }
    return _recorded(
        changes.update_job(engine, args.number, actor=args.by, **{k: v for k, v in fields.items() if v is not None})
    )


def _custom_field(args: argparse.Namespace) -> int:
    from xpm_sync import changes

    engine = migrate.ready_engine()
    return _recorded(changes.set_custom_field(engine, args.kind, args.key, args.field, args.value, actor=args.by))


def _job_states(args: argparse.Namespace) -> int:
    from xpm_sync import changes

    engine = migrate.ready_engine()
    if args.name:
        name = changes.set_state_code(engine, args.name, args.code, actor=args.by)
        print(f"Job state {name!r} has the interface code {args.code.strip()}.")
        return DONE
    for name, code in changes.state_codes(engine):
        print(f"{name:<30} {code or '(no code: a state change to it is refused)'}")
    return DONE


def _changes(args: argparse.Namespace) -> int:
    from xpm_sync import airflow_runs, changes

    engine = migrate.ready_engine()
    if args.retry:
        changes.retry(engine, args.retry, actor=args.by)
        print(f"Change {args.retry} is back in line for the next push.")
        airflow_runs.notify_push(airflow_runs.CommandLine(), "xpm-sync")
        return DONE
    waiting = changes.open_changes(engine)
    for entry in waiting:
        fields = ", ".join(
            f"{v.get('name', k)}: {v['before'] or '-'} -> {v['after'] or '-'}"
            for k, v in entry.payload["fields"].items()
        )
        print(
            f"{entry.id:>6}  {display.when(entry.created_at)}  {entry.created_by or '-':<12} {entry.status:<8} "
            f"{entry.entity} {entry.entity_key}: {fields}" + (f"  [{entry.last_error}]" if entry.last_error else "")
        )
    if not waiting:
        print("No local changes are waiting to go to XPM.")
    return DONE


def _push(args: argparse.Namespace) -> int:
    from xpm_sync.sync import policy, push, runner

    engine = migrate.ready_engine()
    problem = policy.connection_problem(engine, args.conn_id)
    if problem:
        print(problem, file=sys.stderr)
        return NOT_DONE
    hook = runner.hook_for(policy.Request(conn_id=args.conn_id))
    try:
        results = push.push(hook, engine, actor=args.by, run_id=f"cli-push-{os.getpid()}")
    except XpmError as exc:
        print(
            f"The push stopped: {exc} What reached XPM before it stopped is in Practice Activity "
            "(`xpm-sync activity`); the rest waits for the next push.",
            file=sys.stderr,
        )
        return REFUSED
    for result in results:
        print(f"{push.LABELS[result.entity]:<22} sent {result.written}, {len(result.failures)} refused")
        for failure in result.failures:
            print(f"{push.LABELS[result.entity]:<22} {failure['key']}: {failure['error']}", file=sys.stderr)
    if not results:
        print("No local changes are waiting to go to XPM.")
    return REFUSED if any(r.failures for r in results) else DONE


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, exposed for tests and documentation."""

    parser = _Parser(prog="xpm-sync", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="show library log lines too")
    parser.add_argument(
        "--practice",
        dest="practice_name",
        metavar="NAME",
        help="the practice to act for, by its name or xpm connection id (default: the first of "
        "[xpm_sync] practices, else [xpm_sync] conn_id)",
    )
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
    st.add_argument("--by", default=_shell_user(), help="who is making the change (default: this shell's user)")
    st.set_defaults(handler=_settings)

    conn = sub.add_parser("connect", help="connect XPM through Xero's sign-in (or reconnect it)")
    conn.add_argument(
        "--practice", help="the XPM practice (its id or name) to connect, when the sign-in reaches several"
    )
    conn.add_argument("--switch-practice", action="store_true", help="allow moving to another practice")
    conn.add_argument("--paste", action="store_true", help="paste the redirect URL instead of listening for it")
    conn.add_argument(
        "--no-sync", action="store_true", help="start no sync after connecting (the page and this command start one)"
    )
    conn.set_defaults(handler=_connect)

    status = sub.add_parser("status", help="show the XPM connection and today's API calls")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=_status)

    plan = sub.add_parser("plan", help="what tonight's overnight sync will spend, in calls and bytes")
    plan.add_argument(
        "--budget", type=_positive, metavar="CALLS", help="what if the custom field sweep had CALLS a night"
    )
    plan.add_argument("--json", action="store_true")
    plan.set_defaults(handler=_plan)

    disc = sub.add_parser("disconnect", help="revoke the XPM connection and forget its tokens")
    disc.set_defaults(handler=_disconnect)

    sy = sub.add_parser("sync", help="run the sync now, outside Airflow")
    sy.add_argument("--entities", nargs="+", choices=list(catalog.ALL), help="default: all")
    sy.add_argument("--full", action="store_true", help="read everything, not only changes")
    sy.add_argument("--dry-run", action="store_true", help="count what would change; write nothing")
    sy.add_argument("--client", type=_checked(ids.client_uuid), help="one client (UUID)")
    sy.add_argument("--job", type=_checked(ids.job_number), help="one job (number)")
    sy.add_argument(
        "--confirm-removals",
        action="store_true",
        help="with --full: mark removed what XPM no longer lists even when it is many rows (held back otherwise)",
    )
    sy.set_defaults(handler=_sync)

    job = sub.add_parser("job", help="change a job here (jobs maintained locally); the push sends it to XPM")
    job_actions = job.add_subparsers(dest="action", required=True)
    set_state = job_actions.add_parser("set-state", help="move a job to another state")
    set_state.add_argument("number", type=_checked(ids.job_number))
    set_state.add_argument("state", help="the state's name, e.g. 'In Progress'")
    job_update = job_actions.add_parser("update", help="change a job's name, description, dates or budget")
    job_update.add_argument("number", type=_checked(ids.job_number))
    job_update.add_argument("--name")
    job_update.add_argument("--description")
    job_update.add_argument("--start", help="start date, e.g. 2026-12-01")
    job_update.add_argument("--due", help="due date, e.g. 2026-12-24")
    job_update.add_argument("--budget")
    job.set_defaults(handler=_job)

    cf = sub.add_parser("custom-field", help="set a custom field here (custom fields kept locally)")
    cf_actions = cf.add_subparsers(dest="action", required=True)
    cf_set = cf_actions.add_parser("set", help="set a client's or a job's custom field")
    cf_set.add_argument("kind", choices=["client", "job"])
    cf_set.add_argument("key", help="the client's UUID or the job's number")
    cf_set.add_argument("field", help="the field's name (or UUID)")
    cf_set.add_argument("value", help="the value; empty to clear it")
    cf.set_defaults(handler=_custom_field)

    states = sub.add_parser("job-states", help="list job states with their XPM interface codes, or set one")
    states_actions = states.add_subparsers(dest="action")
    set_code = states_actions.add_parser("set", help="set a job state's interface code")
    set_code.add_argument("name", help="a job state's name")
    set_code.add_argument("code", help="its interface code, as XPM shows it (Business > Settings > Job States)")
    states.set_defaults(handler=_job_states, name=None)

    waiting = sub.add_parser("changes", help="list local changes not yet in XPM, or put a refused one back")
    waiting.add_argument("--retry", type=_positive, metavar="ID", help="send this refused change again")
    waiting.set_defaults(handler=_changes)

    push = sub.add_parser("push", help="send the local changes to XPM now, outside Airflow")
    push.set_defaults(handler=_push)

    for command in (conn, status, disc, sy, states, set_code, waiting, push, set_state, job_update, cf_set):
        command.add_argument("--conn-id", default=None, help="the xpm connection (default: [xpm_sync] conn_id)")
        command.add_argument("--by", default=_shell_user(), help="who is acting (default: this shell's user)")

    act = sub.add_parser("activity", help="show the newest Practice Activity entries")
    act.add_argument("--limit", type=_positive, default=20)
    act.add_argument("--status", choices=[s.value for s in ActivityStatus], help="only this status")
    act.add_argument("--json", action="store_true")
    act.set_defaults(handler=_activity)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    # Like Airflow's own server components (and `airflow connections ...`), xpm-sync reads connections
    # from Airflow's database as well as the environment: what Admin > Connections shows is what it uses.
    os.environ.setdefault("_AIRFLOW_PROCESS_CONTEXT", "server")
    args = build_parser().parse_args(argv)
    if not args.verbose:
        logging.getLogger("alembic").setLevel(logging.WARNING)
    if args.command == "settings" and args.name and args.value is None:
        print(f"Say on or off, e.g. `xpm-sync settings {args.name} on`.", file=sys.stderr)
        return NOT_DONE
    handler: Handler = args.handler
    try:
        with _acting_for(args):
            return handler(args)
    except (settings.SettingRefused, XpmError, ValueError) as exc:
        print(str(exc), file=sys.stderr)
        return NOT_DONE


def _acting_for(args: argparse.Namespace) -> AbstractContextManager[object]:
    """Act for the practice `--practice` names (or `--conn-id`'s connection), else the first one."""
    from xpm_sync import practices

    named = getattr(args, "conn_id", None)
    if args.practice_name and named and practices.find(args.practice_name).conn_id != named:
        raise XpmConfigError(f"--practice {args.practice_name} and --conn-id {named} name two practices: give one.")
    practice = practices.for_connection(named) if named else practices.find(args.practice_name)
    if hasattr(args, "conn_id"):
        args.conn_id = practice.conn_id
    return practices.using(practice)


if __name__ == "__main__":
    sys.exit(main())
