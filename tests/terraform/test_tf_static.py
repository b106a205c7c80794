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
    TERRAFORM,
    as_list,
    check_buckets,
    check_declarations,
    check_encryption,
    check_iam,
    check_pins,
    check_queue_policies,
    lifecycle_expirations,
    statements,
)

TF_FILES = sorted(TERRAFORM.rglob("*.tf"))
MODULE_NAMES = {"data_bucket", "landing_events", "airflow_iam", "alerts"}


def test_the_layout_is_there():
    assert {p.name for p in MODULES.iterdir() if p.is_dir()} == MODULE_NAMES
    assert {p.name for p in ENVS.iterdir() if p.is_dir()} == {"dev", "prod"}
    assert len(TF_FILES) >= 20


BLOCK_TYPES = {
    "terraform",
    "provider",
    "variable",
    "output",
    "locals",
    "module",
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
    problems = check_declarations(configs)
    assert any("'bucket_name' has no description" in p for p in problems)
    assert any("'prefixes' has no type" in p for p in problems)
    assert any("output 'bucket' has no description" in p for p in problems)


def test_terraform_providers_and_modules_are_pinned(parsed_tf):
    assert check_pins(parsed_tf) == []
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
    env = configs["envs/dev"].labelled("module")
    env["alerts"]["source"] = "git::https://github.com/example/modules.git//alerts?ref=main"
    env["airflow_iam"]["source"] = "terraform-aws-modules/iam/aws"
    env["data_bucket"]["source"] = "../../modules/no_such_module"
    problems = check_pins(configs)
    assert any("provider aws version not pinned" in p for p in problems)
    assert any("required_version not pinned" in p for p in problems)
    assert any("git source not pinned to a commit" in p for p in problems)
    assert any("registry version not pinned" in p for p in problems)
    assert any("does not exist" in p for p in problems)


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
    for env in ("dev", "prod"):
        defaults = parsed_tf[f"envs/{env}"].labelled("variable")
        for name in ("quarantine_expiration_days", "reports_expiration_days"):
            assert isinstance(defaults[name]["default"], int) and defaults[name]["default"] >= 1
        assert (
            defaults["reports_expiration_days"]["default"]
            >= defaults["quarantine_expiration_days"]["default"]
        )


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
    # every env hands the bucket's dedicated key to the queues and the topic
    for env in ("dev", "prod"):
        modules = parsed_tf[f"envs/{env}"].labelled("module")
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
        assert module in MODULE_NAMES and len(reason) > 40
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
    # curation is off unless asked for, in prod too
    assert config.labelled("variable")["allow_curation"]["default"] is False
    prod = parsed_tf["envs/prod"].labelled("variable")
    assert prod["allow_curation"]["default"] is False


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


def test_dev_and_prod_are_the_same_configuration_with_different_defaults(parsed_tf):
    for name in ("main.tf", "outputs.tf", "versions.tf", "providers.tf"):
        assert (ENVS / "dev" / name).read_text() == (ENVS / "prod" / name).read_text(), name
    dev, prod = (parsed_tf[f"envs/{e}"].labelled("variable") for e in ("dev", "prod"))
    assert {n: v["type"] for n, v in dev.items()} == {n: v["type"] for n, v in prod.items()}
    assert prod["force_destroy"]["default"] is False
    assert prod["kms_deletion_window_days"]["default"] == 30


def test_every_env_wires_the_modules_together(parsed_tf):
    for env in ("dev", "prod"):
        config = parsed_tf[f"envs/{env}"]
        modules = config.labelled("module")
        assert set(modules) == MODULE_NAMES
        for name, call in modules.items():
            assert call["source"] == f"../../modules/{name}"
            declared = parsed_tf[f"modules/{name}"].labelled("variable")
            passed = set(call) - {"source"}
            undeclared = passed - set(declared)
            assert not undeclared, f"{env}: {name} gets undeclared {undeclared}"
            required = {n for n, body in declared.items() if "default" not in body}
            assert required <= passed, f"{env}: {name} misses {required - passed}"
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
        backend = config.blocks("terraform")[0]["backend"][0]["s3"]
        assert backend == {"encrypt": True, "use_lockfile": True}, "partial config, no names"


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
