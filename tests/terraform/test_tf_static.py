"""terraform/ checked without terraform or AWS: every file parses, declarations are complete,
versions pinned, and the security properties hold in the parsed HCL. Each check also runs on a
deliberately broken copy, to show it catches what it is meant to catch."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tf_static
from lark.exceptions import LarkError
from tf_static import (
    ENVS,
    MODULES,
    PROJECT_ROOT,
    ROOT_MODULE,
    TERRAFORM,
    as_list,
    check_buckets,
    check_declarations,
    check_encryption,
    check_envs,
    check_iam,
    check_module_calls,
    check_pins,
    check_queue_policies,
    is_expression,
    lifecycle_expirations,
    statements,
)

TF_FILES = sorted(TERRAFORM.rglob("*.tf"))
# The component modules, which modules/retrain (ROOT_MODULE) composes.
COMPONENTS = {"data_bucket", "landing_events", "airflow_iam", "alerts"}
MODULE_NAMES = COMPONENTS | {ROOT_MODULE}
ENV_NAMES = ("dev", "prod")
# What each env's main.tf sets besides the variables it hands on: the env's own settings.
ENV_SETTINGS = {
    "quarantine_expiration_days",
    "reports_expiration_days",
    "noncurrent_version_expiration_days",
    "abort_incomplete_multipart_upload_days",
    "access_log_expiration_days",
    "kms_deletion_window_days",
    "force_destroy",
    "allow_curation",
}


def test_the_layout_is_there():
    assert {p.name for p in MODULES.iterdir() if p.is_dir()} == MODULE_NAMES
    assert {p.name for p in ENVS.iterdir() if p.is_dir()} == set(ENV_NAMES)
    assert len(TF_FILES) >= 25
    for module in MODULE_NAMES:
        for name in ("main.tf", "variables.tf", "outputs.tf", "versions.tf"):
            assert (MODULES / module / name).is_file(), f"modules/{module}/{name}"
    for env in ENV_NAMES:
        for name in ("main.tf", "variables.tf", "outputs.tf", "versions.tf", "providers.tf"):
            assert (ENVS / env / name).is_file(), f"envs/{env}/{name}"


BLOCK_TYPES = {
    "terraform",
    "provider",
    "variable",
    "output",
    "locals",
    "module",
    "moved",
    "resource",
    "data",
}


@pytest.mark.parametrize("path", TF_FILES, ids=lambda p: str(p.relative_to(TERRAFORM)))
def test_every_tf_file_parses(path: Path):
    parsed = tf_static.parse_file(path)
    assert parsed, f"{path} is empty"
    assert set(parsed) <= BLOCK_TYPES, f"{path}: unexpected top-level {set(parsed) - BLOCK_TYPES}"


def test_broken_hcl_does_not_parse():
    with pytest.raises(LarkError):
        tf_static.parse_text('resource "aws_s3_bucket" "x" {\n  bucket = \n}\n')


@pytest.mark.parametrize(
    "path", sorted(ENVS.glob("*/*.tfvars.example")), ids=lambda p: p.parent.name
)
def test_tfvars_examples_parse_and_set_only_declared_variables(path: Path, parsed_tf):
    values = tf_static.parse_file(path)
    declared = parsed_tf[f"envs/{path.parent.name}"].labelled("variable")
    assert set(values) <= set(declared)
    required = {n for n, body in declared.items() if "default" not in body}
    assert required <= set(values), "an example must show every required variable"


# -- declarations and pins ----------------------------------------------------------------------


def test_every_variable_has_type_and_description_and_every_output_a_description(parsed_tf):
    assert check_declarations(parsed_tf) == []


def test_a_missing_type_or_description_is_caught(broken_copy):
    configs = broken_copy()
    cfg = configs["modules/data_bucket"]
    del cfg.labelled("variable")["bucket_name"]["description"]
    del cfg.labelled("variable")["prefixes"]["type"]
    del configs["envs/prod"].labelled("output")["bucket"]["description"]
    del configs["modules/retrain"].labelled("variable")["environment"]["type"]
    del configs["modules/retrain"].labelled("output")["storage_config"]["description"]
    problems = check_declarations(configs)
    assert any("'bucket_name' has no description" in p for p in problems)
    assert any("'prefixes' has no type" in p for p in problems)
    assert any("envs/prod: output 'bucket' has no description" in p for p in problems)
    assert any("modules/retrain: variable 'environment' has no type" in p for p in problems)
    assert any("modules/retrain: output 'storage_config' has no description" in p for p in problems)


def test_terraform_providers_and_modules_are_pinned(parsed_tf):
    assert check_pins(parsed_tf) == []
    # every module and env, the composition module included, pins Terraform and the provider
    assert {key for key, config in parsed_tf.items() if config.blocks("terraform")} == set(
        parsed_tf
    )
    for config in parsed_tf.values():
        (block,) = config.blocks("terraform")
        assert block["required_version"] == "~> 1.10"
        assert block["required_providers"][0]["aws"]["version"] == "~> 6.0"
    for config in parsed_tf.values():
        for block in config.blocks("terraform"):
            for req in as_list(block.get("required_providers")):
                if "aws" in req:
                    assert req["aws"]["source"] == "hashicorp/aws"


def test_unpinned_versions_and_sources_are_caught(broken_copy):
    configs = broken_copy()
    versions = configs["modules/alerts"].files["versions.tf"]["terraform"][0]
    versions["required_providers"][0]["aws"]["version"] = ">= 6.0"
    del configs["modules/alerts"].files["versions.tf"]["terraform"][0]["required_version"]
    configs["modules/retrain"].files["versions.tf"]["terraform"][0]["required_providers"][0]["aws"][
        "version"
    ] = "6.0"
    calls = configs["modules/retrain"].labelled("module")
    calls["alerts"]["source"] = "git::https://github.com/example/modules.git//alerts?ref=main"
    calls["airflow_iam"]["source"] = "terraform-aws-modules/iam/aws"
    calls["data_bucket"]["source"] = "../no_such_module"
    configs["envs/prod"].labelled("module")["retrain"]["source"] = "../../modules/no_such"
    problems = check_pins(configs)
    assert any("modules/alerts: provider aws version not pinned" in p for p in problems)
    assert any("modules/retrain: provider aws version not pinned" in p for p in problems)
    assert any("required_version not pinned" in p for p in problems)
    assert any("git source not pinned to a commit" in p for p in problems)
    assert any("registry version not pinned" in p for p in problems)
    assert any("module data_bucket source ../no_such_module does not exist" in p for p in problems)
    assert any("envs/prod: module retrain source" in p for p in problems)


def test_no_account_id_or_secret_is_written_down():
    account_id = re.compile(r"(?<![0-9])[0-9]{12}(?![0-9])")
    secret = re.compile(
        r"AKIA[0-9A-Z]{16}|^\s*(access_key|secret_key|token|password)\s*=", re.IGNORECASE | re.M
    )
    files = [*TF_FILES, *TERRAFORM.rglob("*.example"), *TERRAFORM.rglob("*.json")]
    for path in files:
        text = path.read_text()
        assert not account_id.search(text), f"{path}: an account id"
        assert not secret.search(text), f"{path}: a credential"


# -- security properties ------------------------------------------------------------------------


def test_buckets_are_private_versioned_encrypted_logged_tls_only_and_expire(parsed_tf):
    assert check_buckets(parsed_tf) == []
    buckets = parsed_tf["modules/data_bucket"].of_type("aws_s3_bucket")
    assert set(buckets) == {"data", "logs"}


def _resource(config, rtype, name):
    return config.of_type(rtype)[name]


def _drop_logging(config):
    for parsed in config.files.values():
        parsed["resource"] = [
            r for r in parsed.get("resource", []) if "aws_s3_bucket_logging" not in r
        ]


def _data_bucket_policy(config):
    return config.of_type("aws_iam_policy_document", "data")["data_bucket"]["statement"]


BUCKET_BREAKS = {
    "public-acls": (
        lambda c: _resource(c, "aws_s3_bucket_public_access_block", "data").update(
            block_public_acls=False
        ),
        "block_public_acls is not true",
    ),
    "restrict-public": (
        lambda c: _resource(c, "aws_s3_bucket_public_access_block", "logs").pop(
            "restrict_public_buckets"
        ),
        "restrict_public_buckets is not true",
    ),
    "ownership": (
        lambda c: _resource(c, "aws_s3_bucket_ownership_controls", "data")["rule"][0].update(
            object_ownership="ObjectWriter"
        ),
        "not BucketOwnerEnforced",
    ),
    "versioning": (
        lambda c: _resource(c, "aws_s3_bucket_versioning", "data")["versioning_configuration"][
            0
        ].update(status="Suspended"),
        "versioning not enabled",
    ),
    "sse-s3-on-data": (
        lambda c: _resource(c, "aws_s3_bucket_server_side_encryption_configuration", "data")[
            "rule"
        ][0]["apply_server_side_encryption_by_default"][0].update(sse_algorithm="AES256"),
        "not SSE-KMS",
    ),
    "tls-condition": (
        lambda c: _data_bucket_policy(c)[0]["condition"][0].update(values=["true"]),
        "no Deny for aws:SecureTransport false",
    ),
    "tls-objects": (
        lambda c: _data_bucket_policy(c)[0].update(resources=["${local.bucket_arn}"]),
        "does not cover the bucket and its objects",
    ),
    "multipart": (
        lambda c: _resource(c, "aws_s3_bucket_lifecycle_configuration", "data")["rule"][2].pop(
            "abort_incomplete_multipart_upload"
        ),
        "multipart uploads never aborted",
    ),
    "noncurrent": (
        lambda c: _resource(c, "aws_s3_bucket_lifecycle_configuration", "logs")["rule"][0].pop(
            "noncurrent_version_expiration"
        ),
        "noncurrent versions never expire",
    ),
    "logging": (_drop_logging, "no access logging"),
}


@pytest.mark.parametrize("name", sorted(BUCKET_BREAKS))
def test_a_weakened_bucket_is_caught(broken_copy, name):
    break_it, expected = BUCKET_BREAKS[name]
    configs = broken_copy()
    break_it(configs["modules/data_bucket"])
    problems = check_buckets(configs)
    assert any(expected in p for p in problems), problems


def test_quarantine_and_reports_expire_after_the_configured_days(parsed_tf):
    expirations = lifecycle_expirations(parsed_tf["modules/data_bucket"], "data")
    assert expirations == {
        '${var.prefixes["quarantine_prefix"]}': "${var.quarantine_expiration_days}",
        '${var.prefixes["reports_prefix"]}': "${var.reports_expiration_days}",
    }
    # each env states both (the composition module has no default for them) and hands them on
    root = parsed_tf[f"modules/{ROOT_MODULE}"]
    data_bucket = root.labelled("module")["data_bucket"]
    for name in ("quarantine_expiration_days", "reports_expiration_days"):
        assert "default" not in root.labelled("variable")[name]
        assert data_bucket[name] == f"${{var.{name}}}"
    for env in ENV_NAMES:
        settings = parsed_tf[f"envs/{env}"].labelled("module")[ROOT_MODULE]
        for name in ("quarantine_expiration_days", "reports_expiration_days"):
            assert isinstance(settings[name], int) and settings[name] >= 1
        assert settings["reports_expiration_days"] >= settings["quarantine_expiration_days"]


def test_bucket_queue_and_topic_are_kms_encrypted(parsed_tf):
    assert check_encryption(parsed_tf) == []
    events = parsed_tf["modules/landing_events"]
    queues = events.of_type("aws_sqs_queue")
    assert set(queues) == {"landing", "dead_letter"}
    for queue in queues.values():
        assert queue["kms_master_key_id"] == "${var.kms_key_arn}"
    topic = parsed_tf["modules/alerts"].of_type("aws_sns_topic")["alerts"]
    assert topic["kms_master_key_id"] == "${var.kms_key_arn}"
    data = parsed_tf["modules/data_bucket"]
    sse = data.of_type("aws_s3_bucket_server_side_encryption_configuration")["data"]
    default = sse["rule"][0]["apply_server_side_encryption_by_default"][0]
    assert default == {"sse_algorithm": "aws:kms", "kms_master_key_id": "${aws_kms_key.data.arn}"}
    key = data.of_type("aws_kms_key")["data"]
    assert key["enable_key_rotation"] is True
    assert key["policy"] == "${data.aws_iam_policy_document.key.json}"
    # the composition module hands the bucket's dedicated key to the queues and the topic
    modules = parsed_tf[f"modules/{ROOT_MODULE}"].labelled("module")
    for name in ("landing_events", "alerts", "airflow_iam"):
        assert modules[name]["kms_key_arn"] == "${module.data_bucket.kms_key_arn}"


def test_unencrypted_queue_topic_or_key_is_caught(broken_copy):
    configs = broken_copy()
    configs["modules/landing_events"].of_type("aws_sqs_queue")["dead_letter"].pop(
        "kms_master_key_id"
    )
    configs["modules/alerts"].of_type("aws_sns_topic")["alerts"].pop("kms_master_key_id")
    configs["modules/data_bucket"].of_type("aws_kms_key")["data"]["enable_key_rotation"] = False
    problems = check_encryption(configs)
    assert any("aws_sqs_queue.dead_letter is not encrypted" in p for p in problems)
    assert any("aws_sns_topic.alerts is not KMS-encrypted" in p for p in problems)
    assert any("aws_kms_key.data does not rotate" in p for p in problems)


def test_landing_events_reach_the_queue_from_this_bucket_only(parsed_tf):
    assert check_queue_policies(parsed_tf) == []
    events = parsed_tf["modules/landing_events"]
    notification = events.of_type("aws_s3_bucket_notification")["landing"]
    queue = notification["queue"][0]
    assert queue["events"] == ["s3:ObjectCreated:*"]
    assert queue["filter_prefix"] == "${var.landing_prefix}"
    assert queue["queue_arn"] == "${aws_sqs_queue.landing.arn}"
    assert notification["bucket"] == "${var.bucket_id}"
    landing = events.of_type("aws_sqs_queue")["landing"]
    assert "aws_sqs_queue.dead_letter.arn" in landing["redrive_policy"]
    assert "maxReceiveCount" in landing["redrive_policy"]
    # the policy was checked for the notified queue (not skipped for want of a match)
    assert events.of_type("aws_sqs_queue_policy")["landing"]["queue_url"] == (
        "${aws_sqs_queue.landing.id}"
    )


@pytest.mark.parametrize("change", ["source-arn", "source-account", "principal", "tls"])
def test_an_open_queue_policy_is_caught(broken_copy, change):
    configs = broken_copy()
    docs = configs["modules/landing_events"].of_type("aws_iam_policy_document", "data")
    allow, deny = docs["landing_queue"]["statement"]
    if change == "source-arn":
        allow["condition"] = [c for c in allow["condition"] if c["variable"] != "aws:SourceArn"]
    elif change == "source-account":
        allow["condition"] = [c for c in allow["condition"] if c["variable"] != "aws:SourceAccount"]
    elif change == "principal":
        allow["principals"] = [{"type": "*", "identifiers": ["*"]}]
    else:
        deny["effect"] = "Allow"
    problems = check_queue_policies(configs)
    assert problems, change


def test_iam_has_no_wildcard_action_and_no_star_resource_outside_the_allow_list(parsed_tf):
    assert check_iam(parsed_tf) == []
    assert tf_static.unused_allow_list(parsed_tf) == [], "a stale allow-list entry"
    for (module, document), reason in tf_static.WILDCARD_RESOURCE_ALLOWED.items():
        assert module in COMPONENTS and len(reason) > 40
        docs = parsed_tf[f"modules/{module}"].of_type("aws_iam_policy_document", "data")
        assert document in docs


def test_the_allow_listed_key_policy_grants_only_this_account_and_named_services(parsed_tf):
    config = parsed_tf["modules/data_bucket"]
    key_statements = [st for st in statements(config) if st.document == "key"]
    assert key_statements and all(st.effect == "Allow" for st in key_statements)
    for st in key_statements:
        for ptype, _ in st.principals():
            if ptype == "AWS":
                assert st.body["principals"][0]["identifiers"] == ["${local.account_root_arn}"]
            else:
                assert ptype == "Service"
                variables = {c["variable"] for c in st.conditions()}
                assert {"aws:SourceAccount", "aws:SourceArn"} <= variables, st.sid
        assert all("*" not in action for action in st.actions())
    assert config.locals["account_root_arn"].endswith(":root")


def test_the_airflow_role_gets_exactly_what_the_pipeline_needs(parsed_tf):
    config = parsed_tf["modules/airflow_iam"]
    granted = {st.sid: st for st in statements(config) if st.document == "pipeline"}
    expected = {
        "ListPipelinePrefixes": ["s3:ListBucket"],
        "ReadPipelineObjects": ["s3:GetObject"],
        "WritePipelineOutputs": ["s3:PutObject"],
        "DeleteRoutedLandingObjects": ["s3:DeleteObject"],
        "DeleteLedgerEntries": ["s3:DeleteObject"],
        "CurationReplaysIntoLanding": ["s3:PutObject"],
        "CurationMovesAcceptedAndRejectedFiles": ["s3:DeleteObject"],
        "UseDataKey": ["kms:Decrypt", "kms:GenerateDataKey"],
        "ConsumeLandingEvents": [
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:ReceiveMessage",
        ],
        "PublishAlerts": ["sns:Publish"],
    }
    assert {sid: sorted(st.actions()) for sid, st in granted.items()} == expected

    def raw(sid):
        return as_list(granted[sid].body["resources"])

    assert raw("ListPipelinePrefixes") == ["${var.bucket_arn}"]
    (condition,) = granted["ListPipelinePrefixes"].conditions()
    assert (condition["test"], condition["variable"]) == ("StringLike", "s3:prefix")
    assert raw("UseDataKey") == ["${var.kms_key_arn}"]
    assert raw("ConsumeLandingEvents") == ["${var.landing_queue_arn}"]
    assert raw("PublishAlerts") == ["${var.alert_topic_arn}"]
    assert raw("DeleteRoutedLandingObjects") == ["${local.objects_under[local.landing_prefix]}"]
    # object ARNs are "<bucket>/<prefix>*" for the configured prefixes only; writes skip landing/
    assert config.locals["objects_under"] == (
        '${{for prefix in local.all_prefixes : prefix => "${var.bucket_arn}/${prefix}*"}}'
    )
    assert 'key != "landing_prefix"' in config.locals["output_prefixes"]
    assert "local.output_prefixes" in str(granted["WritePipelineOutputs"].body["resources"])
    # curation is off unless asked for (in the component, in the composition module), in prod too
    assert config.labelled("variable")["allow_curation"]["default"] is False
    root = parsed_tf[f"modules/{ROOT_MODULE}"]
    assert root.labelled("variable")["allow_curation"]["default"] is False
    assert root.labelled("module")["airflow_iam"]["allow_curation"] == "${var.allow_curation}"
    prod = parsed_tf["envs/prod"].labelled("module")[ROOT_MODULE]
    assert prod["allow_curation"] is False


def test_the_role_trusts_only_named_principals(parsed_tf):
    config = parsed_tf["modules/airflow_iam"]
    trust = [st for st in statements(config) if st.document == "assume_role"]
    assert {st.sid for st in trust} == {
        "ServicesAssumeRole",
        "EksServiceAccountsAssumeRoleWithWebIdentity",
        "TrustedRolesAssumeRole",
    }
    variables = config.labelled("variable")
    for name in ("trusted_services", "eks_oidc_provider_arn", "trusted_role_arns"):
        assert variables[name].get("validation"), f"{name} must be validated"
    irsa = next(st for st in trust if st.sid.startswith("Eks"))
    assert {c["variable"].rsplit(":", 1)[1] for c in irsa.conditions()} == {"aud", "sub"}
    role = config.of_type("aws_iam_role")["airflow"]
    assert role["assume_role_policy"] == "${data.aws_iam_policy_document.assume_role.json}"
    assert len(role["lifecycle"][0]["precondition"]) == 2


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ({"sid": "X", "effect": "Allow", "actions": ["s3:*"], "resources": ["a"]}, "wildcard"),
        ({"sid": "X", "actions": ["s3:Get*"], "resources": ["a"]}, "wildcard action"),
        ({"sid": "X", "actions": ["s3:GetObject"], "resources": ["*"]}, 'Resource "*"'),
        (
            {"sid": "X", "actions": ["s3:GetObject"], "resources": ["${var.bucket_arn}/*"]},
            "not prefix-scoped",
        ),
        (
            {"sid": "X", "actions": ["sqs:SendMessage"], "resources": ["${var.unchecked}"]},
            "unvalidated variable var.unchecked",
        ),
        (
            {"sid": "X", "actions": ["${local.wide}"], "resources": ["${var.bucket_arn}"]},
            "wildcard action 'iam:*'",
        ),
        (
            {"sid": "X", "not_actions": ["s3:GetObject"], "resources": ["${var.bucket_arn}"]},
            "not_actions",
        ),
        ({"sid": "X", "actions": ["s3:GetObject"]}, "no resources"),
        (
            {
                "sid": "X",
                "actions": ["s3:GetObject"],
                "resources": ["${var.bucket_arn}/x/*"],
                "principals": [{"type": "AWS", "identifiers": ["*"]}],
            },
            "any principal",
        ),
    ],
    ids=[
        "s3-star",
        "partial-wildcard",
        "star-resource",
        "whole-bucket",
        "unvalidated-var",
        "wildcard-via-local",
        "not-actions",
        "no-resources",
        "star-principal",
    ],
)
def test_a_wide_iam_statement_is_caught(broken_copy, statement, expected):
    configs = broken_copy()
    config = configs["modules/airflow_iam"]
    config.files["main.tf"].setdefault("locals", []).append({"wide": ["iam:*"]})
    config.of_type("aws_iam_policy_document", "data")["pipeline"]["statement"].append(statement)
    problems = check_iam(configs)
    assert any(expected in p for p in problems), problems


def test_a_star_resource_in_another_policy_document_is_not_allow_listed(broken_copy):
    configs = broken_copy()
    docs = configs["modules/alerts"].of_type("aws_iam_policy_document", "data")
    docs["alerts"]["statement"][0]["resources"] = ["*"]
    assert any('Resource "*" outside the allow-list' in p for p in check_iam(configs))


# -- the envs -------------------------------------------------------------------------------------


SAME_IN_EVERY_ENV = ("variables.tf", "outputs.tf", "versions.tf", "providers.tf", "moved.tf")


def test_dev_and_prod_differ_only_in_their_settings(parsed_tf):
    for name in SAME_IN_EVERY_ENV:
        assert (ENVS / "dev" / name).read_text() == (ENVS / "prod" / name).read_text(), name
    dev, prod = (parsed_tf[f"envs/{e}"].labelled("module")[ROOT_MODULE] for e in ENV_NAMES)
    assert set(dev) == set(prod), "both envs set the same arguments"
    differing = {name for name in dev if dev[name] != prod[name]}
    assert differing <= ENV_SETTINGS | {"environment"}
    assert set(dev) >= ENV_SETTINGS, "every env states every setting"
    for env, call in zip(ENV_NAMES, (dev, prod), strict=True):
        config = parsed_tf[f"envs/{env}"]
        assert config.locals["environment"] == env
        assert call["environment"] == "${local.environment}"
        tags = config.blocks("provider")[0]["aws"]["default_tags"][0]["tags"]
        assert "Environment = local.environment" in tags
        for name in ENV_SETTINGS:
            assert not is_expression(call[name]), f"{env}: {name} must be a literal setting"
    # prod keeps its data: no destroy with objects in it, the longest key deletion window, and
    # curation left to the operators; dev's settings stay within the modules' bounds too
    assert prod["force_destroy"] is False
    assert prod["kms_deletion_window_days"] == 30
    assert prod["allow_curation"] is False
    assert 7 <= dev["kms_deletion_window_days"] <= 30
    for name in ENV_SETTINGS - {"force_destroy", "allow_curation", "kms_deletion_window_days"}:
        assert dev[name] <= prod[name], f"dev keeps {name} longer than prod"


def test_the_composition_module_defaults_to_keeping_data(parsed_tf):
    variables = parsed_tf[f"modules/{ROOT_MODULE}"].labelled("variable")
    # a setting an env leaves out takes prod's value
    prod = parsed_tf["envs/prod"].labelled("module")[ROOT_MODULE]
    for name in ENV_SETTINGS:
        if "default" in variables[name]:
            assert variables[name]["default"] == prod[name], name
    assert variables["force_destroy"]["default"] is False
    assert variables["allow_curation"]["default"] is False
    assert variables["kms_deletion_window_days"]["default"] == 30
    components = parsed_tf["modules/data_bucket"].labelled("variable")
    for name in (
        "noncurrent_version_expiration_days",
        "abort_incomplete_multipart_upload_days",
        "access_log_expiration_days",
    ):
        assert variables[name]["default"] == components[name]["default"], name


def test_the_deployment_names_are_validated_where_they_are_used(parsed_tf):
    root = parsed_tf[f"modules/{ROOT_MODULE}"].labelled("variable")
    for name in ("environment", "region", "name_prefix"):
        assert root[name].get("validation"), f"modules/{ROOT_MODULE}: {name}"
    for env in ENV_NAMES:
        variables = parsed_tf[f"envs/{env}"].labelled("variable")
        assert variables["allowed_account_ids"].get("validation"), env
        # what only the provider reads is declared and validated in the env, the rest is handed on
        call = parsed_tf[f"envs/{env}"].labelled("module")[ROOT_MODULE]
        assert {n for n in variables if call.get(n) != f"${{var.{n}}}"} == {
            "allowed_account_ids",
            "tags",
        }


def test_the_composition_module_wires_the_modules_together(parsed_tf):
    config = parsed_tf[f"modules/{ROOT_MODULE}"]
    modules = config.labelled("module")
    assert set(modules) == COMPONENTS
    for name, call in modules.items():
        assert call["source"] == f"../{name}"
    events, iam = modules["landing_events"], modules["airflow_iam"]
    assert events["bucket_id"] == "${module.data_bucket.bucket}"
    assert events["bucket_arn"] == "${module.data_bucket.bucket_arn}"
    assert events["landing_prefix"] == "${local.prefixes.landing_prefix}"
    assert events["alarm_topic_arn"] == "${module.alerts.topic_arn}"
    assert iam["bucket_arn"] == "${module.data_bucket.bucket_arn}"
    assert iam["prefixes"] == "${local.prefixes}"
    assert iam["landing_queue_arn"] == "${module.landing_events.queue_arn}"
    assert iam["alert_topic_arn"] == "${module.alerts.topic_arn}"
    assert modules["data_bucket"]["prefixes"] == "${local.prefixes}"
    assert config.locals["name_prefix"] == "${var.name_prefix}-${var.environment}"


def test_every_module_call_passes_declared_and_required_variables(parsed_tf):
    assert check_module_calls(parsed_tf) == []
    calls = {(key, name) for key, name, _, target in tf_static.module_calls(parsed_tf) if target}
    assert calls == {(f"modules/{ROOT_MODULE}", name) for name in COMPONENTS} | {
        (f"envs/{env}", ROOT_MODULE) for env in ENV_NAMES
    }


def test_a_wrong_module_call_is_caught(broken_copy):
    configs = broken_copy()
    calls = configs[f"modules/{ROOT_MODULE}"].labelled("module")
    calls["alerts"]["no_such_variable"] = "x"
    del calls["airflow_iam"]["bucket_arn"]
    del configs["envs/dev"].labelled("module")[ROOT_MODULE]["bucket_name"]
    configs["envs/prod"].labelled("module")[ROOT_MODULE]["source"] = "terraform-aws-modules/x/aws"
    problems = check_module_calls(configs)
    assert any("module alerts gets undeclared variable 'no_such_variable'" in p for p in problems)
    assert any("module airflow_iam misses required variable 'bucket_arn'" in p for p in problems)
    assert any(
        "envs/dev: module retrain misses required variable 'bucket_name'" in p for p in problems
    )
    assert any("envs/prod: module retrain is not a module of terraform/" in p for p in problems)


def test_every_env_is_a_thin_call_of_the_composition_module(parsed_tf):
    assert check_envs(parsed_tf) == []
    for env in ENV_NAMES:
        config = parsed_tf[f"envs/{env}"]
        backend = config.blocks("terraform")[0]["backend"][0]["s3"]
        assert backend == {"encrypt": True, "use_lockfile": True}, "partial config, no names"
        assert set(config.labelled("output")) == set(
            parsed_tf[f"modules/{ROOT_MODULE}"].labelled("output")
        )
        assert len(config.blocks("moved")) == len(COMPONENTS)


ENV_BREAKS = {
    "second-call": (
        lambda c: c.files["main.tf"]["module"].append(
            {"alerts": {"source": "../../modules/alerts"}}
        ),
        "calls ['alerts', 'retrain'], not retrain alone",
    ),
    "own-resource": (
        lambda c: (
            c.files["main.tf"]
            .setdefault("resource", [])
            .append({"aws_s3_bucket": {"extra": {"bucket": "x"}}})
        ),
        "declares resource blocks",
    ),
    "output-dropped": (
        lambda c: c.files["outputs.tf"]["output"].pop(0),
        "output 'bucket' of modules/retrain is not forwarded",
    ),
    "output-rewired": (
        lambda c: c.labelled("output")["bucket"].update(value="${var.bucket_name}"),
        "output 'bucket' is not module.retrain.bucket",
    ),
    "output-redescribed": (
        lambda c: c.labelled("output")["region"].update(description="Somewhere."),
        "output 'region' is described unlike the module's",
    ),
    "variable-default": (
        lambda c: c.labelled("variable")["name_prefix"].update(default="other"),
        "variable 'name_prefix' default differs from the module's",
    ),
    "moved-dropped": (
        lambda c: c.files["moved.tf"]["moved"].pop(0),
        "no moved block from module.data_bucket",
    ),
}


@pytest.mark.parametrize("name", sorted(ENV_BREAKS))
def test_a_thick_env_is_caught(broken_copy, name):
    break_it, expected = ENV_BREAKS[name]
    configs = broken_copy()
    break_it(configs["envs/prod"])
    problems = check_envs(configs)
    assert any(f"envs/prod: {expected}" in p for p in problems), problems


# -- checkov ---------------------------------------------------------------------------------------


def test_every_checkov_skip_says_why():
    skips = tf_static.checkov_skips()
    assert skips, "no skip found: the parser of skip comments is broken"
    for file, line, check, reason in skips:
        assert re.fullmatch(r"CKV2?_AWS_\d+", check), f"{file}:{line}: {check}"
        assert len(reason) >= 40, f"{file}:{line}: {check} needs a real reason"


def test_the_tool_lock_pins_checkov_with_hashes():
    lock = (PROJECT_ROOT / "requirements-tools.lock").read_text()
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==\S+ \\$", lock, re.M)
    assert "checkov" in pins
    blocks = re.split(r"\n(?=[A-Za-z0-9_.-]+==)", lock.split("\n", 2)[2])
    for block in blocks:
        if "==" in block.split("\n", 1)[0]:
            assert "--hash=sha256:" in block, block.split("\n", 1)[0]
