"""The demo's local copy of the reports is a sync: a second download fetches only what changed."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from retrain.config import Config
from retrain.local.demo import download_reports
from retrain.storage import S3Storage


def test_a_second_download_fetches_only_new_or_changed_pages(
    config: Config, storage: S3Storage, tmp_path: Path, monkeypatch
) -> None:
    cfg = replace(config, storage=replace(config.storage, bucket=storage.bucket))
    rp = cfg.storage.reports_prefix
    for name in ("index.html", "history/page-1.html", "gone.html"):
        storage.put_bytes(f"{rp}{name}", f"<p>{name}</p>".encode())
    site = tmp_path / "site"
    assert download_reports(storage, cfg, site) == site / "index.html"
    assert (site / "history" / "page-1.html").read_text() == "<p>history/page-1.html</p>"

    storage.put_bytes(f"{rp}index.html", b"<p>new index</p>")
    storage.put_bytes(f"{rp}history/page-2.html", b"<p>page 2</p>")
    storage.delete(f"{rp}gone.html")
    fetched: list[str] = []
    get_bytes = storage.get_bytes
    monkeypatch.setattr(storage, "get_bytes", lambda key: fetched.append(key) or get_bytes(key))
    download_reports(storage, cfg, site)
    assert sorted(fetched) == [f"{rp}history/page-2.html", f"{rp}index.html"]
    assert (site / "index.html").read_text() == "<p>new index</p>"
    assert not (site / "gone.html").exists()
    assert (site / "history" / "page-1.html").exists()
