"""Retrain: scheduled on the features asset. Gate, train, evaluate, decide, deploy.

The training set passes a GX checkpoint first (a failure stops here at once, without retries: the
same files would fail the same way; the champion keeps serving, the report names the files).
The challenger is trained with the newest data held out; it and the champion are scored on those
rows (a paired bootstrap interval of the difference), drift is checked against the champion's
reference profile, and the deploy policy decides. A deploy is refit on every row first, then an
atomic compare-and-swap of models/champion.json; the decision record is written either way. When
[gate] approval asks a person first, request_approval runs instead of deploy: the approve DAG
waits for the answer, so this run ends and newer data is not held up.
Every task but the deploy runs on the heavy queue and in the heavy pool ([resources]).
"""

from __future__ import annotations

from _shared.common import (
    ALERTING,
    CONFIG,
    DAG_KWARGS,
    FEATURES,
    HEAVY,
    MODEL,
    PENDING_APPROVAL,
    RUN_DEADLINE,
    TAGS,
    storage,
)
from airflow.sdk import dag, get_current_context, task


@dag(
    dag_id="retrain",
    schedule=[FEATURES],
    tags=[*TAGS, "training"],
    doc_md=__doc__,
    deadline=RUN_DEADLINE,
    **DAG_KWARGS,
)
def retrain():
    @task(**HEAVY)
    def check_training_set() -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from retrain.steps.retrain import TrainingSetRejected, check_training_set

        run_id = get_current_context()["run_id"]
        try:
            return check_training_set(storage(), CONFIG, run_name=run_id).as_dict()
        except TrainingSetRejected as exc:
            raise AirflowFailException(str(exc)) from exc

    @task(**HEAVY)
    def train_challenger(training_set: dict) -> dict:
        from retrain.steps.retrain import train_challenger

        return train_challenger(storage(), CONFIG, training_set["feature_keys"]).as_dict()

    @task(**HEAVY)
    def evaluate_and_decide(training_set: dict, challenger: dict) -> dict:
        from retrain.steps.retrain import evaluate_and_decide

        return evaluate_and_decide(
            storage(), CONFIG, training_set["feature_keys"], challenger["version"]
        ).as_dict()

    @task(**HEAVY)
    def refit_for_serving(decision: dict) -> dict:
        from retrain.steps.retrain import refit_for_serving

        return refit_for_serving(storage(), CONFIG, decision)

    @task(outlets=[MODEL])
    def deploy(decision: dict) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from retrain.steps.approval import needed
        from retrain.steps.retrain import deploy, record_outcome

        if why := needed(CONFIG, decision):
            raise AirflowSkipException(f"waits for a person's approval (approve DAG): {why}")
        context = get_current_context()
        bucket = storage()
        result = deploy(bucket, CONFIG, decision)
        alert = record_outcome(
            ALERTING.incidents(), bucket, CONFIG, decision, result, run=context["run_id"]
        )
        ALERTING.send(alert, context)
        if not result.deployed:
            raise AirflowSkipException(f"held: {result.reason}")
        context["outlet_events"][MODEL].extra = result.as_dict()
        return result.as_dict()

    @task(outlets=[PENDING_APPROVAL])
    def request_approval(decision: dict) -> dict:
        """Instead of the deploy, when a person must agree: the pending approval, an alert,
        and the pending_approval asset event that starts the approve DAG."""
        from airflow.sdk.exceptions import AirflowSkipException

        from retrain.steps.approval import needed, request

        if not needed(CONFIG, decision):
            raise AirflowSkipException("no approval needed: the deploy task decides alone")
        context = get_current_context()
        approval, alert = request(storage(), CONFIG, decision, ALERTING.incidents())
        ALERTING.send(alert, context)
        context["outlet_events"][PENDING_APPROVAL].extra = {"version": approval.version}
        return approval.as_dict()

    training_set = check_training_set()
    challenger = train_challenger(training_set)
    decision = refit_for_serving(evaluate_and_decide(training_set, challenger))
    deploy(decision)
    request_approval(decision)


retrain()
