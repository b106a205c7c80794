"""Static checks of the Kubernetes deployment: the Dockerfile at the repository root and the
Helm values under terraform/helm/ for the official Apache Airflow chart.

No docker daemon, helm binary or cluster is needed. As in tests/terraform/tf_static.py, each
check is a plain function that takes the parsed files and returns the problems it finds (an
empty list: none), so the tests run it on the real files and on deliberately broken copies.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from retrain.config import Config

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = PROJECT_ROOT / "Dockerfile"
DOCKERIGNORE = PROJECT_ROOT / ".dockerignore"
LOCK = PROJECT_ROOT / "requirements.lock"
HELM = PROJECT_ROOT / "terraform" / "helm"
SCHEMA = HELM / "values.schema.trimmed.json"
VALUES = {
    "common": HELM / "values-common.yaml",
    "celery": HELM / "values-celery.yaml",
    "kubernetes": HELM / "values-kubernetes.yaml",
}

# The official chart's version these values are written for (terraform/helm/README.md).
CHART_VERSION = "1.22.0"
PYTHON_VERSION = "3.11"
# The placeholders envsubst fills at install time (README): nothing else may look like one.
PLACEHOLDERS = {"${AIRFLOW_ROLE_ARN}", "${RETRAIN_IMAGE}"}
IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"
# Airflow imports airflow_local_settings from $AIRFLOW_HOME/config; the chart mounts its own
# file at the same path unless airflowLocalSettings is null.
LOCAL_SETTINGS_SOURCE = "src/airflow_local_settings.py"
LOCAL_SETTINGS_PATH = "/opt/airflow/config/airflow_local_settings.py"
# A directory holding the official chart (helm pull apache-airflow/airflow --version 1.22.0
# --untar): when set, tests/deploy also validates the values against its values.schema.json.
CHART_DIR_ENV = "RETRAIN_HELM_CHART_DIR"
# Where the build context must never reach.
FORBIDDEN_SOURCES = (".git", ".venv", ".venv-tools", ".stack", ".pytest_cache", "tests")


# -- the lock -----------------------------------------------------------------------------------


def locked_version(lock_text: str, package: str = "apache-airflow") -> str:
    match = re.search(rf"^{re.escape(package)}==(\S+)", lock_text, re.M)
    if not match:
        raise ValueError(f"{package} is not pinned in the lock")
    return match.group(1)


def lock_has_hashes(lock_text: str) -> bool:
    return "--hash=sha256:" in lock_text


# -- the Dockerfile -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    line: int
    name: str  # upper case: FROM, RUN, COPY, ...
    args: str

    def words(self) -> list[str]:
        return shlex.split(self.args)


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with their line number; comments dropped, continuation lines joined."""
    out: list[Instruction] = []
    buf: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue
        if not buf:
            start = number
        if line.endswith("\\"):
            buf.append(line[:-1].strip())
            continue
        buf.append(line)
        joined = " ".join(part for part in buf if part)
        name, _, args = joined.partition(" ")
        out.append(Instruction(start, name.upper(), args.strip()))
        buf = []
    if buf:
        raise ValueError(f"line {start}: continuation at the end of the file")
    return out


def _of(instructions: list[Instruction], name: str) -> list[Instruction]:
    return [i for i in instructions if i.name == name]


def check_base_image(instructions: list[Instruction], airflow_version: str) -> list[str]:
    """One stage, FROM the official image of the locked Airflow version and Python 3.11: an
    explicit tag, never latest."""
    problems = []
    froms = _of(instructions, "FROM")
    if len(froms) != 1:
        problems.append(f"expected one FROM, found {len(froms)}")
    expected = f"apache/airflow:{airflow_version}-python{PYTHON_VERSION}"
    for inst in froms:
        image = inst.words()[0] if inst.words() else ""
        if "latest" in image:
            problems.append(f"line {inst.line}: FROM {image}: a latest tag")
        if ":" not in image.rsplit("/", 1)[-1] and "@" not in image:
            problems.append(f"line {inst.line}: FROM {image}: no tag")
        if image.split("@")[0] != expected:
            problems.append(f"line {inst.line}: FROM {image}, expected {expected} (the lock)")
    return problems


_PIP = re.compile(r"\b(?:pip|uv pip)\s+install\b")


def _pip_installs(instructions: list[Instruction]) -> list[tuple[Instruction, list[str]]]:
    """(RUN, the words of one pip install command) for every pip install in every RUN."""
    found = []
    for inst in _of(instructions, "RUN"):
        for command in re.split(r"&&|;|\|\|", inst.args):
            if _PIP.search(command):
                found.append((inst, shlex.split(command)))
    return found


def _copied_to(instructions: list[Instruction]) -> dict[str, str]:
    """COPY destination -> source (single-source COPYs)."""
    out = {}
    for inst in _of(instructions, "COPY"):
        words = [w for w in inst.words() if not w.startswith("--")]
        if len(words) == 2:
            out[words[1]] = words[0]
    return out


def check_installs_lock(instructions: list[Instruction], hashes: bool) -> list[str]:
    """What gets installed is requirements.lock (hashes required when the lock has them), then
    the project with --no-deps; no pip install of anything else."""
    problems = []
    copied = _copied_to(instructions)
    lock_installs, project_installs = [], []
    for inst, words in _pip_installs(instructions):
        if "-r" in words:
            target = words[words.index("-r") + 1]
            if copied.get(target) != "requirements.lock":
                problems.append(
                    f"line {inst.line}: -r {target} is not the copied requirements.lock"
                )
            if hashes and "--require-hashes" not in words:
                problems.append(
                    f"line {inst.line}: the lock has hashes but --require-hashes is off"
                )
            lock_installs.append(inst)
        elif "--no-deps" in words:
            project_installs.append(inst)
        else:
            problems.append(f"line {inst.line}: pip install of something outside the lock")
    if not lock_installs:
        problems.append("requirements.lock is never installed")
    if not project_installs:
        problems.append("the project is never installed with --no-deps")
    if lock_installs and project_installs and project_installs[0].line < lock_installs[0].line:
        problems.append("the project is installed before the lock")
    return problems


def check_user(instructions: list[Instruction]) -> list[str]:
    users = _of(instructions, "USER")
    if not users:
        return ["no USER: the image would run as whatever the base says"]
    last = users[-1].args.split(":")[0].strip()
    if last in {"root", "0"}:
        return [f"line {users[-1].line}: the image runs as {last}"]
    return []


def check_copies(instructions: list[Instruction], dockerignore: str) -> list[str]:
    """Only project files are copied: nothing from .venv, .git and the like, no ADD of a URL;
    the DAG folder and the config are in; .dockerignore keeps .git and .venv out of the
    build context."""
    problems = []
    sources = []
    for inst in _of(instructions, "ADD"):
        problems.append(f"line {inst.line}: ADD (use COPY; ADD fetches URLs and unpacks)")
    for inst in _of(instructions, "COPY"):
        words = [w for w in inst.words() if not w.startswith("--")]
        if any(w.startswith("--from") for w in inst.words()):
            continue
        for source in words[:-1]:
            sources.append(source)
            top = source.removeprefix("./").strip("/").split("/")[0]
            if source in {".", "./"}:
                problems.append(f"line {inst.line}: COPY {source} brings in everything")
            elif top in FORBIDDEN_SOURCES:
                problems.append(f"line {inst.line}: COPY {source} brings in {top}")
    for needed in ("dags/", "retrain.toml", "requirements.lock"):
        if needed not in sources:
            problems.append(f"{needed} is not copied")
    patterns = [p.strip() for p in dockerignore.splitlines() if p.strip() and not p.startswith("#")]
    allow_list = bool(patterns) and patterns[0] == "*"
    for name in (".git", ".venv"):
        if allow_list:
            if any(p.lstrip("!").strip("/").split("/")[0] == name for p in patterns[1:]):
                problems.append(f".dockerignore lets {name} back in")
        elif name not in {p.strip("/") for p in patterns}:
            problems.append(f".dockerignore does not exclude {name}")
    return problems


_SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|ACCESS_KEY|PRIVATE_KEY|CREDENTIAL)", re.I)
_SECRET_VALUE = re.compile(
    r"(AKIA[0-9A-Z]{16}|ASIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY|://[^/\s:@]+:[^@\s]+@)"
)


def check_dockerfile_secrets(instructions: list[Instruction]) -> list[str]:
    problems = []
    for inst in instructions:
        if inst.name in {"ENV", "ARG", "LABEL"}:
            names = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*=", inst.args) or inst.words()[:1]
            for name in names:
                if _SECRET_NAME.search(name):
                    problems.append(f"line {inst.line}: {inst.name} {name} looks like a secret")
        if _SECRET_VALUE.search(inst.args):
            problems.append(f"line {inst.line}: {inst.name} holds what looks like a credential")
    return problems


def check_local_settings_copied(instructions: list[Instruction]) -> list[str]:
    """The project's airflow_local_settings.py is copied to where Airflow imports it from."""
    copied = _copied_to(instructions).get(LOCAL_SETTINGS_PATH)
    if copied != LOCAL_SETTINGS_SOURCE:
        return [f"{LOCAL_SETTINGS_PATH} is {copied!r}, expected a copy of {LOCAL_SETTINGS_SOURCE}"]
    return []


def dockerfile_env(instructions: list[Instruction]) -> dict[str, str]:
    env = {}
    for inst in _of(instructions, "ENV"):
        for name, value in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=(\S+)", inst.args):
            env[name] = value
    return env


# -- Helm values --------------------------------------------------------------------------------


def load_values() -> dict[str, dict[str, Any]]:
    return {name: yaml.safe_load(path.read_text()) for name, path in VALUES.items()}


def load_schema() -> dict[str, Any]:
    return json.loads(SCHEMA.read_text())


_JSON_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "integer": int,
    "number": (int, float),
    "null": type(None),
}


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref:
        target = schema
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _type_ok(value: Any, types: Any) -> bool:
    if types is None:
        return True
    for name in types if isinstance(types, list) else [types]:
        if name in ("integer", "number") and isinstance(value, bool):
            continue
        if isinstance(value, _JSON_TYPES[name]):
            return True
    return False


def check_schema(
    values: Any, schema: dict[str, Any], node: dict[str, Any] | None = None, path: str = ""
) -> list[str]:
    """Every key set exists in the chart's schema (the trimmed copy), with the declared type and
    enum; a key the schema does not declare is a problem even where the chart would let it
    through, since the trimmed copy lists every key these files use."""
    node = _resolve(schema, schema if node is None else node)
    where = path or "<root>"
    problems = []
    if not _type_ok(values, node.get("type")):
        return [f"{where}: {type(values).__name__} where the chart expects {node.get('type')}"]
    if "enum" in node and values not in node["enum"]:
        problems.append(f"{where}: {values!r} not one of {node['enum']}")
    if "pattern" in node and isinstance(values, str) and not re.match(node["pattern"], values):
        problems.append(f"{where}: {values!r} does not match {node['pattern']}")
    if isinstance(values, dict):
        props = node.get("properties", {})
        extra = node.get("additionalProperties")
        for key, value in values.items():
            sub = f"{path}.{key}" if path else key
            if key in props:
                problems.extend(check_schema(value, schema, props[key], sub))
            elif isinstance(extra, dict):
                problems.extend(check_schema(value, schema, extra, sub))
            else:
                problems.append(f"{sub}: not a key of the chart's values")
        for key in node.get("required", []):
            if key not in values:
                problems.append(f"{where}: missing required {key}")
    elif isinstance(values, list) and isinstance(node.get("items"), dict):
        for index, item in enumerate(values):
            problems.extend(check_schema(item, schema, node["items"], f"{where}[{index}]"))
    return problems


def dig(values: Any, dotted: str, default: Any = None) -> Any:
    for part in dotted.split("."):
        if not isinstance(values, dict) or part not in values:
            return default
        values = values[part]
    return values


def memory_mb(quantity: Any) -> float | None:
    """A Kubernetes memory quantity in MiB (Mi, Gi, M, G, plain bytes)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|K|M|G)?", str(quantity))
    if not match:
        return None
    number, unit = float(match.group(1)), match.group(2) or ""
    factor = {
        "": 1 / 2**20,
        "Ki": 1 / 1024,
        "Mi": 1,
        "Gi": 1024,
        "K": 1e3 / 2**20,
        "M": 1e6 / 2**20,
        "G": 1e9 / 2**20,
    }[unit]
    return number * factor


def cpu_cores(quantity: Any) -> float | None:
    text = str(quantity)
    if re.fullmatch(r"\d+m", text):
        return int(text[:-1]) / 1000
    try:
        return float(text)
    except ValueError:
        return None


def _check_resources(resources: Any, where: str, memory: int, cpu: float) -> list[str]:
    """memory as request and limit, both equal to memory MiB; the CPU request = cpu."""
    if not isinstance(resources, dict):
        return [f"{where}: no resources"]
    problems = []
    for kind in ("requests", "limits"):
        got = memory_mb(dig(resources, f"{kind}.memory"))
        if got is None or abs(got - memory) > 0.5:
            problems.append(
                f"{where}.{kind}.memory is {dig(resources, f'{kind}.memory')!r}, "
                f"expected {memory}Mi"
            )
    got_cpu = cpu_cores(dig(resources, "requests.cpu"))
    if got_cpu is None or abs(got_cpu - cpu) > 1e-6:
        problems.append(
            f"{where}.requests.cpu is {dig(resources, 'requests.cpu')!r}, expected {cpu}"
        )
    return problems


def heavy_memory_mb(cfg: Config) -> int:
    return cfg.resources.task_memory_mb + cfg.training.memory_budget_mb


def check_celery_agrees(celery: dict[str, Any], cfg: Config) -> list[str]:
    """The Celery profile against retrain.toml: the default set listens on [resources]
    default_queue with task_memory_mb per pod; one set listens on heavy_queue only, with
    task_memory_mb + [training] memory_budget_mb per pod and heavy_pool_slots pods; one task per
    worker (worker_concurrency 1), so a pod's memory is one task's."""
    res = cfg.resources
    problems = []
    if celery.get("executor") != "CeleryExecutor":
        problems.append(f"executor is {celery.get('executor')!r}, expected CeleryExecutor")
    if dig(celery, "config.operators.default_queue") != res.default_queue:
        problems.append(
            f"config.operators.default_queue is {dig(celery, 'config.operators.default_queue')!r}"
            f", [resources] default_queue is {res.default_queue!r}"
        )
    if str(dig(celery, "config.celery.worker_concurrency")) != "1":
        problems.append("config.celery.worker_concurrency must be 1 (a pod's memory is one task's)")
    light = cfg.resources.task_memory_mb
    for key in ("workers.resources", "workers.celery.resources"):
        problems.extend(_check_resources(dig(celery, key), key, light, res.task_cpu))
    if dig(celery, "workers.replicas") != dig(celery, "workers.celery.replicas"):
        problems.append("workers.replicas and workers.celery.replicas differ")
    sets = dig(celery, "workers.celery.sets") or []
    heavy = [s for s in sets if isinstance(s, dict) and s.get("name") == res.heavy_queue]
    if len(heavy) != 1:
        problems.append(f"no single worker set named {res.heavy_queue!r}")
    for worker_set in heavy:
        queues = [q.strip() for q in str(worker_set.get("queue", "")).split(",")]
        if queues != [res.heavy_queue]:
            problems.append(f"the heavy set listens on {queues}, expected [{res.heavy_queue!r}]")
        if worker_set.get("replicas") != res.heavy_pool_slots:
            problems.append(
                f"the heavy set has {worker_set.get('replicas')} replicas, [resources] "
                f"heavy_pool_slots is {res.heavy_pool_slots}"
            )
        problems.extend(
            _check_resources(
                worker_set.get("resources"),
                "heavy set resources",
                heavy_memory_mb(cfg),
                res.task_cpu,
            )
        )
    for worker_set in sets:
        if isinstance(worker_set, dict) and worker_set not in heavy:
            queues = str(worker_set.get("queue", "")).split(",")
            if res.heavy_queue in queues:
                problems.append(f"set {worker_set.get('name')!r} also takes the heavy queue")
    return problems


def check_kubernetes_agrees(kube: dict[str, Any], cfg: Config) -> list[str]:
    """The KubernetesExecutor profile: task pods get a light task's memory and CPU (heavy tasks
    override it per task, see values-kubernetes.yaml); no Redis."""
    problems = []
    if kube.get("executor") != "KubernetesExecutor":
        problems.append(f"executor is {kube.get('executor')!r}, expected KubernetesExecutor")
    if dig(kube, "redis.enabled") is not False:
        problems.append("redis is on without Celery")
    for key in ("workers.resources", "workers.kubernetes.resources"):
        problems.extend(
            _check_resources(
                dig(kube, key), key, cfg.resources.task_memory_mb, cfg.resources.task_cpu
            )
        )
    return problems


def check_image_values(common: dict[str, Any], airflow_version: str) -> list[str]:
    """The chart runs the project's image, tagged for the locked Airflow version."""
    problems = []
    if common.get("airflowVersion") != airflow_version:
        problems.append(f"airflowVersion {common.get('airflowVersion')!r}, lock {airflow_version}")
    tag = str(dig(common, "images.airflow.tag"))
    if not tag.startswith(f"{airflow_version}-") or "latest" in tag:
        problems.append(f"images.airflow.tag {tag!r} is not <{airflow_version}>-...")
    if common.get("defaultAirflowTag") != tag:
        problems.append("defaultAirflowTag differs from images.airflow.tag")
    if dig(common, "images.airflow.repository") != common.get("defaultAirflowRepository"):
        problems.append("images.airflow.repository differs from defaultAirflowRepository")
    return problems


_INLINE_SECRET_KEYS = {
    "fernetKey",
    "jwtSecret",
    "apiSecretKey",
    "webserverSecretKey",
    "password",
    "pass",
    "brokerUrl",
    "metadataConnection",
    "resultBackendConnection",
    "connection",
}


def _walk(values: Any, path: str = ""):
    if isinstance(values, dict):
        for key, value in values.items():
            sub = f"{path}.{key}" if path else str(key)
            yield sub, key, value
            yield from _walk(value, sub)
    elif isinstance(values, list):
        for index, item in enumerate(values):
            yield from _walk(item, f"{path}[{index}]")


def check_no_plaintext_secrets(values: dict[str, Any]) -> list[str]:
    """Credentials only by reference: no inline key, password, connection or broker URL; no
    value that looks like a credential; a secret-ish key is a *SecretName reference."""
    problems = []
    for path, key, value in _walk(values):
        if key in _INLINE_SECRET_KEYS and value not in (None, {}, ""):
            problems.append(f"{path}: inline credential (use a Secret and *SecretName)")
        elif (
            isinstance(key, str)
            and _SECRET_NAME.search(key)
            and not key.endswith(("SecretName", "secretName", "secretKey"))
            and not isinstance(value, (dict, list, bool))
        ):
            problems.append(f"{path}: {key} set inline")
        if isinstance(value, str) and _SECRET_VALUE.search(value):
            problems.append(f"{path}: looks like a credential")
        if key == "env" and isinstance(value, list):
            for item in value:
                name = item.get("name", "") if isinstance(item, dict) else ""
                if _SECRET_NAME.search(str(name)) and "value" in item:
                    problems.append(f"{path}: {name} set inline (use the secret list)")
    return problems


def check_references(
    values: dict[str, dict[str, Any]], cfg: Config, docker_env: dict[str, str]
) -> list[str]:
    """External PostgreSQL by Secret, Redis and its broker URL by Secret (Celery), the project's
    environment from the ConfigMap and the connection from a Secret, RETRAIN_CONFIG as the image
    sets it, the DAGs from the image."""
    common, celery = values["common"], values["celery"]
    problems = []
    if dig(common, "postgresql.enabled") is not False:
        problems.append("the bundled PostgreSQL is on: the metadata DB is external")
    for key in (
        "data.metadataSecretName",
        "fernetKeySecretName",
        "apiSecretKeySecretName",
        "jwtSecretName",
    ):
        if not dig(common, key):
            problems.append(f"{key} is not set")
    if dig(celery, "redis.enabled") is not True or not dig(celery, "redis.passwordSecretName"):
        problems.append("Celery needs the chart's Redis with its password from a Secret")
    if not dig(celery, "data.brokerUrlSecretName"):
        problems.append("data.brokerUrlSecretName is not set")
    conn_env = f"AIRFLOW_CONN_{cfg.orchestration.aws_conn_id.upper()}"
    secrets = {s.get("envName"): s for s in common.get("secret") or []}
    if conn_env not in secrets or not secrets[conn_env].get("secretName"):
        problems.append(f"{conn_env} does not come from a Secret")
    env_from = yaml.safe_load(common.get("extraEnvFrom") or "[]") or []
    if not any(isinstance(e, dict) and dig(e, "configMapRef.name") for e in env_from):
        problems.append("extraEnvFrom has no ConfigMap for the RETRAIN__* variables")
    env = {e.get("name"): e.get("value") for e in common.get("env") or []}
    if env.get("RETRAIN_CONFIG") != docker_env.get("RETRAIN_CONFIG"):
        problems.append(
            f"RETRAIN_CONFIG {env.get('RETRAIN_CONFIG')!r} is not where the image puts the "
            f"config ({docker_env.get('RETRAIN_CONFIG')!r})"
        )
    if (
        dig(common, "dags.gitSync.enabled") is not False
        or dig(common, "dags.persistence.enabled") is not False
    ):
        problems.append("the DAGs come from the image: git-sync and the DAG volume stay off")
    return problems


SERVICE_ACCOUNTS = (
    "apiServer.serviceAccount",
    "scheduler.serviceAccount",
    "dagProcessor.serviceAccount",
    "triggerer.serviceAccount",
    "workers.serviceAccount",
    "workers.celery.serviceAccount",
    "workers.kubernetes.serviceAccount",
)
COMPONENTS = ("apiServer", "scheduler", "dagProcessor", "triggerer")


def check_components(common: dict[str, Any]) -> list[str]:
    """Every component's service account is named and annotated for IRSA with the Terraform
    output airflow_role_arn; the worker accounts agree; every component has memory as request
    and limit and a CPU request; the dag-processor runs on its own."""
    problems = []
    for key in SERVICE_ACCOUNTS:
        sa = dig(common, key) or {}
        if dig(sa, "annotations", {}).get(IRSA_ANNOTATION) != "${AIRFLOW_ROLE_ARN}":
            problems.append(f"{key}: no {IRSA_ANNOTATION} annotation with ${{AIRFLOW_ROLE_ARN}}")
        if not sa.get("name"):
            problems.append(f"{key}: unnamed (IRSA trusts exact names)")
    worker_names = {dig(common, f"{k}.name") for k in SERVICE_ACCOUNTS if k.startswith("workers")}
    if len(worker_names) != 1:
        problems.append(f"the worker service accounts differ: {sorted(map(str, worker_names))}")
    for component in COMPONENTS:
        resources = dig(common, f"{component}.resources") or {}
        requested = memory_mb(dig(resources, "requests.memory"))
        limit = memory_mb(dig(resources, "limits.memory"))
        if requested is None or limit is None or requested != limit:
            problems.append(f"{component}: memory request and limit missing or unequal")
        if cpu_cores(dig(resources, "requests.cpu")) is None:
            problems.append(f"{component}: no CPU request")
    if dig(common, "dagProcessor.enabled") is not True:
        problems.append("dagProcessor is not enabled")
    return problems


def check_local_settings_values(common: dict[str, Any]) -> list[str]:
    """airflowLocalSettings is set, to null: the chart's default (a template, empty for Airflow
    3) would otherwise be mounted over the image's airflow_local_settings.py in every pod."""
    if "airflowLocalSettings" not in common:
        return ["airflowLocalSettings is not set: the chart mounts its own file over the image's"]
    if common["airflowLocalSettings"] is not None:
        return ["airflowLocalSettings is not null: it would replace the image's local settings"]
    return []


def helm_merge(base: Any, override: Any) -> Any:
    """Values coalesced as helm does for -f files: maps merge key by key, the later value wins,
    and a null deletes the key (how a values file turns a chart default off)."""
    if not (isinstance(base, dict) and isinstance(override, dict)):
        return copy.deepcopy(override)
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = helm_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def check_against_chart(
    values: dict[str, dict[str, Any]], chart_schema: dict[str, Any], chart_defaults: dict[str, Any]
) -> dict[str, list[str]]:
    """What helm checks before it renders: the chart's defaults, values-common.yaml and one
    executor file, merged, against the chart's own values.schema.json (JSON Schema draft 7).
    Problems per executor file."""
    import jsonschema

    validator = jsonschema.Draft7Validator(chart_schema)
    found = {}
    for profile in ("celery", "kubernetes"):
        merged = helm_merge(helm_merge(chart_defaults, values["common"]), values[profile])
        found[profile] = sorted(
            f"{'.'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
            for error in validator.iter_errors(merged)
        )
    return found


def check_placeholders(texts: dict[str, str]) -> list[str]:
    """envsubst fills the values files at install time: only the known placeholders may appear
    (any other $ would be substituted too)."""
    problems = []
    for name, text in texts.items():
        for found in re.findall(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", text):
            if found not in PLACEHOLDERS:
                problems.append(f"{name}: {found} would be replaced by envsubst")
    return problems
