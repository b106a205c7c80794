"""terraform/helm/ checked without helm or a cluster: the values files parse, every key they
set exists in the official chart's schema (a trimmed copy vendored beside them, so this runs
offline), the queues, pool and memory figures agree with retrain.toml, the image agrees with
requirements.lock, and no credential is written inline. Each check also runs on a deliberately
broken copy."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import deploy_static
import pytest
import yaml
from deploy_static import (
    CHART_VERSION,
    HELM,
    VALUES,
    check_against_chart,
    check_celery_agrees,
    check_components,
    check_image_values,
    check_kubernetes_agrees,
    check_no_plaintext_secrets,
    check_placeholders,
    check_references,
    check_schema,
    dig,
)

README = (HELM / "README.md").read_text()


def test_the_layout_is_there():
    names = {p.name for p in HELM.iterdir()}
    assert {
        "README.md",
        "values-common.yaml",
        "values-celery.yaml",
        "values-kubernetes.yaml",
        "values.schema.trimmed.json",
    } <= names


@pytest.mark.parametrize("name", sorted(VALUES))
def test_every_values_file_parses_to_a_mapping(values, name):
    assert isinstance(values[name], dict) and values[name]


def test_broken_yaml_does_not_parse():
    with pytest.raises(yaml.YAMLError):
        yaml.safe_load("workers:\n  celery:\n    sets: [\n")


# -- the chart version and its schema -----------------------------------------------------------


def test_the_chart_version_is_pinned_everywhere(schema):
    assert schema["x-chart"]["pinned_version"] == CHART_VERSION
    assert f"--version {CHART_VERSION}" in README
    assert f"Chart: apache-airflow/airflow {CHART_VERSION}" in VALUES["common"].read_text()


def test_the_vendored_schema_names_its_source(schema):
    assert "apache/airflow" in schema["$comment"]
    assert schema["x-chart"]["schema_snapshot_commit"] in schema["$comment"]
    assert len(schema["x-chart"]["schema_snapshot_commit"]) == 40
    json.dumps(schema)  # plain JSON, nothing else


@pytest.mark.parametrize("name", sorted(VALUES))
def test_every_key_exists_in_the_charts_schema(values, schema, name):
    assert check_schema(values[name], schema) == []


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (
            "workers.celery.sets",
            [{"name": "heavy", "queue": "heavy", "memory": "1Gi"}],
            "workers.celery.sets[0].memory: not a key",
        ),
        ("workers.celery.sets", [{"queue": "heavy"}], "missing required name"),
        ("apiServer.resource", {"limits": {}}, "apiServer.resource: not a key"),
        ("images.airflow.pullPolicy", "Sometimes", "not one of"),
        ("scheduler.replicas", "2", "where the chart expects integer"),
        ("executor", "Celery", "does not match"),
        ("env", [{"name": "X"}], "missing required value"),
        ("apiServer.resources.requests", "1Gi", "where the chart expects object"),
        ("webserverSecretKey", "s3cr3t", "webserverSecretKey: not a key"),
        # chart 1.19's flag, reverted upstream (apache/airflow #60721): helm rejects it
        ("workers.useWorkerDedicatedServiceAccounts", False, "not a key of the chart's values"),
        ("airflowLocalSettings", 3, "where the chart expects"),
    ],
)
def test_a_key_outside_the_schema_is_caught(broken_values, schema, path, value, expected):
    values = broken_values()["common"]
    *parents, last = path.split(".")
    node = values
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    problems = check_schema(values, schema)
    assert any(expected in p for p in problems), problems


def test_helm_merge_coalesces_as_helm_does():
    chart = {"a": {"x": 1, "y": 2}, "airflowLocalSettings": "{{ chart }}", "keep": True}
    merged = deploy_static.helm_merge(chart, {"a": {"y": 3}, "airflowLocalSettings": None})
    assert merged == {"a": {"x": 1, "y": 3}, "keep": True}
    assert chart["airflowLocalSettings"] == "{{ chart }}"  # the inputs are left alone


def test_the_merged_values_pass_json_schema_validation(values, schema):
    """The same merge and validator helm uses (JSON Schema draft 7 on the coalesced values),
    here on the vendored schema; a key the chart closed its section to is caught."""
    assert check_against_chart(values, schema, {}) == {"celery": [], "kubernetes": []}
    broken = copy.deepcopy(values)
    broken["common"]["workers"]["useWorkerDedicatedServiceAccounts"] = False
    found = check_against_chart(broken, schema, {})
    assert all("useWorkerDedicatedServiceAccounts" in " ".join(p) for p in found.values()), found


@pytest.mark.skipif(
    not os.environ.get(deploy_static.CHART_DIR_ENV),
    reason=f"{deploy_static.CHART_DIR_ENV} (a `helm pull --untar` of the chart) is not set",
)
def test_the_values_pass_the_real_charts_schema(values):
    """Against the chart itself, when it is at hand: its defaults, then values-common.yaml and
    one executor file, validated with its values.schema.json, as `helm install` would."""
    chart = Path(os.environ[deploy_static.CHART_DIR_ENV])
    assert yaml.safe_load((chart / "Chart.yaml").read_text())["version"] == CHART_VERSION
    found = check_against_chart(
        values,
        json.loads((chart / "values.schema.json").read_text()),
        yaml.safe_load((chart / "values.yaml").read_text()),
    )
    assert found == {"celery": [], "kubernetes": []}


def test_the_images_local_settings_are_not_shadowed_by_the_charts(values, instructions):
    """The chart mounts its own airflow_local_settings.py where the image has the project's
    (Dockerfile) unless airflowLocalSettings is null; null (deleted by helm's merge) turns the
    chart's file off."""
    common = values["common"]
    assert deploy_static.check_local_settings_values(common) == []
    chart_default = {"airflowLocalSettings": "{{- if semverCompare ... }}"}
    assert "airflowLocalSettings" not in deploy_static.helm_merge(chart_default, common)
    # and the image has its own there
    assert deploy_static.check_local_settings_copied(instructions) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda c: c.pop("airflowLocalSettings"), "is not set"),
        (lambda c: c.update(airflowLocalSettings=""), "is not null"),
        (lambda c: c.update(airflowLocalSettings="import x"), "is not null"),
    ],
)
def test_the_charts_local_settings_left_on_are_caught(broken_values, change, expected):
    common = broken_values()["common"]
    change(common)
    problems = deploy_static.check_local_settings_values(common)
    assert any(expected in p for p in problems), problems


# -- agreement with retrain.toml and the lock ----------------------------------------------------


def test_celery_queues_pool_and_memory_agree_with_the_config(values, cfg):
    assert check_celery_agrees(values["celery"], cfg) == []
    heavy = dig(values["celery"], "workers.celery.sets")[0]
    assert heavy["queue"] == cfg.resources.heavy_queue
    expected = cfg.resources.task_memory_mb + cfg.training.memory_budget_mb
    assert heavy["resources"]["limits"]["memory"] == f"{expected}Mi"


def test_the_celery_figures_follow_a_changed_config(values, cfg):
    """The same files against a config with another budget, queue and pool size all fail."""
    import dataclasses

    changed = dataclasses.replace(
        cfg,
        training=dataclasses.replace(cfg.training, memory_budget_mb=2048),
        resources=dataclasses.replace(
            cfg.resources, heavy_queue="big", heavy_pool_slots=2, task_memory_mb=768
        ),
    )
    problems = check_celery_agrees(values["celery"], changed)
    for expected in (
        "no single worker set named 'big'",
        "workers.celery.resources.limits.memory is '512Mi', expected 768Mi",
    ):
        assert any(expected in p for p in problems), problems
    renamed = dataclasses.replace(
        cfg,
        training=dataclasses.replace(cfg.training, memory_budget_mb=2048),
        resources=dataclasses.replace(cfg.resources, heavy_pool_slots=2, default_queue="light"),
    )
    problems = check_celery_agrees(values["celery"], renamed)
    for expected in ("expected 2560Mi", "heavy_pool_slots is 2", "default_queue is 'light'"):
        assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("workers.celery.sets.0.resources.requests.memory", "1Gi", "expected 1536Mi"),
        ("workers.celery.sets.0.queue", "heavy,default", "listens on"),
        ("workers.celery.sets.0.replicas", 3, "heavy_pool_slots is 1"),
        ("workers.celery.resources.limits.memory", "1Gi", "expected 512Mi"),
        ("workers.resources.requests.cpu", "500m", "expected 1.0"),
        ("workers.celery.replicas", 5, "differ"),
        ("config.celery.worker_concurrency", 4, "worker_concurrency must be 1"),
        ("config.operators.default_queue", "celery", "default_queue"),
        ("executor", "LocalExecutor", "expected CeleryExecutor"),
    ],
)
def test_a_celery_figure_that_disagrees_is_caught(broken_values, cfg, path, value, expected):
    celery = broken_values()["celery"]
    *parents, last = path.split(".")
    node = celery
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[last] = value
    problems = check_celery_agrees(celery, cfg)
    assert any(expected in p for p in problems), problems


def test_a_second_set_on_the_heavy_queue_is_caught(broken_values, cfg):
    celery = broken_values()["celery"]
    celery["workers"]["celery"]["sets"].append({"name": "extra", "queue": "default,heavy"})
    assert any("also takes the heavy queue" in p for p in check_celery_agrees(celery, cfg))


def test_kubernetes_task_pods_agree_with_the_config(values, cfg):
    assert check_kubernetes_agrees(values["kubernetes"], cfg) == []


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("workers.kubernetes.resources.limits.memory", "2Gi", "expected 512Mi"),
        ("workers.resources.requests.memory", "256Mi", "expected 512Mi"),
        ("redis.enabled", True, "redis is on"),
        ("executor", "CeleryExecutor", "expected KubernetesExecutor"),
    ],
)
def test_a_kubernetes_figure_that_disagrees_is_caught(broken_values, cfg, path, value, expected):
    kube = broken_values()["kubernetes"]
    *parents, last = path.split(".")
    node = kube
    for part in parents:
        node = node[part]
    node[last] = value
    assert any(expected in p for p in check_kubernetes_agrees(kube, cfg))


def test_the_image_agrees_with_the_lock(values, airflow_version):
    assert check_image_values(values["common"], airflow_version) == []


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("airflowVersion", "3.3.1", "airflowVersion"),
        ("defaultAirflowTag", "latest", "defaultAirflowTag differs"),
        ("defaultAirflowRepository", "apache/airflow", "repository differs"),
    ],
)
def test_an_image_that_disagrees_is_caught(broken_values, airflow_version, key, value, expected):
    common = broken_values()["common"]
    common[key] = value
    assert any(expected in p for p in check_image_values(common, airflow_version))
    common = broken_values()["common"]
    common["images"]["airflow"]["tag"] = "latest"
    assert any("is not <" in p for p in check_image_values(common, airflow_version))


# -- secrets, references, components -------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(VALUES))
def test_no_plaintext_secret(values, name):
    assert check_no_plaintext_secrets(values[name]) == []


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("fernetKey", "ZmVybmV0LWtleS1ub3QtcmVhbC0wMDAwMDAwMDAwMDA="),
        ("data.metadataConnection", {"user": "airflow", "pass": "hunter2"}),
        ("data.brokerUrl", "redis://:hunter2@redis:6379/0"),
        ("redis.password", "hunter2"),
        ("jwtSecret", "abc"),
        ("env", [{"name": "AWS_SECRET_ACCESS_KEY", "value": "abc"}]),
        ("env", [{"name": "AWS_ACCESS_KEY_ID", "value": "AKIAABCDEFGHIJKLMNOP"}]),
    ],
)
def test_a_plaintext_secret_is_caught(broken_values, path, value):
    common = broken_values()["common"]
    *parents, last = path.split(".")
    node = common
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    assert check_no_plaintext_secrets(common) != []


def test_everything_secret_is_a_reference(values, cfg, instructions):
    env = deploy_static.dockerfile_env(instructions)
    assert check_references(values, cfg, env) == []


@pytest.mark.parametrize(
    ("name", "path", "value", "expected"),
    [
        ("common", "postgresql.enabled", True, "bundled PostgreSQL"),
        ("common", "data.metadataSecretName", None, "data.metadataSecretName is not set"),
        ("common", "jwtSecretName", None, "jwtSecretName is not set"),
        ("celery", "redis.passwordSecretName", None, "Redis with its password"),
        ("celery", "data.brokerUrlSecretName", None, "brokerUrlSecretName is not set"),
        ("common", "secret", [], "AIRFLOW_CONN_RETRAIN_S3 does not come from a Secret"),
        ("common", "extraEnvFrom", "- secretRef:\n    name: x\n", "no ConfigMap"),
        ("common", "env", [], "RETRAIN_CONFIG"),
        ("common", "dags.gitSync.enabled", True, "git-sync"),
    ],
)
def test_a_missing_reference_is_caught(
    broken_values, cfg, instructions, name, path, value, expected
):
    values = broken_values()
    *parents, last = path.split(".")
    node = values[name]
    for part in parents:
        node = node[part]
    node[last] = value
    problems = check_references(values, cfg, deploy_static.dockerfile_env(instructions))
    assert any(expected in p for p in problems), problems


def test_components_run_as_the_airflow_role_with_resources(values):
    assert check_components(values["common"]) == []


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("triggerer.serviceAccount.annotations", {}, "triggerer.serviceAccount: no"),
        ("scheduler.serviceAccount.name", None, "unnamed"),
        ("workers.celery.serviceAccount.name", "other", "worker service accounts differ"),
        ("dagProcessor.resources.limits", {}, "dagProcessor: memory"),
        ("apiServer.resources.requests.cpu", None, "apiServer: no CPU request"),
        ("dagProcessor.enabled", False, "dagProcessor is not enabled"),
    ],
)
def test_a_component_without_role_or_resources_is_caught(broken_values, path, value, expected):
    common = broken_values()["common"]
    *parents, last = path.split(".")
    node = common
    for part in parents:
        node = node[part]
    node[last] = value
    assert any(expected in p for p in check_components(common))


def test_only_known_placeholders_are_left_for_envsubst():
    texts = {name: path.read_text() for name, path in VALUES.items()}
    assert check_placeholders(texts) == []
    texts["celery"] += "\n# ${HOME} $PATH\n"
    problems = check_placeholders(texts)
    assert any("${HOME}" in p for p in problems) and any("$PATH" in p for p in problems)


def test_the_readme_names_what_the_values_reference(values):
    """Every Secret, the ConfigMap and every service account the values name is in the README
    (where the operator learns to make them)."""
    common, celery = values["common"], values["celery"]
    names = {
        dig(common, "data.metadataSecretName"),
        common["fernetKeySecretName"],
        common["apiSecretKeySecretName"],
        common["jwtSecretName"],
        dig(celery, "redis.passwordSecretName"),
        dig(celery, "data.brokerUrlSecretName"),
        *(s["secretName"] for s in common["secret"]),
        *(e["configMapRef"]["name"] for e in yaml.safe_load(common["extraEnvFrom"])),
        *(dig(common, f"{k}.name") for k in deploy_static.SERVICE_ACCOUNTS),
    }
    missing = sorted(n for n in names if n not in README)
    assert missing == []
