"""Start-up: a bad setting stops it naming the variable; the first admin is created or explained."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from chat2api_site import serve
from tests.cluster import run_python


@pytest.mark.parametrize(("name", "value"), [("RETRY_TIMES", "abc"), ("HISTORY_DISABLED", "maybe-not"), ("PORT", "x")])
def test_bad_value_stops_startup_naming_the_variable(name, value):
    result = run_python({name: value}, "manage.py", "check")
    assert result.returncode != 0
    assert f"Environment variable {name}" in result.stderr


@pytest.mark.django_db
def test_first_admin_from_environment(settings, capsys):
    settings.ADMIN_USERNAME, settings.ADMIN_PASSWORD = "", ""
    serve.ensure_admin()
    assert "manage.py createsuperuser" in capsys.readouterr().out
    settings.ADMIN_USERNAME, settings.ADMIN_PASSWORD = "operator", "a-long-password"
    serve.ensure_admin()
    assert get_user_model().objects.get(username="operator").is_superuser
    serve.ensure_admin()  # idempotent once an admin exists
    assert get_user_model().objects.count() == 1
