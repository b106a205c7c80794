"""Files that kill their task (the OOM killer, a crashing parser) are counted and taken out,
against a real S3-compatible server and a real SIGKILL of a real validating or routing
process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from retrain.attempts import ROUTE, VALIDATE, Attempts
from retrain.config import Config
from retrain.datagen import generate, write_batch
from retrain.faults import ENV as FAULT_ENV
from retrain.layout import Layout
from retrain.local.s3server import DUMMY_CREDENTIALS
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
    return run_in_a_process(storage, cfg, code, json.dumps(files))


def run_in_a_process(storage: S3Storage, cfg: Config, code: str, *args: str) -> int:
    """``code`` in a process of its own, as Airflow runs a task, against the test's bucket,
    with the fault hook armed; returns its exit code (-9: SIGKILLed)."""
    env = {
        **os.environ,
        **DUMMY_CREDENTIALS,
        "RETRAIN_CONFIG": str(PROJECT_ROOT / "retrain.toml"),
        "RETRAIN__STORAGE__ENDPOINT_URL": cfg.storage.endpoint_url
        or storage.client.meta.endpoint_url,
        "RETRAIN__STORAGE__BUCKET": cfg.storage.bucket,
        FAULT_ENV: MARKER,
    }
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, timeout=300, check=False)
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


def test_deaths_count_per_step(storage, cfg) -> None:
    """A validation death and a route death are both counted, each by its own step."""
    layout = Layout.of(cfg)
    attempts = Attempts(storage, layout)
    planted = [(["a", "b"], VALIDATE), (["a"], None), (["a"], ROUTE), (["b"], ROUTE)]
    for n, (objects, stage) in enumerate(planted):
        doc = {"objects": objects} | ({"stage": stage} if stage else {})
        storage.put_json(layout.attempt_key(f"dead-{n}"), doc)
    assert attempts.deaths(["a", "b"]) == {"a": 2, "b": 1}, "a marker without stage: validation"
    assert attempts.deaths(["a", "b"], VALIDATE) == {"a": 2, "b": 1}
    assert attempts.deaths(["a", "b", "c"], ROUTE) == {"a": 1, "b": 1, "c": 0}


def validated(storage: S3Storage, cfg: Config) -> tuple[list, dict, dict]:
    """Two clean files landed and validated: the verdicts, the evil one, the good one."""
    good = land(storage, cfg, "good.csv", write_batch(generate(200, seed=7, start=START), "csv"))
    evil = land(storage, cfg, "evil.csv", write_batch(generate(200, seed=8, start=START), "csv"))
    verdicts = validate.validate_files(storage, cfg, [evil, good], batch_id="b1")
    assert [v.fate for v in verdicts] == ["accept", "accept"]
    return verdicts, evil, good


def test_a_file_that_killed_its_route_is_quarantined_and_its_batch_mate_goes_on(
    storage, cfg
) -> None:
    layout = Layout.of(cfg)
    attempts = Attempts(storage, layout)
    verdicts, evil, good = validated(storage, cfg)
    evil_oid, good_oid = (validate.LandedFile.of(f).object_id for f in (evil, good))
    for n, (oid, stage) in enumerate(
        [(evil_oid, ROUTE), (evil_oid, ROUTE), (good_oid, ROUTE), (good_oid, VALIDATE)]
    ):  # left by killed processes; the good file's two deaths are one per step
        storage.put_json(layout.attempt_key(f"dead-{n}"), {"objects": [oid], "stage": stage})
    result = ingest.route_batch(storage, cfg, verdicts, batch_id="b1")
    fates = {o.source_key: o for o in result.outcomes}
    assert fates[good["key"]].valid and fates[good["key"]].dest_key.startswith("raw/")
    bad = fates[evil["key"]]
    assert not bad.valid and bad.reason.startswith(
        "could not be processed: the task died 2 times while routing it ("
    )
    assert storage.get_json(bad.report_key)["reason"] == bad.reason
    assert attempts.markers() == [], "the markers of routed files are swept"
    assert storage.list_objects(f"{cfg.storage.ledger_prefix}staging/") == []


ROUTE_AND_DIE = """
import json, os, signal, sys
from retrain import id_overlap
from retrain.config import load_config
from retrain.steps.ingest import route_batch
from retrain.storage import S3Storage

id_overlap.MARK_ROWS = 0  # every file is heavy: each is read under its own marker
spill = id_overlap._spill

def dies_on_evil(f, *args):
    if f.sha256 == sys.argv[2]:
        os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer would, reading its ids
    spill(f, *args)

id_overlap._spill = dies_on_evil
cfg = load_config()
route_batch(S3Storage.from_config(cfg.storage), cfg, json.loads(sys.argv[1]), batch_id="b1")
"""


def test_a_route_killed_on_one_file_charges_that_file_only(storage, cfg) -> None:
    layout = Layout.of(cfg)
    attempts = Attempts(storage, layout)
    verdicts, evil, good = validated(storage, cfg)
    evil_oid, good_oid = (validate.LandedFile.of(f).object_id for f in (evil, good))
    (evil_sha,) = [v.sha256 for v in verdicts if v.key == evil["key"]]
    payload = json.dumps([v.as_dict() for v in verdicts])
    for death in (1, 2):
        assert run_in_a_process(storage, cfg, ROUTE_AND_DIE, payload, evil_sha) == -9
        assert attempts.deaths([evil_oid, good_oid], ROUTE) == {evil_oid: death, good_oid: 0}
    assert attempts.deaths([evil_oid, good_oid]) == {evil_oid: 0, good_oid: 0}, "validation's"
    result = ingest.route_batch(storage, cfg, verdicts, batch_id="b1")
    assert {o.source_key: o.valid for o in result.outcomes} == {
        good["key"]: True,
        evil["key"]: False,
    }
    assert "the task died 2 times while routing it" in result.quarantined[0].reason
    assert attempts.markers() == [] and not storage.list_objects(cfg.storage.landing_prefix)
