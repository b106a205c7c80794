"""The reports open in a real headless browser from a copy of the bucket, offline: the index
and a quarantined file's result page render their content, styled, with nothing fetched."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from retrain import browser
from retrain.config import Config
from retrain.datagen import generate, write_batch
from retrain.demo import download_reports
from retrain.steps import ingest
from retrain.storage import S3Storage

# a reference a page would have to fetch: anything absolute in src/href/url()
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|url\(\s*["']?(?:https?:)?//""")


def test_index_and_a_quarantined_files_page_render_offline(
    config: Config, storage: S3Storage, tmp_path: Path
) -> None:
    cfg = replace(config, storage=replace(config.storage, bucket=storage.bucket))
    start = datetime(2026, 10, 1)
    for name, scenario in (("good.csv", "normal"), ("broken.csv", "corrupt")):
        df = generate(300, seed=len(name), scenario=scenario, start=start)
        storage.put_bytes(f"landing/{name}", write_batch(df, "csv"))
    batch = ingest.ingest_batch(storage, cfg, ingest.landed_files(storage, cfg), batch_id="b1")
    (bad,) = batch.quarantined
    site = tmp_path / "site"
    index = download_reports(storage, cfg, site)
    page = site / bad.result_key[len(cfg.storage.reports_prefix) :].removesuffix(".json")
    page = page.with_suffix(".html")
    for path, expected in (
        (index, ["landing/broken.csv", "landing/good.csv", "quarantined", "passed"]),
        (page, ["broken.csv", "failed", "expect_column_values_to_be_unique"]),
    ):
        html = path.read_text()
        assert not EXTERNAL.findall(html), f"{path.name} references the internet"
        dom = browser.rendered_dom(path)
        for text in expected:
            assert text in dom, f"{path.name}: {text!r} not rendered"
        shot = browser.screenshot(path, tmp_path / f"{path.stem}.png")
        assert browser.png_colours(shot) >= 8, f"{path.name} rendered blank"
