"""Outlier detection: the rule (`tokens.health`) and its evidence and ejections in both pool states."""

from __future__ import annotations

import pytest

from tests.tokens import test_state
from tests.tokens.test_state import NOW, TTL, run
from tokens.health import Ejection, Evidence, Stats, judge, most_ejected
from tokens.state import ANY_MODEL, Candidate, PoolState, Refusal

WINDOW = 60.0
state = test_state.state  # the same fixture: every test below runs in memory and in Redis


# -- the rule --------------------------------------------------------------------------------------
def test_an_always_failing_credential_among_clean_peers_is_an_outlier():
    verdict = judge(Evidence(Stats(5, 5, 5), Stats(5, 0, 0)))
    assert isinstance(verdict, Ejection) and verdict.seconds == 30
    assert "5 failures in a row" in verdict.reason and "0% of 5" in verdict.reason


@pytest.mark.parametrize(
    "own, peers",
    [
        (Stats(6, 6, 6), Stats(12, 4, 0)),  # an unlucky streak at the peers' own failure rate (prompt failures)
        (Stats(20, 20, 20), Stats(0, 0, 0)),  # no peers: nothing says it is the credential's
        (Stats(20, 20, 20), Stats(4, 0, 0)),  # peers with too few requests
        (Stats(4, 4, 4), Stats(50, 0, 0)),  # too few requests of its own
        (Stats(40, 12, 4), Stats(50, 0, 0)),  # failing often, but not now in a row
        (Stats(30, 30, 30), Stats(30, 30, 0)),  # everything fails: the upstream, not the credential
        (Stats(100, 55, 5), Stats(100, 20, 0)),  # worse than its peers, not well above them
    ],
)
def test_no_outlier_without_evidence_that_it_is_the_credentials(own, peers):
    assert judge(Evidence(own, peers)) is None


def test_ejection_time_grows_with_recent_ejections_up_to_the_cap():
    seconds = [judge(Evidence(Stats(9, 9, 9), Stats(9, 0, 0), n)).seconds for n in (0, 1, 2, 50)]
    assert seconds == [30, 60, 90, 300]


@pytest.mark.parametrize("serving, most", [(1, 1), (2, 1), (3, 1), (4, 2), (10, 5)])
def test_at_most_half_of_the_serving_credentials_are_ejected(serving, most):
    assert most_ejected(serving) == most


# -- the evidence, in memory and in Redis ----------------------------------------------------------
async def outcomes(state: PoolState, cred_id: int, pattern: str, now: float = NOW) -> Evidence | None:
    """Record `pattern` ('x' a failure, '.' a success) for `cred_id` with peers 2 and 3; the last evidence."""
    found = None
    for mark in pattern:
        found = await state.note_outcome(cred_id, mark == "x", now, WINDOW, [2, 3])
    return found


def test_evidence_counts_the_window_and_the_failures_in_a_row(state):
    async def scenario() -> None:
        assert await outcomes(state, 2, "..x.") is None  # a success reports nothing
        await outcomes(state, 3, "xx..")
        assert await outcomes(state, 1, "x.xxx") == Evidence(Stats(5, 4, 3), Stats(8, 3, 0))
        await outcomes(state, 1, "x", now=NOW + 50)
        # the first bucket falls out of the window, the run of failures goes on; the peers fell silent
        assert await outcomes(state, 1, "x", now=NOW + 65) == Evidence(Stats(2, 2, 5), Stats())
        # a whole window without requests forgets everything
        assert await outcomes(state, 1, "x", now=NOW + 125) == Evidence(Stats(1, 1, 1), Stats())

    run(state, scenario)


def test_ejections_are_capped_and_remembered(state):
    serving = [1, 2, 3, 4]

    async def eject(cred_id: int, now: float = NOW, until: float = NOW + 30) -> bool:
        others = [o for o in serving if o != cred_id]
        return await state.eject(cred_id, others, now, until, 2, until + 300)

    async def scenario() -> None:
        assert await eject(1) and await eject(2)
        assert not await eject(1)  # already out
        assert not await eject(3)  # two of four are out: MAX_EJECTION_PERCENT
        assert await eject(3, now=NOW + 31, until=NOW + 91)  # the first two are back in
        evidence = await outcomes(state, 1, "x", now=NOW + 31)
        assert evidence is not None and evidence.ejections == 1
        evidence = await outcomes(state, 1, "x", now=NOW + 400)  # remembered until 300 s after it ended
        assert evidence is not None and evidence.ejections == 0

    run(state, scenario)


def test_a_pick_skips_ejected_credentials_unless_all_are(state):
    two = [Candidate(1), Candidate(2)]

    async def pick(cands: list[Candidate], lease: str) -> int | Refusal:
        return await state.acquire(cands, "m1", lease, NOW, TTL, None)

    async def scenario() -> None:
        assert await state.eject(1, [2], NOW - 1, NOW + 30, 1, NOW + 330)
        assert {await pick(two, f"a{i}") for i in range(4)} == {2}
        assert await pick([Candidate(1), Candidate(2, excluded=True)], "b") == 1  # panic: only 1 is left
        assert await pick([Candidate(1), Candidate(3, limit=1)], "c") == 3
        assert await pick([Candidate(1), Candidate(3, limit=1)], "d") == Refusal(busy=True)  # waits, no panic
        await state.cool_down(1, ANY_MODEL, NOW + 10)
        assert await pick([Candidate(1)], "e") == Refusal(cooling_for=pytest.approx(10))  # cooldowns hold

    run(state, scenario)


def test_lifted_ejections_end_at_once_and_stay_counted(state):
    async def scenario() -> None:
        assert await state.eject(1, [2], NOW - 1, NOW + 30, 1, NOW + 330)
        await state.lift_ejections([1, 3])  # 3 was never ejected: nothing to do
        assert await state.acquire([Candidate(1), Candidate(2)], "m1", "a", NOW, TTL, 0.0) == 1
        evidence = await outcomes(state, 1, "x", now=NOW + 1)
        assert evidence is not None and evidence.ejections == 1  # the next ejection still lasts longer

    run(state, scenario)
