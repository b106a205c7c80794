"""Approvals of deploys: the record a person's answer settles ([gate] approval).

When the policy says deploy and approval is required, the retrain run writes a pending
approval (``ledger/approvals/<version>.json``) instead of moving the champion, and the approve
DAG asks a person in Airflow's Required Actions. The record is the truth of where the approval
stands: ``pending``, then exactly one of ``approved`` (deployed, or not because the champion
moved meanwhile), ``rejected``, ``timed_out`` or ``superseded`` (a newer challenger asked
since: the older one never deploys). Every change is a compare-and-swap on the record, so an
answer and a superseding retrain cannot both win.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from retrain.config import Config
from retrain.layout import Layout
from retrain.storage import ObjectNotFound, PreconditionFailed, S3Storage

PENDING = "pending"
APPROVED = "approved"
REJECTED = "rejected"
TIMED_OUT = "timed_out"
SUPERSEDED = "superseded"
STATUSES = (PENDING, APPROVED, REJECTED, TIMED_OUT, SUPERSEDED)
APPROVE, REJECT = "Approve", "Reject"  # the options a person has (HITL's, and the CLI's)
SETTLING = "; settling"  # a closed record's outcome until the deploy it allows has run


class ApprovalChanged(RuntimeError):
    """The record changed under this writer (an answer raced a superseding retrain)."""


@dataclass(frozen=True)
class Approval:
    version: str  # the challenger the policy decided on
    serving_version: str  # its refit on every row: what deploys if approved
    requested_at: str
    why: str  # why a person must approve (decision.approval_needed)
    decision_reason: str
    champion_version: str | None  # the champion at the decision; a deploy needs it unchanged
    timeout_at: str
    on_timeout: str  # "hold" or "deploy"
    approvers: tuple[str, ...] = ()
    decision_page: str = ""  # the decision page's key in the bucket
    status: str = PENDING
    by: str = ""  # who answered ("" on a timeout or a supersede)
    answered_at: str = ""
    comment: str = ""
    superseded_by: str = ""
    deployed: bool = False
    outcome: str = ""  # one sentence: what happened, for the status screen and the index
    history: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Approval:
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
        known["approvers"] = tuple(known.get("approvers") or ())
        known["history"] = tuple(known.get("history") or ())
        return cls(**known)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["approvers"], out["history"] = list(self.approvers), list(self.history)
        return out

    @property
    def settled(self) -> bool:
        """Closed, and whatever the answer allowed (a deploy) has run."""
        return self.status != PENDING and not self.outcome.endswith(SETTLING)

    @property
    def who_may_answer(self) -> str:
        return ", ".join(self.approvers) if self.approvers else "any user with access to the DAG"


def now_iso(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).isoformat(timespec="seconds")


class Approvals:
    """The approval records of one bucket."""

    def __init__(self, storage: S3Storage, cfg: Config) -> None:
        self.storage, self.cfg, self.layout = storage, cfg, Layout.of(cfg)

    def get(self, version: str) -> tuple[Approval, str] | None:
        """The record of ``version`` with its ETag, or None."""
        try:
            raw, etag = self.storage.get_json_with_etag(self.layout.approval_key(version))
        except ObjectNotFound:
            return None
        return Approval.from_dict(raw), etag

    def all(self) -> list[Approval]:
        """Every record, newest request first."""
        found = []
        for obj in self.storage.iter_objects(self.layout.approvals_prefix):
            if obj.key.endswith(".json"):
                found.append(Approval.from_dict(self.storage.get_json(obj.key)))
        return sorted(found, key=lambda a: a.requested_at, reverse=True)

    def pending(self) -> list[Approval]:
        return [a for a in self.all() if a.status == PENDING]

    def request(self, record: dict[str, Any], why: str, page: str, now=None) -> Approval:
        """A pending approval of ``record`` (a decision to deploy, refit for serving); any
        older one still pending is closed as superseded by it first."""
        at = now or datetime.now(UTC)
        gate = self.cfg.gate
        approval = Approval(
            version=record["version"],
            serving_version=record["serving_version"],
            requested_at=now_iso(at),
            why=why,
            decision_reason=record["reason"],
            champion_version=record.get("champion_version"),
            timeout_at=now_iso(at + timedelta(hours=gate.approval_timeout_hours)),
            on_timeout=gate.approval_on_timeout,
            approvers=gate.approvers,
            decision_page=page,
        )
        for older in self.pending():
            if older.version != approval.version and older.requested_at <= approval.requested_at:
                self.supersede(older.version, approval.version, now=at)
        try:  # a retried request finds its record (perhaps answered already) and keeps it
            self.storage.put_json(
                self.layout.approval_key(approval.version), approval.as_dict(), if_none_match=True
            )
        except PreconditionFailed:
            got = self.get(approval.version)
            assert got is not None
            return got[0]
        return approval

    def supersede(self, version: str, newer: str, now=None) -> Approval | None:
        outcome = f"superseded by {newer}, which asked for approval since: never deploys"
        return self.close(version, SUPERSEDED, outcome=outcome, superseded_by=newer, now=now)

    def close(
        self,
        version: str,
        status: str,
        *,
        outcome: str,
        by: str = "",
        comment: str = "",
        deployed: bool = False,
        superseded_by: str = "",
        now=None,
    ) -> Approval | None:
        """Settle a pending record (compare-and-swap); None if it is not pending any more."""
        if status not in STATUSES or status == PENDING:
            raise ValueError(f"not a closing status: {status!r}")
        got = self.get(version)
        if got is None or got[0].status != PENDING:
            return None
        current, etag = got
        at = now_iso(now)
        closed = replace(
            current,
            status=status,
            by=by,
            answered_at=at,
            comment=comment,
            deployed=deployed,
            superseded_by=superseded_by,
            outcome=outcome,
            history=(*current.history, {"at": at, "status": status, "by": by}),
        )
        return self._swap(closed, etag)

    def amend(self, version: str, **changes: Any) -> Approval:
        """Change a closed record (the writer that closed it owns it from then on): what came
        of it, once the deploy it allowed has run."""
        got = self.get(version)
        if got is None:
            raise ValueError(f"no approval of {version}")
        current, etag = got
        return self._swap(replace(current, **changes), etag)

    def _swap(self, changed: Approval, etag: str) -> Approval:
        """Write ``changed`` iff its record is still the one read at ``etag``."""
        try:
            self.storage.put_json(
                self.layout.approval_key(changed.version), changed.as_dict(), if_match=etag
            )
        except PreconditionFailed as exc:
            raise ApprovalChanged(f"the approval of {changed.version} changed meanwhile") from exc
        return changed
