"""Operators create, list and revoke seed tokens in the admin; only a fingerprint is kept."""

from __future__ import annotations

import re

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from mirror.models import SeedToken, fingerprint

pytestmark = pytest.mark.django_db
ADD = reverse("admin:mirror_seedtoken_add")
CHANGELIST = reverse("admin:mirror_seedtoken_changelist")
TOKEN = "seed-dave-0123456789abcdef"


@pytest.fixture(autouse=True)
def page_on(settings):
    settings.ENABLE_GATEWAY = True
    cache.clear()


def created_token(admin_client: Client, **data: str) -> str:
    response = admin_client.post(ADD, {"label": "dave", "token": "", **data})
    assert response.status_code == 200, response.content.decode()
    html = response.content.decode()
    assert "shown <strong>only now</strong>" in html
    return re.search(r'id="seed-token" type="text" readonly size="60" value="([^"]+)"', html).group(1)


def test_a_generated_token_is_shown_once_and_only_its_fingerprint_kept(admin_client):
    token = created_token(admin_client)
    assert len(token) >= 30
    seed = SeedToken.objects.get()
    assert seed.fingerprint == fingerprint(token) and seed.label == "dave"
    assert token not in (seed.hint, seed.fingerprint)
    listing = admin_client.get(CHANGELIST).content.decode()
    assert "dave" in listing and seed.hint in listing and token not in listing
    assert token not in admin_client.get(reverse("admin:mirror_seedtoken_change", args=[seed.pk])).content.decode()
    assert Client().get("/", {"token": token})["Location"] == "/"


def test_an_operator_may_choose_the_token_but_not_twice(admin_client):
    assert created_token(admin_client, token=TOKEN) == TOKEN
    again = admin_client.post(ADD, {"label": "dave again", "token": TOKEN})
    assert again.status_code == 200
    assert "exists already" in again.content.decode()
    assert SeedToken.objects.count() == 1


def test_revoking_locks_the_holder_out(admin_client):
    created_token(admin_client, token=TOKEN)
    holder = Client()
    assert holder.post("/login", {"token": TOKEN}).status_code == 302
    seed = SeedToken.objects.get()
    response = admin_client.post(CHANGELIST, {"action": "revoke_selected", "_selected_action": [seed.pk]})
    assert response.status_code == 302
    seed.refresh_from_db()
    assert seed.revoked
    assert holder.get("/")["Location"] == "/login"
    assert Client().post("/login", {"token": TOKEN}).status_code == 401

    admin_client.post(CHANGELIST, {"action": "restore_selected", "_selected_action": [seed.pk]})
    assert Client().post("/login", {"token": TOKEN}).status_code == 302
