"""The local stack and the demo: tooling for a laptop and for the tests, never imported by a DAG,
a trigger or a task (``tests/unit/test_layers.py`` checks it).

``devstack`` (the S3-compatible server and Airflow's parts on 127.0.0.1), ``s3server``,
``stack_users`` (named users instead of all admins), ``inbox`` (alerts that arrived on the local
queue), ``demo`` and ``follow`` (the demo's story, also what the end-to-end tests follow),
``browser`` and ``devtools`` (headless Chromium for the reports and the UI).
"""
