"""Terraform and the project agree: the prefixes and the connection id Terraform provisions for
(terraform/retrain_config.json, read by modules/retrain, which every env calls) are the project's
defaults and what retrain.toml says, and every output that names a config key names a real one."""

from __future__ import annotations

import dataclasses
import json
import re
from types import SimpleNamespace
from typing import Any

import pytest
import tf_static
from tf_static import ENVS, MODULES, PREFIX_PATTERN, PROJECT_ROOT, PROJECT_SETTINGS, ROOT_MODULE

from retrain.config import ENV_PREFIX, OrchestrationConfig, StorageConfig, load_config

PREFIX_FIELDS = [f.name for f in dataclasses.fields(StorageConfig) if f.name.endswith("_prefix")]


def agreement_problems(settings: dict[str, Any], config) -> list[str]:
    """What differs between retrain_config.json's content and a project config."""
    problems = []
    storage = settings.get("storage", {})
    if set(storage) != set(PREFIX_FIELDS):
        problems.append(
            f"prefix keys differ: terraform has {sorted(storage)}, config {PREFIX_FIELDS}"
        )
    for key in PREFIX_FIELDS:
        if storage.get(key) != getattr(config.storage, key):
            problems.append(
                f"{key}: terraform {storage.get(key)!r}, config {getattr(config.storage, key)!r}"
            )
    conn = settings.get("orchestration", {}).get("aws_conn_id")
    if conn != config.orchestration.aws_conn_id:
        problems.append(
            f"aws_conn_id: terraform {conn!r}, config {config.orchestration.aws_conn_id!r}"
        )
    return problems


def _hint(config) -> str:
    wanted = {key: getattr(config.storage, key) for key in PREFIX_FIELDS}
    return f"update {PROJECT_SETTINGS.relative_to(PROJECT_ROOT)}: storage = {json.dumps(wanted)}"


@pytest.fixture(scope="module")
def settings() -> dict[str, Any]:
    return json.loads(PROJECT_SETTINGS.read_text())


@pytest.fixture(scope="module")
def shipped_config():
    """retrain.toml as shipped, without this shell's RETRAIN__* overrides."""
    return load_config(PROJECT_ROOT / "retrain.toml", env={})


def test_terraform_prefixes_equal_the_config_defaults(settings):
    config = SimpleNamespace(storage=StorageConfig(), orchestration=OrchestrationConfig())
    assert agreement_problems(settings, config) == [], _hint(config)


def test_terraform_prefixes_equal_retrain_toml(settings, shipped_config):
    assert agreement_problems(settings, shipped_config) == [], _hint(shipped_config)


def test_a_differing_prefix_or_connection_is_caught(settings, shipped_config):
    renamed = json.loads(json.dumps(settings))
    renamed["storage"]["raw_prefix"] = "raw-data/"
    assert agreement_problems(renamed, shipped_config) == [
        "raw_prefix: terraform 'raw-data/', config 'raw/'"
    ]
    missing = json.loads(json.dumps(settings))
    del missing["storage"]["ledger_prefix"]
    missing["orchestration"]["aws_conn_id"] = "aws_default"
    problems = agreement_problems(missing, shipped_config)
    assert any("prefix keys differ" in p for p in problems)
    assert any("aws_conn_id" in p for p in problems)


def test_every_config_prefix_passes_the_terraform_validation(settings):
    for prefix in settings["storage"].values():
        assert re.fullmatch(PREFIX_PATTERN, prefix), prefix
    # the Python pattern is the modules' own validation pattern, word for word
    for module in ("data_bucket", "airflow_iam"):
        text = (MODULES / module / "variables.tf").read_text()
        assert PREFIX_PATTERN.replace("\\", "\\\\") in text, module
    values = list(settings["storage"].values())
    for a in values:
        assert [b for b in values if b.startswith(a)] == [a], f"{a} overlaps another prefix"


def test_the_composition_module_reads_the_one_settings_file(parsed_tf):
    config = parsed_tf[f"modules/{ROOT_MODULE}"]
    project = config.locals["project"]
    m = re.fullmatch(r'\$\{jsondecode\(file\("\$\{path\.module\}/([^"]+)"\)\)\}', project)
    assert m, project
    assert (MODULES / ROOT_MODULE / m.group(1)).resolve() == PROJECT_SETTINGS
    assert config.locals["prefixes"] == "${local.project.storage}"
    assert config.locals["aws_conn_id"] == "${local.project.orchestration.aws_conn_id}"
    # the composition module takes no prefix or connection id from its caller
    assert not any(
        "prefix" in name and name != "name_prefix" for name in config.labelled("variable")
    )
    assert "aws_conn_id" not in config.labelled("variable")


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_no_env_has_settings_of_its_own(env, parsed_tf):
    """Every env gets the prefixes and the connection id from the composition module only."""
    config = parsed_tf[f"envs/{env}"]
    assert not {"project", "prefixes", "aws_conn_id"} & set(config.locals)
    for path in sorted((ENVS / env).glob("*.tf")):
        text = path.read_text()
        assert PROJECT_SETTINGS.name not in text and "file(" not in text, path
    call = config.labelled("module")[ROOT_MODULE]
    assert not any(name.endswith("_prefix") and name != "name_prefix" for name in call)


def test_modules_take_the_prefixes_without_a_default_of_their_own(parsed_tf):
    for module in ("data_bucket", "airflow_iam"):
        variable = parsed_tf[f"modules/{module}"].labelled("variable")["prefixes"]
        assert "default" not in variable
        assert variable["type"] == "${map(string)}"
    landing = parsed_tf["modules/landing_events"].labelled("variable")["landing_prefix"]
    assert "default" not in landing


def test_outputs_map_one_to_one_onto_the_config(parsed_tf, shipped_config):
    outputs = parsed_tf[f"modules/{ROOT_MODULE}"].labelled("output")
    # storage_config: exactly the [storage] section
    storage_config = outputs["storage_config"]["value"]
    match = re.fullmatch(r"\$\{merge\(local\.prefixes, \{(.*)\}\)\}", storage_config, re.S)
    assert match, storage_config
    keys = set(PREFIX_FIELDS) | set(re.findall(r"(\w+)\s*=", match.group(1)))
    assert keys == {f.name for f in dataclasses.fields(StorageConfig)}
    # retrain_environment: every key a real RETRAIN__SECTION__KEY, prefixes from the one file
    env_vars = outputs["retrain_environment"]["value"]
    assert isinstance(env_vars, dict)
    for name, value in env_vars.items():
        assert name.startswith(ENV_PREFIX), name
        section, key = name[len(ENV_PREFIX) :].lower().split("__")
        fields = {f.name for f in dataclasses.fields(getattr(shipped_config, section))}
        assert key in fields, f"{name} names no config key"
        if key.endswith("_prefix"):
            assert value == f"${{local.prefixes.{key}}}"
    storage_keys = {n for n in env_vars if n.startswith(f"{ENV_PREFIX}STORAGE__")}
    assert len(storage_keys) == len(dataclasses.fields(StorageConfig))
    # the Airflow connection is the one the project's config names
    connection = outputs["airflow_connection"]["value"]
    assert connection["conn_id"] == "${local.aws_conn_id}"
    assert connection["conn_type"] == "aws"
    assert set(outputs) >= {
        "bucket",
        "region",
        "prefixes",
        "landing_queue_url",
        "landing_queue_arn",
        "airflow_role_arn",
        "alert_topic_arn",
        "kms_key_arn",
    }


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_every_env_forwards_the_outputs_unchanged(env, parsed_tf):
    """What the composition module maps onto the config is what `terraform output` shows."""
    module_outputs = parsed_tf[f"modules/{ROOT_MODULE}"].labelled("output")
    outputs = parsed_tf[f"envs/{env}"].labelled("output")
    assert set(outputs) == set(module_outputs)
    for name, body in outputs.items():
        assert body["value"] == f"${{module.{ROOT_MODULE}.{name}}}"


def test_the_helper_module_sees_the_same_files_as_the_tests():
    assert tf_static.TERRAFORM == PROJECT_ROOT / "terraform"
    assert PROJECT_SETTINGS.exists()
