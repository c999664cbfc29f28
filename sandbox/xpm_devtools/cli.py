"""`xpm-dev`: the developer's commands around the XPM sandbox (`make demo`, `make airflow`, `make stack`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive whole number")
    return value


def _sandbox(args: argparse.Namespace) -> int:
    from xpm_sandbox.server import serve

    serve(host=args.host, port=args.port, seed=args.seed, clients=args.clients, jobs=args.jobs, staff=args.staff,
          per_minute=args.per_minute)  # fmt: skip
    return 0


def _demo(args: argparse.Namespace) -> int:
    from xpm_devtools import demo
    from xpm_devtools.stopping import stopped_by_signals

    try:
        with stopped_by_signals():
            return demo.run(clients=args.clients, jobs=args.jobs, serve=args.serve, port=args.port)
    except KeyboardInterrupt:  # stopped before Airflow was serving: what was started is stopped
        return 130


def _stack(args: argparse.Namespace) -> int:
    from xpm_devtools import stack
    from xpm_devtools.stopping import stopped_by_signals

    root = Path(args.root).resolve()
    with stopped_by_signals():
        return stack.run(root, root / args.env_file, workers=args.workers, port=args.port)


def _connect(args: argparse.Namespace) -> int:
    from xpm_devtools import connect

    return connect.run(args.user, args.connect_args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xpm-dev", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sb = sub.add_parser("sandbox", help="serve the XPM sandbox (a stand-in for XPM and Xero identity)")
    sb.add_argument("--host", default="127.0.0.1")
    sb.add_argument("--port", type=_positive, default=8700)
    sb.add_argument("--seed", type=int, default=1)
    sb.add_argument("--clients", type=_positive, default=200)
    sb.add_argument("--jobs", type=_positive, default=600)
    sb.add_argument("--staff", type=_positive, default=12)
    sb.add_argument("--per-minute", type=_positive, default=60, help="calls a minute allowed (XPM: 60)")
    sb.set_defaults(handler=_sandbox)

    demo = sub.add_parser("demo", help="sandbox, OAuth connect and an overnight sync on real Airflow")
    demo.add_argument("--serve", action="store_true", help="then keep Airflow running (`make airflow`)")
    demo.add_argument("--port", type=_positive, default=8080, help="Airflow's port with --serve")
    demo.add_argument("--clients", type=_positive, default=300)
    demo.add_argument("--jobs", type=_positive, default=1500)
    demo.set_defaults(handler=_demo)

    stk = sub.add_parser("stack", help="the production stack (CeleryExecutor, Redis, PostgreSQL) as local processes")
    stk.add_argument("--root", default=".", help="the project folder (docker-compose.yaml, .env.example, dags/)")
    stk.add_argument("--env-file", default=".env", help="settings over .env.example's (if the file exists)")
    stk.add_argument("--workers", type=_positive, default=2, help="Celery workers")
    stk.add_argument("--port", type=_positive, default=8080, help="Airflow's port")
    stk.set_defaults(handler=_stack)
    cn = sub.add_parser(
        "connect",
        help="run `xpm-sync connect --paste` and sign in at the sandbox as a seeded user",
        description="Other options (--by, --practice, --switch-practice, --no-sync, --conn-id) go to xpm-sync connect.",
    )
    cn.add_argument("--as", dest="user", default="admin@harbourview.example", help="the sandbox user who signs in")
    cn.set_defaults(handler=_connect, connect_args=[])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and args.command != "connect":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.connect_args = rest
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
