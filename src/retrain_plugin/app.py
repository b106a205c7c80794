"""The reports app mounted on the api-server at ``/retrain-reports`` (``plugin.py``).

A security boundary: Airflow does not authenticate a plugin's routes, so every route here
depends on :func:`reader` (the user from the UI's cookie or a bearer token, then the auth
manager's answer for read access to each of the pipeline's DAGs): no token is 401 (for a
browser, with a link to Airflow's login that comes back here), a user without that access 403.
Only keys under the reports prefix are read: the path is checked against a whitelist
(:func:`retrain.report_links.report_key`) before the bucket is asked, so ``..``, encoded
traversal, absolute keys and other prefixes are 400 and never reach S3. Objects are streamed,
with their ETag (``If-None-Match`` answered 304). Pages carry a Content-Security-Policy that
allows no script at all, and are private to the user's browser cache.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
from collections.abc import Mapping
from html import escape
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from retrain.report_links import UnsafePath, report_key
from retrain.run_pages import PIPELINE_DAGS

if TYPE_CHECKING:
    from retrain.config import Config
    from retrain.storage import S3Storage

log = logging.getLogger("retrain.plugin")

CHUNK = 64 * 1024
SECURITY_HEADERS = {
    # the pages are plain HTML with inline CSS and SVG: nothing else may load or run
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "private, no-cache",
}


@functools.cache
def _config() -> Config:
    from retrain.config import load_config

    return load_config()


@functools.cache
def _storage() -> S3Storage:
    """The bucket through the Airflow connection (the hook owns the client), made once."""
    from triggers.alerting import bucket

    return bucket(_config())


def reader(request: Request, user: GetUserDep) -> None:
    """Authenticated, and allowed to read every DAG of the pipeline (the reports speak of all
    of them), as the auth manager says."""
    for dag_id in PIPELINE_DAGS:
        requires_access_dag("GET", param_dag_id=dag_id)(request, user)


Reader = Annotated[None, Depends(reader)]


def _unauthorized(request: Request, detail: str) -> HTMLResponse:
    """401 with a way in: a browser follows the refresh to Airflow's login, which comes back
    to the page asked for; a script reads the status and ``detail``."""
    from airflow.api_fastapi.app import get_auth_manager

    login = get_auth_manager().get_url_login(next_url=str(request.url))
    body = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="0; url={escape(login)}">'
        "<title>Log in to Airflow</title></head><body>"
        f'<p>{escape(detail)}: <a href="{escape(login)}">log in to Airflow</a> to read the '
        "retraining reports.</p></body></html>"
    )
    return HTMLResponse(body, status_code=401, headers={"WWW-Authenticate": "Bearer"})


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    if exc.status_code == 401:
        return _unauthorized(request, str(exc.detail))
    return Response(
        json.dumps({"detail": exc.detail}),
        status_code=exc.status_code,
        media_type="application/json",
        headers=getattr(exc, "headers", None),
    )


def _run_results(dag_id: str, run_id: str) -> tuple[str | None, dict[str, Any]]:
    """The run's state (None: no such run) and its tasks' return values, from Airflow."""
    from airflow.models.dagrun import DagRun
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        state = session.scalar(
            select(DagRun.state).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
        )
        if state is None:
            return None, {}
        rows = session.scalars(
            XComModel.get_many(run_id=run_id, dag_ids=dag_id, key="return_value")
        ).all()
        results = {}
        for row in rows:
            if row.map_index != -1:
                continue
            value = XComModel.deserialize_value(row)
            if isinstance(value, str):  # stored JSON-encoded once more (triggerer XComs)
                with contextlib.suppress(ValueError):
                    value = json.loads(value)
            results[row.task_id] = value
    return str(state), results


def _manifest(storage: S3Storage, cfg: Config, scored: Any) -> Mapping[str, Any]:
    """A score run's manifest, read only at the key the layout gives its model version."""
    from retrain.layout import Layout

    if not isinstance(scored, Mapping) or not scored.get("version"):
        return {}
    try:
        key = Layout.of(cfg).predictions_manifest_key(str(scored["version"]))
    except ValueError:
        return {}
    if scored.get("manifest_key") != key:
        return {}
    try:
        manifest = storage.get_json(key)
    except Exception:
        log.exception("could not read %s", key)
        return {}
    return manifest if isinstance(manifest, Mapping) else {}


def create_app() -> FastAPI:
    app = FastAPI(title="Retraining reports", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_exception_handler(StarletteHTTPException, _http_error)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.get("/")
    def root(request: Request, _: Reader) -> RedirectResponse:
        return RedirectResponse(f"{request.scope.get('root_path', '')}/index.html", 303)

    @app.get("/runs/{dag_id}/{run_id}")
    def run_view(dag_id: str, run_id: str, request: Request, user: GetUserDep) -> Response:
        """One DAG run's reports (the "Reports" tab of a run in the UI)."""
        from retrain import run_pages

        if dag_id not in PIPELINE_DAGS:
            raise HTTPException(404, f"{dag_id!r} is not one of the pipeline's DAGs")
        for entity in (DagAccessEntity.RUN, DagAccessEntity.XCOM):
            requires_access_dag("GET", entity, param_dag_id=dag_id)(request, user)
        reader(request, user)
        state, results = _run_results(dag_id, run_id)
        if state is None:
            raise HTTPException(404, f"no run {run_id!r} of {dag_id}")
        cfg, storage = _config(), _storage()
        if dag_id == "score":
            results = {**results, "manifest": _manifest(storage, cfg, results.get("score_newest"))}
        prefix = cfg.storage.reports_prefix
        run = run_pages.view(
            dag_id, run_id, state, results, lambda path: storage.exists(report_key(prefix, path))
        )
        if run.redirect:  # relative: right behind any proxy prefix
            return RedirectResponse("../../" + quote(run.redirect, safe="/=+"), 303)
        return HTMLResponse(run_pages.render_run(run))

    @app.get("/{path:path}")
    def report(path: str, request: Request, _: Reader) -> Response:
        """An object under the reports prefix, streamed, with its ETag."""
        from retrain.storage import ObjectNotFound, StorageError

        try:
            key = report_key(_config().storage.reports_prefix, path)
        except UnsafePath as exc:
            raise HTTPException(400, f"not a report path: {exc}") from None
        try:
            opened = _storage().open(key, if_none_match=request.headers.get("if-none-match"))
        except ObjectNotFound:
            raise HTTPException(404, f"no report {path!r}") from None
        except StorageError as exc:
            log.warning("could not read %s: %s", key, exc)
            raise HTTPException(502, "the bucket did not answer; try again") from None
        headers = {"ETag": opened.etag}
        if opened.body is None:
            return Response(status_code=304, headers=headers)
        headers["Content-Length"] = str(opened.size)
        return StreamingResponse(
            opened.chunks(CHUNK), media_type=opened.content_type, headers=headers
        )

    return app
