from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tokens.importing import import_credentials


class Command(BaseCommand):
    help = "Import credentials, one a line (see tokens/importing.py); PATH `-` reads stdin."
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="a text file, or - for stdin")

    def handle(self, *args: Any, path: str, **options: Any) -> None:
        result = import_credentials(self._read(path, options.get("stdin") or sys.stdin))
        self.stdout.write(result.counts)
        for line_no, reason in result.errors:
            self.stderr.write(f"line {line_no}: {reason}")
        if result.errors:
            raise CommandError(f"{len(result.errors)} line(s) failed; the other lines were imported.")

    def _read(self, path: str, stdin: TextIO) -> str:
        if path == "-":
            return stdin.read()
        try:
            return Path(path).read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read {path}: {exc}") from exc
