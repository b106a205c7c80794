"""Named users of a local stack: Airflow's settings and their passwords."""

from __future__ import annotations

import json
import stat

import pytest

from retrain.local import stack_users


def test_all_admins_unless_users_are_named(tmp_path):
    assert stack_users.airflow_env(tmp_path, {}) == {
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True"
    }
    env = stack_users.airflow_env(tmp_path, {"ann": "admin", "vic": "viewer", "nob": ""})
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] == "False"
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "ann:ADMIN,vic:VIEWER,nob:"
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] == str(
        tmp_path / "passwords.json"
    )


def test_passwords_are_random_private_and_kept(tmp_path):
    users = {"ann": "admin", "vic": "viewer"}
    first = stack_users.write_passwords(tmp_path, users)
    path = stack_users.passwords_path(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == first and first["ann"] != first["vic"]
    assert stack_users.write_passwords(tmp_path, users) == first  # a restart keeps them
    assert stack_users.password(tmp_path, "vic") == first["vic"]
    assert stack_users.admin_of({"vic": "viewer", "ann": "Admin"}) == "ann"
    assert stack_users.admin_of({"vic": "viewer"}) is None
    with pytest.raises(ValueError):
        stack_users.write_passwords(tmp_path, {"eve": "superuser"})
