"""The Dockerfile checked without docker: the base image is the official Airflow image of the
locked version, the lock is what gets installed (hashes checked) and then the project with
--no-deps, it runs as a non-root user, copies nothing from .venv or .git, holds no secret, and
ships the project's airflow_local_settings.py where Airflow imports it from.
Each check also runs on a deliberately broken copy."""

from __future__ import annotations

import deploy_static
import pytest
from deploy_static import (
    check_base_image,
    check_copies,
    check_dockerfile_secrets,
    check_installs_lock,
    check_local_settings_copied,
    check_user,
    parse_dockerfile,
)

DOCKERIGNORE = deploy_static.DOCKERIGNORE.read_text()


def _broken(old: str, new: str) -> list[deploy_static.Instruction]:
    source = deploy_static.DOCKERFILE.read_text()
    assert old in source, f"the Dockerfile no longer has {old!r}"
    return parse_dockerfile(source.replace(old, new))


def test_the_dockerfile_parses(instructions):
    names = [i.name for i in instructions]
    assert names[0] == "FROM"
    assert {"RUN", "COPY", "USER", "ENV"} <= set(names)


def test_a_dangling_continuation_does_not_parse():
    with pytest.raises(ValueError, match="continuation"):
        parse_dockerfile("FROM apache/airflow:3.3.2-python3.11\nRUN echo \\\n")


def test_the_lock_pins_airflow_with_hashes(lock_text, airflow_version):
    assert airflow_version.count(".") == 2
    assert deploy_static.lock_has_hashes(lock_text)


def test_base_image_is_the_locked_airflow_version(instructions, airflow_version):
    assert check_base_image(instructions, airflow_version) == []


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("apache/airflow:3.3.2-python3.11", "apache/airflow:3.3.1-python3.11", "expected apache"),
        ("apache/airflow:3.3.2-python3.11", "apache/airflow:latest", "a latest tag"),
        ("apache/airflow:3.3.2-python3.11", "apache/airflow", "no tag"),
        ("apache/airflow:3.3.2-python3.11", "apache/airflow:3.3.2-python3.12", "expected apache"),
    ],
)
def test_a_wrong_base_image_is_caught(airflow_version, old, new, expected):
    problems = check_base_image(_broken(old, new), airflow_version)
    assert any(expected in p for p in problems), problems


def test_a_second_stage_is_caught(instructions, airflow_version):
    extra = parse_dockerfile("FROM python:3.11-slim\n")
    problems = check_base_image(instructions + extra, airflow_version)
    assert any("expected one FROM" in p for p in problems)


def test_the_lock_is_installed_with_hashes_then_the_project_without_deps(instructions, lock_text):
    assert check_installs_lock(instructions, deploy_static.lock_has_hashes(lock_text)) == []


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("--require-hashes ", "", "--require-hashes is off"),
        ("--no-deps ", "", "outside the lock"),
        (
            "-r /opt/airflow/requirements.lock",
            "apache-airflow==3.3.2 lightgbm",
            "requirements.lock is never installed",
        ),
        (
            "COPY --chown=airflow:0 requirements.lock /opt/airflow/requirements.lock",
            "COPY --chown=airflow:0 requirements.in /opt/airflow/requirements.lock",
            "is not the copied requirements.lock",
        ),
    ],
)
def test_installing_something_else_is_caught(old, new, expected):
    problems = check_installs_lock(_broken(old, new), hashes=True)
    assert any(expected in p for p in problems), problems


def test_the_project_before_the_lock_is_caught(instructions):
    lock_run = next(i for i in instructions if i.name == "RUN" and "-r " in i.args)
    reordered = [i for i in instructions if i is not lock_run] + [lock_run]
    reordered = [
        deploy_static.Instruction(n, i.name, i.args) for n, i in enumerate(reordered, start=1)
    ]
    assert any("before the lock" in p for p in check_installs_lock(reordered, hashes=True))


def test_the_image_runs_as_a_non_root_user(instructions):
    assert check_user(instructions) == []
    assert [i.args for i in instructions if i.name == "USER"][-1] == "airflow"


@pytest.mark.parametrize("user", ["root", "0", "0:0"])
def test_running_as_root_is_caught(instructions, user):
    broken = [*instructions, deploy_static.Instruction(999, "USER", user)]
    assert check_user(broken) != []
    assert check_user([i for i in instructions if i.name != "USER"]) != []


def test_only_project_files_are_copied(instructions):
    assert check_copies(instructions, DOCKERIGNORE) == []


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("COPY .venv/ /opt/venv/", "brings in .venv"),
        ("COPY . /opt/airflow/src/", "brings in everything"),
        ("COPY .git /tmp/git", "brings in .git"),
        ("ADD https://example.invalid/x.tar.gz /tmp/", "ADD"),
    ],
)
def test_copying_more_is_caught(instructions, extra, expected):
    problems = check_copies(instructions + parse_dockerfile(extra), DOCKERIGNORE)
    assert any(expected in p for p in problems), problems


def test_a_leaky_dockerignore_is_caught(instructions):
    assert any(".git" in p for p in check_copies(instructions, DOCKERIGNORE + "!.git/\n"))
    assert any(".venv" in p for p in check_copies(instructions, ".git\n"))
    missing_dags = [i for i in instructions if "dags/" not in i.args]
    assert any("dags/ is not copied" in p for p in check_copies(missing_dags, DOCKERIGNORE))


def test_the_dockerfile_holds_no_secret(instructions):
    assert check_dockerfile_secrets(instructions) == []


@pytest.mark.parametrize(
    "extra",
    [
        "ENV AWS_SECRET_ACCESS_KEY=abc",
        "ARG GITHUB_TOKEN",
        "ENV AWS_ACCESS_KEY_ID=AKIAABCDEFGHIJKLMNOP",
        "ENV AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgresql://airflow:hunter2@db:5432/airflow",
    ],
)
def test_a_secret_in_the_dockerfile_is_caught(instructions, extra):
    assert check_dockerfile_secrets(instructions + parse_dockerfile(extra)) != []


def test_the_config_is_where_the_environment_says(instructions):
    env = deploy_static.dockerfile_env(instructions)
    assert env["RETRAIN_CONFIG"] == "/opt/airflow/retrain.toml"
    copies = {i.args.split()[-1] for i in instructions if i.name == "COPY"}
    assert env["RETRAIN_CONFIG"] in copies
    assert "/opt/airflow/dags/" in copies


def test_the_dockerignore_is_an_allow_list_of_what_is_copied(instructions):
    patterns = [p for p in DOCKERIGNORE.splitlines() if p and not p.startswith("#")]
    assert patterns[0] == "*"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    sources = {
        w.rstrip("/")
        for i in instructions
        if i.name == "COPY"
        for w in [x for x in i.words() if not x.startswith("--")][:-1]
    }
    # a source is let in by its own name or by a folder above it (src/ lets in src/x.py)
    outside = {s for s in sources if not any(s == a or s.startswith(f"{a}/") for a in allowed)}
    assert outside == set()
    assert "src/airflow_local_settings.py" in sources  # in, through !src/


def test_the_image_ships_the_projects_airflow_local_settings(instructions):
    """Airflow imports airflow_local_settings from $AIRFLOW_HOME/config (/opt/airflow/config in
    the official image): the project's file, which warms the processes that fork task
    processes, must be copied there."""
    assert check_local_settings_copied(instructions) == []
    assert (deploy_static.PROJECT_ROOT / deploy_static.LOCAL_SETTINGS_SOURCE).is_file()


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (
            "src/airflow_local_settings.py /opt/airflow/config/airflow_local_settings.py",
            "src/airflow_local_settings.py /opt/airflow/airflow_local_settings.py",
        ),
        (
            "src/airflow_local_settings.py /opt/airflow/config/airflow_local_settings.py",
            "src/retrain/warm.py /opt/airflow/config/airflow_local_settings.py",
        ),
        (
            "COPY --chown=airflow:0 src/airflow_local_settings.py",
            "# COPY --chown=airflow:0 src/airflow_local_settings.py",
        ),
    ],
)
def test_local_settings_copied_elsewhere_or_not_at_all_are_caught(old, new):
    problems = check_local_settings_copied(_broken(old, new))
    assert any("expected a copy of src/airflow_local_settings.py" in p for p in problems)
