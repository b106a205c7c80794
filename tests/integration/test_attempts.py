"""Files that kill their task (the OOM killer, a crashing parser) are counted and taken out,
against a real S3-compatible server and a real SIGKILL of a real validating process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from retrain.attempts import Attempts
from retrain.config import Config
from retrain.datagen import generate, write_batch
from retrain.faults import ENV as FAULT_ENV
from retrain.layout import Layout
from retrain.s3server import DUMMY_CREDENTIALS
from retrain.steps import ingest, validate
from retrain.storage import S3Storage

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MARKER = "KILL-THIS-TASK"
START = datetime(2026, 10, 1)


@pytest.fixture
def cfg(config: Config, storage: S3Storage) -> Config:
    return replace(config, storage=replace(config.storage, bucket=storage.bucket))


def land(storage: S3Storage, cfg: Config, name: str, data: bytes) -> dict:
    key = f"{cfg.storage.landing_prefix}{name}"
    storage.put_bytes(key, data)
    (listed,) = [f for f in ingest.landed_files(storage, cfg) if f["key"] == key]
    return listed


def test_a_marker_stays_only_when_the_process_dies(storage, cfg) -> None:
    attempts = Attempts(storage, Layout.of(cfg))
    with attempts.working_on(["a", "b"], "validate"):
        assert attempts.deaths(["a", "b", "c"]) == {"a": 1, "b": 1, "c": 0}  # live, looks dead
    assert attempts.deaths(["a"]) == {"a": 0}
    with pytest.raises(RuntimeError), attempts.working_on(["a"], "validate"):
        raise RuntimeError("a Python error is no death")
    assert attempts.markers() == []
    for n, objects in enumerate((["a", "b"], ["a"])):  # left behind, as by a SIGKILLed process
        storage.put_json(Layout.of(cfg).attempt_key(f"dead-{n}"), {"objects": objects})
    assert attempts.deaths(["a", "b"]) == {"a": 2, "b": 1}
    assert attempts.sweep(["a"], is_claimed=lambda oid: oid == "b") == 2
    assert attempts.markers() == []


def validate_in_a_process(storage: S3Storage, cfg: Config, files: list[dict]) -> int:
    """``validate_files`` in a process of its own, as Airflow runs a task, with the fault hook
    armed; returns its exit code (-9: SIGKILLed)."""
    code = (
        "import json, sys\n"
        "from retrain.config import load_config\n"
        "from retrain.steps.validate import validate_files\n"
        "from retrain.storage import S3Storage\n"
        "cfg = load_config()\n"
        "validate_files(S3Storage.from_config(cfg.storage), cfg, json.loads(sys.argv[1]),"
        " batch_id='b1')\n"
    )
    env = {
        **os.environ,
        **DUMMY_CREDENTIALS,
        "RETRAIN_CONFIG": str(PROJECT_ROOT / "retrain.toml"),
        "RETRAIN__STORAGE__ENDPOINT_URL": cfg.storage.endpoint_url
        or storage.client.meta.endpoint_url,
        "RETRAIN__STORAGE__BUCKET": cfg.storage.bucket,
        FAULT_ENV: MARKER,
    }
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(files)], env=env, timeout=300, check=False
    )
    return done.returncode


def test_a_file_that_kills_its_task_is_quarantined_and_its_batch_mates_go_on(storage, cfg) -> None:
    layout = Layout.of(cfg)
    good = [
        land(storage, cfg, f"good-{n}.csv", write_batch(generate(200, seed=n, start=START), "csv"))
        for n in (1, 2)
    ]
    evil_data = write_batch(generate(200, seed=3, start=START), "csv").replace(
        b"north", MARKER.encode(), 1
    )
    evil = land(storage, cfg, "evil.csv", evil_data)
    files = [good[0], evil, good[1]]
    oids = [validate.LandedFile.of(f).object_id for f in files]
    attempts = Attempts(storage, layout)
    # 1st try: the three are validated together and the process dies on the evil one
    assert validate_in_a_process(storage, cfg, files) == -9
    assert attempts.deaths(oids) == dict.fromkeys(oids, 1)  # all of them were in the work
    # 2nd try: each suspect alone, under a marker of its own: the death is the evil one's
    assert validate_in_a_process(storage, cfg, files) == -9
    deaths = attempts.deaths(oids)
    assert deaths[oids[1]] == 2 and deaths[oids[0]] == 1
    # 3rd try: the evil file is quarantined unread, the others pass (alone: they are suspects)
    verdicts = validate.validate_files(storage, cfg, files, batch_id="b1")
    by_key = {v.key: v for v in verdicts}
    assert by_key[evil["key"]].fate == "quarantine"
    assert "the task died 2 times" in by_key[evil["key"]].reason
    assert by_key[evil["key"]].result_key is None, "not read again"
    assert [by_key[f["key"]].fate for f in good] == ["accept", "accept"]
    result = ingest.route_batch(storage, cfg, verdicts, batch_id="b1")
    assert {o.source_key: o.valid for o in result.outcomes} == {
        good[0]["key"]: True,
        evil["key"]: False,
        good[1]["key"]: True,
    }
    (bad,) = result.quarantined
    assert (
        "could not be processed: the task died 2 times"
        in storage.get_json(bad.report_key)["reason"]
    )
    assert attempts.markers() == [], "the markers of routed files are swept"
    assert not storage.list_objects(cfg.storage.landing_prefix)
