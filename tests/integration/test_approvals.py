"""Approvals of deploys against the real local S3 server: the pending record and its supersede,
the compare-and-swap close, and settle end to end on a real registry (approve, reject, the
timeout either way, a superseded approval, a champion that moved since the decision)."""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from retrain.alerts import Incidents
from retrain.approvals import (
    APPROVE,
    APPROVED,
    PENDING,
    REJECT,
    REJECTED,
    SUPERSEDED,
    TIMED_OUT,
    ApprovalChanged,
    Approvals,
)
from retrain.config import Config
from retrain.layout import Layout
from retrain.registry import ModelRegistry
from retrain.reports import report_keys
from retrain.steps import approval as approval_step
from retrain.steps.approval import newest_pending, request, settle, to_ask
from retrain.storage import S3Storage

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
HOURS = 6.0
ANA = {"id": "ana", "name": "Ana"}
_CREATED = itertools.count()  # versions one second apart: ids sort by creation


@pytest.fixture
def cfg(config: Config, storage: S3Storage) -> Config:
    gate = replace(
        config.gate,
        approval="always",
        approval_timeout_hours=HOURS,
        approval_on_timeout="hold",
        approvers=("ana", "bo"),
    )
    return replace(config, storage=replace(config.storage, bucket=storage.bucket), gate=gate)


@pytest.fixture
def registry(storage: S3Storage, cfg: Config) -> ModelRegistry:
    return ModelRegistry(storage, cfg.storage.models_prefix)


@pytest.fixture
def incidents(storage: S3Storage, cfg: Config) -> Incidents:
    return Incidents(storage, Layout.of(cfg))


def new_version(registry: ModelRegistry, *, auc: float, reference: bool) -> str:
    """A complete version (metadata.json written), ids in creation order."""
    version = registry.new_version(datetime.now(UTC) + timedelta(seconds=next(_CREATED)))
    registry.save_version(
        version,
        model_text=f"tree\nversion={version}\n",
        metadata={"metrics": {"auc": auc}, "rows": 1000},
        reference_profile={"tenure_months": {"bins": [0, 1, 2]}} if reference else None,
    )
    return version


def decided(
    registry: ModelRegistry, *, champion: str | None = None, auc: float = 0.8
) -> dict[str, Any]:
    """A challenger and its serving refit saved, and the decision to deploy the refit recorded
    on both, as refit_for_serving leaves them."""
    version = new_version(registry, auc=auc, reference=False)
    serving = new_version(registry, auc=auc, reference=True)
    record = {
        "version": version,
        "deploy": True,
        "rule": "first_model",
        "reason": f"deploy: first model, auc {auc:.4f} >= floor 0.6000",
        "conditions": {"floor": {"challenger": auc, "floor": 0.6, "passed": True}},
        "policy": {"gate": {"metric": "auc", "min_metric": 0.6}},
        "serving_version": serving,
        "champion_version": champion,
        "challenger_metrics": {"auc": auc},
        "champion_metrics": None,
        "comparison": None,
    }
    registry.record_decision(serving, record)
    registry.record_decision(version, record)
    return record


def answer(option: str, user: dict[str, str] | None = ANA, comment: str = "") -> dict[str, Any]:
    """A HITL response as the approve DAG's wait_for_approval task returns it (user None: the
    timeout's default)."""
    return {
        "chosen_options": [option],
        "params_input": {"comment": comment},
        "responded_by_user": user,
    }


def parsed(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


# -- the pending record ------------------------------------------------------------------------


def test_a_request_writes_a_pending_approval_and_alerts(
    storage: S3Storage, cfg: Config, registry: ModelRegistry, incidents: Incidents
) -> None:
    record = decided(registry)
    version, serving = record["version"], record["serving_version"]
    approval, alert = request(storage, cfg, record, incidents)

    stored, etag = Approvals(storage, cfg).get(version)
    assert stored == approval and etag
    assert storage.exists(Layout.of(cfg).approval_key(version))
    assert (stored.status, stored.serving_version, stored.champion_version) == (
        PENDING,
        serving,
        None,
    )
    assert parsed(stored.timeout_at) - parsed(stored.requested_at) == timedelta(hours=HOURS)
    assert abs(parsed(stored.requested_at) - datetime.now(UTC)) < timedelta(minutes=5)
    assert (stored.on_timeout, stored.approvers) == ("hold", ("ana", "bo"))
    assert stored.who_may_answer == "ana, bo"
    assert '[gate] approval = "always"' in stored.why
    assert stored.decision_reason == record["reason"]
    page = report_keys(cfg.storage.reports_prefix, version).decision
    assert stored.decision_page == page
    assert (stored.by, stored.deployed, stored.outcome, stored.history) == ("", False, "", ())

    assert alert.incident == "retrain:approval" and alert.status == "notice"
    assert serving in alert.title
    assert alert.reason.startswith(f"answer by {stored.timeout_at} (else: hold)")
    assert f"retrain approve|reject {version}" in alert.reason
    assert alert.links == (storage.uri(page),)
    assert incidents.history()[0]["title"] == alert.title
    assert newest_pending(storage, cfg) == stored
    assert registry.champion() is None  # asking deploys nothing


def test_the_approval_alert_says_until_when_and_who(
    storage: S3Storage, cfg: Config, registry: ModelRegistry, incidents: Incidents
) -> None:
    record = decided(registry)  # the shortest reason the policy writes
    approval, alert = request(storage, cfg, record, incidents)
    assert approval.timeout_at in alert.reason
    assert "(else: hold)" in alert.reason
    assert "who may answer: ana, bo" in alert.reason
    assert f"`retrain approve|reject {approval.version}`" in alert.reason


def test_a_request_the_policy_does_not_need_writes_nothing(
    storage: S3Storage, cfg: Config, registry: ModelRegistry, incidents: Incidents
) -> None:
    record = decided(registry)
    never = replace(cfg, gate=replace(cfg.gate, approval="never"))
    with pytest.raises(ValueError, match="no approval needed"):
        request(storage, never, record, incidents)
    assert Approvals(storage, cfg).all() == []
    assert newest_pending(storage, cfg) is None


def test_a_newer_request_supersedes_the_older(
    storage: S3Storage, cfg: Config, registry: ModelRegistry
) -> None:
    approvals = Approvals(storage, cfg)
    old_record, new_record = decided(registry), decided(registry)
    old = approvals.request(old_record, "why", "page-old", now=T0)
    new = approvals.request(new_record, "why", "page-new", now=T0 + timedelta(hours=1))

    older, _ = approvals.get(old.version)
    assert (older.status, older.superseded_by, older.deployed) == (
        SUPERSEDED,
        new.version,
        False,
    )
    assert "never deploys" in older.outcome and new.version in older.outcome
    assert older.by == "" and older.answered_at
    assert [h["status"] for h in older.history] == [SUPERSEDED]
    assert approvals.get(new.version)[0].status == PENDING
    assert [a.version for a in approvals.pending()] == [new.version]
    assert [a.version for a in approvals.all()] == [new.version, old.version]  # newest first
    assert newest_pending(storage, cfg).version == new.version
    # superseding it again changes nothing: it is not pending any more
    assert approvals.supersede(old.version, "someone-else") is None
    assert approvals.get(old.version)[0].superseded_by == new.version
    # an approve run asks about the version its event names, and about nothing superseded
    assert to_ask(storage, cfg, new.version) == approvals.get(new.version)[0]
    assert to_ask(storage, cfg, old.version) is None, "a late run does not ask again"
    assert to_ask(storage, cfg, None).version == new.version, "no name: the newest pending"


# -- close: a compare-and-swap ------------------------------------------------------------------


def test_closing_a_record_that_changed_meanwhile_raises(
    storage: S3Storage, cfg: Config, registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    approvals = Approvals(storage, cfg)
    version = approvals.request(decided(registry), "why", "page", now=T0).version
    stale = approvals.get(version)
    key = Layout.of(cfg).approval_key(version)
    changed = {**stale[0].as_dict(), "comment": "written by someone else"}  # still pending
    storage.put_json(key, changed)

    monkeypatch.setattr(Approvals, "get", lambda self, v: stale)  # the read before the write
    with pytest.raises(ApprovalChanged, match=version):
        approvals.close(version, APPROVED, outcome="approved", by="Ana", deployed=True)
    monkeypatch.undo()

    assert storage.get_json(key) == changed  # the other writer's record stands
    closed = approvals.close(version, REJECTED, outcome="rejected", by="Ana", comment="no")
    assert closed is not None and closed.status == REJECTED
    assert approvals.get(version)[0] == closed


def test_closing_a_record_that_is_not_pending_returns_none(
    storage: S3Storage, cfg: Config, registry: ModelRegistry
) -> None:
    approvals = Approvals(storage, cfg)
    version = approvals.request(decided(registry), "why", "page", now=T0).version
    first = approvals.close(version, APPROVED, outcome="approved", by="Ana", deployed=True)
    assert first is not None
    assert approvals.close(version, REJECTED, outcome="rejected", by="Bo") is None
    assert approvals.get(version)[0] == first  # untouched
    assert approvals.close("20990101T000000Z-ffffff", REJECTED, outcome="x") is None
    with pytest.raises(ValueError, match="not a closing status"):
        approvals.close(version, PENDING, outcome="x")


# -- settle end to end ---------------------------------------------------------------------------


def test_an_approval_deploys_the_serving_model_and_names_who(
    storage: S3Storage, cfg: Config, registry: ModelRegistry, incidents: Incidents
) -> None:
    record = decided(registry)
    version, serving = record["version"], record["serving_version"]
    request(storage, cfg, record, incidents)
    incidents.bump_streak("earlier-run", "held: not better")

    done, alert = settle(
        storage, cfg, version, answer(APPROVE, comment="looks fine"), incidents, run="r1"
    )

    assert (done.version, done.status, done.deployed) == (version, APPROVED, True)
    assert done.outcome == f"approved by Ana: looks fine; deployed {serving}"
    champion = registry.champion()
    assert (champion.version, champion.by, champion.previous_version) == (serving, "Ana", None)
    assert champion.reason == f"{record['reason']} (approved by Ana: looks fine)"
    assert champion.metrics == {"auc": 0.8}
    (promotion,) = registry.promotions()
    assert (promotion.version, promotion.kind, promotion.by) == (serving, "deploy", "Ana")
    stored, _ = Approvals(storage, cfg).get(version)
    assert (stored.status, stored.by, stored.comment, stored.deployed) == (
        APPROVED,
        "Ana",
        "looks fine",
        True,
    )
    assert stored.outcome == done.outcome and stored.answered_at
    assert [(h["status"], h["by"]) for h in stored.history] == [(APPROVED, "Ana")]
    assert alert is None  # a first model's deploy is not notable
    assert incidents.streak() is None  # a deploy ends the streak
    assert newest_pending(storage, cfg) is None

    # the same answer again (a retried task) deploys nothing more
    again, _ = settle(storage, cfg, version, answer(APPROVE), incidents, run="r1")
    assert (again.status, again.deployed) == (APPROVED, False)
    assert "after it was closed" in again.outcome
    assert len(registry.promotions()) == 1


def test_a_rejection_holds_and_names_who(
    storage: S3Storage, cfg: Config, registry: ModelRegistry, incidents: Incidents
) -> None:
    record = decided(registry)
    version = record["version"]
    request(storage, cfg, record, incidents)

    done, alert = settle(
        storage, cfg, version, answer(REJECT, comment="too risky"), incidents, run="r1"
    )

    assert (done.status, done.deployed) == (REJECTED, False)
    assert done.outcome == "rejected by Ana: too risky; the champion stays"
    assert registry.champion() is None and registry.promotions() == []
    stored, _ = Approvals(storage, cfg).get(version)
    assert (stored.status, stored.by, stored.comment, stored.deployed) == (
        REJECTED,
        "Ana",
        "too risky",
        False,
    )
    assert alert is not None and alert.incident == "retrain:held"
    assert "rejected by Ana" in alert.reason
    assert incidents.streak().runs == 1  # a run without a deploy


def test_a_timeout_on_hold_holds_and_alerts(
    storage: S3Storage, cfg: Config, registry: ModelRegistry, incidents: Incidents
) -> None:
    record = decided(registry)
    version = record["version"]
    request(storage, cfg, record, incidents)

    # the approve DAG's default on a timeout: Reject when approval_on_timeout = "hold"
    done, alert = settle(storage, cfg, version, answer(REJECT, user=None), incidents, run="r1")

    assert (done.status, done.deployed) == (TIMED_OUT, False)
    assert f"no answer within {HOURS:g} h" in done.outcome and "'hold'" in done.outcome
    assert registry.champion() is None
    stored, _ = Approvals(storage, cfg).get(version)
    assert (stored.status, stored.by, stored.deployed) == (TIMED_OUT, "", False)
    assert alert is not None and "no answer within" in alert.reason


def test_a_timeout_on_deploy_deploys(
    storage: S3Storage, cfg: Config, registry: ModelRegistry, incidents: Incidents
) -> None:
    cfg = replace(cfg, gate=replace(cfg.gate, approval_on_timeout="deploy"))
    record = decided(registry)
    version, serving = record["version"], record["serving_version"]
    approval, _ = request(storage, cfg, record, incidents)
    assert approval.on_timeout == "deploy"

    done, alert = settle(storage, cfg, version, answer(APPROVE, user=None), incidents, run="r1")

    assert (done.status, done.deployed) == (TIMED_OUT, True)
    assert "'deploy'" in done.outcome and done.outcome.endswith(f"deployed {serving}")
    champion = registry.champion()
    assert (champion.version, champion.by) == (serving, "")
    stored, _ = Approvals(storage, cfg).get(version)
    assert (stored.status, stored.by, stored.deployed) == (TIMED_OUT, "", True)
    # not notable as a deploy, so the timeout says so itself
    assert alert is not None and alert.incident == "retrain:approval"
    assert alert.title == f"approval of {version} timed out"


def test_a_superseded_approval_deploys_nothing(
    storage: S3Storage, cfg: Config, registry: ModelRegistry, incidents: Incidents
) -> None:
    approvals = Approvals(storage, cfg)
    old_record, new_record = decided(registry), decided(registry)
    old = approvals.request(old_record, "why", "page", now=T0)
    approvals.request(new_record, "why", "page", now=T0 + timedelta(hours=1))

    done, alert = settle(storage, cfg, old.version, answer(APPROVE), incidents, run="r1")

    assert (done.status, done.deployed, alert) == (SUPERSEDED, False, None)
    assert "after it was closed" in done.outcome and "never deploys" in done.outcome
    assert registry.champion() is None
    stored, _ = approvals.get(old.version)
    assert (stored.status, stored.by) == (SUPERSEDED, "")  # the late answer changed nothing


def test_an_approval_after_the_champion_moved_does_not_deploy(
    storage: S3Storage, cfg: Config, registry: ModelRegistry, incidents: Incidents
) -> None:
    record = decided(registry)  # decided while there was no champion
    version = record["version"]
    request(storage, cfg, record, incidents)
    other = new_version(registry, auc=0.79, reference=True)
    registry.promote(other, expected=None, reason="someone else", metrics={"auc": 0.79})

    done, alert = settle(storage, cfg, version, answer(APPROVE), incidents, run="r1")

    assert (done.status, done.deployed) == (APPROVED, False)
    assert f"not deployed: champion changed from None to {other}" in done.outcome
    assert registry.champion().version == other
    stored, _ = Approvals(storage, cfg).get(version)
    assert (stored.status, stored.by, stored.deployed) == (APPROVED, "Ana", False)
    assert alert is not None and alert.incident == "retrain:held"


def test_settling_an_approval_never_requested_raises(
    storage: S3Storage, cfg: Config, registry: ModelRegistry, incidents: Incidents
) -> None:
    version = decided(registry)["version"]
    with pytest.raises(ValueError, match="no approval"):
        settle(storage, cfg, version, answer(APPROVE), incidents, run="r1")
    assert registry.champion() is None


def test_a_supersede_racing_an_approval_does_not_both_win(
    storage: S3Storage,
    cfg: Config,
    registry: ModelRegistry,
    incidents: Incidents,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    approvals = Approvals(storage, cfg)
    old_record, new_record = decided(registry), decided(registry)
    old = approvals.request(old_record, "why", "page", now=T0)
    real_deploy = approval_step.deploy

    def superseded_meanwhile(*args: Any, **kwargs: Any):
        # a newer retrain asks after settle read the pending record, before it deploys
        approvals.request(new_record, "why", "page", now=T0 + timedelta(hours=1))
        return real_deploy(*args, **kwargs)

    monkeypatch.setattr(approval_step, "deploy", superseded_meanwhile)
    with contextlib.suppress(ApprovalChanged):
        settle(storage, cfg, old.version, answer(APPROVE), incidents, run="r1")

    stored, _ = approvals.get(old.version)
    champion = registry.champion()
    deployed_old = champion is not None and champion.version == old_record["serving_version"]
    assert not (deployed_old and stored.status == SUPERSEDED), (
        f"{old.version} is recorded {stored.status} ({stored.outcome}) but its refit is champion"
    )


# -- retrain approve: answering again when Airflow lost the answer ------------------------------


class LosingAirflow:
    """The HITL REST API as Airflow 3.3.2 behaves when it loses an answer (AirflowApi.respond):
    the first answer is taken, then the task is retried and asks again (try 2); the second
    answer is settled as the approve DAG would settle it. Airflow's race cannot be provoked on
    demand on a real stack, so this stands in for its API."""

    def __init__(self, storage: S3Storage, cfg: Config, version: str) -> None:
        self.storage, self.cfg, self.version = storage, cfg, version
        self.answers: list[tuple[int, list[str], dict]] = []

    def hitl_requests(self, dag_id: str, *, answered=False, subject: str = "") -> list[dict]:
        assert (dag_id, answered, subject) == ("approve", False, self.version)
        tries = len(self.answers) + 1
        if tries > 2:
            return []
        return [{"task_instance": {"try_number": tries}, "created_at": "2026-11-30T08:00:00Z"}]

    def respond(self, request: dict, chosen: list[str], params_input: dict) -> dict:
        self.answers.append((request["task_instance"]["try_number"], chosen, params_input))
        if len(self.answers) == 2:  # the retried question's answer arrives and is settled
            incidents = Incidents(self.storage, Layout.of(self.cfg))
            response = answer(chosen[0], ANA, "ok")
            settle(self.storage, self.cfg, self.version, response, incidents, run="r")
        return {}


def test_retrain_approve_answers_again_when_the_task_asked_again(
    storage: S3Storage, cfg: Config, registry: ModelRegistry, monkeypatch, capsys
) -> None:
    from retrain import cli
    from retrain.cli import approval as command

    record = decided(registry)
    Approvals(storage, cfg).request(record, "why", "page")
    airflow = LosingAirflow(storage, cfg, record["version"])
    monkeypatch.setattr(command, "stack_config", lambda root: cfg)
    monkeypatch.setattr(command, "storage", lambda c: storage)
    monkeypatch.setattr(command, "airflow", lambda args: airflow)
    monkeypatch.setattr(command.time, "sleep", lambda s: None)
    assert cli.main(["approve", record["version"], "--comment", "ok"]) == 0
    assert [(t, c) for t, c, _ in airflow.answers] == [(1, ["Approve"]), (2, ["Approve"])]
    out = capsys.readouterr().out
    assert out.count("approved ") >= 2 and "approved: approved by Ana: ok; deployed " in out
    assert registry.champion().version == record["serving_version"]
