"""Import credentials from pasted text or a file, one a line.

    <AccessToken or RefreshToken>[,<ChatGPT-Account-ID>]      a ChatGPT account
    codex <RefreshToken>[,<ChatGPT-Account-ID>]               a ChatGPT account signed in through Codex
    openai <base_url> <api_key> [model,model,...] [api=responses]
                                                              an OpenAI-compatible API key (`api=responses`:
                                                              its server speaks `/responses` too)

or, whole, the Codex CLI's `auth.json` (`{"tokens": {id_token, access_token, refresh_token, account_id}}`).

A token's kind is recognised by its shape (`tokens.shapes`); a line that is no credential, or an
AccessToken that has already expired (alone it can never work again), is refused. Blank lines and lines
starting with `#` are skipped. A bad line is reported by number with a reason that never shows the
secret in full; every good line is still imported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import orjson
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone

from common import jwt
from common.masking import mask
from tokens import oauth, shapes
from tokens.models import Credential, Kind, Status, WireApi

OPENAI_USAGE = "expected: openai <base_url> <api_key> [model,model,...] [api=responses]"
CODEX_USAGE = "expected: codex <RefreshToken>[,<ChatGPT-Account-ID>]"
CHATGPT_USAGE = "expected an AccessToken (eyJ…), a RefreshToken (rt_… or about 45 characters) or an `openai` line"
RENEWED = ("access_token", "refresh_token", "access_token_expires_at", "plan")
_url_validator = URLValidator(schemes=["http", "https"])


class LineError(ValueError):
    """Why one line cannot be imported; the message is safe to show (secrets are masked)."""


@dataclass(frozen=True)
class Entry:
    """One parsed line. `models` is None when an `openai` line gave no model list."""

    line_no: int
    kind: str
    access_token: str = field(default="", repr=False)
    refresh_token: str = field(default="", repr=False)
    account_id: str = ""
    base_url: str = ""
    api_key: str = field(default="", repr=False)
    models: tuple[str, ...] | None = None
    plan: str = ""
    user_id: str = ""
    wire_api: str = ""  # an `openai` line's `api=`; empty when not given

    def credential(self) -> Credential:
        """An unsaved row; its `compute_fingerprint()` is the one `Credential.save()` stores."""
        return Credential(
            kind=self.kind,
            access_token=self.access_token,
            refresh_token=self.refresh_token,
            account_id=self.account_id,
            base_url=self.base_url,
            api_key=self.api_key,
            model_names=list(self.models or ()),
            plan=self.plan,
            user_id=self.user_id,
            wire_api=self.wire_api or WireApi.CHAT,
        )


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    skipped: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)

    @property
    def counts(self) -> str:
        dupes = "duplicate" if self.skipped == 1 else "duplicates"
        return f"{self.created} created, {self.updated} updated, {self.skipped} {dupes} skipped"

    def __str__(self) -> str:
        return "; ".join([self.counts, *(f"line {n}: {reason}" for n, reason in self.errors)])


def parse(text: str) -> tuple[list[Entry], list[tuple[int, str]]]:
    """Split `text` into entries and `(line_no, reason)` errors; touches no database."""
    if text.lstrip().startswith("{"):
        try:
            return [codex_auth_json(text)], []
        except LineError as exc:
            return [], [(1, str(exc))]
    entries: list[Entry] = []
    errors: list[tuple[int, str]] = []
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            entries.append(parse_line(line_no, line))
        except LineError as exc:
            errors.append((line_no, str(exc)))
    return entries, errors


def parse_line(line_no: int, line: str) -> Entry:
    parts = line.split(maxsplit=3)
    if parts[0].lower() == "openai":
        return _parse_openai(line_no, parts[1:])
    if parts[0].lower() == "codex":
        return _parse_codex(line_no, line[len(parts[0]) :].strip())
    return _parse_chatgpt(line_no, line)


def _parse_codex(line_no: int, rest: str) -> Entry:
    token, _, account_id = (s.strip() for s in rest.partition(","))
    if not shapes.is_refresh_token(token) or " " in account_id or "," in account_id:
        raise LineError(f"not a Codex RefreshToken line ({mask(token)}); {CODEX_USAGE}")
    if len(account_id) > Credential._meta.get_field("account_id").max_length:
        raise LineError(f"ChatGPT-Account-ID is too long (token {mask(token)})")
    return Entry(line_no, Kind.CODEX, refresh_token=token, account_id=account_id)


def codex_auth_json(text: str) -> Entry:
    """The Codex CLI's `auth.json` (the account it signed in) as one entry."""
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise LineError(f"not JSON ({exc.args[0].split(':')[0]}); expected a Codex auth.json") from None
    tokens = doc.get("tokens") if isinstance(doc, dict) else None
    if not isinstance(tokens, dict) or not isinstance(tokens.get("refresh_token"), str):
        raise LineError('not a Codex auth.json: expected {"tokens": {id_token, access_token, refresh_token, …}}')
    text_of = {name: value for name, value in tokens.items() if isinstance(value, str)}
    signed_in = oauth.Tokens(text_of.get("access_token", ""), text_of["refresh_token"], text_of.get("id_token", ""))
    return codex_entry(signed_in, text_of.get("account_id", ""))


def codex_entry(tokens: oauth.Tokens, account_id: str = "", line_no: int = 1) -> Entry:
    """A signed-in Codex account as an entry; who it is comes from its id token (or access token)."""
    if not shapes.is_refresh_token(tokens.refresh_token):
        raise LineError(f"not a Codex RefreshToken ({mask(tokens.refresh_token)})")
    if tokens.access_token and not shapes.is_access_token(tokens.access_token):
        raise LineError(f"{mask(tokens.access_token)} is not a JWT AccessToken")
    who = tokens.account
    return Entry(
        line_no,
        Kind.CODEX,
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        account_id=account_id or who.account_id,
        plan=who.plan,
        user_id=who.user_id,
    )


def _parse_openai(line_no: int, parts: list[str]) -> Entry:
    if len(parts) < 2:
        raise LineError(f"missing {'API key' if parts else 'base URL and API key'}; {OPENAI_USAGE}")
    base_url, api_key = parts[0].rstrip("/"), parts[1]
    try:
        _url_validator(base_url)
    except ValidationError:
        raise LineError(f"base URL is not an http(s) URL (key {mask(api_key)}); {OPENAI_USAGE}") from None
    if len(base_url) > Credential._meta.get_field("base_url").max_length:
        raise LineError("base URL is too long")
    words = [w for w in re.split(r"[,\s]+", parts[2]) if w] if len(parts) > 2 else []
    options = [w for w in words if w.startswith("api=")]
    models = tuple(w for w in words if w not in options)
    wire_api = options[-1].removeprefix("api=") if options else ""
    if wire_api and wire_api not in WireApi.values:
        raise LineError(f"unknown api={wire_api} (key {mask(api_key)}); {OPENAI_USAGE}")
    return Entry(line_no, Kind.OPENAI, base_url=base_url, api_key=api_key, models=models or None, wire_api=wire_api)


def _parse_chatgpt(line_no: int, line: str) -> Entry:
    token, _, account_id = (s.strip() for s in line.partition(","))
    if not token:
        raise LineError("missing token before the comma")
    if len(token.split()) > 1 or len(account_id.split()) > 1:
        raise LineError(f"unexpected spaces in {mask(token.split()[0])}; an API key line starts with `openai`")
    if "," in account_id:
        raise LineError(f"too many commas after {mask(token)}; expected <token>[,<ChatGPT-Account-ID>]")
    if len(account_id) > Credential._meta.get_field("account_id").max_length:
        raise LineError(f"ChatGPT-Account-ID is too long (token {mask(token)})")
    if token.startswith("sk-"):
        raise LineError(f"{mask(token)} looks like an API key; use: openai <base_url> <api_key>")
    if token.startswith("eyJ"):
        return Entry(line_no, Kind.CHATGPT, access_token=_access_token(token), account_id=account_id)
    if not shapes.is_refresh_token(token):
        raise LineError(f"not a recognised credential ({mask(token)}); {CHATGPT_USAGE}")
    return Entry(line_no, Kind.CHATGPT, refresh_token=token, account_id=account_id)


def _access_token(token: str) -> str:
    """`token` if it is an AccessToken that still works: alone (no RefreshToken), an expired one never will."""
    expires = jwt.expiry(token) if shapes.is_access_token(token) else None
    if expires is None:
        raise LineError(f"{mask(token)} starts like an AccessToken but is not a JWT (header.payload.signature)")
    if expires <= timezone.now():
        when = expires.strftime("%Y-%m-%d %H:%M UTC")
        raise LineError(f"AccessToken {mask(token)} expired on {when}; import it with its RefreshToken or a fresh one")
    return token


def import_credentials(text: str) -> ImportResult:
    """Parse `text` and write its good lines in one transaction.

    A line whose fingerprint is already stored (also one repeated in the same text) is a duplicate: the row
    is left as it is, with exceptions: an `openai` line that lists models different from the stored
    ones, which replaces the row's model list and counts as updated (so does one whose `api=` differs from the
    stored one, which replaces it), and a codex account signed in again
    (another RefreshToken for the same user), whose new tokens replace the old. A re-imported credential that had
    failed authentication (`invalid`) is revived when `ALLOW_RESET` is on, and counts as updated. Cooldowns
    and counters are never touched by an import.
    """
    entries, errors = parse(text)
    return store(entries, ImportResult(errors=errors))


def store(entries: list[Entry], result: ImportResult | None = None) -> ImportResult:
    """Write parsed entries in one transaction (the rules above); also how a device sign-in is stored."""
    result = result or ImportResult()
    with transaction.atomic():
        for entry in entries:
            _store(entry, result)
    return result


def _store(entry: Entry, result: ImportResult) -> None:
    new = entry.credential()
    existing = Credential.objects.filter(fingerprint=new.compute_fingerprint()).first()
    if existing is None:
        new.save()
        result.created += 1
        return
    revive = settings.ALLOW_RESET and existing.status == Status.INVALID
    models = list(entry.models) if entry.models is not None else None
    relist = models is not None and models != existing.model_names
    # A codex account signed in again brings new tokens; its old single-use RefreshToken may be spent.
    retoken = entry.kind == Kind.CODEX and entry.refresh_token != existing.refresh_token
    rewire = bool(entry.wire_api) and entry.wire_api != existing.wire_api
    if not (revive or relist or retoken or rewire):
        result.skipped += 1
        return
    if revive:
        existing.status, existing.last_error = Status.ACTIVE, ""
    if relist:
        existing.model_names = models
    if rewire:
        existing.wire_api = entry.wire_api
    if retoken:
        existing.access_token, existing.refresh_token = entry.access_token, entry.refresh_token
        existing.access_token_expires_at = jwt.expiry(entry.access_token) if entry.access_token else None
        existing.plan = entry.plan or existing.plan
    existing.save(update_fields=[*RENEWED, "status", "last_error", "model_names", "wire_api", "updated_at"])
    result.updated += 1
