"""Who is logged in to the chat page, and what they may use.

The session (server-side, in the database) keeps the kind of login and what is needed to act: for an
`AUTHORIZATION` code only its fingerprint, for a seed token its id, for the person's own token the token
itself, encrypted with the credential keys. The browser holds only the opaque session id.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import asdict, dataclass

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.http import HttpRequest
from django.middleware.csrf import rotate_token
from django.utils import timezone

from common import jwt
from mirror.models import SeedToken, fingerprint
from openai_compat.services import Caller
from tokens import crypto, shapes
from tokens import services as token_services
from tokens.oauth import RefreshFailed
from tokens.pool import PooledCredential
from tokens.throttle import Throttle, by_address, client_address

SESSION_KEY = "mirror"
WRONG_TOKEN = "That token was not accepted. Check it and try again."
# Anything else than an AccessToken is tried as a RefreshToken; junk is refused without asking upstream.
LOGIN_THROTTLE = Throttle("mirror-login")


class LoginRefused(Exception):
    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.message, self.status = message, status


@dataclass(frozen=True, slots=True)
class Identity:
    kind: str  # "code" (an AUTHORIZATION code), "seed" (a seed token) or "own" (the person's own token)
    owner: str  # the key of this person's conversations
    ref: str = ""  # the code's fingerprint, the seed token's id, or the own token encrypted
    account_id: str = ""

    def describe(self) -> str:
        return {"code": "access code", "seed": "seed token", "own": "your own ChatGPT token"}[self.kind]


def caller_for(identity: Identity) -> Caller:
    if identity.kind == "own":
        return Caller(own=PooledCredential.own(crypto.decrypt(identity.ref), identity.account_id))
    return Caller(affinity=f"seed:{identity.ref}" if identity.kind == "seed" else "")


async def authenticate(raw: str) -> Identity:
    """The identity `raw` logs in as; raises `LoginRefused` with a message for the form."""
    token = raw.strip()
    if not token:
        raise LoginRefused("Enter a token.", status=400)
    code = fingerprint(token)
    if any(hmac.compare_digest(code, fingerprint(c)) for c in settings.AUTHORIZATION):
        return Identity("code", "code:" + code[:40], code)
    seed = await SeedToken.objects.active().matching(token).afirst()
    if seed is not None:
        await SeedToken.objects.filter(pk=seed.pk).aupdate(last_used_at=timezone.now())
        return Identity("seed", seed.affinity, str(seed.pk))
    return await _own(token)


async def _own(token: str) -> Identity:
    secret, _, account_id = token.partition(",")
    secret, account_id = secret.strip(), account_id.strip()
    if not settings.ALLOW_OWN_TOKENS:
        raise LoginRefused(WRONG_TOKEN)
    if shapes.is_access_token(secret):
        expiry = jwt.expiry(secret)
        if expiry is None:
            raise LoginRefused(WRONG_TOKEN)
        if expiry <= timezone.now():
            raise LoginRefused("That AccessToken has expired. Use a fresh one, or your RefreshToken.")
    elif not shapes.is_refresh_token(secret):
        raise LoginRefused(WRONG_TOKEN)
    else:
        try:
            await sync_to_async(token_services.own_access_token, thread_sensitive=False)(secret)
        except RefreshFailed as exc:
            if not exc.permanent:
                raise LoginRefused("That RefreshToken could not be checked right now; try again later.") from None
            raise LoginRefused(WRONG_TOKEN) from None
    owner = "own:" + hashlib.sha256(f"{secret}\0{account_id}".encode()).hexdigest()[:40]
    return Identity("own", owner, crypto.encrypt(secret), account_id)


async def log_in(request: HttpRequest, token: str) -> Identity:
    """Check `token` (slowed down after repeated failures from one address) and start a fresh session."""
    address = by_address(client_address(request))
    wait = await LOGIN_THROTTLE.alocked_for(address)
    if wait:
        raise LoginRefused(f"Too many failed attempts from your address. Try again in {wait} s.", status=429)
    try:
        identity = await authenticate(token)
    except LoginRefused:
        await LOGIN_THROTTLE.arecord_failure(address)
        raise
    await LOGIN_THROTTLE.aforget(address)
    await request.session.acycle_key()  # a new session id (and CSRF token): nothing fixed before login
    await request.session.aset(SESSION_KEY, asdict(identity))
    rotate_token(request)
    return identity


async def log_out(request: HttpRequest) -> None:
    await request.session.aflush()


async def from_session(session: SessionBase) -> Identity | None:
    """The logged-in identity if it may still act (the code is still configured, the seed not revoked)."""
    data = await session.aget(SESSION_KEY)
    if not isinstance(data, dict):
        return None
    try:
        identity = Identity(**data)
    except TypeError:
        identity = None
    if identity is None or not await _still_allowed(identity):
        await session.aflush()
        return None
    return identity


async def _still_allowed(identity: Identity) -> bool:
    if identity.kind == "code":
        return any(hmac.compare_digest(identity.ref, fingerprint(c)) for c in settings.AUTHORIZATION)
    if identity.kind == "seed":
        # One conditional UPDATE both checks the token and records its use.
        touched = await SeedToken.objects.active().filter(pk=identity.ref).aupdate(last_used_at=timezone.now())
        return touched == 1
    return identity.kind == "own"
