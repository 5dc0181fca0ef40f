from __future__ import annotations

from unittest import mock

import pytest

from tests import factories
from tokens.importing import Entry, ImportResult, import_credentials, parse
from tokens.models import Credential, Kind, Status

# exp 2100-01-01
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEyMyIsImV4cCI6NDEwMjQ0NDgwMH0.c2lnbmF0dXJlLWFiY2RlZmdoaWprbG1ub3A"
RT = "Abcdefghijklmnopqrstuvwxyz0123456789_-ABCDEFG"  # the 45-character auth0 form
KEY = "sk-proj-ABCDEFGHIJKLMNOPQRSTUVWXYZ123456"
ACCOUNT = "3f1c2b9e-0000-4000-8000-123456789abc"


def only_entry(text: str) -> Entry:
    entries, errors = parse(text)
    assert errors == []
    assert len(entries) == 1
    return entries[0]


def only_error(text: str) -> tuple[int, str]:
    entries, errors = parse(text)
    assert entries == []
    assert len(errors) == 1
    return errors[0]


# -- parse: pure ---------------------------------------------------------------------------------


def test_skips_blank_lines_and_comments() -> None:
    entries, errors = parse(f"\n# a comment\n   \n  # indented comment\n{RT}\n\n")
    assert errors == []
    assert [(e.line_no, e.refresh_token) for e in entries] == [(5, RT)]


def test_jwt_is_an_access_token_anything_else_a_refresh_token() -> None:
    entries, _ = parse(f"{JWT}\n{RT}")
    assert (entries[0].kind, entries[0].access_token, entries[0].refresh_token) == (Kind.CHATGPT, JWT, "")
    assert (entries[1].kind, entries[1].access_token, entries[1].refresh_token) == (Kind.CHATGPT, "", RT)


def test_refresh_token_forms() -> None:
    newer = "rt_" + "Q" * 30 + ".abc-DEF_123"
    assert [e.refresh_token for e in parse(f"{RT}\n{newer}")[0]] == [RT, newer]


@pytest.mark.parametrize("junk", ["hello", "rt-abc", "Abc123" * 3, "hello world", "x" * 39, "rt_short", "gpt-4o"])
def test_a_line_that_is_no_credential_is_refused_by_number(junk: str) -> None:
    entries, errors = parse(f"{RT}\n{junk}\n{JWT}")
    assert [e.line_no for e in entries] == [1, 3]
    assert len(errors) == 1 and errors[0][0] == 2
    assert "not a recognised credential" in errors[0][1] or "unexpected spaces" in errors[0][1]
    assert junk not in errors[0][1]


def test_expired_access_token_is_refused_with_the_reason() -> None:
    expired = JWT.replace("NDEwMjQ0NDgwMH0", "MTczNTY4OTYwMH0")  # exp 2025-01-01 00:00 UTC
    line_no, reason = only_error(f"# old\n{expired},{ACCOUNT}")
    assert line_no == 2
    assert "expired on 2025-01-01 00:00 UTC; import it with its RefreshToken or a fresh one" in reason
    assert expired not in reason


@pytest.mark.parametrize(
    "token",
    [
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEyMyJ9.c2lnbmF0dXJl",  # no exp
        "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2lnbmF0dXJl",  # payload is not JSON
        "eyJhbGciOiJSUzI1NiJ9.e30",  # two parts
    ],
)
def test_access_token_without_a_readable_expiry_is_refused(token: str) -> None:
    assert "not a JWT" in only_error(token)[1]


def test_token_with_account_id() -> None:
    entry = only_entry(f"  {JWT} , {ACCOUNT}  ")
    assert (entry.access_token, entry.account_id) == (JWT, ACCOUNT)


def test_token_with_trailing_comma_has_no_account_id() -> None:
    assert only_entry(f"{RT},").account_id == ""


def test_openai_line_without_models() -> None:
    entry = only_entry(f"openai https://api.example.com/v1/ {KEY}")
    assert (entry.kind, entry.base_url, entry.api_key, entry.models) == (
        Kind.OPENAI,
        "https://api.example.com/v1",
        KEY,
        None,
    )


def test_openai_line_with_models() -> None:
    entry = only_entry(f"OpenAI http://127.0.0.1:8080 {KEY} gpt-4o,gpt-4o-mini, o3")
    assert entry.models == ("gpt-4o", "gpt-4o-mini", "o3")
    assert entry.credential().model_names == ["gpt-4o", "gpt-4o-mini", "o3"]


@pytest.mark.parametrize("url", ["ftp://files.example.com", "api.example.com/v1", "https://", "javascript:alert(1)"])
def test_openai_line_with_bad_url(url: str) -> None:
    line_no, reason = only_error(f"openai {url} {KEY}")
    assert line_no == 1
    assert "http(s) URL" in reason
    assert KEY not in reason
    assert "sk-…3456" in reason


def test_openai_line_missing_key() -> None:
    assert "missing API key" in only_error("openai https://api.example.com")[1]


def test_openai_line_missing_everything() -> None:
    assert "missing base URL and API key" in only_error("openai")[1]


def test_api_key_without_openai_prefix_is_refused() -> None:
    _, reason = only_error(KEY)
    assert "looks like an API key" in reason
    assert KEY not in reason


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (f"{RT} {ACCOUNT}", "unexpected spaces"),
        (f"{RT},{ACCOUNT},extra", "too many commas"),
        (f",{ACCOUNT}", "missing token"),
        ("eyJnot-a-jwt", "not a JWT"),
        (f"{RT},{'x' * 101}", "too long"),
    ],
)
def test_bad_chatgpt_lines(line: str, expected: str) -> None:
    _, reason = only_error(line)
    assert expected in reason
    assert RT not in reason


def test_bad_lines_are_numbered_and_good_lines_kept() -> None:
    entries, errors = parse(f"# header\n{JWT}\nopenai nope {KEY}\n\n{RT},{ACCOUNT}\nopenai")
    assert [e.line_no for e in entries] == [2, 5]
    assert [n for n, _ in errors] == [3, 6]


def test_entry_repr_hides_secrets() -> None:
    assert KEY not in repr(only_entry(f"openai https://api.example.com {KEY}"))


def test_result_summary() -> None:
    result = ImportResult(created=3, skipped=1, errors=[(4, "bad")])
    assert str(result) == "3 created, 0 updated, 1 duplicate skipped; line 4: bad"


# -- import_credentials: writes ------------------------------------------------------------------


@pytest.mark.django_db
def test_import_creates_rows() -> None:
    result = import_credentials(f"{JWT},{ACCOUNT}\n{RT}\nopenai https://api.example.com/v1 {KEY} m1,m2")
    assert (result.created, result.updated, result.skipped, result.errors) == (3, 0, 0, [])
    key = Credential.objects.get(kind=Kind.OPENAI)
    assert (key.base_url, key.api_key, key.model_names, key.status) == (
        "https://api.example.com/v1",
        KEY,
        ["m1", "m2"],
        Status.ACTIVE,
    )
    accounts = {(c.access_token, c.refresh_token, c.account_id) for c in Credential.objects.filter(kind=Kind.CHATGPT)}
    assert accounts == {(JWT, "", ACCOUNT), ("", RT, "")}


@pytest.mark.django_db
def test_reimport_does_not_duplicate() -> None:
    text = f"{JWT},{ACCOUNT}\n{RT}\nopenai https://api.example.com/v1 {KEY} m1"
    import_credentials(text)
    result = import_credentials(text)
    assert (result.created, result.updated, result.skipped) == (0, 0, 3)
    assert Credential.objects.count() == 3


@pytest.mark.django_db
def test_duplicate_within_one_text_is_skipped() -> None:
    result = import_credentials(f"{RT}\n{RT}")
    assert (result.created, result.skipped) == (1, 1)


@pytest.mark.django_db
def test_same_token_in_another_workspace_is_another_credential() -> None:
    result = import_credentials(f"{JWT}\n{JWT},{ACCOUNT}")
    assert result.created == 2


@pytest.mark.django_db
def test_matches_rows_created_elsewhere_by_fingerprint() -> None:
    factories.chatgpt_account(access_token=JWT, account_id=ACCOUNT)
    factories.openai_key("https://api.example.com/v1", KEY, ["m1"])
    result = import_credentials(f"{JWT},{ACCOUNT}\nopenai https://api.example.com/v1/ {KEY} m1")
    assert (result.created, result.skipped) == (0, 2)


@pytest.mark.django_db
def test_reimported_key_with_new_models_updates_the_list_and_nothing_else() -> None:
    cred = factories.openai_key("https://api.example.com/v1", KEY, ["m1"])
    Credential.objects.filter(pk=cred.pk).update(status=Status.DISABLED, request_count=7)
    result = import_credentials(f"openai https://api.example.com/v1 {KEY} m1,m2")
    assert (result.created, result.updated, result.skipped) == (0, 1, 0)
    cred.refresh_from_db()
    assert (cred.model_names, cred.status, cred.request_count) == (["m1", "m2"], Status.DISABLED, 7)


@pytest.mark.django_db
def test_reimported_key_without_models_keeps_the_list() -> None:
    cred = factories.openai_key("https://api.example.com/v1", KEY, ["m1"])
    result = import_credentials(f"openai https://api.example.com/v1 {KEY}")
    assert result.skipped == 1
    cred.refresh_from_db()
    assert cred.model_names == ["m1"]


@pytest.mark.django_db
def test_bad_lines_do_not_stop_good_ones() -> None:
    result = import_credentials(f"{RT}\nopenai ftp://x {KEY}\n{JWT}")
    assert result.created == 2
    assert [n for n, _ in result.errors] == [2]


@pytest.mark.django_db(transaction=True)
def test_one_transaction_nothing_written_on_crash() -> None:
    real_save = Credential.save
    calls = {"n": 0}

    def crash_on_second(self: Credential, *args: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk full")
        real_save(self, *args, **kwargs)

    with mock.patch.object(Credential, "save", crash_on_second), pytest.raises(RuntimeError):
        import_credentials(f"{RT}\n{JWT}")
    assert Credential.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(("allow", "expected"), [(True, "active"), (False, "invalid")])
def test_reimport_revives_a_failed_credential_only_with_allow_reset(settings, allow, expected):
    settings.ALLOW_RESET = allow
    import_credentials("openai https://api.example.com/v1 sk-revive-me-0123456789\n")
    Credential.objects.update(status="invalid", last_error="401: Incorrect API key")
    result = import_credentials("openai https://api.example.com/v1 sk-revive-me-0123456789\n")
    assert (result.updated, result.skipped) == ((1, 0) if allow else (0, 1))
    assert Credential.objects.get().status == expected
