"""Score: scheduled on the model asset. The new champion scores the newest accepted data.

Only a deploy emits the model asset (a held challenger skips the deploy task, which then emits
nothing), and the library refuses a version the gate never deployed, so a held model never
scores. The files new for the deployed model are scored and written under predictions/<version>/
with a manifest (retrain.steps.scoring); if the champion moved since the deploy, the current
champion scores them and the result says so.
"""

from __future__ import annotations

from _shared.common import CONFIG, DAG_KWARGS, MODEL, TAGS, event_version, storage
from airflow.sdk import dag, get_current_context, task


@dag(
    dag_id="score",
    schedule=[MODEL],
    tags=[*TAGS, "scoring"],
    doc_md=__doc__,
    **DAG_KWARGS,
)
def score():
    @task
    def score_newest() -> dict:
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from retrain.steps.scoring import ScoringRefused, score_newest

        version = deployed_version(get_current_context())
        try:
            result = score_newest(storage(), CONFIG, version)
        except ScoringRefused as exc:
            raise AirflowFailException(str(exc)) from exc
        if result.manifest_key is None:
            raise AirflowSkipException(result.note)
        return result.as_dict()

    score_newest()


def deployed_version(context) -> str | None:
    """The version the newest triggering model event names (the deploy task's ``extra``), or
    None for a run without one (a manual trigger, an event created in the UI): then the current
    champion scores."""
    return event_version(context, MODEL)


score()
