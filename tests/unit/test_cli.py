"""The model commands' argument parsing and rendering (no bucket: the handlers are stubbed)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from retrain import cli
from retrain.cli import models
from retrain.registry import Promotion


@pytest.fixture
def parsed(monkeypatch) -> dict[str, argparse.Namespace]:
    seen: dict[str, argparse.Namespace] = {}
    for name in ("models", "rollback", "predict"):

        def handler(args: argparse.Namespace, name: str = name) -> int:
            seen[name] = args
            return 0

        monkeypatch.setattr(models, f"cmd_{name}", handler)
    return seen


def test_rollback_needs_a_reason(parsed, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["rollback"])
    assert info.value.code == 2 and "--reason" in capsys.readouterr().err
    assert cli.main(["rollback", "--reason", "bad scores"]) == 0
    assert parsed["rollback"].version is None and parsed["rollback"].reason == "bad scores"
    assert cli.main(["rollback", "20261122T013000Z-aaaaaa", "--reason", "x"]) == 0
    assert parsed["rollback"].version == "20261122T013000Z-aaaaaa"


def test_models_and_predict_arguments(parsed) -> None:
    assert cli.main(["models"]) == 0
    assert (parsed["models"].limit, parsed["models"].json) == (cli.MODELS_LISTED, False)
    assert cli.main(["models", "--limit", "0", "--json"]) == 0
    assert (parsed["models"].limit, parsed["models"].json) == (0, True)
    assert cli.main(["predict", "new.csv", "--out", "s.parquet"]) == 0
    assert (parsed["predict"].file, parsed["predict"].out) == ("new.csv", "s.parquet")
    with pytest.raises(SystemExit):
        cli.main(["predict"])


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("data/new.csv", "data/new.predictions.csv"),
        ("data/new.CSV.gz", "data/new.predictions.csv"),
        ("new.parquet", "new.predictions.csv"),
        ("odd.txt", "odd.txt.predictions.csv"),
    ],
)
def test_default_predictions_path(given: str, expected: str) -> None:
    assert models.default_predictions_path(Path(given)) == Path(expected)


def test_render_models() -> None:
    rows = [
        {
            "version": "v3",
            "created": "2026-11-22T03:00:00+00:00",
            "auc": 0.7,
            "decision": "hold",
            "serving": "",
            "reason": "challenger not better\nsecond line",
            "champion": False,
        },
        {
            "version": "v2",
            "created": "2026-11-22T02:00:00+00:00",
            "auc": 0.81234,
            "decision": "deploy",
            "serving": "v2-refit",
            "reason": "better",
            "champion": True,
        },
        {
            "version": "v1",
            "created": "",
            "auc": None,
            "decision": "",
            "reason": "",
            "champion": False,
        },
    ]
    promotions = [
        Promotion("v2-refit", "v1", "deploy", "better", "2026-11-22T02:00:01.5+00:00", {}),
        Promotion("v1", None, "deploy", "first", "2026-11-22T01:00:00+00:00", {}, by=""),
    ]
    lines = models.render_models(rows, promotions, "auc", 5, "s3://b/models/")
    assert lines[0] == (
        "models in s3://b/models/ (one row per decision, newest first: 3 shown; 5 versions, "
        "refits included; * = champion)"
    )
    assert lines[1].split() == ["VERSION", "CREATED", "AUC", "DECISION", "SERVING", "REASON"]
    assert lines[2].split() == [
        "v3",
        "2026-11-22",
        "03:00",
        "0.700",
        "hold",
        "-",
        "challenger",
        "not",
        "better",
    ]
    assert lines[3].startswith("* v2 ") and lines[3].split()[5:8] == [
        "deploy",
        "v2-refit",
        "better",
    ]
    assert lines[4].split() == ["v1", "-", "-", "-", "-", "(undecided)"]
    assert lines[1].index("SERVING") == lines[3].index("v2-refit"), "the column lines up"
    assert lines[5] == "promotions (newest first):"
    assert lines[6].split() == ["2026-11-22", "02:00:01", "deploy", "v2-refit", "<-", "v1"]
    assert lines[8].split()[-2:] == ["(first", "champion)"]
    assert models.render_models([], [], "auc", 0, "s3://b/models/")[1:] == [
        "  none yet: the first retrain saves one",
        "promotions (newest first):",
        "  none: no model was deployed yet",
    ]


def test_start_takes_a_profile_and_says_when_its_services_are_missing(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    from retrain.local import devstack

    seen = {}

    def fake_start(root, **kwargs):
        seen.update(kwargs, root=root)
        raise devstack.ServicesUnavailable("the celery profile needs PostgreSQL and Redis: ...")

    monkeypatch.setattr(devstack, "start", fake_start)
    root = str(tmp_path / "stack")
    assert cli.main(["--root", root, "start", "--profile", "celery"]) == 2
    assert seen["profile"] == "celery" and seen["root"] == Path(root)
    err = capsys.readouterr().err
    assert err.startswith("retrain start: the celery profile needs PostgreSQL and Redis")
    assert cli.main(["--root", root, "demo", "--profile", "celery"]) == 2
    with pytest.raises(SystemExit):
        cli.main(["start", "--profile", "kubernetes"])


def test_the_default_profile_is_the_embedded_one(tmp_path: Path, monkeypatch, capsys) -> None:
    from dataclasses import replace

    from retrain.local import devstack

    seen = {}

    def fake_start(root, **kwargs):
        seen.update(kwargs)
        stack = devstack.Stack(str(root), "http://127.0.0.1:1", "http://127.0.0.1:2", "b", {}, {})
        return replace(stack, config_source=str(kwargs["config"]), config_path="/copy.toml")

    monkeypatch.delenv("RETRAIN_CONFIG", raising=False)
    monkeypatch.setattr(devstack, "start", fake_start)
    assert cli.main(["start", "--root", str(tmp_path)]) == 0, "--root after the command too"
    assert seen["profile"] == "embedded"
    assert seen["config"] == devstack.PROJECT_ROOT / "retrain.toml"
    out = capsys.readouterr().out
    assert f"config:     {devstack.PROJECT_ROOT / 'retrain.toml'}" in out
    assert "its copy /copy.toml" in out and "dataset:    telco_churn: 11 columns" in out
    assert "(embedded profile; local stack, all users are admins)" in out


def test_an_invalid_config_starts_nothing_and_says_why_in_one_paragraph(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    from retrain.local import devstack

    monkeypatch.setattr(devstack, "start", lambda *a, **k: pytest.fail("started anyway"))
    bad = tmp_path / "bad.toml"
    text = (devstack.PROJECT_ROOT / "retrain.toml").read_text()
    bad.write_text(text.replace("poll_interval = 0.5", "poll_interval = 5"))
    assert cli.main(["start", "--config", str(bad), "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("retrain start: the config is not valid, nothing was started:")
    assert "idle_poll_interval" in err and "Traceback" not in err and "--debug" not in err
    assert cli.main(["--debug", "start", "--config", str(bad), "--root", str(tmp_path)]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_status_names_the_dead_part_of_the_local_stack(tmp_path: Path) -> None:
    """Only the triggerer died: the stack line says so, instead of "NOT running" alone."""
    import os
    import subprocess
    import sys

    from retrain.local import devstack

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    live = os.getpid()
    pids = {"s3": live, "api-server": live, "scheduler": live, "triggerer": gone.pid}
    devstack._save(
        devstack.Stack(str(tmp_path), "http://127.0.0.1:1", "http://127.0.0.1:2", "b", pids, {})
    )
    state = cli.stack._stack_state(tmp_path)
    assert state.startswith("NOT running (embedded profile): triggerer dead; see ")
    assert state.endswith(f"see {tmp_path}/logs/triggerer.log") and "scheduler" not in state


def test_approve_and_reject_take_a_version_and_a_comment(monkeypatch) -> None:
    from retrain.cli import approval

    seen: dict[str, argparse.Namespace] = {}
    for name in ("approve", "reject"):
        monkeypatch.setattr(
            approval, f"cmd_{name}", lambda args, name=name: seen.setdefault(name, args) and 0
        )
    assert cli.main(["approve", "v1", "--comment", "checked"]) == 0
    assert (seen["approve"].version, seen["approve"].comment, seen["approve"].wait) == (
        "v1",
        "checked",
        True,
    )
    assert cli.main(["reject", "v2", "--no-wait"]) == 0
    assert (seen["reject"].version, seen["reject"].comment, seen["reject"].wait) == (
        "v2",
        "",
        False,
    )
    with pytest.raises(SystemExit):
        cli.main(["approve"])
