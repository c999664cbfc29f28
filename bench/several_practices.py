"""Benchmark: one deployment keeping several practices in step. The first overnight sync of N
practices at once on the Celery stack (CeleryExecutor with two workers, PostgreSQL, Redis: what
`make stack` and docker-compose.yaml run), against the same stack with one practice.

Each practice is an XPM practice of the same size in one sandbox (unthrottled per minute, as in
`stack_vs_standalone.py`, so the figure is the platform's and the sync's; XPM's 5 calls in flight per
practice and 5,000 a day stay), connected to its own `xpm` connection by its own owner through the
OAuth flow (`xpm-dev connect --conn-id`). Once the scheduler has made (and skipped) the runs it owes,
the other DAGs are paused and every practice's overnight sync is started from the REST API at once.
Reported: wall time (the first run's start to the last run's end), each run's own time, XPM calls per
practice, the most calls in flight per practice (the sandbox's count), answers other than 200, and
each Celery worker's peak memory (its process tree's summed RSS, sampled every half second).

Run: .venv/bin/python bench/several_practices.py [--practices 10] [--clients 2000] [--jobs 10000]
Needs PostgreSQL at 127.0.0.1:5432 and Redis at 127.0.0.1:6379.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from stack_vs_standalone import REPO, Api, connection_json, sandbox, stack_of

KINDS_PAUSED = ("manual_sync", "push", "connection_health", "morning_check", "push_decisions")


def add_practices(srv: Any, count: int, clients: int, jobs: int) -> list[tuple[str, str, str]]:
    """The sandbox's own practice plus `count - 1` more of the same size, each with an owner who may
    connect it: (conn id, owner's email, tenant id) for each."""
    from xpm_sandbox.generate import build_practice, new_uuid
    from xpm_sandbox.identity import User
    from xpm_sandbox.state import USERS

    box = srv.sandbox
    found = [("xpm_default", USERS.admin, box.main.tenant_id)]
    for k in range(1, count):
        rng = random.Random(f"bench-practice:{k}")
        practice = build_practice(
            new_uuid(rng), f"Branch {k}", seed=k + 1, clients=clients, jobs=jobs, staff=12, start_year=2022,
            now=box.clock.now(),
        )  # fmt: skip
        owner, email = next(iter(practice.staff)), f"owner{k}@branch{k}.example"
        practice.staff[owner].name, practice.staff[owner].email = f"Owner {k}", email
        box.practices[practice.tenant_id] = practice
        box.identity.tenant_names[practice.tenant_id] = practice.name
        box.identity.users[email] = User(email, f"Owner {k}", new_uuid(rng), {practice.tenant_id: (True, True)}, owner)
        found.append((f"xpm_b{k}", email, practice.tenant_id))
    return found


def dag_id(conn_id: str, kind: str) -> str:
    return f"xpm_{kind}" if conn_id == "xpm_default" else f"xpm_{conn_id.removeprefix('xpm_')}_{kind}"


def settle(api: Api, conn_ids: list[str]) -> None:
    """Pause what is not timed; wait until the scheduler's own overnight runs (XPM not connected yet) end."""
    deadline = time.monotonic() + 300
    for conn_id in conn_ids:
        for kind in ("overnight_sync", *KINDS_PAUSED):
            while True:
                try:
                    api("GET", f"/dags/{dag_id(conn_id, kind)}")
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"{dag_id(conn_id, kind)} was not loaded within 300 s") from None
                    time.sleep(2)
            if kind != "overnight_sync":
                api("PATCH", f"/dags/{dag_id(conn_id, kind)}", json={"is_paused": True})
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        runs = [r for c in conn_ids for r in api("GET", f"/dags/{dag_id(c, 'overnight_sync')}/dagRuns")["dag_runs"]]
        if len(runs) >= len(conn_ids) and all(r["state"] in ("success", "failed") for r in runs):
            return
        time.sleep(2)
    raise SystemExit("the scheduler's own overnight runs did not end within 300 s")


def connect(env: dict[str, str], conn_id: str, owner: str) -> None:
    cmd = [sys.executable, "-m", "xpm_devtools.cli", "connect", "--as", owner, "--conn-id", conn_id, "--by", "bench",
           "--no-sync"]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"connect {conn_id} failed: {done.stdout[-1500:]}{done.stderr[-1500:]}")


class WorkerMemory:
    """Each Celery worker's process tree, its summed RSS sampled every half second; the peak per worker."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = {name: pid for name, pid in pids.items() if name.startswith("worker-")}
        self.peak: dict[str, int] = dict.fromkeys(self.pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> WorkerMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            children = _children()
            for name, pid in self.pids.items():
                self.peak[name] = max(self.peak[name], sum(_rss(p) for p in _tree(pid, children)))


def cpu_seconds(roots: dict[str, int]) -> dict[str, float]:
    """CPU seconds each process tree has used so far (its live processes' own and their reaped
    children's), and the machine's busy seconds over all cores."""
    tick = os.sysconf("SC_CLK_TCK")
    children = _children()
    used: dict[str, float] = {}
    for name, root in roots.items():
        total = 0
        # This process started the stack: its own figure is itself (the sandbox's threads), not its tree.
        for pid in [root] if root == os.getpid() else _tree(root, children):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            own = pid == os.getpid()
            total += sum(int(f) for f in fields[11 : 13 if own else 15])  # utime, stime (cutime, cstime)
        used[name] = total / tick
    busy = [int(f) for f in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    used["machine (all cores)"] = (sum(busy) - busy[3] - busy[4]) / tick  # less idle and iowait
    return used


def _postmaster() -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().split(b"\0")[0].endswith(b"/postgres"):
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                    if int(fields[1]) == 1:
                        return int(entry.name)
            except OSError:
                continue
    return None


def _children() -> dict[int, list[int]]:
    found: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            found.setdefault(int(fields[1]), []).append(int(entry.name))
    return found


def _tree(pid: int, children: dict[int, list[int]]) -> list[int]:
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, []))
    return out


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def overnight_at_once(
    api: Api, srv: Any, practices: list[tuple[str, str, str]], pids: dict[str, int]
) -> dict[str, Any]:
    gate = srv.sandbox.gateway
    gate.reset_counts()
    started: dict[str, str] = {}
    roots = {**pids, "sandbox and this benchmark": os.getpid()}
    if (postmaster := _postmaster()) is not None:
        roots["postgresql"] = postmaster
    cpu_before = cpu_seconds(roots)
    with WorkerMemory(pids) as memory:
        for conn_id, _owner, _tenant in practices:
            dag = dag_id(conn_id, "overnight_sync")
            run = api("POST", f"/dags/{dag}/dagRuns", json={"logical_date": None, "conf": {}})
            started[conn_id] = run["dag_run_id"]
        states: dict[str, Any] = {}
        while len(states) < len(practices):
            for conn_id, run in started.items():
                if conn_id not in states:
                    state = api("GET", f"/dags/{dag_id(conn_id, 'overnight_sync')}/dagRuns/{run}")
                    if state["state"] in ("success", "failed"):
                        states[conn_id] = state
                        say(f"{conn_id}: {state['state']} ({len(states)}/{len(practices)})")
            time.sleep(1)
    cpu_after = cpu_seconds(roots)
    tasks = [
        ti
        for conn_id, run in started.items()
        for ti in api("GET", f"/dags/{dag_id(conn_id, 'overnight_sync')}/dagRuns/{run}/taskInstances")["task_instances"]
    ]
    begun = min(datetime.fromisoformat(s["start_date"]) for s in states.values())
    ended = max(datetime.fromisoformat(s["end_date"]) for s in states.values())
    calls = Counter(c.tenant_id for c in gate.calls)
    statuses = Counter(str(c.status) for c in gate.calls)
    own = [
        (datetime.fromisoformat(s["end_date"]) - datetime.fromisoformat(s["start_date"])).total_seconds()
        for s in states.values()
    ]
    return {
        "practices": len(practices),
        "states": dict(Counter(s["state"] for s in states.values())),
        "wall_seconds": round((ended - begun).total_seconds(), 1),
        "each_run_seconds": {"min": round(min(own), 1), "max": round(max(own), 1)},
        "calls_per_practice": sorted({calls[t] for _c, _o, t in practices}),
        "peak_in_flight_per_practice": max(gate.peak_in_flight[t] for _c, _o, t in practices),
        "answers": dict(statuses),
        "worker_peak_rss_mb": {name: round(peak / 2**20) for name, peak in memory.peak.items()},
        "tasks": task_times(tasks),
        "cpu_seconds": {name: round(cpu_after[name] - cpu_before[name]) for name in cpu_before},
    }


def task_times(tasks: list[dict[str, Any]]) -> dict[str, Any]:
    """Where a run's time goes: how long its tasks waited queued for a worker's slot, how long they ran,
    and the tasks that ran longest (summed over the practices)."""

    def seconds(start: str | None, end: str | None) -> float | None:
        if not start or not end:
            return None
        return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()

    waited = sorted(w for t in tasks if (w := seconds(t.get("queued_when"), t.get("start_date"))) is not None)
    ran = sorted(r for t in tasks if (r := seconds(t.get("start_date"), t.get("end_date"))) is not None)
    per_task: dict[str, float] = {}
    for t in tasks:
        took = seconds(t.get("start_date"), t.get("end_date")) or 0.0
        per_task[t["task_id"]] = per_task.get(t["task_id"], 0.0) + took

    def middle(values: list[float]) -> float:
        return round(values[len(values) // 2], 1) if values else 0.0

    return {
        "count": len(tasks),
        "queued_seconds": {"median": middle(waited), "max": round(max(waited, default=0.0), 1)},
        "running_seconds": {"median": middle(ran), "max": round(max(ran, default=0.0), 1), "sum": round(sum(ran))},
        "longest_summed": {task: round(total) for task, total in sorted(per_task.items(), key=lambda kv: -kv[1])[:5]},
    }


def say(line: str) -> None:
    print(f"{datetime.now():%H:%M:%S} {line}", file=sys.stderr, flush=True)


def run(count: int, clients: int, jobs: int, home: Path) -> dict[str, Any]:
    srv = sandbox(clients, jobs)
    practices = add_practices(srv, count, clients, jobs)
    extra = {"AIRFLOW__XPM_SYNC__PRACTICES": ", ".join(c for c, _o, _t in practices)}
    for conn_id, _owner, _tenant in practices[1:]:
        extra[f"AIRFLOW_CONN_{conn_id.upper()}"] = connection_json(srv)
    say(f"{count} practice(s): starting the stack")
    with stack_of(srv, home / f"stack-{count}", "many", 8, extra) as (stack, api):
        settle(api, [c for c, _o, _t in practices])
        for conn_id, owner, _tenant in practices:
            connect(stack.env, conn_id, owner)
        say(f"{count} practice(s): connected; overnight syncs at once")
        found = overnight_at_once(api, srv, practices, stack.pids())
        say(json.dumps(found))
        return found


TASK_START = """
import sys, time
began = time.process_time()
import airflow.sdk
sdk = time.process_time()
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
parsed = time.process_time()
import xpm_sync.sync.tasks
done = time.process_time()
assert not bag.import_errors, bag.import_errors
print(len(bag.dags), round(sdk - began, 2), round(parsed - sdk, 2), round(done - parsed, 2))
"""


def task_start(count: int) -> dict[str, Any]:
    """What a task's process spends before its work, with `count` practices configured (CPU seconds, a
    fresh process each, best of three): Airflow's Task SDK (a Celery worker's task process inherits
    it), parsing its DAG file (every task does: it builds the DAG once per practice), and the sync's
    own modules (imported inside the task)."""
    conn_ids = ["xpm_default", *(f"xpm_b{k}" for k in range(1, count))]
    env = {**os.environ, "AIRFLOW__XPM_SYNC__PRACTICES": ",".join(conn_ids)}
    env.update({f"AIRFLOW_CONN_{c.upper()}": json.dumps({"conn_type": "xpm", "extra": {}}) for c in conn_ids})
    env["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="xpm-bench-start-")
    dag_file = str(REPO / "dags" / "xpm_overnight_sync.py")
    best: list[float] = []
    for _ in range(3):
        done = subprocess.run([sys.executable, "-c", TASK_START, dag_file], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"the task-start measurement failed: {done.stderr[-1500:]}")
        dags, *figures = done.stdout.strip().splitlines()[-1].split()
        seconds = [float(f) for f in figures]
        best = seconds if not best or sum(seconds) < sum(best) else best
    assert int(dags) == count
    return dict(zip(("task_sdk_import", "dag_file_parse", "sync_modules_import"), best, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--practices", type=int, default=10)
    parser.add_argument("--clients", type=int, default=2_000)
    parser.add_argument("--jobs", type=int, default=10_000)
    args = parser.parse_args()
    os.chdir(REPO)
    home = Path(tempfile.mkdtemp(prefix="xpm-bench-practices-"))
    starts = {"1 practice": task_start(1), f"{args.practices} practices": task_start(args.practices)}
    say(f"a task's start, CPU seconds: {json.dumps(starts)}")
    one = run(1, args.clients, args.jobs, home)
    many = run(args.practices, args.clients, args.jobs, home)
    report = {
        "clients": args.clients,
        "jobs": args.jobs,
        "a task's start, CPU seconds": starts,
        "one practice": one,
        f"{args.practices} practices": many,
        "wall time ratio": round(many["wall_seconds"] / one["wall_seconds"], 2),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
