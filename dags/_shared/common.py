"""What the three DAG files share: the config, the assets, default task arguments, storage.

Kept light on purpose: it runs on every DAG parse. Heavy work (boto3, pandas, GX, LightGBM) is
imported inside the functions that the tasks call.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from airflow.sdk import Asset

from retrain.config import load_config

if TYPE_CHECKING:
    from retrain.storage import S3Storage

CONFIG = load_config()
_S = CONFIG.storage
OWNER = "ml-platform"
TAGS = ["retrain", CONFIG.dataset.name]
START_DATE = datetime(2026, 1, 1)

RAW = Asset(name="raw", uri=f"s3://{_S.bucket}/{_S.raw_prefix}")
FEATURES = Asset(name="features", uri=f"s3://{_S.bucket}/{_S.features_prefix}")
MODEL = Asset(name="model", uri=f"s3://{_S.bucket}/{_S.models_prefix}")

DEFAULT_ARGS = {
    "owner": OWNER,
    "retries": CONFIG.orchestration.task_retries,
    "retry_delay": timedelta(seconds=20),
    "execution_timeout": timedelta(minutes=CONFIG.orchestration.task_timeout_minutes),
}
# What every DAG of the pipeline shares: one run at a time (runs of one DAG work on the same
# prefixes), no backfill, the default task arguments above.
DAG_KWARGS = {
    "max_active_runs": 1,
    "start_date": START_DATE,
    "catchup": False,
    "default_args": DEFAULT_ARGS,
}


def storage() -> S3Storage:
    """The bucket, through the Airflow connection: the hook owns the client."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from retrain.storage import S3Storage

    client = S3Hook(aws_conn_id=CONFIG.orchestration.aws_conn_id).get_conn()
    return S3Storage(client, _S.bucket)
