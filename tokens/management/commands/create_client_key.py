from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from tokens.clients import create_key, describe_limits, parse_globs

LIMITS = ("rpm", "tpm", "max_concurrency", "daily_tokens", "monthly_tokens")


class Command(BaseCommand):
    help = "Create a client key with its limits (0 = unlimited); the key is printed once, alone on the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="who the key is for; unique")
        parser.add_argument("--models", default="", help="allowed model names or globs, comma-separated (all)")
        parser.add_argument("--rpm", type=int, default=0, help="requests per minute")
        parser.add_argument("--tpm", type=int, default=0, help="tokens per minute")
        parser.add_argument("--max-concurrency", type=int, default=0, help="requests at once")
        parser.add_argument("--daily-tokens", type=int, default=0, help="tokens per day (TIME_ZONE)")
        parser.add_argument("--monthly-tokens", type=int, default=0, help="tokens per month (TIME_ZONE)")
        parser.add_argument("--expires", default="", help="ISO date or date-time; a date means its midnight")

    def handle(self, *args: Any, name: str, models: str, expires: str, **options: Any) -> None:
        negative = [f"--{limit.replace('_', '-')}" for limit in LIMITS if options[limit] < 0]
        if negative:
            raise CommandError(f"{', '.join(negative)}: must be 0 (unlimited) or more.")
        try:
            row, key = create_key(
                name,
                allowed_models=parse_globs(models),
                expires_at=expiry(expires) if expires else None,
                **{limit: options[limit] for limit in LIMITS},
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        expires_text = f"expires {row.expires_at.isoformat()}" if row.expires_at else "never expires"
        self.stdout.write(f"Created client key {row.name!r} ({row.prefix}…), {expires_text}.")
        self.stdout.write(f"Models: {', '.join(row.allowed_models) or 'all'}. Limits: {describe_limits(row)}.")
        self.stdout.write("Hand over this key now; it is not stored and cannot be shown again:")
        self.stdout.write(key)


def expiry(value: str) -> datetime:
    """An ISO date or date-time; without an offset it is read in `TIME_ZONE`."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"--expires: not an ISO date or date-time: {value!r}") from exc
    parsed = parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed)
    if parsed <= timezone.now():
        raise CommandError(f"--expires: {value} is already past.")
    return parsed
