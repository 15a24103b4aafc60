"""Stress tests: many threads, mixed operations and exact invariants, for every map configuration.

The scenarios live in _stress.py, which benchmarks/stress.py also runs,
longer. Sizes here are CI-sized; MAPSAFE_STRESS_SCALE=N multiplies them.
"""

from __future__ import annotations

import threading

import pytest

pytest.register_assert_rewrite("_stress")  # before the import: its asserts explain themselves too

import _stress as stress  # noqa: E402
from _stress import LOCKED_MAPS, MAPS, STATS_MAPS  # noqa: E402

ALL_MAPS = sorted(MAPS)


@pytest.fixture(autouse=True)
def frequent_switches():
    """Switch threads every few bytecodes so races show up under the GIL too."""
    with stress.switch_interval(1e-6):
        yield


@pytest.mark.parametrize("how", ["merge", "compute", "cas", "mixed"])
@pytest.mark.parametrize("config", ALL_MAPS)
def test_increments_from_every_thread_sum_exactly_per_key(config, how):
    stress.counters(MAPS[config], how=how)


@pytest.mark.parametrize("config", ALL_MAPS)
def test_compute_if_absent_runs_each_factory_once_under_a_barrier_race(config):
    stress.compute_if_absent_once(MAPS[config])


@pytest.mark.parametrize("config", ALL_MAPS)
def test_every_walk_during_mixed_writes_is_complete_and_never_repeats(config):
    stress.iteration(MAPS[config])


@pytest.mark.parametrize("config", ALL_MAPS)
def test_handed_off_tokens_are_a_permutation_of_those_written(config):
    stress.swap_handoff(MAPS[config])


@pytest.mark.parametrize("config", ALL_MAPS)
def test_store_if_absent_races_have_one_winner_that_everyone_sees(config):
    stress.first_writer_wins(MAPS[config])


@pytest.mark.parametrize("config", ALL_MAPS)
def test_tokens_moved_between_two_maps_are_conserved(config):
    stress.conservation(MAPS[config])


@pytest.mark.parametrize("config", ALL_MAPS)
def test_each_thread_sees_a_dict_on_its_own_keys_among_shared_shards(config):
    stress.disjoint_keys(MAPS[config])


@pytest.mark.parametrize("config", STATS_MAPS)
def test_stats_count_each_read_once_while_others_write(config):
    stress.stats_exact(MAPS[config])


@pytest.mark.parametrize("config", LOCKED_MAPS)
def test_lockedmap_transfers_keep_the_total_in_every_view(config):
    stress.locked_transactions(MAPS[config])


def test_rwlock_readers_see_consistent_state_and_writes_count_exactly():
    stress.rwlock_state()


def test_a_hung_thread_fails_the_run_instead_of_hanging_it():
    # The harness itself: every scenario relies on run_threads to turn a
    # deadlock into a failure, so check that it does.
    release = threading.Event()
    try:
        with pytest.raises(AssertionError, match=r"still running after .*\n--- stress-1"):
            stress.run_threads([lambda: None, lambda: release.wait(30)], timeout=0.2)
    finally:
        release.set()


def test_a_failing_thread_breaks_the_others_barrier_and_its_error_is_reported():
    barrier = threading.Barrier(2, timeout=30)

    def fails():
        raise ValueError("the cause")

    with pytest.raises(ValueError, match="the cause"):
        stress.run_threads([fails, barrier.wait], barriers=(barrier,))
