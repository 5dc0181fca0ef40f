"""The pool at a glance, for the operator's list: what each credential is now and how many of each kind are.

A stored `cooling` status stays on the row after its cooldowns end (the pool checks cooldowns at pick time and
does not write back when one ends), so what the operator sees is worked out here from the cooldowns themselves.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from tokens.models import Credential, Kind, Status
from tokens.services import cooldowns_of
from tokens.state import ANY_MODEL

# What the summary counts, in the order it shows them; `usable` and `cooling` are worked out, the rest stored.
STATES = ("usable", "cooling", Status.NEEDS_REFRESH, Status.REFRESHING, Status.INVALID, Status.DISABLED)
STATE_NAMES = {**{s.value: s.label.lower() for s in Status}, "usable": "usable", "cooling": "cooling"}


@dataclass(frozen=True)
class State:
    key: str  # one of STATES
    label: str
    details: tuple[str, ...] = ()  # the cooldowns still running: "3 min left" (all models), "gpt-4o 2 min"


@dataclass(frozen=True)
class KindCounts:
    kind: str
    counts: Counter[str]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def shown(self) -> list[tuple[str, str, int]]:
        """(state, name, count): usable always (none usable is the news), the others when there are any."""
        return [(s, STATE_NAMES[s], self.counts[s]) for s in STATES if s == "usable" or self.counts[s]]


def state_now(cred: Credential, now: float) -> State:
    """What a credential is now: "Active" once every cooldown of a `cooling` row has ended; "Cooling" with the
    cooldowns still running ("3 min left" for all models, "gpt-4o 2 min" for one)."""
    live = {model: until for model, until in cooldowns_of(cred).items() if until > now}
    if cred.status in (Status.ACTIVE, Status.COOLING):
        return State("cooling", "Cooling", cooldowns(live, now)) if live else State("usable", "Active")
    details = cooldowns(live, now) if cred.status == Status.NEEDS_REFRESH else ()
    return State(cred.status, Status(cred.status).label, details)


def cooldowns(live: dict[str, float], now: float) -> tuple[str, ...]:
    whole = [f"{span(live[ANY_MODEL] - now)} left"] if ANY_MODEL in live else []
    return (*whole, *(f"{model} {span(until - now)}" for model, until in sorted(live.items()) if model != ANY_MODEL))


def summary(now: float) -> list[KindCounts]:
    """Counts per kind and state of the whole pool (one query), kinds without credentials left out."""
    counts: dict[str, Counter[str]] = {kind: Counter() for kind in Kind.values}
    for cred in Credential.objects.only("kind", "status", "cooldown_until", "model_cooldowns"):
        counts[cred.kind][state_now(cred, now).key] += 1
    return [KindCounts(kind, found) for kind, found in counts.items() if found]


def cooldown_lines(cred: Credential, now: float) -> list[str]:
    """Each per-model cooldown as "gpt-4o until 14:05 (in 3 min)", or "(ended)" once it has."""
    lines = []
    for model, iso in sorted((cred.model_cooldowns or {}).items()):
        until = datetime.fromisoformat(iso)
        left = until.timestamp() - now
        lines.append(f"{model} until {clock(until)} ({f'in {span(left)}' if left > 0 else 'ended'})")
    return lines


# -- words for times and amounts --------------------------------------------------------------------------
def span(seconds: float) -> str:
    """A duration in its largest whole unit, rounded down: "40 s", "3 min", "5 h", "3 d" (a no-break space
    between number and unit, so that a narrow column never puts them on two lines)."""
    seconds = max(int(seconds), 0)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size}\u00a0{unit}"
    return f"{seconds}\u00a0s"


def relative(at: datetime | None, now: float, past: str = "") -> str:
    """Like "in 3 d" or "2 h ago" (after `past`, such as "expired "); empty for no time."""
    if at is None:
        return ""
    delta = at.timestamp() - now
    return f"in {span(delta)}" if delta > 0 else f"{past}{span(-delta)} ago"


def clock(at: datetime) -> str:
    """Like "14:05" in `TIME_ZONE`, with the day when it is not today."""
    local = timezone.localtime(at)
    return local.strftime("%H:%M" if local.date() == timezone.localdate() else "%b %d %H:%M")


def amount(n: int) -> str:
    """Like 950, 3.4k, 12k, 1.2M: rounded down, so that a shown amount has been reached."""
    for size, unit in ((10**9, "G"), (10**6, "M"), (10**3, "k")):
        if n >= size:
            whole = n / size
            return f"{math.floor(whole * 10) / 10:g}{unit}" if whole < 10 else f"{n // size}{unit}"
    return str(n)
