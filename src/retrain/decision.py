"""The champion/challenger gate: should the newly trained model replace the deployed one?

A pure function of the two models' metrics, so the rule is testable and the reason it gives is
what ends up in the run's report. The caller evaluates both models on the SAME new holdout;
comparing each model's own training-time holdout would reward whichever saw easier data.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from retrain.config import GateConfig
from retrain.drift import DriftReport
from retrain.training import Metrics

# Metrics where higher is better; the gate's floor and improvement rules assume that direction.
GATE_METRICS = ("auc", "average_precision")


@dataclass(frozen=True)
class Decision:
    deploy: bool
    reason: str
    challenger_metric: float
    champion_metric: float | None
    drift_features: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["drift_features"] = list(self.drift_features)
        return out


def decide(
    challenger: Metrics,
    champion: Metrics | None,
    drift: DriftReport | None,
    gate: GateConfig,
) -> Decision:
    """Floor first, then "no champion" deploys, then the challenger must beat the champion."""
    if gate.metric not in GATE_METRICS:
        raise ValueError(f"gate metric {gate.metric!r} not supported; use one of {GATE_METRICS}")
    name = gate.metric
    new = float(getattr(challenger, name))
    old = None if champion is None else float(getattr(champion, name))
    drifted = drift.drifted if drift is not None else ()
    psi = drift.psi if drift is not None else {}

    def decision(deploy: bool, reason: str) -> Decision:
        if drifted:
            listed = ", ".join(f"{f} (PSI {psi[f]:.2f})" for f in drifted)
            reason = f"{reason}; drift in {listed}"
        return Decision(deploy, reason, new, old, tuple(drifted))

    if math.isnan(new):
        return decision(False, f"hold: challenger {name} is undefined (holdout has one class)")
    if new < gate.min_metric:
        return decision(False, f"hold: challenger {name} {new:.4f} < floor {gate.min_metric:.4f}")
    if old is None:
        return decision(
            True, f"deploy: first model, {name} {new:.4f} >= floor {gate.min_metric:.4f}"
        )
    if math.isnan(old):
        return decision(True, f"deploy: champion {name} is undefined, challenger {name} {new:.4f}")
    delta = new - old
    verdict = "deploy" if delta >= gate.min_improvement else "hold"
    cmp = ">=" if delta >= gate.min_improvement else "<"
    return decision(
        verdict == "deploy",
        f"{verdict}: challenger {name} {new:.4f} vs champion {old:.4f} "
        f"(improvement {delta:+.4f} {cmp} required {gate.min_improvement:+.4f})",
    )
