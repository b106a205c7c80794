import copy
import tomllib
from pathlib import Path
from typing import Any

import pytest

from retrain.config import ConfigError, load_config, parse_config
from retrain.config_check import Finding, check_config, errors, warnings

TOML = Path(__file__).parents[2] / "retrain.toml"
SOURCE = "test.toml"
DELETE = object()  # a change that removes the key
FEATURES = (
    "tenure_months",
    "monthly_charges",
    "total_charges",
    "support_calls",
    "data_usage_gb",
    "contract",
    "payment_method",
    "region",
)

Change = tuple[tuple[str, ...], Any]


@pytest.fixture(scope="module")
def raw() -> dict:
    return tomllib.loads(TOML.read_text())


def changed(raw: dict, changes: list[Change]) -> dict:
    """A deep copy of ``raw`` with each (path, value) set, or removed for ``DELETE``."""
    out = copy.deepcopy(raw)
    for path, value in changes:
        parent = out
        for key in path[:-1]:
            parent = parent[key]
        if value is DELETE:
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
    return out


def parse(raw: dict, env: dict | None = None):
    return parse_config(raw, env=env or {}, source=SOURCE)


def build(raw: dict):
    """The Config of ``raw`` without the error check (the way a CLI shows every finding)."""
    return parse_config(raw, env={}, source=SOURCE, check=False)


def col(name: str, key: str) -> tuple[str, ...]:
    return ("dataset", "columns", name, key)


# (id, changes, where, a phrase of the message)
ERRORS: list[tuple[str, list[Change], str, str]] = [
    (
        "idle poll below poll",
        [(("orchestration", "poll_interval"), 5.0)],
        "[orchestration] idle_poll_interval",
        "idle_poll_interval 1 is below poll_interval 5",
    ),
    (
        "default missing fraction",
        [(("validation", "max_missing_fraction"), 1.5)],
        "[validation] max_missing_fraction",
        "must be in [0, 1] (a share), got 1.5",
    ),
    (
        "column missing fraction",
        [(col("total_charges", "max_missing_fraction"), -0.1)],
        "column 'total_charges'",
        "max_missing_fraction must be in [0, 1] (a share), got -0.1",
    ),
    (
        "min positive fraction",
        [(("validation", "training_min_positive_fraction"), -0.01)],
        "[validation] training_min_positive_fraction",
        "must be in [0, 1] (a share), got -0.01",
    ),
    (
        "max positive fraction",
        [(("validation", "training_max_positive_fraction"), 1.2)],
        "[validation] training_max_positive_fraction",
        "must be in [0, 1] (a share), got 1.2",
    ),
    (
        "positive fractions crossed",
        [(("validation", "training_min_positive_fraction"), 0.7)],
        "[validation] training_min_positive_fraction",
        "0.7 is not below training_max_positive_fraction 0.6",
    ),
    (
        "share threshold zero",
        [(("drift", "share_threshold"), 0.0)],
        "[drift] share_threshold",
        "one drifted feature would always be enough",
    ),
    (
        "share threshold above one",
        [(("drift", "share_threshold"), 1.5)],
        "[drift] share_threshold",
        "the data could never count as drifted",
    ),
    (
        "floor above one",
        [(("gate", "min_metric"), 1.2)],
        "[gate] min_metric",
        "min_metric 1.2 is outside [0, 1], the range of auc, so no model can reach it",
    ),
    (
        "floor below zero",
        [(("gate", "min_metric"), -0.1)],
        "[gate] min_metric",
        "the floor checks nothing",
    ),
    (
        "negative non-inferiority margin",
        [(("gate", "non_inferiority_margin"), -0.01)],
        "[gate] non_inferiority_margin",
        "must be in [0, 1) (a difference of auc), got -0.01",
    ),
    (
        "degradation margin of one",
        [(("gate", "degradation_margin"), 1.0)],
        "[gate] degradation_margin",
        "must be in [0, 1) (a difference of auc), got 1",
    ),
    (
        "psi threshold",
        [(("drift", "psi_threshold"), 0.0)],
        "[drift] psi_threshold",
        "psi_threshold must be above 0, got 0",
    ),
    (
        "prediction psi threshold",
        [(("drift", "prediction_psi_threshold"), -1.0)],
        "[drift] prediction_psi_threshold",
        "must be above 0, got -1",
    ),
    (
        "distance threshold",
        [(("drift", "distance_threshold"), 0.0)],
        "[drift] distance_threshold",
        "must be above 0, got 0",
    ),
    (
        "metric",
        [(("gate", "metric"), "f1")],
        "[gate] metric",
        "metric 'f1' not supported; use one of ('auc', 'average_precision')",
    ),
    (
        "window below the training minimum",
        [(("training", "window_rows"), 100)],
        "[training] window_rows",
        "window_rows 100 is below [validation] training_min_rows 500",
    ),
    (
        "file minimum rows",
        [(("validation", "min_rows"), 0)],
        "[validation] min_rows",
        "min_rows must be at least 1, got 0",
    ),
    (
        "training minimum rows",
        [(("validation", "training_min_rows"), 0)],
        "[validation] training_min_rows",
        "training_min_rows must be at least 1, got 0",
    ),
    (
        "min above max",
        [(col("tenure_months", "min"), 200)],
        "column 'tenure_months'",
        "min 200 is above max 120",
    ),
    (
        "categories on a number",
        [(col("tenure_months", "categories"), ["1", "2"])],
        "column 'tenure_months'",
        "categories are ignored on a column of dtype 'int'",
    ),
    (
        "empty categories",
        [(col("region", "categories"), [])],
        "column 'region'",
        "categories is empty",
    ),
    (
        "target bounds",
        [(col("churned", "max"), 2)],
        "column 'churned'",
        "the target is a 0/1 label (the gates check it against {0, 1}, not these bounds), but "
        "max 2 lies outside [0, 1]",
    ),
    (
        "repeated categories",
        [(col("region", "categories"), ["north", "south", "north"])],
        "column 'region'",
        "categories repeat ['north']",
    ),
    (
        "nullable not a bool",
        [(col("region", "nullable"), "no")],
        "column 'region'",
        "nullable must be true or false, got 'no'",
    ),
    (
        "bound not a number",
        [(col("tenure_months", "min"), "zero")],
        "column 'tenure_months'",
        "min must be a number, got 'zero'",
    ),
    (
        "bucket characters",
        [(("storage", "bucket"), "Retrain_Demo")],
        "[storage] bucket",
        "characters ['D', 'R', '_'] are not allowed",
    ),
    ("bucket length", [(("storage", "bucket"), "ab")], "[storage] bucket", "2 characters"),
    (
        "bucket edge",
        [(("storage", "bucket"), "retrain-")],
        "[storage] bucket",
        "start and end with a letter or digit",
    ),
    ("bucket dots", [(("storage", "bucket"), "re..train")], "[storage] bucket", "adjacent dots"),
    ("bucket ip", [(("storage", "bucket"), "10.0.0.1")], "[storage] bucket", "an IP address"),
    ("bucket empty", [(("storage", "bucket"), "")], "[storage] bucket", "bucket is empty"),
    (
        "boost rounds",
        [(("training", "num_boost_round"), 0)],
        "[training] num_boost_round",
        "must be at least 1, got 0",
    ),
    (
        "learning rate",
        [(("training", "learning_rate"), 0.0)],
        "[training] learning_rate",
        "must be above 0, got 0",
    ),
    (
        "leaves",
        [(("training", "num_leaves"), 1)],
        "[training] num_leaves",
        "must be at least 2, got 1",
    ),
    (
        "data in leaf",
        [(("training", "min_data_in_leaf"), 0)],
        "[training] min_data_in_leaf",
        "must be at least 1, got 0",
    ),
    (
        "early stopping rounds",
        [(("training", "early_stopping_rounds"), -1)],
        "[training] early_stopping_rounds",
        "must be 0 (off) or more, got -1",
    ),
    *[
        (f"watchdog {name}", [(("watchdog", name), 0.0)], f"[watchdog] {name}", "must be above 0")
        for name in (
            "interval_minutes",
            "max_data_age_hours",
            "max_champion_age_hours",
            "max_landing_wait_minutes",
            "max_run_minutes",
        )
    ],
    (
        "failed retrains",
        [(("watchdog", "max_failed_retrains"), 0)],
        "[watchdog] max_failed_retrains",
        "must be at least 1, got 0",
    ),
    (
        "task retries",
        [(("orchestration", "task_retries"), -1)],
        "[orchestration] task_retries",
        "must be at least 0, got -1",
    ),
    (
        "task timeout",
        [(("orchestration", "task_timeout_minutes"), 0.0)],
        "[orchestration] task_timeout_minutes",
        "must be above 0, got 0",
    ),
    (
        "wait timeout",
        [(("orchestration", "wait_timeout_hours"), -1.0)],
        "[orchestration] wait_timeout_hours",
        "must be above 0, got -1",
    ),
]

# checks that came from config.py and have no case in test_config.py
MOVED_ERRORS: list[tuple[str, list[Change], str, str]] = [
    (
        "sns without a topic",
        [(("alerts", "notifier"), "sns")],
        "[alerts] sns_topic_arn",
        'notifier = "sns" needs sns_topic_arn',
    ),
    (
        "file format",
        [(("dataset", "file_formats"), ["csv", "xlsx"])],
        "[dataset] file_formats",
        "file format 'xlsx' not supported (csv, parquet)",
    ),
    (
        "no features",
        [(("dataset", "columns", name), DELETE) for name in FEATURES],
        "[dataset] columns",
        "no feature columns besides id, time and target",
    ),
    (
        "time column dtype",
        [(col("event_time", "dtype"), "string")],
        "column 'event_time'",
        "time column 'event_time' must have dtype datetime, got 'string'",
    ),
    (
        "duplicate id policy",
        [(("ingest", "duplicate_ids"), "merge")],
        "[ingest] duplicate_ids",
        "duplicate_ids must be one of ('reject', 'upsert'), got 'merge'",
    ),
    (
        "validate tasks",
        [(("ingest", "validate_tasks"), 0)],
        "[ingest] validate_tasks",
        "validate_tasks must be at least 1, got 0",
    ),
    (
        "large file size",
        [(("resources", "large_file_mb"), 0)],
        "[resources] large_file_mb",
        "large_file_mb must be at least 1, got 0",
    ),
    (
        "light task memory",
        [(("resources", "task_memory_mb"), 64)],
        "[resources] task_memory_mb",
        "task_memory_mb must be at least 128, got 64",
    ),
]
ERRORS += MOVED_ERRORS

WARNINGS: list[tuple[str, list[Change], str, str]] = [
    (
        "large holdout",
        [(("training", "holdout_fraction"), 0.6)],
        "[training] holdout_fraction",
        "learns from only 40% of them",
    ),
    (
        "large new-data holdout",
        [(("training", "new_data_holdout_fraction"), 0.9)],
        "[training] new_data_holdout_fraction",
        "leaves the challenger only the oldest 10%",
    ),
    (
        "small new-data holdout",
        [(("training", "new_data_holdout_fraction"), 0.1)],
        "[training] new_data_holdout_fraction",
        "judges both models on only the newest 10%",
    ),
    (
        "early stopping never stops",
        [(("training", "early_stopping_rounds"), 300)],
        "[training] early_stopping_rounds",
        "training never stops early",
    ),
    (
        "category without categories",
        [(col("region", "categories"), DELETE)],
        "column 'region'",
        "left out of the model's features and the raw gate accepts any value",
    ),
    (
        "no column monitored for drift",
        [(col(name, "drift"), False) for name in FEATURES],
        "[dataset] columns",
        "only the count of missing values per row can make the data count as drifted",
    ),
    (
        "slow idle poll",
        [(("orchestration", "idle_poll_interval"), 120.0)],
        "[orchestration] idle_poll_interval",
        "may wait 120 s to be seen",
    ),
    (
        "bounds on a category",
        [(col("region", "min"), 0)],
        "column 'region'",
        "min is ignored on a column of dtype 'category'",
    ),
    (
        "missing fraction of a column without missing values",
        [(col("contract", "max_missing_fraction"), 0.1)],
        "column 'contract'",
        "max_missing_fraction 0.1 is ignored: nullable = false",
    ),
    (
        "bucket name on another S3 server",
        [(("storage", "bucket"), "b"), (("storage", "endpoint_url"), "http://127.0.0.1:9000")],
        "[storage] bucket",
        "(AWS S3 would reject it)",
    ),
]


def _only(findings: tuple[Finding, ...]) -> Finding:
    assert len(findings) == 1, [str(f) for f in findings]
    return findings[0]


def test_the_shipped_config_has_no_findings() -> None:
    assert check_config(load_config(TOML, env={})) == ()


@pytest.mark.parametrize(
    ("changes", "where", "phrase"), [c[1:] for c in ERRORS], ids=[c[0] for c in ERRORS]
)
def test_each_error_is_found_and_raised(raw, changes, where, phrase) -> None:
    bad = changed(raw, changes)
    finding = _only(check_config(build(bad)))
    assert (finding.severity, finding.where) == ("error", where)
    assert phrase in finding.message
    with pytest.raises(ConfigError) as exc:
        parse(bad)
    assert str(exc.value).splitlines() == [f"{SOURCE}: {where}: {finding.message}"]


@pytest.mark.parametrize(
    ("changes", "where", "phrase"), [c[1:] for c in WARNINGS], ids=[c[0] for c in WARNINGS]
)
def test_each_warning_is_found_and_not_raised(raw, changes, where, phrase) -> None:
    finding = _only(check_config(parse(changed(raw, changes))))
    assert (finding.severity, finding.where) == ("warning", where)
    assert phrase in finding.message


def test_every_error_is_raised_at_once_one_per_line(raw) -> None:
    bad = changed(
        raw,
        [(("orchestration", "poll_interval"), 5.0), (("gate", "metric"), "f1")],
    )
    with pytest.raises(ConfigError) as exc:
        parse(bad)
    lines = str(exc.value).splitlines()
    assert len(lines) == 2 and all(line.startswith(f"{SOURCE}: ") for line in lines)
    assert "[gate] metric: metric 'f1' not supported" in lines[0]
    assert "[orchestration] idle_poll_interval: idle_poll_interval 1 is below" in lines[1]


def test_an_environment_override_is_checked_like_the_file(raw) -> None:
    with pytest.raises(ConfigError, match=r"idle_poll_interval 1 is below poll_interval 5"):
        parse(raw, env={"RETRAIN__ORCHESTRATION__POLL_INTERVAL": "5"})
    cfg = parse(raw, env={"RETRAIN__ORCHESTRATION__POLL_INTERVAL": "1"})  # equal: no back-off
    assert check_config(cfg) == ()


def test_errors_come_first_then_warnings_in_a_stable_order(raw) -> None:
    cfg = build(
        changed(
            raw,
            [
                (("training", "holdout_fraction"), 0.6),  # warning, checked before the gate
                (("gate", "min_metric"), 2.0),  # error
                (col("region", "categories"), DELETE),  # warning, a column: checked first
                (("storage", "bucket"), "B"),  # error
            ],
        )
    )
    found = check_config(cfg)
    assert [(f.severity, f.where) for f in found] == [
        ("error", "[storage] bucket"),
        ("error", "[gate] min_metric"),
        ("warning", "column 'region'"),
        ("warning", "[training] holdout_fraction"),
    ]
    assert check_config(cfg) == found
    assert [f.where for f in errors(found)] == ["[storage] bucket", "[gate] min_metric"]
    assert [f.severity for f in warnings(found)] == ["warning", "warning"]


def test_a_finding_reads_as_where_then_message() -> None:
    finding = Finding("warning", "column 'fare'", "something to fix")
    assert str(finding) == "column 'fare': something to fix"


def test_the_moved_checks_do_not_trip_over_a_missing_column(raw) -> None:
    bad = changed(raw, [(("dataset", "time_column"), "when"), (("dataset", "target"), "label")])
    with pytest.raises(ConfigError) as exc:
        parse(bad)
    assert str(exc.value).splitlines() == [
        f"{SOURCE}: [dataset] time_column: time_column 'when' not in columns; name one of "
        "[dataset.columns] or add it",
        f"{SOURCE}: [dataset] target: target 'label' not in columns; name one of "
        "[dataset.columns] or add it",
    ]
