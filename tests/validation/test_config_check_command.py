"""``retrain config check`` and ``retrain init`` as a CI job runs them: real GX on the sample,
ingest's verdict and reason, and exit codes that say which kind of failure it was."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from retrain import cli
from retrain.cli.config import INVALID, SAMPLE_REJECTED
from retrain.config import load_config
from retrain.datagen import generate, write_batch
from retrain.steps.validate import check_local_file

DEMO_CONFIG = Path(__file__).parents[2] / "retrain.toml"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    start = datetime(2026, 11, 1)
    good = tmp_path / "week.csv"
    good.write_bytes(write_batch(generate(300, seed=1, start=start), "csv"))
    parquet = tmp_path / "week.parquet"
    parquet.write_bytes(write_batch(generate(300, seed=2, start=start), "parquet"))
    bad = tmp_path / "broken.csv"
    bad.write_bytes(write_batch(generate(300, seed=3, scenario="corrupt", start=start), "csv"))
    hidden = tmp_path / "_partial.csv"
    hidden.write_bytes(good.read_bytes())
    return {"good": good, "parquet": parquet, "bad": bad, "hidden": hidden}


def test_a_local_file_gets_ingests_verdict(files: dict[str, Path]) -> None:
    cfg = load_config(DEMO_CONFIG, env={})
    accepted = check_local_file(files["good"], cfg)
    assert (accepted.fate, accepted.rows) == ("accept", 300)
    assert check_local_file(files["parquet"], cfg).fate == "accept"
    rejected = check_local_file(files["bad"], cfg)
    assert rejected.fate == "quarantine" and "expectations failed" in rejected.reason
    ignored = check_local_file(files["hidden"], cfg)
    assert ignored.fate == "skip" and "temporary or hidden upload name" in ignored.reason


def test_exit_codes_say_valid_invalid_or_sample_rejected(
    files: dict[str, Path], tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.delenv("RETRAIN_CONFIG", raising=False)
    config = str(DEMO_CONFIG)
    assert cli.main(["config", "check", config, "--sample", str(files["good"])]) == 0
    out = capsys.readouterr().out
    assert f"{config}: valid (0 warning(s)); dataset 'telco_churn'" in out
    assert f"sample {files['good']}: ACCEPTED, 300 rows" in out

    assert cli.main(["config", "check", config, "--sample", str(files["bad"])]) == SAMPLE_REJECTED
    out = capsys.readouterr().out
    assert f"sample {files['bad']}: would be QUARANTINED" in out and "  because: " in out

    warned = tmp_path / "warned.toml"
    warned.write_text(
        DEMO_CONFIG.read_text().replace("holdout_fraction = 0.2 ", "holdout_fraction = 0.7 ")
    )
    assert cli.main(["config", "check", str(warned)]) == 0, "warnings alone pass"
    assert "warning: [training] holdout_fraction" in capsys.readouterr().out
    assert cli.main(["config", "check", str(warned), "--strict"]) == INVALID

    broken = tmp_path / "broken.toml"
    broken.write_text(
        DEMO_CONFIG.read_text()
        .replace("poll_interval = 0.5", "poll_interval = 5")
        .replace('bucket = "retrain-demo"', 'bucket = "Retrain_Demo"')
    )
    assert cli.main(["config", "check", str(broken)]) == INVALID
    err = capsys.readouterr().err
    assert f"{broken}: NOT valid" in err
    assert "idle_poll_interval" in err and "Retrain_Demo" in err, "every error at once"


def test_init_writes_a_config_that_accepts_its_sample(
    files: dict[str, Path], tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.delenv("RETRAIN_CONFIG", raising=False)
    out = tmp_path / "mine.toml"
    sample = str(files["good"])
    assert cli.main(["init", "--from-sample", sample, "--out", str(out), "--name", "churn"]) == 0
    said = capsys.readouterr().out
    assert said.startswith(f"wrote {out}: dataset 'churn' from 300 rows")
    assert "id customer_id, time event_time, target churned" in said
    assert cli.main(["init", "--from-sample", sample, "--out", str(out)]) == 1, "no overwrite"
    assert "--force" in capsys.readouterr().err
    assert cli.main(["config", "check", str(out), "--sample", sample]) == 0
    assert load_config(out, env={}).storage.bucket == "retrain-churn"
