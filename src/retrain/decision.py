"""The deploy policy: should the newly trained model replace the deployed one?

One pure function of the evidence, so the rule is testable and the reason it gives is what ends
up in the decision record and its page. The policy (``[gate]`` in the config):

1. The challenger must clear the absolute floor (``min_metric``); the first model deploys on
   the floor alone.
2. Then it deploys if either
   a. something changed (the data drifted, the champion's scores drifted, or the champion's
      metric on the newest data fell more than ``degradation_margin`` below what it scored when
      it was trained) and the challenger is non-inferior: the lower bound of the confidence
      interval of challenger - champion is above ``-non_inferiority_margin``; or
   b. the challenger is better with confidence: that lower bound is above 0.
3. Otherwise it holds, saying which condition was not met.

Both models are scored on the same newest labelled rows, which the champion never trained on;
the interval is a paired bootstrap (retrain.evaluation). A difference inside the noise never
deploys on its own, and drift alone never deploys a worse model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from retrain.config import GateConfig
from retrain.evaluation import METRICS, Comparison

GATE_METRICS = METRICS  # higher is better; the floor and the margins assume that direction


@dataclass(frozen=True)
class Evidence:
    challenger: float  # the challenger's metric on the newest labelled rows
    comparison: Comparison | None = None  # against the champion on the same rows; None: none
    champion_at_training: float | None = None  # the champion's metric when it was trained
    data_drifted: bool = False
    prediction_drifted: bool = False
    drift_summary: str = ""


@dataclass(frozen=True)
class Decision:
    deploy: bool
    rule: str  # which clause decided: see RULES
    reason: str
    conditions: dict[str, Any] = field(default_factory=dict)  # each clause's inputs and result

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


RULES = {
    "undefined": "hold: the challenger's metric is undefined",
    "below_floor": "hold: below the absolute floor",
    "first_model": "deploy: the first model, on the floor alone",
    "non_inferior_after_change": "deploy: something changed and the challenger is non-inferior",
    "better": "deploy: better with confidence",
    "inferior_after_change": "hold: something changed but the challenger is not non-inferior",
    "not_better": "hold: nothing changed and the challenger is not better with confidence",
}


def decide(evidence: Evidence, gate: GateConfig) -> Decision:
    if gate.metric not in GATE_METRICS:
        raise ValueError(f"gate metric {gate.metric!r} not supported; use one of {GATE_METRICS}")
    name, new = gate.metric, float(evidence.challenger)
    if math.isnan(new):
        return Decision(
            False,
            "undefined",
            f"hold: challenger {name} is undefined (the newest rows hold one class)",
        )
    floor = {"challenger": new, "floor": gate.min_metric, "passed": new >= gate.min_metric}
    if not floor["passed"]:
        return Decision(
            False,
            "below_floor",
            f"hold: challenger {name} {new:.4f} < floor {gate.min_metric:.4f}",
            {"floor": floor},
        )
    cmp = evidence.comparison
    if cmp is None:
        return Decision(
            True,
            "first_model",
            f"deploy: first model, {name} {new:.4f} >= floor {gate.min_metric:.4f}",
            {"floor": floor},
        )
    trained = evidence.champion_at_training
    degraded = (
        trained is not None
        and not math.isnan(trained)
        and not math.isnan(cmp.champion)
        and cmp.champion < trained - gate.degradation_margin
    )
    changed = evidence.data_drifted or evidence.prediction_drifted or degraded
    non_inferior = not math.isnan(cmp.low) and cmp.low > -gate.non_inferiority_margin
    better = not math.isnan(cmp.low) and cmp.low > 0
    conditions = {
        "floor": floor,
        "data_drifted": evidence.data_drifted,
        "prediction_drifted": evidence.prediction_drifted,
        "champion_degraded": {
            "now": cmp.champion,
            "at_training": trained,
            "margin": gate.degradation_margin,
            "degraded": degraded,
        },
        "changed": changed,
        "non_inferior": {
            "low": cmp.low,
            "margin": gate.non_inferiority_margin,
            "met": non_inferior,
        },
        "better": {"low": cmp.low, "met": better},
    }
    diff = (
        f"{name} {cmp.challenger:.4f} vs champion {cmp.champion:.4f}, difference {cmp.delta:+.4f} "
        f"({cmp.confidence:.0%} CI {cmp.low:+.4f} to {cmp.high:+.4f}, {cmp.n_rows} newest rows)"
    )
    change = _what_changed(evidence, degraded, cmp, trained, gate)
    if changed and non_inferior:
        rule = "non_inferior_after_change"
        reason = (
            f"deploy: {change}, and the challenger is non-inferior "
            f"(lower bound {cmp.low:+.4f} > -{gate.non_inferiority_margin:.4f}): {diff}"
        )
    elif better:
        rule, reason = "better", f"deploy: the challenger is better with confidence: {diff}"
    elif changed:
        rule = "inferior_after_change"
        reason = (
            f"hold: {change}, but the challenger is not non-inferior "
            f"(lower bound {cmp.low:+.4f} <= -{gate.non_inferiority_margin:.4f}): {diff}"
        )
    else:
        rule = "not_better"
        reason = (
            f"hold: no drift and the champion has not degraded, and the challenger is not better "
            f"with confidence (lower bound {cmp.low:+.4f} <= 0): {diff}"
        )
    return Decision(rule in ("non_inferior_after_change", "better"), rule, reason, conditions)


def _what_changed(
    evidence: Evidence, degraded: bool, cmp: Comparison, trained: float | None, gate: GateConfig
) -> str:
    parts = []
    if evidence.data_drifted:
        parts.append(evidence.drift_summary or "the data drifted")
    if evidence.prediction_drifted:
        parts.append("the champion's scores drifted")
    if degraded and trained is not None:
        parts.append(
            f"the champion degraded ({gate.metric} {cmp.champion:.4f} now vs {trained:.4f} "
            f"when trained, margin {gate.degradation_margin:.4f})"
        )
    return "; ".join(parts) if parts else "nothing changed"


# -- flags: decisions a reviewer must notice, whatever the rule said ----------------------------

FLAG_WORSE = "deployed although worse with confidence (within the margin)"
FLAG_CHAMPION_BELOW_FLOOR = "held on the floor while the champion is also below it on the same rows"


def flags(record: Mapping[str, Any]) -> tuple[str, ...]:
    """Short flags of a decision record (``DecisionRecord.as_dict()``) that the policy followed
    but a person must see: the page, the notice and the index all show these (one place).

    - :data:`FLAG_WORSE`: deployed, and the whole interval of challenger - champion is below 0
      (non-inferior after a change allows a slightly worse model; nobody should learn it late);
    - :data:`FLAG_CHAMPION_BELOW_FLOOR`: held on the floor, and the champion scored below the
      same floor on the same rows: the model left in service fails the bar the challenger failed.
    """
    cmp = record.get("comparison") if isinstance(record.get("comparison"), Mapping) else None
    out = []
    if record.get("deploy") is True and cmp is not None:
        high = _number(cmp.get("high"))
        if high is not None and high < 0:
            out.append(FLAG_WORSE)
    if record.get("deploy") is False and record.get("rule") == "below_floor":
        floor = champion_vs_floor(record)
        if floor is not None and floor[0] < floor[1]:
            out.append(FLAG_CHAMPION_BELOW_FLOOR)
    return tuple(out)


def champion_vs_floor(record: Mapping[str, Any]) -> tuple[float, float] | None:
    """(the champion's gate metric on the decision's rows, the floor), None if either is unknown:
    the comparison's ``champion`` first, else ``champion_metrics[metric]``."""
    policy = record.get("policy") if isinstance(record.get("policy"), Mapping) else {}
    gate = policy.get("gate") if isinstance(policy.get("gate"), Mapping) else {}
    conditions = record.get("conditions") if isinstance(record.get("conditions"), Mapping) else {}
    floor_cond = conditions.get("floor") if isinstance(conditions.get("floor"), Mapping) else {}
    floor = _number(floor_cond.get("floor", gate.get("min_metric")))
    cmp = record.get("comparison") if isinstance(record.get("comparison"), Mapping) else {}
    champion = _number(cmp.get("champion"))
    if champion is None:
        metrics = record.get("champion_metrics")
        metric = cmp.get("metric") or gate.get("metric")
        if isinstance(metrics, Mapping) and metric:
            champion = _number(metrics.get(metric))
    if champion is None or floor is None:
        return None
    return champion, floor


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) else float(value)


# -- approval: when a person signs off before the deploy ([gate] approval) ---------------------


def approval_needed(record: Mapping[str, Any], gate: GateConfig) -> str:
    """Why a person must approve this decision before it deploys ("" when not): only a deploy
    asks. ``"always"``: every deploy; ``"on_change"``: a deploy because something changed (drift,
    score drift, a degraded champion) or one the flags mark as worse within the margin."""
    if record.get("deploy") is not True or gate.approval == "never":
        return ""
    if gate.approval == "always":
        return 'every deploy is approved by a person ([gate] approval = "always")'
    reasons = []
    if record.get("rule") == "non_inferior_after_change":
        reasons.append("it deploys because something changed (drift or a degraded champion)")
    if FLAG_WORSE in flags(record):
        reasons.append(FLAG_WORSE)
    return "; ".join(reasons)
