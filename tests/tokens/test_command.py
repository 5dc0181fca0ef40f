from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from tokens.models import Credential

RT = "Abcdefghijklmnopqrstuvwxyz0123456789_-ABCDEFG"  # the 45-character auth0 form
KEY = "sk-proj-ABCDEFGHIJKLMNOPQRSTUVWXYZ123456"
GOOD = f"# pool\n{RT},acct-1\nopenai https://api.example.com/v1 {KEY} m1\n"

pytestmark = pytest.mark.django_db


def run(*args: str, stdin: str | None = None) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    extra = {"stdin": io.StringIO(stdin)} if stdin is not None else {}
    call_command("import_credentials", *args, stdout=out, stderr=err, **extra)
    return out.getvalue(), err.getvalue()


def test_imports_a_file(tmp_path: Path) -> None:
    path = tmp_path / "tokens.txt"
    path.write_text(GOOD)
    out, err = run(str(path))
    assert out.strip() == "2 created, 0 updated, 0 duplicates skipped"
    assert err == ""
    assert Credential.objects.count() == 2
    assert run(str(path))[0].strip() == "0 created, 0 updated, 2 duplicates skipped"


def test_imports_stdin() -> None:
    out, _ = run("-", stdin=GOOD)
    assert "2 created" in out
    assert Credential.objects.count() == 2


def test_bad_line_fails_but_good_lines_are_imported(tmp_path: Path) -> None:
    path = tmp_path / "tokens.txt"
    path.write_text(GOOD + f"openai ftp://bad {KEY}\n")
    err = io.StringIO()
    with pytest.raises(CommandError, match="1 line"):
        call_command("import_credentials", str(path), stdout=io.StringIO(), stderr=err)
    assert "line 4: base URL is not an http(s) URL" in err.getvalue()
    assert KEY not in err.getvalue()
    assert Credential.objects.count() == 2


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="cannot read"):
        run(str(tmp_path / "nope.txt"))
