"""An admin change reaches the serving process within a second, without a restart."""

from __future__ import annotations

import time

import openai
import pytest
from django.utils import timezone

from tests import sdk
from tests.factories import openai_key
from tests.gateway import eventually
from tokens.models import Credential, Status
from tokens.pool import signature_version
from tokens.services import pool_signature

pytestmark = pytest.mark.django_db(transaction=True)
MESSAGES = [{"role": "user", "content": "hi"}]


def ask(gateway) -> str | None:
    client = sdk.client(gateway.url)
    try:
        return client.chat.completions.create(model="fake-model", messages=MESSAGES).choices[0].message.content
    except openai.APIStatusError as err:
        return f"error {err.status_code}"


def seconds_until(gateway, expected: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < 5:
        if (ask(gateway) or "").startswith(expected):
            return time.monotonic() - start
        time.sleep(0.02)
    raise AssertionError(f"gateway never answered {expected!r}")


def test_import_disable_delete_take_effect_within_a_second(gateway, fake_openai):
    assert ask(gateway).startswith("error")
    cred = openai_key(fake_openai.url + "/v1", "sk-ok-live")
    assert seconds_until(gateway, "Hello") < 1.0

    Credential.objects.filter(pk=cred.pk).update(status=Status.DISABLED, updated_at=timezone.now())
    assert seconds_until(gateway, "error") < 1.0

    Credential.objects.filter(pk=cred.pk).update(status=Status.ACTIVE, updated_at=timezone.now())
    assert seconds_until(gateway, "Hello") < 1.0
    cred.delete()
    assert seconds_until(gateway, "error") < 1.0


def test_healthz_says_which_state_of_the_table_a_process_serves(gateway, fake_openai):
    """An operator (and `tests.gateway.settle`) can see when an edit has reached a process: `/healthz`'s `pool`."""
    ask(gateway)  # the pool loads at the first API request
    before = gateway.pool_version()
    assert before == signature_version(pool_signature())
    openai_key(fake_openai.url + "/v1", "sk-ok-version")
    assert eventually(lambda: gateway.pool_version() == signature_version(pool_signature()), 1.0)
    assert gateway.pool_version() != before
