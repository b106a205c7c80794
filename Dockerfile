# The image every Airflow component runs on Kubernetes (terraform/helm/README.md): the official
# Airflow image of the locked version, plus the project installed from requirements.lock.
# Build from the repository root:
#   docker build -t <registry>/airflow-retrain:3.3.2-retrain-0.1.0 .
# tests/deploy/test_dockerfile.py checks this file statically (base tag = the locked
# apache-airflow version, the lock is what gets installed, a non-root USER, no secrets, the
# local settings where Airflow imports them).
# checkov:skip=CKV_DOCKER_2: no HEALTHCHECK here: the Helm chart gives each component (api-server, scheduler, dag-processor, triggerer, workers) its own liveness/startup probes

FROM apache/airflow:3.3.2-python3.11

# The official image installs Python packages as the airflow user (uid 50000, gid 0), into its
# user site; never as root.
USER airflow
WORKDIR /opt/airflow

# 1. The locked environment, hashes checked (the same lock `make venv` syncs). `pip install`
#    adds to the image's environment rather than syncing it, so the image's own providers
#    (postgres among them) stay in place; those the lock pins (celery, cncf.kubernetes, on the
#    image's major lines) are set to the locked versions, which the tests ran with.
COPY --chown=airflow:0 requirements.lock /opt/airflow/requirements.lock
RUN pip install --no-cache-dir --require-hashes -r /opt/airflow/requirements.lock

# 2. The project itself (packages retrain, triggers, validation), without dependencies: they all
#    came from the lock above. --no-build-isolation builds it with the locked setuptools.
#    triggers/ must be importable by the triggerer, which re-imports a trigger by class path.
COPY --chown=airflow:0 pyproject.toml /tmp/retrain-src/pyproject.toml
COPY --chown=airflow:0 src/ /tmp/retrain-src/src/
COPY --chown=airflow:0 triggers/ /tmp/retrain-src/triggers/
COPY --chown=airflow:0 validation/ /tmp/retrain-src/validation/
RUN pip install --no-cache-dir --no-deps --no-build-isolation /tmp/retrain-src \
    && rm -rf /tmp/retrain-src

# 3. The DAG folder (the chart's default [core] dags_folder) and the config file. Both are
#    read-only at run time: a run writes only into the bucket and the metadata database.
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 retrain.toml /opt/airflow/retrain.toml
ENV RETRAIN_CONFIG=/opt/airflow/retrain.toml

# 4. Airflow's local settings: every component imports airflow_local_settings from
#    $AIRFLOW_HOME/config (on sys.path); the project's warms the processes that fork task
#    processes ([resources] preload). The chart's own file is off (values-common.yaml:
#    airflowLocalSettings: null), so nothing is mounted over this one.
COPY --chown=airflow:0 src/airflow_local_settings.py /opt/airflow/config/airflow_local_settings.py

USER airflow
