"""The DAGs' questions to a person, as Airflow Required Actions (the standard provider's
human-in-the-loop operator); what they decide is applied by `xpm_sync.decisions`.

A run waits on its question in Airflow's "awaiting input" state, holding no worker slot; the answer
comes from Airflow's Required Actions page (or its REST API), which lets the people who may change
the DAG's runs answer: the same role the XPM page asks of "Sync now". No answer within
`[xpm_sync] decision_timeout_hours` takes the safe choice: keep the rows; keep XPM's value.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Param

from xpm_sync import config
from xpm_sync.decisions import APPLY, KEEP, LOCAL, MARK, XPM


def _timeout() -> timedelta:
    return timedelta(hours=max(config.get_int("decision_timeout_hours"), 1))


def _asks_again_after_a_failure(kwargs: dict[str, Any]) -> None:
    """One retry, which asks again: the answer is applied only by a try that finishes, so a try that
    failed after it (the store out of reach; Airflow failing a task answered within moments of asking,
    before the scheduler saw it park) leaves the question open, not lost."""
    kwargs.setdefault("retries", 1)
    kwargs.setdefault("retry_delay", timedelta(seconds=10))
    kwargs.setdefault("retry_exponential_backoff", False)


def _responder(result: Any) -> tuple[str | None, bool]:
    """(who answered, whether nobody did and the default was taken)."""
    user = result.get("responded_by_user") if isinstance(result, dict) else None
    if not user:
        return None, True
    return str(user.get("name") or user.get("id")), False


def _skip(reason: str) -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    raise AirflowSkipException(reason)


def download_link(decision_id: int) -> str:
    """The XPM page's CSV of a decision's rows, as the browser showing Airflow reaches it."""
    from airflow.configuration import conf

    from xpm_sync import practices

    root = urlsplit(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")
    practice = practices.current()
    page = "/xpm" if practice.primary else f"/xpm/practices/{practice.name}"
    return f"{root}{page}/decisions/{decision_id}.csv"


def _tenant() -> str:
    """The tenant of the practice the task acts for (its questions are about that practice's rows)."""
    from xpm_sync.status import read
    from xpm_sync.store.engine import get_engine

    return read(get_engine()).tenant_id or ""


class _PracticeQuestion(HITLOperator):
    """A question about one practice's rows: its methods act for the practice named by `conn_id`."""

    def __init__(self, *, conn_id: str, **kwargs: Any) -> None:
        _asks_again_after_a_failure(kwargs)
        self.conn_id = conn_id
        super().__init__(**kwargs)

    def execute(self, context: Any) -> Any:
        from xpm_sync import practices

        with practices.using(self.conn_id):
            return self.ask(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        from xpm_sync import practices

        with practices.using(self.conn_id):
            return self.answered(context, event)

    def ask(self, context: Any) -> Any:
        return super().execute(context)

    def answered(self, context: Any, event: dict[str, Any]) -> Any:
        return super().execute_complete(context, event)


class RemovalDecision(_PracticeQuestion):
    """Asks whether to apply the removals this run held back; skipped when it held none back."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            subject="XPM no longer lists some stored rows: mark them removed?",
            options=[MARK, KEEP],
            defaults=[KEEP],
            response_timeout=_timeout(),
            **kwargs,
        )

    def ask(self, context: Any) -> Any:
        from xpm_sync import decisions
        from xpm_sync.store.engine import get_engine

        ti = context["ti"]
        held = decisions.held_in_run(get_engine(), _tenant(), ti.run_id, dag_id=ti.dag_id, task_id=ti.task_id)
        if not held:
            _skip("Nothing was held back in this run: there is nothing to decide.")
        self.subject = decisions.removal_subject(held)[:1000]
        self.body = decisions.removal_body(held, download_link)
        self.log.info("Waiting for a decision in Required Actions: %s", self.subject)
        return super().ask(context)

    def answered(self, context: Any, event: dict[str, Any]) -> Any:
        from xpm_sync import decisions
        from xpm_sync.store.engine import get_engine

        result = super().answered(context, event)
        who, timed_out = _responder(result)
        approve = list(result["chosen_options"]) == [MARK] and not timed_out
        ti = context["ti"]
        engine = get_engine()
        asked = decisions.asked_by(engine, ti.dag_id, ti.run_id, ti.task_id)
        settled = decisions.settle_removals(engine, asked, approve=approve, who=who, timed_out=timed_out)
        self.log.info("%s: %s", "Approved by " + who if approve and who else "Kept", settled.message)
        return {"chosen": result["chosen_options"][0], "decided_by": who, "marked": settled.marked}


class ConflictDecision(_PracticeQuestion):
    """Asks, for each push conflict no run has asked about yet, whether the local value or XPM's stands."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            subject="Changes made here met newer values in XPM: keep the local value or XPM's?",
            options=[APPLY],
            defaults=[APPLY],
            response_timeout=_timeout(),
            **kwargs,
        )

    def ask(self, context: Any) -> Any:
        from airflow.sdk.definitions.param import ParamsDict

        from xpm_sync import decisions
        from xpm_sync.store.engine import get_engine

        ti = context["ti"]
        asked = decisions.ask_conflicts(get_engine(), _tenant(), dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id)
        if not asked:
            _skip("No push conflict is waiting for a decision.")
        self.params = ParamsDict(
            {
                decisions.conflict_param(d): Param(
                    XPM, enum=[LOCAL, XPM], title=d.question[:200], description=f"Outbox change {', '.join(d.keys)}"
                )
                for d in asked
            }
        )
        self.subject = f"{len(asked)} change(s) made here met newer values in XPM: keep the local value or XPM's?"
        self.body = (
            "Each change below was made here, then XPM's value changed too, and the practice's settings now leave "
            f"the field to XPM. **{LOCAL}** sends the local value to XPM with the next push (once, over XPM's); "
            f"**{XPM}** discards the change, and the next pull brings XPM's value. No answer keeps XPM's value."
        )
        return super().ask(context)

    def answered(self, context: Any, event: dict[str, Any]) -> Any:
        from xpm_sync import decisions
        from xpm_sync.store.engine import get_engine

        result = super().answered(context, event)
        who, timed_out = _responder(result)
        given = result.get("params_input") or {}
        ti = context["ti"]
        engine = get_engine()
        chosen = {}
        for decision in decisions.asked_by(engine, ti.dag_id, ti.run_id, ti.task_id):
            answer = given.get(decisions.conflict_param(decision), XPM)
            chosen[decision.id] = XPM if timed_out or answer not in (LOCAL, XPM) else answer
        counts = decisions.settle_conflicts(engine, chosen, who=who, timed_out=timed_out)
        self.log.info("Decided by %s: %s", who or "nobody (the default)", counts)
        return {"decided_by": who, **counts}
