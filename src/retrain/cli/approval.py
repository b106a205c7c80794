"""``retrain approve`` and ``retrain reject``: answer a deploy that waits for a person, through
Airflow's human-in-the-loop REST API (what the Required Actions view does), so scripts can too.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from retrain.approvals import APPROVE, PENDING, REJECT, Approval, Approvals
from retrain.cli.common import CommandError, airflow, stack_config, storage

APPROVE_DAG = "approve"
SETTLE_TIMEOUT_S = 300.0  # the approve DAG resumes and settles within seconds on a live stack


def cmd_approve(args: argparse.Namespace) -> int:
    return _answer(args, APPROVE)


def cmd_reject(args: argparse.Namespace) -> int:
    return _answer(args, REJECT)


def _answer(args: argparse.Namespace, option: str) -> int:
    from retrain.airflow_api import AirflowApiError

    cfg = stack_config(Path(args.root))
    approvals = Approvals(storage(cfg), cfg)
    approval = _find(approvals, args.version)
    if approval.status != PENDING:
        raise CommandError(f"{approval.version} is {approval.status}: {approval.outcome}", 1)
    api = airflow(args)
    if api is None:
        raise CommandError("no --airflow-url and no local stack: which Airflow should answer?")
    verb = "approved" if option == APPROVE else "rejected"
    answered: set[int] = set()  # the tries of the waiting task this command answered
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    try:
        while True:
            # Airflow 3.3.2 can lose an answer (AirflowApi.respond): the task is retried and
            # asks again. An unanswered question of a try not answered yet is answered again.
            asked = api.hitl_requests(APPROVE_DAG, answered=False, subject=approval.version)
            tries = [a for a in asked if a["task_instance"].get("try_number") not in answered]
            if tries:
                api.respond(tries[0], [option], {"comment": args.comment})
                answered.add(tries[0]["task_instance"].get("try_number"))
                if len(answered) == 1:
                    print(f"{verb} {approval.version} (deploys {approval.serving_version} if "
                          "approved)")  # fmt: skip
            elif not answered:
                raise CommandError(
                    f"the approve DAG has not asked about {approval.version} yet (its run "
                    "starts seconds after the retrain run's request); try again, or see "
                    "`retrain status`",
                    1,
                )
            if not args.wait:
                print("the approve DAG settles it now; `retrain status` shows the outcome")
                return 0
            got = approvals.get(approval.version)
            if got is not None and got[0].settled:
                print(f"{got[0].status}: {got[0].outcome}")
                return 0
            if time.monotonic() > deadline:
                raise CommandError(
                    f"answered, but {approval.version} was not settled within "
                    f"{SETTLE_TIMEOUT_S:.0f} s: see the approve DAG's runs in Airflow",
                    1,
                )
            time.sleep(1.0)
    except AirflowApiError as exc:
        raise CommandError(f"Airflow refused the answer: {exc}") from exc


def _find(approvals: Approvals, version: str) -> Approval:
    """The approval of ``version``: the challenger's or its serving refit's."""
    every = approvals.all()
    for approval in every:
        if version in (approval.version, approval.serving_version):
            return approval
    pending = ", ".join(a.version for a in every if a.status == PENDING) or "none"
    raise CommandError(f"no approval of {version} was requested (pending: {pending})", 1)
