"""Codex accounts come in as `codex <RefreshToken>[,<account>]` lines or as the Codex CLI's auth.json."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from tests.fakes.codex_issuer import codex_jwt
from tokens.importing import import_credentials
from tokens.models import Credential, Kind, Status

pytestmark = pytest.mark.django_db

RT = "rt_Q2xpLXRva2VuLWZvci1jb2RleC0wMTIzNDU2Nzg5YWJj"


def auth_json(refresh_token: str = RT, account_id: str = "acc-json-1", user_id: str = "user-json") -> str:
    """A Codex CLI auth.json as `codex login` writes it."""
    tokens = {
        "id_token": codex_jwt(account_id, "pro", user_id),
        "access_token": codex_jwt(account_id, "pro", user_id),
        "refresh_token": refresh_token,
        "account_id": account_id,
    }
    return json.dumps({"OPENAI_API_KEY": None, "tokens": tokens, "last_refresh": "2026-11-30T10:00:00Z"}, indent=2)


def test_codex_lines_with_and_without_account_id() -> None:
    result = import_credentials(f"codex {RT}\ncodex {RT}x,acc-team-7\n")
    assert (result.created, result.errors) == (2, [])
    alone, team = Credential.objects.order_by("pk")
    assert (alone.kind, alone.refresh_token, alone.account_id, alone.access_token) == (Kind.CODEX, RT, "", "")
    assert team.account_id == "acc-team-7"


BAD_LINES = ["codex", "codex sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX", f"codex {RT},a b", f"codex {RT},a,b"]


@pytest.mark.parametrize("line", BAD_LINES)
def test_bad_codex_lines_are_refused_masked(line: str) -> None:
    result = import_credentials(line)
    assert result.created == 0 and result.errors[0][0] == 1
    assert "codex <RefreshToken>" in result.errors[0][1] and RT not in str(result)


def test_pasted_auth_json_stores_the_account_and_its_claims() -> None:
    result = import_credentials(auth_json())
    assert (result.created, result.errors) == (1, [])
    cred = Credential.objects.get()
    assert (cred.kind, cred.account_id, cred.plan, cred.user_id) == (Kind.CODEX, "acc-json-1", "pro", "user-json")
    assert cred.refresh_token == RT and cred.access_token.startswith("eyJ") and cred.access_token_expires_at


def test_signing_in_again_replaces_the_tokens_of_the_same_account() -> None:
    import_credentials(auth_json())
    Credential.objects.update(status=Status.INVALID, last_error="refresh failed: refresh_token_reused")
    result = import_credentials(auth_json(refresh_token=RT + "new"))
    assert (result.created, result.updated) == (0, 1)
    cred = Credential.objects.get()
    assert (cred.refresh_token, cred.status, cred.last_error) == (RT + "new", Status.ACTIVE, "")
    assert import_credentials(auth_json(refresh_token=RT + "new")).skipped == 1


@pytest.mark.parametrize(
    "text, reason",
    [("{not json", "not JSON"), ('{"tokens": {"access_token": "x"}}', "not a Codex auth.json"), ("{}", "auth.json")],
)
def test_bad_auth_json_is_refused(text: str, reason: str) -> None:
    result = import_credentials(text)
    assert result.created == 0 and reason in result.errors[0][1]


def test_auth_json_as_a_file_for_the_command(tmp_path: Path) -> None:
    path = tmp_path / "auth.json"
    path.write_text(auth_json())
    out = io.StringIO()
    call_command("import_credentials", str(path), stdout=out, stderr=io.StringIO())
    assert out.getvalue().strip() == "1 created, 0 updated, 0 duplicates skipped"
    assert Credential.objects.get().account_id == "acc-json-1"


def test_auth_json_uploaded_on_the_admin_import_page(admin_client: Client) -> None:
    upload = SimpleUploadedFile("auth.json", auth_json().encode(), content_type="application/json")
    response = admin_client.post(reverse("admin:tokens_credential_import"), {"text": "", "file": upload}, follow=True)
    assert "1 created" in response.content.decode()
    html = admin_client.get(reverse("admin:tokens_credential_changelist")).content.decode()
    cred = Credential.objects.get()
    assert cred.kind == Kind.CODEX and RT not in html and cred.access_token not in html
