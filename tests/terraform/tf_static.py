"""Static checks of terraform/: python-hcl2 parses every file, and each check below takes the
parsed configuration and returns the problems it finds (an empty list: none).

No terraform binary or AWS account is needed. The checks are plain functions so the tests can
run each one on the real configuration and on a deliberately broken copy of it.

Parsed shape (python-hcl2 with quotes stripped, no block markers): a file is a dict of block
type -> list of blocks; ``resource`` / ``data`` blocks are ``{type: {name: body}}``; ``variable``,
``output`` and ``module`` blocks are ``{name: body}``; nested blocks are lists of dicts; string
literals are plain text and expressions are ``"${...}"``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
from hcl2.utils import SerializationOptions

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = PROJECT_ROOT / "terraform"
MODULES = TERRAFORM / "modules"
ENVS = TERRAFORM / "envs"
PROJECT_SETTINGS = TERRAFORM / "retrain_config.json"

# The root composition module: it calls the component modules, and every env calls it once.
ROOT_MODULE = "retrain"

_OPTIONS = SerializationOptions(
    with_comments=False, explicit_blocks=False, strip_string_quotes=True
)

# The only places an Allow statement may name Resource "*": (module, policy document) -> why.
WILDCARD_RESOURCE_ALLOWED = {
    ("data_bucket", "key"): (
        'a KMS key policy is attached to its key, and AWS requires Resource "*" there: it means '
        '"this key" (the key ARN does not exist before the key)'
    ),
}

# The same pattern as the prefixes' validation in the modules (a test keeps the two equal).
PREFIX_PATTERN = r"^([A-Za-z0-9][A-Za-z0-9_.=-]*/)+$"


# -- parsing ------------------------------------------------------------------------------------


def parse_text(text: str) -> dict[str, Any]:
    return hcl2.loads(text, serialization_options=_OPTIONS)


def parse_file(path: Path) -> dict[str, Any]:
    return parse_text(path.read_text())


@dataclass
class Config:
    """The .tf files of one directory (a module or an env), merged like Terraform does."""

    path: Path
    files: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name

    def blocks(self, kind: str) -> list[Any]:
        return [block for parsed in self.files.values() for block in parsed.get(kind, [])]

    def labelled(self, kind: str) -> dict[str, dict[str, Any]]:
        """variable / output / module blocks by name."""
        return {name: body for block in self.blocks(kind) for name, body in block.items()}

    def resources(self, kind: str = "resource") -> dict[tuple[str, str], dict[str, Any]]:
        """resource (or data) blocks by (type, name)."""
        out = {}
        for block in self.blocks(kind):
            for rtype, named in block.items():
                for rname, body in named.items():
                    out[rtype, rname] = body
        return out

    def of_type(self, rtype: str, kind: str = "resource") -> dict[str, dict[str, Any]]:
        return {name: body for (t, name), body in self.resources(kind).items() if t == rtype}

    @property
    def locals(self) -> dict[str, Any]:
        return {k: v for block in self.blocks("locals") for k, v in block.items()}


def load_dir(path: Path) -> Config:
    return Config(path=path, files={p.name: parse_file(p) for p in sorted(path.glob("*.tf"))})


def tf_dirs() -> list[Path]:
    return sorted(p for p in [*MODULES.iterdir(), *ENVS.iterdir()] if p.is_dir())


def load_all() -> dict[str, Config]:
    """Every module and env, keyed "modules/<name>" and "envs/<name>"."""
    return {f"{p.parent.name}/{p.name}": load_dir(p) for p in tf_dirs()}


# -- reading expressions ------------------------------------------------------------------------


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def is_expression(value: Any) -> bool:
    """A whole-value expression (``${...}`` spanning the value), not a literal string."""
    return isinstance(value, str) and value.startswith("${") and _interp_end(value, 2) == len(value)


def _string_end(text: str, i: int, out: list[str]) -> int:
    """text[i] is '"': read the template string to its closing quote, recording it and the
    strings nested in its interpolations; return the index after the quote."""
    j, buf = i + 1, []
    while j < len(text):
        if text[j] == "\\":
            buf.append(text[j : j + 2])
            j += 2
        elif text[j] == '"':
            out.append("".join(buf))
            return j + 1
        elif text.startswith("${", j):
            end = _interp_end(text, j + 2, out)
            buf.append(text[j:end])
            j = end
        else:
            buf.append(text[j])
            j += 1
    raise ValueError(f"unterminated string in {text!r}")


def _interp_end(text: str, j: int, out: list[str] | None = None) -> int:
    """Inside ``${``: the index after the matching ``}`` (strings inside are skipped whole)."""
    out = [] if out is None else out
    depth = 1
    while j < len(text):
        if text[j] == '"':
            j = _string_end(text, j, out)
            continue
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    return -1


def literals(value: Any) -> list[str]:
    """Every string literal a value can produce: the value itself when it is a literal (with its
    interpolations as text), and every string literal written inside its expressions."""
    out: list[str] = []
    for item in as_list(value):
        if isinstance(item, dict):
            for v in item.values():
                out.extend(literals(v))
            continue
        if not isinstance(item, str):
            continue
        if is_expression(item):
            _interp_end(item, 2, out)
            continue
        out.append(item)
        j = 0
        while (j := item.find("${", j)) != -1:
            j = _interp_end(item, j + 2, out)
    return out


_REF = re.compile(r"\b(local|var)\.([A-Za-z_][A-Za-z0-9_-]*)")


def references(value: Any) -> set[tuple[str, str]]:
    """("local" | "var", name) referenced anywhere in a value."""
    text = repr(value)
    return {(m.group(1), m.group(2)) for m in _REF.finditer(text)}


def resolve_literals(config: Config, value: Any) -> tuple[list[str], set[str]]:
    """The literals a value can produce, following ``local.*`` references transitively; and the
    input variables it depends on."""
    lits, variables, seen = [], set(), set()
    todo = [value]
    local_values = config.locals
    while todo:
        current = todo.pop()
        lits.extend(literals(current))
        for kind, name in references(current):
            if kind == "var":
                variables.add(name)
            elif name not in seen and name in local_values:
                seen.add(name)
                todo.append(local_values[name])
    return lits, variables


# -- IAM policy documents -----------------------------------------------------------------------


_ACTION = re.compile(r"^(\*|[A-Za-z0-9-]+:[A-Za-z0-9*]*)$")


@dataclass
class Statement:
    config: Config
    document: str
    body: dict[str, Any]

    @property
    def where(self) -> str:
        return f"{self.config.name}: data.aws_iam_policy_document.{self.document} [{self.sid}]"

    @property
    def sid(self) -> str:
        return str(self.body.get("sid", "?"))

    @property
    def effect(self) -> str:
        return str(self.body.get("effect", "Allow"))

    def actions(self) -> list[str]:
        """The action names the statement can hold (strings of an expression that are not action
        names, such as a service name it tests for, are left out)."""
        found = resolve_literals(self.config, self.body.get("actions"))[0]
        return [a for a in found if _ACTION.match(a)]

    def resources(self) -> tuple[list[str], set[str]]:
        return resolve_literals(self.config, self.body.get("resources"))

    def principals(self) -> list[tuple[str, list[str]]]:
        return [
            (str(p.get("type")), resolve_literals(self.config, p.get("identifiers"))[0])
            for p in as_list(self.body.get("principals"))
        ]

    def conditions(self) -> list[dict[str, Any]]:
        return as_list(self.body.get("condition"))


def statements(config: Config) -> Iterator[Statement]:
    """Every statement of every aws_iam_policy_document, dynamic ones included."""
    for name, doc in config.of_type("aws_iam_policy_document", kind="data").items():
        for body in as_list(doc.get("statement")):
            yield Statement(config, name, body)
        for dyn in as_list(doc.get("dynamic")):
            for body in as_list(dyn.get("statement", {}).get("content")):
                yield Statement(config, name, body)


_TRUST_ACTIONS = {"sts:AssumeRole", "sts:AssumeRoleWithWebIdentity", "sts:TagSession"}


def _scoped_wildcard(resource: str) -> bool:
    """A trailing * below a named path: ``<bucket>/<prefix>*`` or ``<bucket>/<dir>/.../*``."""
    if resource.count("*") != 1 or not resource.endswith("*"):
        return False
    head = resource[:-1]
    if re.search(r"\$\{[^{}]*prefix[^{}]*\}$", head):
        return True
    return bool(re.match(r"^(\$\{[^{}]*\}|arn:[^/]+)/(.+/)$", head))


def check_iam(configs: dict[str, Config]) -> list[str]:
    """Least privilege in every policy document: no wildcard action and no NotAction /
    NotResource in an Allow; no Resource "*" except WILDCARD_RESOURCE_ALLOWED; other wildcards
    only at the end of a prefix-scoped path; no "*" principal in an Allow; every input variable
    a resource depends on is validated (so "*" cannot come in from outside)."""
    problems = []
    for config in configs.values():
        validated = {
            name for name, body in config.labelled("variable").items() if body.get("validation")
        }
        for st in statements(config):
            if st.effect != "Allow":
                continue
            for key in ("not_actions", "not_resources", "not_principals"):
                if key in st.body:
                    problems.append(f"{st.where}: {key} in an Allow grants everything else")
            actions = st.actions()
            if not actions:
                problems.append(f"{st.where}: no literal action")
            for action in actions:
                if "*" in action:
                    problems.append(f"{st.where}: wildcard action {action!r}")
            resources, variables = st.resources()
            if (
                not resources
                and not variables
                and "resources" not in st.body
                and not set(actions) <= _TRUST_ACTIONS
            ):
                problems.append(f"{st.where}: no resources (means every resource)")
            for resource in resources:
                if resource == "*":
                    if (config.name, st.document) not in WILDCARD_RESOURCE_ALLOWED:
                        problems.append(f'{st.where}: Resource "*" outside the allow-list')
                elif "*" in resource and not _scoped_wildcard(resource):
                    problems.append(f"{st.where}: resource {resource!r} is not prefix-scoped")
            for name in sorted(variables - validated):
                problems.append(f"{st.where}: resource from unvalidated variable var.{name}")
            for ptype, identifiers in st.principals():
                if ptype == "*" or "*" in identifiers:
                    problems.append(f"{st.where}: Allow for any principal")
    return problems


def unused_allow_list(configs: dict[str, Config]) -> list[tuple[str, str]]:
    used = {
        (config.name, st.document)
        for config in configs.values()
        for st in statements(config)
        if st.effect == "Allow" and "*" in st.resources()[0]
    }
    return sorted(set(WILDCARD_RESOURCE_ALLOWED) - used)


# -- declarations -------------------------------------------------------------------------------


def check_declarations(configs: dict[str, Config]) -> list[str]:
    """Every variable has a type and a description; every output a description."""
    problems = []
    for key, config in configs.items():
        for name, body in config.labelled("variable").items():
            for attr in ("type", "description"):
                if not str(body.get(attr, "")).strip():
                    problems.append(f"{key}: variable {name!r} has no {attr}")
        for name, body in config.labelled("output").items():
            if not str(body.get("description", "")).strip():
                problems.append(f"{key}: output {name!r} has no description")
    return problems


_PESSIMISTIC = re.compile(r"^~> ?\d+\.\d+(\.\d+)?$")
_EXACT = re.compile(r"^=? ?\d+\.\d+\.\d+$")


def check_pins(configs: dict[str, Config]) -> list[str]:
    """required_version and every required provider pinned (exact or pessimistic ~>); every
    module source local, or a registry source with a pinned version, or git at a commit."""
    problems = []
    for key, config in configs.items():
        blocks = config.blocks("terraform")
        if not blocks:
            problems.append(f"{key}: no terraform block")
        required_version = [b["required_version"] for b in blocks if "required_version" in b]
        if not required_version or not all(
            _PESSIMISTIC.match(v) or _EXACT.match(v) for v in required_version
        ):
            problems.append(f"{key}: required_version not pinned: {required_version}")
        providers: dict[str, Any] = {}
        for block in blocks:
            for req in as_list(block.get("required_providers")):
                providers.update(req)
        if "aws" not in providers:
            problems.append(f"{key}: no required_providers.aws")
        for pname, spec in providers.items():
            if not isinstance(spec, dict) or not spec.get("source"):
                problems.append(f"{key}: provider {pname} has no source")
                continue
            version = str(spec.get("version", ""))
            if not (_PESSIMISTIC.match(version) or _EXACT.match(version)):
                problems.append(f"{key}: provider {pname} version not pinned: {version!r}")
        for mname, body in config.labelled("module").items():
            source = str(body.get("source", ""))
            if source.startswith(("./", "../")):
                if not (config.path / source).resolve().is_dir():
                    problems.append(f"{key}: module {mname} source {source} does not exist")
            elif source.startswith("git::") or "github.com" in source:
                if not re.search(r"[?&]ref=[0-9a-f]{40}$", source):
                    problems.append(f"{key}: module {mname} git source not pinned to a commit")
            elif not _EXACT.match(str(body.get("version", ""))):
                problems.append(f"{key}: module {mname} registry version not pinned exactly")
    return problems


_META_ARGUMENTS = {"source", "version", "providers", "count", "for_each", "depends_on"}


def module_calls(
    configs: dict[str, Config],
) -> Iterator[tuple[str, str, dict[str, Any], Config | None]]:
    """(caller key, call name, call body, the called Config or None) of every module call."""
    by_path = {config.path.resolve(): config for config in configs.values()}
    for key, config in configs.items():
        for name, call in config.labelled("module").items():
            source = str(call.get("source", ""))
            local = source.startswith(("./", "../"))
            yield key, name, call, by_path.get((config.path / source).resolve()) if local else None


def check_module_calls(configs: dict[str, Config]) -> list[str]:
    """Every module call names a module of terraform/, passes only variables it declares and
    every variable it requires (no default)."""
    problems = []
    for key, name, call, target in module_calls(configs):
        if target is None:
            problems.append(f"{key}: module {name} is not a module of terraform/")
            continue
        declared = target.labelled("variable")
        passed = set(call) - _META_ARGUMENTS
        for arg in sorted(passed - set(declared)):
            problems.append(f"{key}: module {name} gets undeclared variable {arg!r}")
        for arg in sorted(n for n, body in declared.items() if "default" not in body):
            if arg not in passed:
                problems.append(f"{key}: module {name} misses required variable {arg!r}")
    return problems


def check_envs(configs: dict[str, Config]) -> list[str]:
    """Every env is thin: one call of modules/<ROOT_MODULE>, no resource or data source of its
    own; every output of that module forwarded under the same name and description; every
    variable the env hands on unchanged declared as the module declares it (type, description,
    default); a moved block from each component module's old root address to its address in the
    composition module."""
    problems = []
    root = configs[f"modules/{ROOT_MODULE}"]
    root_outputs = root.labelled("output")
    root_variables = root.labelled("variable")
    components = sorted(root.labelled("module"))
    for key, config in configs.items():
        if not key.startswith("envs/"):
            continue
        calls = config.labelled("module")
        if set(calls) != {ROOT_MODULE}:
            problems.append(f"{key}: calls {sorted(calls)}, not {ROOT_MODULE} alone")
        call = calls.get(ROOT_MODULE, {})
        if call.get("source") != f"../../modules/{ROOT_MODULE}":
            problems.append(f"{key}: module {ROOT_MODULE} source is {call.get('source')!r}")
        for kind in ("resource", "data"):
            if config.blocks(kind):
                problems.append(f"{key}: declares {kind} blocks (they belong in the modules)")
        outputs = config.labelled("output")
        for name in sorted(set(root_outputs) - set(outputs)):
            problems.append(f"{key}: output {name!r} of modules/{ROOT_MODULE} is not forwarded")
        for name, body in outputs.items():
            if body.get("value") != f"${{module.{ROOT_MODULE}.{name}}}":
                problems.append(f"{key}: output {name!r} is not module.{ROOT_MODULE}.{name}")
            elif body.get("description") != root_outputs[name].get("description"):
                problems.append(f"{key}: output {name!r} is described unlike the module's")
        for name, body in config.labelled("variable").items():
            if call.get(name) != f"${{var.{name}}}" or name not in root_variables:
                continue
            for attr in ("type", "description", "default"):
                if body.get(attr, "<unset>") != root_variables[name].get(attr, "<unset>"):
                    problems.append(f"{key}: variable {name!r} {attr} differs from the module's")
        moved = {(m.get("from"), m.get("to")) for m in config.blocks("moved")}
        for name in components:
            if (f"${{module.{name}}}", f"${{module.{ROOT_MODULE}.module.{name}}}") not in moved:
                problems.append(f"{key}: no moved block from module.{name}")
    return problems


# -- security properties of the resources -------------------------------------------------------


def _ref_name(value: Any, rtype: str) -> str | None:
    """The resource name in a ``${<rtype>.<name>.<attr>}`` reference."""
    m = re.search(rf"\b{re.escape(rtype)}\.([A-Za-z0-9_-]+)\.", str(value))
    return m.group(1) if m else None


def _by_bucket(config: Config, rtype: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for body in config.of_type(rtype).values():
        if name := _ref_name(body.get("bucket"), "aws_s3_bucket"):
            out.setdefault(name, []).append(body)
    return out


def _first(value: Any) -> dict[str, Any]:
    items = as_list(value)
    return items[0] if items and isinstance(items[0], dict) else {}


def _is_true(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _tls_deny(statement: Statement, actions_prefix: str) -> bool:
    actions = statement.actions()
    return (
        statement.effect == "Deny"
        and any(a in (f"{actions_prefix}:*", "*") for a in actions)
        and any(t == "*" and "*" in ids for t, ids in statement.principals())
        and any(
            c.get("test") == "Bool"
            and c.get("variable") == "aws:SecureTransport"
            and as_list(c.get("values")) in (["false"], [False])
            for c in statement.conditions()
        )
    )


def _policy_document(config: Config, policy_value: Any) -> str | None:
    m = re.search(r"data\.aws_iam_policy_document\.([A-Za-z0-9_-]+)\.json", str(policy_value))
    return m.group(1) if m else None


def check_buckets(configs: dict[str, Config]) -> list[str]:
    """Every bucket: public access block (all four), BucketOwnerEnforced, versioning, default
    encryption, a policy whose Deny covers the bucket and its objects when aws:SecureTransport is
    false, a lifecycle that expires noncurrent versions and aborts multipart uploads. A bucket
    encrypted without KMS must be an access-log target (the only case AWS requires it)."""
    problems = []
    for key, config in configs.items():
        buckets = config.of_type("aws_s3_bucket")
        pab = _by_bucket(config, "aws_s3_bucket_public_access_block")
        own = _by_bucket(config, "aws_s3_bucket_ownership_controls")
        ver = _by_bucket(config, "aws_s3_bucket_versioning")
        sse = _by_bucket(config, "aws_s3_bucket_server_side_encryption_configuration")
        pol = _by_bucket(config, "aws_s3_bucket_policy")
        life = _by_bucket(config, "aws_s3_bucket_lifecycle_configuration")
        log_targets = {
            _ref_name(b.get("target_bucket"), "aws_s3_bucket")
            for b in config.of_type("aws_s3_bucket_logging").values()
        }
        logged = set(_by_bucket(config, "aws_s3_bucket_logging"))
        docs = {}
        for st in statements(config):
            docs.setdefault(st.document, []).append(st)
        for name in buckets:
            where = f"{key}: aws_s3_bucket.{name}"
            block = pab.get(name, [{}])[0]
            for attr in (
                "block_public_acls",
                "block_public_policy",
                "ignore_public_acls",
                "restrict_public_buckets",
            ):
                if not _is_true(block.get(attr)):
                    problems.append(f"{where}: public access block {attr} is not true")
            rule = _first(own.get(name, [{}])[0].get("rule"))
            if rule.get("object_ownership") != "BucketOwnerEnforced":
                problems.append(f"{where}: object ownership is not BucketOwnerEnforced")
            vconf = _first(ver.get(name, [{}])[0].get("versioning_configuration"))
            if vconf.get("status") != "Enabled":
                problems.append(f"{where}: versioning not enabled")
            default = _first(
                _first(sse.get(name, [{}])[0].get("rule")).get(
                    "apply_server_side_encryption_by_default"
                )
            )
            algorithm = default.get("sse_algorithm")
            if algorithm == "aws:kms":
                if not _ref_name(default.get("kms_master_key_id"), "aws_kms_key"):
                    problems.append(f"{where}: SSE-KMS without this module's dedicated key")
            elif not (algorithm == "AES256" and name in log_targets):
                problems.append(f"{where}: not SSE-KMS (only an access-log target may use AES256)")
            if name not in log_targets and name not in logged:
                problems.append(f"{where}: no access logging")
            policies = [_policy_document(config, p.get("policy")) for p in pol.get(name, [])]
            tls = [st for doc in policies for st in docs.get(doc, []) if _tls_deny(st, "s3")]
            covers = {str(r) for st in tls for r in as_list(st.body.get("resources"))}
            if not tls:
                problems.append(f"{where}: no Deny for aws:SecureTransport false")
            elif not any(r.endswith("/*") for r in covers) or not any(
                not r.endswith("*") for r in covers
            ):
                problems.append(f"{where}: the TLS Deny does not cover the bucket and its objects")
            rules = [r for lc in life.get(name, []) for r in as_list(lc.get("rule"))]
            if not any(r.get("noncurrent_version_expiration") for r in rules):
                problems.append(f"{where}: noncurrent versions never expire")
            if not any(r.get("abort_incomplete_multipart_upload") for r in rules):
                problems.append(f"{where}: incomplete multipart uploads never aborted")
            if any(r.get("status") != "Enabled" for r in rules):
                problems.append(f"{where}: a lifecycle rule is not Enabled")
    return problems


def lifecycle_expirations(config: Config, bucket: str) -> dict[str, Any]:
    """filter prefix -> expiration days of the bucket's lifecycle rules."""
    out = {}
    for lc in _by_bucket(config, "aws_s3_bucket_lifecycle_configuration").get(bucket, []):
        for rule in as_list(lc.get("rule")):
            prefix = _first(rule.get("filter")).get("prefix")
            days = _first(rule.get("expiration")).get("days")
            if prefix is not None and days is not None and rule.get("status") == "Enabled":
                out[prefix] = days
    return out


def check_encryption(configs: dict[str, Config]) -> list[str]:
    """KMS on every queue and topic; every KMS key rotates and has a key policy."""
    problems = []
    for key, config in configs.items():
        for name, body in config.of_type("aws_sqs_queue").items():
            if not body.get("kms_master_key_id") and not _is_true(
                body.get("sqs_managed_sse_enabled")
            ):
                problems.append(f"{key}: aws_sqs_queue.{name} is not encrypted")
        for name, body in config.of_type("aws_sns_topic").items():
            if not body.get("kms_master_key_id"):
                problems.append(f"{key}: aws_sns_topic.{name} is not KMS-encrypted")
        for name, body in config.of_type("aws_kms_key").items():
            if not _is_true(body.get("enable_key_rotation")):
                problems.append(f"{key}: aws_kms_key.{name} does not rotate")
            if not body.get("policy"):
                problems.append(f"{key}: aws_kms_key.{name} has no key policy")
    return problems


def check_queue_policies(configs: dict[str, Config]) -> list[str]:
    """A queue S3 notifies takes messages from that bucket only: the queue policy's one Allow is
    sqs:SendMessage for s3.amazonaws.com with aws:SourceArn = the bucket's ARN and
    aws:SourceAccount, and non-TLS access is denied."""
    problems = []
    for key, config in configs.items():
        notified = {
            _ref_name(_first(n.get("queue")).get("queue_arn"), "aws_sqs_queue")
            for n in config.of_type("aws_s3_bucket_notification").values()
        }
        docs: dict[str, list[Statement]] = {}
        for st in statements(config):
            docs.setdefault(st.document, []).append(st)
        for policy in config.of_type("aws_sqs_queue_policy").values():
            queue = _ref_name(policy.get("queue_url"), "aws_sqs_queue")
            if queue not in notified:
                continue
            where = f"{key}: aws_sqs_queue_policy for aws_sqs_queue.{queue}"
            sts = docs.get(_policy_document(config, policy.get("policy")) or "", [])
            allows = [st for st in sts if st.effect == "Allow"]
            if len(allows) != 1:
                problems.append(f"{where}: expected exactly one Allow, found {len(allows)}")
            for st in allows:
                if st.actions() != ["sqs:SendMessage"]:
                    problems.append(f"{where}: the Allow grants {st.actions()}")
                if st.principals() != [("Service", ["s3.amazonaws.com"])]:
                    problems.append(f"{where}: the Allow is not for s3.amazonaws.com only")
                conditions = {c.get("variable"): c for c in st.conditions()}
                arn = conditions.get("aws:SourceArn", {})
                if arn.get("test") not in ("ArnEquals", "ArnLike") or not any(
                    "bucket_arn" in str(v) for v in as_list(arn.get("values"))
                ):
                    problems.append(f"{where}: no aws:SourceArn condition on the bucket ARN")
                if conditions.get("aws:SourceAccount", {}).get("test") != "StringEquals":
                    problems.append(f"{where}: no aws:SourceAccount condition")
            if not any(_tls_deny(st, "sqs") for st in sts):
                problems.append(f"{where}: no Deny for aws:SecureTransport false")
    return problems


# -- checkov skip comments ----------------------------------------------------------------------

_SKIP = re.compile(r"#\s*checkov:skip=([A-Z0-9_]+)(?::(.*))?$")


def checkov_skips() -> list[tuple[str, int, str, str]]:
    """(file, line, check id, reason) of every checkov skip in terraform/."""
    out = []
    for path in sorted(TERRAFORM.rglob("*.tf")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if m := _SKIP.search(line):
                rel = str(path.relative_to(TERRAFORM))
                out.append((rel, n, m.group(1), (m.group(2) or "").strip()))
    return out
