"""The report pages as a reader sees them: a batch with a good and a broken file is ingested on
a local moto server, the bucket's reports are copied to a folder, and the index and the broken
file's result page are opened in headless Chromium with the network cut off
(``retrain.local.browser``).

Prints each page's size, what it would fetch from the internet (must be nothing) and the
screenshot's size; saves benchmarks/results/report_pages.json and the two screenshots
(``report-index.png``, ``report-quarantined.png``) that the README shows.

    .venv/bin/python benchmarks/report_pages.py
"""

from __future__ import annotations

import json
import os
import platform
import re
import tempfile
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|url\(\s*["']?(?:https?:)?//""")


def main() -> None:
    from retrain.config import load_config
    from retrain.datagen import generate, write_batch
    from retrain.local import browser
    from retrain.local.demo import download_reports
    from retrain.local.s3server import start_s3_server
    from retrain.steps import ingest
    from retrain.storage import S3Storage

    with tempfile.TemporaryDirectory(prefix="report-pages-") as tmp:
        server = start_s3_server(log_path=Path(tmp) / "moto.log")
        try:
            cfg = load_config(ROOT / "retrain.toml", env={})
            cfg = replace(
                cfg,
                storage=replace(
                    cfg.storage, bucket="report-pages", endpoint_url=server.endpoint_url
                ),
            )
            storage = S3Storage.from_config(
                cfg.storage, aws_access_key_id="testing", aws_secret_access_key="testing"
            )
            storage.ensure_bucket()
            start = datetime(2026, 11, 2)
            for name, scenario, rows in (
                ("customers-week1.csv", "normal", 4000),
                ("customers-week1b.csv", "normal", 4000),
                ("customers-broken-export.csv", "corrupt", 500),
            ):
                df = generate(rows, seed=len(name), scenario=scenario, start=start)
                storage.put_bytes(f"landing/{name}", write_batch(df, "csv"))
            files = ingest.landed_files(storage, cfg)
            batch = ingest.ingest_batch(storage, cfg, files, batch_id="2f6c1a9e0b3d")
            (bad,) = batch.quarantined
            site = Path(tmp) / "site"
            index = download_reports(storage, cfg, site)
            rel = bad.result_key[len(cfg.storage.reports_prefix) :].removesuffix(".json")
            pages = {"report-index": index, "report-quarantined": site / f"{rel}.html"}
            rows = []
            print(f"{'page':<20} {'bytes':>8} {'external refs':>14} {'screenshot bytes':>17}")
            for name, path in pages.items():
                shot = browser.screenshot(path, OUT / f"{name}.png", size=(1200, 1000))
                external = EXTERNAL.findall(path.read_text())
                rows.append(
                    {
                        "page": name,
                        "bytes": path.stat().st_size,
                        "external_refs": len(external),
                        "screenshot_bytes": shot.stat().st_size,
                        "colours": browser.png_colours(shot),
                    }
                )
                print(
                    f"{name:<20} {rows[-1]['bytes']:8d} {len(external):14d} "
                    f"{rows[-1]['screenshot_bytes']:17d}"
                )
        finally:
            server.stop()
    machine = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.now(UTC).date().isoformat(),
    }
    out = OUT / "report_pages.json"
    out.write_text(json.dumps({"runs": rows, "machine": machine}, indent=2) + "\n")
    print(f"saved {out} and the screenshots beside it")


if __name__ == "__main__":
    main()
