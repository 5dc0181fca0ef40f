from __future__ import annotations

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import models

from tokens.crypto import EncryptedTextField
from tokens.models import Credential
from tokens.services import rotate_encryption


class Command(BaseCommand):
    help = "Re-encrypt every stored secret with the first key of CREDENTIAL_KEYS."

    def handle(self, *args, **options) -> None:
        count = rotate_encryption()
        self.stdout.write(f"Re-encrypted the secrets of {count} credential(s) with the current key.")
        for model in apps.get_models():
            names = [f.name for f in model._meta.fields if isinstance(f, EncryptedTextField)]
            if names and model is not Credential:
                count = rotate_rows(model, names)
                self.stdout.write(f"Re-encrypted {count} {model._meta.verbose_name_plural} with the current key.")


def rotate_rows(model: type[models.Model], names: list[str]) -> int:
    """Other apps' encrypted rows (stored responses), found by field type since `tokens` imports no sibling app.
    Their rows are written once and never edited, so no lock is needed: a row deleted meanwhile is skipped."""
    count = 0
    for row in model.objects.only("pk", *names).iterator(chunk_size=100):
        count += model.objects.filter(pk=row.pk).update(**{name: getattr(row, name) for name in names})
    return count
