"""Credential health as outlier detection: when a transient failure is evidence against the credential.

A transient failure (403, 5xx, a timeout, a dropped or empty answer) looks the same whether the credential
or the prompt caused it: a prompt that makes the upstream fail once fails on whichever credential takes it
first, and succeeds on the next. Charging each such failure to the credential cooled whole pools. So, as a
load balancer's outlier detection does (Envoy's is the model), a credential is ejected only when it stands out
from its peers (the other credentials that serve the model), on evidence gathered over a sliding window of
`OUTLIER_WINDOW_SECONDS` in which successes count as much as failures. `judge` ejects when all of these hold:

- at least `OUTLIER_CONSECUTIVE_FAILURES` failures in a row (it is failing now, not just often);
- at least `OUTLIER_MIN_REQUESTS` requests for the credential and as many for its peers together (without
  peers, or peers without traffic, nothing says the failures are the credential's rather than the upstream's
  or the prompts', and ejecting the only credential would serve nobody: panic would use it anyway);
- its failure rate is at least `RATE_MARGIN` above the peers' (well above, not merely above: a credential a
  bit worse than the others is no outlier), and so unlikely at the peers' rate that chance is ruled out
  (one-sided binomial tail below `SIGNIFICANCE`). The peers' rate is Laplace-smoothed, (f + 1) / (n + 2),
  so that a few quiet peers are not read as a perfect record. With clean peers an always-failing credential
  is out after `OUTLIER_CONSECUTIVE_FAILURES` requests; when half the prompts fail once, a healthy
  credential (a third of its attempts fail, as its peers') would need about eight failures in a row
  before any success, at the very start of the window, to look like an outlier.

An ejection lasts `OUTLIER_BASE_EJECTION_SECONDS` times the number of recent ejections (capped at
`OUTLIER_MAX_EJECTION_SECONDS`); the count is forgotten once the credential stays in for as long as the cap.
At most `MAX_EJECTION_PERCENT` of the credentials serving the model are ejected at once (at least one may
be), and when every usable candidate is ejected the pool picks among them anyway (panic); both are enforced
atomically by the pool state (`tokens.state`). 401 and 429 are explicit signals handled elsewhere (invalid,
cooldown); they are not part of these statistics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.conf import settings

RATE_MARGIN = 0.5
SIGNIFICANCE = 1e-4
BUCKETS = 6  # the window is kept as this many time buckets: it slides by a sixth of its length


@dataclass(frozen=True, slots=True)
class Stats:
    """Requests and failures within the window; `consecutive` failures since the last success."""

    requests: int = 0
    failures: int = 0
    consecutive: int = 0

    @property
    def rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the pool state reports after a failure: the credential's stats, its peers' summed, and how many
    times it was ejected recently."""

    own: Stats
    peers: Stats
    ejections: int = 0


@dataclass(frozen=True, slots=True)
class Ejection:
    seconds: float
    reason: str


def judge(evidence: Evidence) -> Ejection | None:
    """Eject the credential when it is an outlier among its peers (see the module docstring); else None."""
    own, peers = evidence.own, evidence.peers
    least = settings.OUTLIER_MIN_REQUESTS
    if own.consecutive < settings.OUTLIER_CONSECUTIVE_FAILURES or own.requests < least or peers.requests < least:
        return None
    baseline = (peers.failures + 1) / (peers.requests + 2)
    if own.rate < baseline + RATE_MARGIN or _tail(own.requests, own.failures, baseline) >= SIGNIFICANCE:
        return None
    seconds = ejection_seconds(evidence.ejections)
    reason = (
        f"Ejected for {seconds:g} s as an outlier: {own.consecutive} failures in a row, {own.failures} of "
        f"{own.requests} requests failed against {peers.rate:.0%} of {peers.requests} for the other credentials"
    )
    return Ejection(seconds, reason)


def ejection_seconds(previous: int) -> float:
    """The base time times (recent ejections + 1), capped."""
    return min(settings.OUTLIER_BASE_EJECTION_SECONDS * (previous + 1), settings.OUTLIER_MAX_EJECTION_SECONDS)


def most_ejected(serving: int) -> int:
    """How many of the `serving` credentials may be ejected at once for transient failures (at least one)."""
    return max(1, serving * settings.MAX_EJECTION_PERCENT // 100)


def bucket_of(now: float, window: float) -> int:
    """The window's time bucket that `now` falls in; the live buckets are the last `BUCKETS` of them."""
    return math.floor(now * BUCKETS / window)


def _tail(n: int, failures: int, rate: float) -> float:
    """P(at least `failures` of `n` requests fail) when each fails with probability `rate` (0 < rate < 1)."""
    log_p, log_q = math.log(rate), math.log1p(-rate)
    terms = (
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q
        for i in range(failures, n + 1)
    )
    return min(1.0, sum(math.exp(t) for t in terms))
