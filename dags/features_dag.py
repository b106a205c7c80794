"""Features: scheduled on the raw asset, featurizes every raw file that has no features yet.

Features are row-wise, so each raw file becomes one Parquet file under features/ and a rebuild is
incremental. Emits the features asset when something new was written. The build runs on the
heavy queue and in the heavy pool ([resources]).
"""

from __future__ import annotations

from _shared.common import CONFIG, DAG_KWARGS, FEATURES, HEAVY, RAW, RUN_DEADLINE, TAGS, storage
from airflow.sdk import dag, get_current_context, task


@dag(
    dag_id="features",
    schedule=[RAW],
    tags=[*TAGS, "features"],
    doc_md=__doc__,
    deadline=RUN_DEADLINE,
    **DAG_KWARGS,
)
def features():
    @task(outlets=[FEATURES], **HEAVY)
    def build_features() -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from retrain.steps.features import build_features_for_new_raw

        result = build_features_for_new_raw(storage(), CONFIG)
        if not result.written:
            raise AirflowSkipException("every raw file already has its features")
        get_current_context()["outlet_events"][FEATURES].extra = result.as_dict()
        return result.as_dict()

    build_features()


features()
