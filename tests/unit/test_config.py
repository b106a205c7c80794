import copy
import tomllib
from pathlib import Path

import pytest

from retrain.config import ConfigError, load_config, parse_config

TOML = Path(__file__).parents[2] / "retrain.toml"


@pytest.fixture(scope="module")
def raw() -> dict:
    return tomllib.loads(TOML.read_text())


def parse(raw: dict, env: dict | None = None):
    return parse_config(raw, env=env or {}, source="test.toml")


def test_loads_the_real_config():
    cfg = load_config(TOML, env={})
    ds = cfg.dataset
    assert ds.name == "telco_churn"
    assert (ds.id_column, ds.time_column, ds.target) == ("customer_id", "event_time", "churned")
    assert ds.column("contract").categories == ("month-to-month", "one-year", "two-year")
    assert ds.column("contract").nullable is False
    assert ds.column("total_charges").max_missing_fraction == 0.3
    assert ds.numeric_features == (
        "tenure_months",
        "monthly_charges",
        "total_charges",
        "support_calls",
        "data_usage_gb",
    )
    assert ds.categorical_features == ("contract", "payment_method", "region")
    assert cfg.gate.metric == "auc"
    assert cfg.training.seed == 42
    assert cfg.source == str(TOML)


def test_env_overrides_string_and_float():
    env = {"RETRAIN__STORAGE__BUCKET": "other-bucket", "RETRAIN__DRIFT__PSI_THRESHOLD": "0.35"}
    cfg = load_config(TOML, env=env)
    assert cfg.storage.bucket == "other-bucket"
    assert cfg.drift.psi_threshold == 0.35
    assert isinstance(cfg.drift.psi_threshold, float)
    assert load_config(TOML, env={}).storage.bucket == "retrain-demo"


def test_env_override_int_is_coerced_and_bad_value_rejected():
    assert load_config(TOML, env={"RETRAIN__TRAINING__SEED": "7"}).training.seed == 7
    with pytest.raises(ConfigError, match="RETRAIN__TRAINING__SEED"):
        load_config(TOML, env={"RETRAIN__TRAINING__SEED": "seven"})


def test_float_key_accepts_int_in_toml(raw):
    bad = copy.deepcopy(raw)
    bad["gate"]["min_metric"] = 1
    assert parse(bad).gate.min_metric == 1.0


@pytest.mark.parametrize(
    ("path", "value", "match"),
    [
        (("training", "learning_rat"), 0.1, r"\[training\] unknown key.*learning_rat"),
        (("trainng",), {}, "unknown section"),
        (("dataset", "columns", "region", "maximum"), 3, r"'region'.*unknown key"),
        (("training", "num_leaves"), "many", "num_leaves must be int"),
        (
            ("dataset", "columns", "tenure_months", "dtype"),
            "integer",
            "'tenure_months': dtype must be one of",
        ),
        (("dataset", "target"), "cancelled", "target 'cancelled' not in columns"),
        (("dataset", "columns", "churned", "dtype"), "float", "must be an int column"),
        (
            ("resources", "heavy_queue"),
            " ",
            r"\[resources\] heavy_queue: heavy_queue must not be empty",
        ),
        (
            ("resources", "heavy_pool_slots"),
            0,
            r"\[resources\] heavy_pool_slots: heavy_pool_slots must be at least 1",
        ),
        (("resources", "task_cpu"), 0.0, r"\[resources\] task_cpu: task_cpu must be above 0"),
        (("resources", "preload"), ["pandas", "not a module"], r"preload: not module names"),
    ],
    ids=lambda v: "/".join(v) if isinstance(v, tuple) else None,
)
def test_bad_config_is_rejected_with_a_clear_error(raw, path, value, match):
    bad = copy.deepcopy(raw)
    parent = bad
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    with pytest.raises(ConfigError, match=match):
        parse(bad)


def test_the_shipped_resources_section_is_read(raw):
    res = parse(raw).resources
    assert (res.heavy_queue, res.heavy_pool, res.heavy_pool_slots) == ("heavy", "heavy", 1)
    assert res.default_queue == "default" and res.task_memory_mb == 512
    assert res.preload[0] == "great_expectations" and "retrain.steps.ingest" in res.preload
    assert parse(raw, env={"RETRAIN__RESOURCES__PRELOAD": ""}).resources.preload == ()


def test_bad_prefix_is_rejected(raw):
    bad = copy.deepcopy(raw)
    bad["storage"]["raw_prefix"] = "raw"
    with pytest.raises(ConfigError, match="raw_prefix 'raw' must end with '/'"):
        parse(bad)
    with pytest.raises(ConfigError, match="landing_prefix '/landing/'"):
        parse(raw, env={"RETRAIN__STORAGE__LANDING_PREFIX": "/landing/"})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("HOLDOUT_FRACTION", "1.0"),
        ("NEW_DATA_HOLDOUT_FRACTION", "0"),
        ("WINDOW_DAYS", "-1"),
        ("WINDOW_ROWS", "-5"),
        ("MEMORY_BUDGET_MB", "64"),
    ],
)
def test_training_ranges(raw, key, value):
    with pytest.raises(ConfigError, match=key.lower()):
        parse(raw, env={f"RETRAIN__TRAINING__{key}": value})


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml", env={})
    broken = tmp_path / "broken.toml"
    broken.write_text("[dataset\nname = 1")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(broken, env={})


def test_the_deploy_policy_and_drift_settings_are_read_and_checked(raw):
    cfg = parse(raw)
    assert cfg.gate.non_inferiority_margin == 0.02 and cfg.gate.bootstrap_rounds == 1000
    assert cfg.drift.rule == "share" and cfg.drift.bins == 10
    assert all(c.drift for c in cfg.dataset.columns)
    calendar = copy.deepcopy(raw)
    calendar["dataset"]["columns"]["tenure_months"]["drift"] = False
    assert parse(calendar).dataset.column("tenure_months").drift is False
    for section, key, value, message in (
        ("drift", "rule", "vote", "rule must be one of"),
        ("gate", "confidence", 1.0, "confidence"),
        ("gate", "bootstrap_rounds", 10, "bootstrap_rounds"),
        ("drift", "bins", 1, "bins"),
    ):
        bad = copy.deepcopy(raw)
        bad[section][key] = value
        with pytest.raises(ConfigError, match=message):
            parse(bad)
    old = copy.deepcopy(raw)
    old["gate"]["min_improvement"] = 0.0  # a key of the old gate: named, not ignored
    with pytest.raises(ConfigError, match="min_improvement"):
        parse(old)
    flag = copy.deepcopy(raw)
    flag["dataset"]["columns"]["tenure_months"]["drift"] = "no"
    with pytest.raises(ConfigError, match="drift must be true or false"):
        parse(flag)


def test_arrival_defaults_to_polling_and_events_needs_a_queue(raw):
    orch = parse(raw).orchestration
    assert (orch.arrival, orch.queue_url) == ("poll", "")
    assert orch.reconcile_minutes > 0 and orch.reconcile_grace_seconds >= 0
    with pytest.raises(ConfigError, match='arrival = "events" needs queue_url'):
        parse(raw, env={"RETRAIN__ORCHESTRATION__ARRIVAL": "events"})
    queue = "https://sqs.eu-west-1.amazonaws.com/123456789012/retrain-landing"
    events = parse(
        raw,
        env={
            "RETRAIN__ORCHESTRATION__ARRIVAL": "events",
            "RETRAIN__ORCHESTRATION__QUEUE_URL": queue,
            "RETRAIN__ORCHESTRATION__RECONCILE_MINUTES": "2",
        },
    ).orchestration
    assert (events.arrival, events.queue_url, events.reconcile_minutes) == ("events", queue, 2.0)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("arrival", "webhook", r"arrival must be one of \('poll', 'events'\)"),
        ("reconcile_minutes", "0", "reconcile_minutes must be above 0"),
        ("reconcile_grace_seconds", "-1", "reconcile_grace_seconds must be 0 or more"),
    ],
)
def test_bad_arrival_settings_are_rejected(raw, key, value, match):
    with pytest.raises(ConfigError, match=match):
        parse(raw, env={f"RETRAIN__ORCHESTRATION__{key.upper()}": value})
