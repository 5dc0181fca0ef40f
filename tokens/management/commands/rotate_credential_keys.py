from __future__ import annotations

from django.core.management.base import BaseCommand

from tokens.services import rotate_encryption


class Command(BaseCommand):
    help = "Re-encrypt every stored secret with the first key of CREDENTIAL_KEYS."

    def handle(self, *args, **options) -> None:
        count = rotate_encryption()
        self.stdout.write(f"Re-encrypted the secrets of {count} credential(s) with the current key.")
