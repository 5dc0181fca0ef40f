"""Stacked bar charts of the daily roll-ups as plain geometry, drawn as inline SVG by the admin's template: the
machine may be offline, so no JavaScript library and no CDN."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7")
OTHER, OTHER_COLOR = "other models", "#9aa0a6"
WIDTH, HEIGHT = 1040, 230
LEFT, RIGHT, TOP, BOTTOM = 52, 8, 12, 26  # room for the axis labels


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    color: str
    tip: str


@dataclass(frozen=True, slots=True)
class Tick:
    at: float
    label: str


@dataclass(slots=True)
class Chart:
    title: str
    bars: list[Bar] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    baseline: int = HEIGHT - BOTTOM


def colors(rows: Sequence[dict]) -> dict[str, str]:
    """One color per model, the busiest first; past the palette the rest share `OTHER`'s."""
    requests: dict[str, int] = defaultdict(int)
    for row in rows:
        requests[row["model"]] += row["requests"]
    busiest = sorted(requests, key=lambda model: (-requests[model], model))
    if len(busiest) > len(PALETTE):
        busiest = busiest[: len(PALETTE) - 1]
    return {model: PALETTE[i] for i, model in enumerate(busiest)}


def legend(palette: dict[str, str], rows: Sequence[dict]) -> list[tuple[str, str]]:
    """(color, name) pairs, `OTHER` last when some model has no color of its own."""
    entries = [(color, model or "(no model)") for model, color in palette.items()]
    if any(row["model"] not in palette for row in rows):
        entries.append((OTHER_COLOR, OTHER))
    return entries


def stacked(rows: Sequence[dict], days: Sequence[date], metric: str, unit: str, palette: dict[str, str]) -> Chart:
    """Bars per day of `metric`, stacked by model in `palette` order (rows: `tokens.usage.daily`)."""
    values: dict[date, dict[str, int]] = {day: defaultdict(int) for day in days}
    for row in rows:
        if row["day"] in values:
            values[row["day"]][row["model"] if row["model"] in palette else OTHER] += row[metric]
    top, step = _scale(max((sum(v.values()) for v in values.values()), default=0))
    chart = Chart(title=f"{unit.capitalize()} per day")
    slot, scale = (chart.right - chart.left) / len(days), (chart.baseline - TOP) / top
    for i, day in enumerate(days):
        x = chart.left + (i + 0.15) * slot
        chart.bars += _stack(values[day], x, slot * 0.7, chart.baseline, scale, palette, f"{day:%a %d %b}", unit)
        chart.x_ticks.append(Tick(round(x + slot * 0.35, 1), _day_label(day, first=i == 0)))
    ticks = range(top // step + 1)
    chart.y_ticks = [Tick(round(chart.baseline - n * step * scale, 1), short(n * step)) for n in ticks]
    return chart


def _stack(
    values: dict[str, int], x: float, width: float, y: float, scale: float, palette: dict[str, str], day: str, unit: str
) -> list[Bar]:
    """One day's bar, a segment per model from the bottom up."""
    bars = []
    for model in (m for m in [*palette, OTHER] if values.get(m)):
        height = values[model] * scale
        y -= height
        tip = f"{day} · {model or '(no model)'}: {values[model]:,} {unit}"
        color = palette.get(model, OTHER_COLOR)
        bars.append(Bar(round(x, 1), round(y, 1), round(width, 1), round(height, 1), color, tip))
    return bars


def _scale(peak: int) -> tuple[int, int]:
    """A round top of the axis at or above `peak`, and a round step that gives four or five gridlines."""
    if peak <= 0:
        return 4, 1
    magnitude = 10 ** math.floor(math.log10(max(peak / 4, 1)))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude * 5 >= peak)
    return step * math.ceil(peak / step), step


def _day_label(day: date, first: bool) -> str:
    return f"{day:%b} {day.day}" if first or day.day == 1 else str(day.day)


def short(n: int) -> str:
    """1234 → 1.2k, 3000000 → 3M: axis labels stay narrow."""
    for size, suffix in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if n >= size:
            return f"{n / size:.1f}".removesuffix(".0") + suffix
    return str(n)
