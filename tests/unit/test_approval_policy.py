"""When a person must approve a deploy ([gate] approval): the pure policy
(``decision.approval_needed``) for each mode and each kind of decision, and the config check of
the new [gate] settings."""

from __future__ import annotations

import copy
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from retrain.config import ConfigError, GateConfig, load_config, parse_config
from retrain.config_check import check_config
from retrain.decision import FLAG_WORSE, approval_needed, flags

TOML = Path(__file__).parents[2] / "retrain.toml"
SOURCE = "test.toml"
GATE = GateConfig(metric="auc", min_metric=0.6, non_inferiority_margin=0.02)
CHANGE = "it deploys because something changed"
ALWAYS = '[gate] approval = "always"'


def record(rule: str, *, deploy: bool, low: float | None = None, high: float | None = None):
    """A decision record with the keys ``flags`` reads; ``low``/``high``: the interval of
    challenger - champion (None: no comparison, as for a first model)."""
    out: dict[str, Any] = {
        "version": "20261122T013000Z-aaaaaa",
        "deploy": deploy,
        "rule": rule,
        "reason": f"{'deploy' if deploy else 'hold'}: {rule}",
        "policy": {"gate": {"metric": "auc", "min_metric": 0.6}},
        "challenger_metrics": {"auc": 0.8},
        "comparison": None,
        "champion_metrics": None,
    }
    if low is not None and high is not None:
        out["comparison"] = {
            "metric": "auc",
            "challenger": 0.8,
            "champion": 0.8 - (low + high) / 2,
            "delta": (low + high) / 2,
            "low": low,
            "high": high,
            "confidence": 0.95,
        }
        out["champion_metrics"] = {"auc": out["comparison"]["champion"]}
    return out


FIRST = record("first_model", deploy=True)
BETTER = record("better", deploy=True, low=0.004, high=0.02)
AFTER_CHANGE = record("non_inferior_after_change", deploy=True, low=-0.01, high=0.005)
WORSE_AFTER_CHANGE = record("non_inferior_after_change", deploy=True, low=-0.015, high=-0.002)
DEPLOYS = {
    "first_model": FIRST,
    "better": BETTER,
    "non_inferior_after_change": AFTER_CHANGE,
    "worse_within_margin": WORSE_AFTER_CHANGE,
}
HOLDS = {
    "undefined": record("undefined", deploy=False),
    "below_floor": record("below_floor", deploy=False),
    "not_better": record("not_better", deploy=False, low=-0.01, high=0.01),
    # worse with confidence, but held: the policy doing its job, nothing to approve
    "inferior_after_change": record("inferior_after_change", deploy=False, low=-0.05, high=-0.03),
}
MODES = ("never", "on_change", "always")


def gate(mode: str) -> GateConfig:
    return replace(GATE, approval=mode)


def test_the_records_are_what_they_claim() -> None:
    """The fixtures themselves: only the worse-within-the-margin deploy carries FLAG_WORSE."""
    assert flags(WORSE_AFTER_CHANGE) == (FLAG_WORSE,)
    assert [flags(r) for r in (FIRST, BETTER, AFTER_CHANGE)] == [(), (), ()]
    assert flags(HOLDS["inferior_after_change"]) == ()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", sorted(HOLDS))
def test_a_hold_never_asks(mode: str, kind: str) -> None:
    assert approval_needed(HOLDS[kind], gate(mode)) == ""


@pytest.mark.parametrize("kind", sorted(DEPLOYS))
def test_never_never_asks(kind: str) -> None:
    assert approval_needed(DEPLOYS[kind], gate("never")) == ""


def test_never_is_the_default() -> None:
    assert GateConfig().approval == "never"
    assert approval_needed(WORSE_AFTER_CHANGE, GateConfig()) == ""


@pytest.mark.parametrize("kind", sorted(DEPLOYS))
def test_always_asks_on_every_deploy(kind: str) -> None:
    why = approval_needed(DEPLOYS[kind], gate("always"))
    assert ALWAYS in why


@pytest.mark.parametrize("kind", ["first_model", "better"])
def test_on_change_does_not_ask_on_a_first_or_a_better_model(kind: str) -> None:
    assert approval_needed(DEPLOYS[kind], gate("on_change")) == ""


def test_on_change_asks_on_a_deploy_after_a_change() -> None:
    why = approval_needed(AFTER_CHANGE, gate("on_change"))
    assert CHANGE in why
    assert FLAG_WORSE not in why


def test_on_change_names_both_reasons_for_a_deploy_worse_within_the_margin() -> None:
    why = approval_needed(WORSE_AFTER_CHANGE, gate("on_change"))
    assert CHANGE in why and FLAG_WORSE in why
    assert why.index(CHANGE) < why.index(FLAG_WORSE)  # the rule first, then the flag
    assert why.count(";") == 1


def test_on_change_asks_on_a_flagged_deploy_whatever_the_rule() -> None:
    """The flag alone asks: a deploy whose whole interval is below 0 under another rule name
    (not produced by decide, but the record is the contract)."""
    odd = record("better", deploy=True, low=-0.01, high=-0.001)
    assert approval_needed(odd, gate("on_change")) == FLAG_WORSE


def test_only_a_deploy_of_true_asks() -> None:
    """``deploy`` is read strictly: a record without it, or with a truthy non-bool, does not ask."""
    missing = {k: v for k, v in AFTER_CHANGE.items() if k != "deploy"}
    assert approval_needed(missing, gate("always")) == ""
    assert approval_needed({**AFTER_CHANGE, "deploy": "yes"}, gate("always")) == ""


# -- the config check of the new [gate] settings ------------------------------------------------


@pytest.fixture(scope="module")
def raw() -> dict:
    return tomllib.loads(TOML.read_text())


def with_gate(raw: dict, **settings: Any) -> dict:
    out = copy.deepcopy(raw)
    out["gate"].update(settings)
    return out


def build(raw: dict):
    return parse_config(raw, env={}, source=SOURCE, check=False)


def test_the_shipped_config_never_asks() -> None:
    cfg = load_config(TOML, env={})
    assert (cfg.gate.approval, cfg.gate.approval_on_timeout) == ("never", "hold")
    assert cfg.gate.approvers == ()


@pytest.mark.parametrize(
    ("settings", "where", "phrase"),
    [
        (
            {"approval": "sometimes"},
            "[gate] approval",
            "approval must be one of ('never', 'on_change', 'always'), got 'sometimes'",
        ),
        (
            {"approval": "always", "approval_on_timeout": "ask_again"},
            "[gate] approval_on_timeout",
            "approval_on_timeout must be one of ('hold', 'deploy'), got 'ask_again'",
        ),
        (
            {"approval": "always", "approval_timeout_hours": 0.0},
            "[gate] approval_timeout_hours",
            "approval_timeout_hours must be above 0, got 0",
        ),
        (
            {"approval": "on_change", "approval_timeout_hours": -1.5},
            "[gate] approval_timeout_hours",
            "approval_timeout_hours must be above 0, got -1.5",
        ),
    ],
    ids=["mode", "on timeout", "zero hours", "negative hours"],
)
def test_each_gate_approval_error_is_found_and_raised(raw, settings, where, phrase) -> None:
    bad = with_gate(raw, **settings)
    found = check_config(build(bad))
    assert [(f.severity, f.where) for f in found] == [("error", where)], [str(f) for f in found]
    assert phrase in found[0].message
    with pytest.raises(ConfigError) as exc:
        parse_config(bad, env={}, source=SOURCE)
    assert str(exc.value).splitlines() == [f"{SOURCE}: {where}: {found[0].message}"]


def test_approvers_without_approval_are_a_warning(raw) -> None:
    cfg = parse_config(with_gate(raw, approvers=["ana"]), env={}, source=SOURCE)  # not raised
    assert cfg.gate.approval == "never" and cfg.gate.approvers == ("ana",)
    (finding,) = check_config(cfg)
    assert (finding.severity, finding.where) == ("warning", "[gate] approvers")
    assert 'approval = "never", so nobody is ever asked' in finding.message


@pytest.mark.parametrize("mode", ["always", "on_change"])
def test_approvers_with_approval_are_fine(raw, mode: str) -> None:
    settings = {
        "approval": mode,
        "approvers": ["ana", "bo"],
        "approval_timeout_hours": 0.5,
        "approval_on_timeout": "deploy",
    }
    cfg = parse_config(with_gate(raw, **settings), env={}, source=SOURCE)
    assert check_config(cfg) == ()
    assert (cfg.gate.approval, cfg.gate.approvers) == (mode, ("ana", "bo"))
    assert (cfg.gate.approval_timeout_hours, cfg.gate.approval_on_timeout) == (0.5, "deploy")
