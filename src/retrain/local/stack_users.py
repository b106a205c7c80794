"""Named users on a local stack: Airflow's SimpleAuthManager with roles instead of "everyone is
admin", for trying (and testing) what a reviewer without access sees.

By default the local stack makes every user an admin (``simple_auth_manager_all_admins``, the
api-server bound to 127.0.0.1). A stack started with ``users`` (name -> role: ``admin``, ``op``,
``user``, ``viewer``, or "" for no access at all) logs people in instead. Their passwords are
generated into the stack's own folder (never the checkout), where the tooling reads the first
admin's to call the REST API.
"""

from __future__ import annotations

import json
import os
import secrets
import urllib.request
from pathlib import Path

PASSWORDS_FILE = "passwords.json"  # under the stack's AIRFLOW_HOME
ROLES = ("admin", "op", "user", "viewer", "")


def passwords_path(airflow_home: Path) -> Path:
    return airflow_home / PASSWORDS_FILE


def airflow_env(airflow_home: Path, users: dict[str, str]) -> dict[str, str]:
    """Airflow's settings for these users (empty: all admins, the local default)."""
    if not users:
        return {"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True"}
    return {
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(
            f"{name}:{role.upper()}" for name, role in users.items()
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_path(airflow_home)),
    }


def write_passwords(airflow_home: Path, users: dict[str, str]) -> dict[str, str]:
    """A random password per user, written where the auth manager reads them (mode 600);
    users already there keep theirs (a restarted component logs the same people in)."""
    for name, role in users.items():
        if role.lower() not in ROLES or not name or ":" in name or "," in name:
            raise ValueError(f"user {name!r} with role {role!r}: roles are {ROLES}")
    path = passwords_path(airflow_home)
    path.parent.mkdir(parents=True, exist_ok=True)
    known = json.loads(path.read_text()) if path.exists() else {}
    passwords = {name: known.get(name) or secrets.token_urlsafe(16) for name in users}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(passwords, out)
    return passwords


def password(airflow_home: Path, name: str) -> str:
    return json.loads(passwords_path(airflow_home).read_text())[name]


def admin_of(users: dict[str, str]) -> str | None:
    """The user the tooling acts as: the first admin."""
    return next((name for name, role in users.items() if role.lower() == "admin"), None)


def token(api_url: str, name: str, secret: str, timeout: float = 10.0) -> str:
    """A JWT for ``name`` from the api-server (``POST /auth/token``), as any API client gets
    one; send it as ``Authorization: Bearer``."""
    request = urllib.request.Request(
        f"{api_url.rstrip('/')}/auth/token",
        data=json.dumps({"username": name, "password": secret}).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())["access_token"]
