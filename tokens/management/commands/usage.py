from __future__ import annotations

import json
from datetime import date, timedelta

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tokens import usage
from tokens.models import ClientKey, DailyUsage

COLUMNS = (
    *("requests", "errors", "prompt_tokens", "completion_tokens"),
    *("cached_tokens", "reasoning_tokens", "total_tokens"),
)
FIELDS = ("day", "key", "key_id", "model", *COLUMNS)
HEADINGS = ("requests", "errors", "prompt", "completion", "cached", "reasoning", "total")


class Command(BaseCommand):
    help = "Requests and tokens per day, client key and model, from the daily roll-ups (what has been flushed)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--key", metavar="NAME", help="Only this client key.")
        parser.add_argument(
            "--since", type=date.fromisoformat, metavar="DATE", help="First day (default: 30 days ago)."
        )
        parser.add_argument("--json", dest="as_json", action="store_true", help="A JSON list of rows, nothing else.")

    def handle(self, *args, key: str | None, since: date | None, as_json: bool, **options) -> None:
        rows = DailyUsage.objects.filter(day__gte=since or usage.today() - timedelta(days=30))
        if key is not None:
            rows = rows.filter(key_id=_key_id(key))
        report = usage.grouped(rows, "day", "key_id", "model")
        names = usage.key_names(row["key_id"] for row in report)
        for row in report:
            row["day"], row["key"] = row["day"].isoformat(), names[row["key_id"]]
        self.stdout.write(_as_json(report) if as_json else _as_table(report))


def _key_id(name: str) -> int:
    found = ClientKey.objects.filter(name=name).values_list("pk", flat=True).first()
    if found is None:
        raise CommandError(f"No client key named {name!r}.")
    return found


def _as_json(report: list[dict]) -> str:
    return json.dumps([{name: row[name] for name in FIELDS} for row in report], indent=2)


def _as_table(report: list[dict]) -> str:
    total = ["total", "", "", *(sum(r[c] for r in report) for c in COLUMNS)]
    body = [[r["day"], r["key"], r["model"], *(r[c] for c in COLUMNS)] for r in report]
    lines = [["day", "key", "model", *HEADINGS], *body, total]
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(lines[0]))]
    return "\n".join(_line(line, widths) for line in lines)


def _line(cells: list, widths: list[int]) -> str:
    text = [
        str(cell).ljust(w) if i < 3 else str(cell).rjust(w)
        for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
    ]
    return "  ".join(text).rstrip()
