"""The deploy a person signs off ([gate] approval): asked for by the retrain run, answered in
the approve DAG (README, "The deploy decision").

``request`` runs in the retrain DAG instead of the deploy when the policy says deploy and
:func:`retrain.decision.approval_needed` says a person must agree: it writes the pending
approval (superseding any older one still waiting) and says so in an alert with the decision
page. The retrain run then ends, so newer data is trained and decided while the approval
waits. ``settle`` runs in the approve DAG once a person answered or the wait timed out: an
approval deploys exactly as an automatic deploy would (compare-and-swap, the champion unchanged
since the decision); a rejection or a timeout holds; a superseded approval deploys nothing.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from retrain.alerts import Alert, Incidents
from retrain.approvals import (
    APPROVE,
    APPROVED,
    REJECTED,
    SETTLING,
    TIMED_OUT,
    Approval,
    Approvals,
)
from retrain.config import Config
from retrain.decision import approval_needed
from retrain.registry import ModelRegistry
from retrain.reports import report_keys
from retrain.steps.reporting import publish_index
from retrain.steps.retrain import DeployResult, deploy, record_outcome
from retrain.storage import S3Storage

log = logging.getLogger(__name__)


def needed(cfg: Config, record: dict[str, Any]) -> str:
    """Why this decision waits for a person ("" when it deploys, or holds, on its own)."""
    return approval_needed(record, cfg.gate)


def request(
    storage: S3Storage, cfg: Config, record: dict[str, Any], incidents: Incidents
) -> tuple[Approval, Alert]:
    """The pending approval of ``record`` and the "approval needed" alert to send."""
    why = needed(cfg, record)
    if not why:
        raise ValueError(f"{record['version']}: no approval needed")
    page = report_keys(cfg.storage.reports_prefix, record["version"]).decision
    approval = Approvals(storage, cfg).request(record, why, page)
    publish_index(storage, cfg)
    alert = incidents.notice(  # the reason is cut at 300 characters: what to do comes first
        "retrain:approval",
        f"approval needed: deploy {approval.serving_version}?",
        f"answer by {approval.timeout_at} (else: {approval.on_timeout}), in Airflow's Required "
        f"Actions or with `retrain approve|reject {approval.version}`; who may answer: "
        f"{approval.who_may_answer}; why asked: {why}; the policy: {record['reason']}",
        links=(storage.uri(page),),
    )
    log.info("%s waits for approval: %s", approval.version, why)
    return approval, alert


@dataclass(frozen=True)
class Settled:
    version: str
    status: str  # the record's status after this answer
    deployed: bool
    outcome: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def answer_of(response: dict[str, Any]) -> tuple[str, str, str]:
    """(option, who, comment) of a HITL response; who is "" when the wait timed out."""
    user = response.get("responded_by_user") or {}
    who = str(user.get("name") or user.get("id") or "") if isinstance(user, dict) else str(user)
    chosen = (response.get("chosen_options") or [""])[0]
    comment = str((response.get("params_input") or {}).get("comment") or "")
    return chosen, who, comment


def settle(
    storage: S3Storage,
    cfg: Config,
    version: str,
    response: dict[str, Any],
    incidents: Incidents,
    *,
    run: str,
) -> tuple[Settled, Alert | None]:
    """Act on a person's answer to the approval of ``version`` (or on the timeout's default)."""
    approvals = Approvals(storage, cfg)
    got = approvals.get(version)
    if got is None:
        raise ValueError(f"no approval of {version} was requested")
    current = got[0]
    chosen, who, comment = answer_of(response)
    resuming = current.outcome.endswith(SETTLING) and current.by == who  # a retried settle
    if current.status != "pending" and not resuming:  # superseded meanwhile, or answered
        outcome = f"answered {chosen or 'nothing'} after it was closed: {current.outcome}"
        log.info("%s: %s", version, outcome)
        return Settled(version, current.status, False, outcome), None
    timed_out = not who
    if timed_out:  # the record's setting, which the request was made under, decides
        hours = cfg.gate.approval_timeout_hours
        said = (
            f"no answer within {hours:g} h, so [gate] approval_on_timeout = {current.on_timeout!r}"
        )
        chosen = APPROVE if current.on_timeout == "deploy" else ""
    else:
        said = f"{'approved' if chosen == APPROVE else 'rejected'} by {who}" + (
            f": {comment}" if comment else ""
        )
    record = ModelRegistry(storage, cfg.storage.models_prefix).load_decision(version)
    if record is None:
        raise ValueError(f"the decision record of {version} is missing")
    status = TIMED_OUT if timed_out else APPROVED if chosen == APPROVE else REJECTED
    # Close the record first (compare-and-swap): a superseding retrain and this answer cannot
    # both win, and nothing deploys unless this writer won.
    closed = (
        current
        if resuming
        else approvals.close(version, status, outcome=f"{said}{SETTLING}", by=who, comment=comment)
    )
    if closed is None:
        latest = approvals.get(version)
        outcome = f"answered after it was closed: {latest[0].outcome if latest else '?'}"
        return Settled(version, latest[0].status if latest else status, False, outcome), None
    if chosen == APPROVE:
        result = deploy(storage, cfg, {**record, "reason": f"{record['reason']} ({said})"}, by=who)
        outcome = f"{said}; " + (
            f"deployed {result.version}" if result.deployed else f"not deployed: {result.reason}"
        )
    else:
        previous = ModelRegistry(storage, cfg.storage.models_prefix).champion()
        result = DeployResult(
            record.get("serving_version") or version,
            False,
            f"hold: {said}",
            previous.version if previous else None,
        )
        outcome = f"{said}; the champion stays"
    approvals.amend(version, outcome=outcome, deployed=result.deployed)
    alert = record_outcome(incidents, storage, cfg, {**record, "reason": outcome}, result, run=run)
    if timed_out and alert is None:
        page = report_keys(cfg.storage.reports_prefix, version).decision
        alert = incidents.notice(
            "retrain:approval", f"approval of {version} timed out", outcome,
            links=(storage.uri(page),),
        )  # fmt: skip
    log.info("%s: %s", version, outcome)
    return Settled(version, status, result.deployed, outcome), alert


def newest_pending(storage: S3Storage, cfg: Config) -> Approval | None:
    pending = Approvals(storage, cfg).pending()
    return pending[0] if pending else None


def to_ask(storage: S3Storage, cfg: Config, version: str | None) -> Approval | None:
    """The approval an approve run asks about: the one its asset event names, while it is
    pending (a run that starts late does not ask about a newer one twice); without a name,
    the newest pending."""
    if not version:
        return newest_pending(storage, cfg)
    got = Approvals(storage, cfg).get(version)
    return got[0] if got is not None and got[0].status == "pending" else None


def question(storage: S3Storage, cfg: Config, approval: Approval, page_url: str) -> dict[str, str]:
    """The HITL request's subject and body (Markdown): what a person decides on."""
    from retrain.decision import flags

    record = ModelRegistry(storage, cfg.storage.models_prefix).load_decision(approval.version)
    record = record or {}
    cmp = record.get("comparison") or {}
    drift = record.get("drift") or {}
    lines = [
        f"**Deploy {approval.serving_version}** (the challenger {approval.version}, refit on "
        f"every row) in place of **{approval.champion_version or 'no champion yet'}**?",
        "",
        f"- why a person is asked: {approval.why}",
        f"- the policy: {record.get('reason', approval.decision_reason)}",
    ]
    if cmp:

        def num(key: str) -> float:
            value = cmp.get(key)
            return float(value) if isinstance(value, int | float) else float("nan")

        lines.append(
            f"- {cmp.get('metric') or cfg.gate.metric}: challenger {num('challenger'):.4f} vs "
            f"champion {num('champion'):.4f}, {num('confidence'):.0%} interval of the "
            f"difference {num('low'):+.4f} to {num('high'):+.4f}"
        )
    if drift.get("summary"):
        lines.append(f"- drift: {drift['summary']}")
    lines += [f"- FLAGGED: {mark}" for mark in flags(record)]
    lines += [
        f"- decision page: {page_url}",
        f"- no answer by {approval.timeout_at}: {approval.on_timeout}",
        f"- who may answer: {approval.who_may_answer}",
    ]
    return {
        "subject": f"Deploy model {approval.serving_version}? (challenger {approval.version})",
        "body": "\n".join(lines),
    }
