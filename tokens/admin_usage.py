"""The admin's usage pages: the request log (read-only, filtered, exported as CSV) and the daily roll-ups, whose list
is the usage page: the last 30 days of one client key (`?key_id=N`), one credential (`?credential_id=N`) or all,
charted per day and model.

Credentials are named by their label or their masked `__str__`, never by a secret."""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from datetime import date, timedelta
from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html

from common.db import in_thread
from tokens import usage, usage_chart
from tokens.models import Credential, DailyUsage, RequestLog

CHART_DAYS = 30
CSV_CHUNK = 2000
CSV_HEADER = (
    *("time", "key", "endpoint", "model", "credential", "kind", "status", "outcome"),
    *("prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens", "first_byte_ms", "duration_ms"),
    "request_id",
)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet would run such a cell as a formula


class ReadOnlyAdmin(admin.ModelAdmin):
    """History: viewed, never added, edited or deleted by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class ModelFilter(admin.SimpleListFilter):
    """The models of the roll-ups (a small table), not a scan of the whole log for its distinct values."""

    title, parameter_name = "model", "model"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> Iterable[tuple[str, str]]:
        models = DailyUsage.objects.values_list("model", flat=True).distinct().order_by("model")
        return [(name, name or "(no model)") for name in models]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset if self.value() is None else queryset.filter(model=self.value())


class StatusFilter(admin.SimpleListFilter):
    title, parameter_name = "status", "status"
    RANGES = {"2xx": (200, 299), "4xx": (400, 499), "429": (429, 429), "5xx": (500, 599)}

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> Iterable[tuple[str, str]]:
        return [("2xx", "2xx success"), ("4xx", "4xx refused"), ("429", "429 rate limited"), ("5xx", "5xx failed")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        low_high = self.RANGES.get(self.value() or "")
        return queryset if low_high is None else queryset.filter(status__range=low_high)


def credential_name(cred: Credential | None, cred_id: int | None) -> str:
    if cred is not None:
        return cred.label or str(cred)
    return f"#{cred_id} (deleted)" if cred_id else ""


def key_name(entry: RequestLog) -> str:
    return usage.key_label(entry.client_key_id or 0, entry.client_key.name if entry.client_key else None)


@admin.register(RequestLog)
class RequestLogAdmin(ReadOnlyAdmin):
    list_display = (
        *("time", "key", "endpoint", "model", "credential_column", "kind_code", "status", "outcome"),
        *("tokens", "cached", "reasoning", "ttfb", "duration", "short_request_id"),
    )
    list_filter = ("client_key", ModelFilter, "credential", StatusFilter, "outcome", "created_at")
    list_select_related = ("client_key", "credential")
    search_fields = ("=request_id",)  # the id a client quotes from its X-Request-Id header
    search_help_text = "An exact request id."
    list_per_page = 50
    show_full_result_count = False  # one COUNT of a big table per page is enough
    actions = ("export_selected",)

    @admin.display(description="time", ordering="created_at")
    def time(self, obj: RequestLog) -> str:
        return f"{timezone.localtime(obj.created_at):%Y-%m-%d %H:%M:%S}"

    @admin.display(description="key", ordering="client_key__name")
    def key(self, obj: RequestLog) -> str:
        return key_name(obj)

    @admin.display(description="credential")
    def credential_column(self, obj: RequestLog) -> str:
        return credential_name(obj.credential, obj.credential_id)

    @admin.display(description="kind", ordering="kind")
    def kind_code(self, obj: RequestLog) -> str:
        return obj.kind  # the short code: the choice's label would take three lines

    @admin.display(description="tokens in / out")
    def tokens(self, obj: RequestLog) -> str:
        return f"{obj.prompt_tokens:,} / {obj.completion_tokens:,}"

    @admin.display(description="cached", ordering="cached_tokens")
    def cached(self, obj: RequestLog) -> str:
        return f"{obj.cached_tokens:,}"

    @admin.display(description="reasoning", ordering="reasoning_tokens")
    def reasoning(self, obj: RequestLog) -> str:
        return f"{obj.reasoning_tokens:,}"

    @admin.display(description="TTFB", ordering="first_byte_ms")
    def ttfb(self, obj: RequestLog) -> str:
        return "" if obj.first_byte_ms is None else f"{obj.first_byte_ms:,} ms"

    @admin.display(description="duration", ordering="duration_ms")
    def duration(self, obj: RequestLog) -> str:
        return f"{obj.duration_ms:,} ms"

    @admin.display(description="request id", ordering="request_id")
    def short_request_id(self, obj: RequestLog) -> str:
        """Its ends, enough to tell requests apart; the whole id on hover, on the detail page and in the CSV."""
        rid = obj.request_id
        return format_html('<span title="{}">{}</span>', rid, f"{rid[:10]}…{rid[-4:]}" if len(rid) > 16 else rid)

    @admin.action(description="Export selected as CSV", permissions=["view"])
    def export_selected(self, request: HttpRequest, queryset: QuerySet[RequestLog]) -> StreamingHttpResponse:
        return csv_response(queryset)

    def get_urls(self) -> list[URLPattern]:
        name = f"{self.opts.app_label}_{self.opts.model_name}_export"
        return [path("export/", self.admin_site.admin_view(self.export_view), name=name), *super().get_urls()]

    def export_view(self, request: HttpRequest) -> HttpResponse:
        """The whole list as filtered on the page (the link carries the page's query string)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseRedirect(reverse("admin:tokens_requestlog_changelist") + "?e=1")
        return csv_response(changelist.get_queryset(request))


def csv_response(rows: QuerySet[RequestLog]) -> StreamingHttpResponse:
    """The rows newest first, read a chunk at a time: a big log never sits in memory."""
    response = StreamingHttpResponse(_csv_chunks(rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="request-log-{timezone.localdate():%Y%m%d}.csv"'
    return response


class _Echo:
    def write(self, line: str) -> str:
        return line


_csv = csv.writer(_Echo())


async def _csv_chunks(rows: QuerySet[RequestLog]) -> AsyncIterator[str]:
    """Keyset pages by descending id (no OFFSET): each page costs the same however deep the export is."""
    yield _csv.writerow(CSV_HEADER)
    rows = rows.select_related("client_key", "credential").order_by("-pk")
    after: int | None = None
    while page := await in_thread(_page, rows, after):
        yield "".join(_csv.writerow(_cells(entry)) for entry in page)
        after = page[-1].pk


def _page(rows: QuerySet[RequestLog], after: int | None) -> list[RequestLog]:
    return list((rows if after is None else rows.filter(pk__lt=after))[:CSV_CHUNK])


def _cells(e: RequestLog) -> list[Any]:
    when = timezone.localtime(e.created_at).isoformat(timespec="milliseconds")
    text = (key_name(e), e.endpoint, e.model, credential_name(e.credential, e.credential_id), e.kind)
    counts = (e.prompt_tokens, e.completion_tokens, e.cached_tokens, e.reasoning_tokens, e.first_byte_ms)
    return [when, *map(_safe, text), e.status, e.outcome, *counts, e.duration_ms, _safe(e.request_id)]


def _safe(value: str) -> str:
    """Client-chosen text (model names, request ids) must not become a formula when the file is opened."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


@admin.register(DailyUsage)
class DailyUsageAdmin(ReadOnlyAdmin):
    list_display = (
        *("day", "key", "credential", "model", "requests", "errors"),
        *("prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens"),
    )
    list_filter = (ModelFilter, "day")
    ordering = ("-day", "model")
    list_per_page = 100

    @admin.display(description="key", ordering="key_id")
    def key(self, obj: DailyUsage) -> str:
        return format_html('<a href="?key_id={}">{}</a>', obj.key_id, getattr(obj, "key_name", ""))

    @admin.display(description="credential", ordering="credential_id")
    def credential(self, obj: DailyUsage) -> str:
        if not obj.credential_id:
            return "—"
        return format_html('<a href="?credential_id={}">{}</a>', obj.credential_id, getattr(obj, "credential_name", ""))

    def get_changelist_instance(self, request: HttpRequest) -> ChangeList:
        """The page's key names and credential labels, one query each."""
        changelist = super().get_changelist_instance(request)
        rows = changelist.result_list
        keys = usage.key_names(row.key_id for row in rows)
        credentials = credential_names(row.credential_id for row in rows)
        for row in rows:
            row.key_name, row.credential_name = keys[row.key_id], credentials.get(row.credential_id, "")
        return changelist

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        key_id, cred_id = _int(request.GET.get("key_id")), _int(request.GET.get("credential_id"))
        days = [usage.today() - timedelta(days=n) for n in range(CHART_DAYS - 1, -1, -1)]
        rows = usage.daily(days[0], key_id, cred_id)
        palette = usage_chart.colors(rows)
        context = {
            "title": _title(key_id, cred_id),
            "charts": [
                usage_chart.stacked(rows, days, "requests", "requests", palette),
                usage_chart.stacked(rows, days, "total_tokens", "tokens", palette),
            ],
            "legend": usage_chart.legend(palette, rows),
            "per_day": _per_day(rows),
            "chart_days": CHART_DAYS,
        }
        return super().changelist_view(request, {**context, **(extra_context or {})})


def credential_names(ids: Iterable[int]) -> dict[int, str]:
    """Each id's label or masked name; a deleted credential's as `#id (deleted)`."""
    wanted = set(ids) - {0}
    found = {cred.pk: cred for cred in Credential.objects.filter(pk__in=wanted)}
    return {i: credential_name(found.get(i), i) for i in wanted}


def _title(key_id: int | None, cred_id: int | None) -> str:
    if key_id is not None:
        return f"Usage of client key {usage.key_names([key_id])[key_id]}"
    if cred_id is not None:
        return f"Usage of credential {credential_names([cred_id]).get(cred_id, '(none)')}"
    return "Usage of every key and credential"


def _per_day(rows: list[dict]) -> list[dict]:
    """The chart's days with any request, newest first, summed over the models."""
    days: dict[date, dict[str, Any]] = defaultdict(lambda: dict.fromkeys((*usage.COUNTERS, "total_tokens"), 0))
    for row in rows:
        for name in (*usage.COUNTERS, "total_tokens"):
            days[row["day"]][name] += row[name]
    return [{"day": day, **days[day]} for day in sorted(days, reverse=True)]


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None
