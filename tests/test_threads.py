"""The decode thread count follows the machine: a simulated CPU whose step times change when another process
takes a core, driven through the real chooser (which sets PyTorch's threads as it goes)."""

import subprocess
import sys
import time

import pytest
import torch

from llm42.cpu import threads
from llm42.cpu.flags import cpu_threads
from llm42.cpu.threads import EARLY, LONGEST, LOOK, ThreadChooser

QUIET = {1: 0.017, 2: 0.010}  # a quiet 2-core machine: two threads win
BUSY = {1: 0.020, 2: 0.060}  # one core held by another process: every parallel region waits for it


@pytest.fixture(autouse=True)
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def run(chooser: ThreadChooser, machine: dict[int, float], steps: int) -> list[int]:
    used = []
    for _ in range(steps):
        n = chooser.threads()
        assert torch.get_num_threads() == n
        chooser.record(machine[n])
        used.append(n)
    return used


def test_a_quiet_machine_keeps_every_core_and_pays_little_for_trials():
    used = run(ThreadChooser(2), QUIET, 2000)
    assert used[-1] == 2
    assert used.count(1) / len(used) < 0.03  # trials grow rare while they confirm the choice


def test_a_busy_core_is_left_alone_soon_and_taken_back_when_it_frees():
    chooser = ThreadChooser(2)
    run(chooser, QUIET, 500)
    busy = run(chooser, BUSY, 200)
    first = busy.index(1)
    assert first < 10 and busy[first:].count(2) / len(busy[first:]) < 0.1
    quiet = run(chooser, QUIET, 2 * LONGEST + 20)
    assert quiet[-1] == 2 and quiet[-LONGEST:].count(2) > 0.9 * LONGEST


def test_one_core_has_nothing_to_choose():
    assert set(run(ThreadChooser(1), QUIET, 50)) == {1}


def test_a_prefill_runs_on_the_chosen_count_even_mid_trial():
    chooser = ThreadChooser(2)
    run(chooser, QUIET, EARLY)  # the next step is the first of a trial, on one thread
    assert chooser.threads() == 1 and torch.get_num_threads() == 1
    assert chooser.settle() == 2 and torch.get_num_threads() == 2


def test_a_busy_core_at_the_start_is_left_alone_from_the_first_steps():
    """A first reply beside a busy process: the steps themselves leave the busy core within a few steps (it used
    to take 32 steps at half speed or worse before the first trial)."""
    used = run(ThreadChooser(2), BUSY, 40)
    first = used.index(1)
    assert first <= EARLY and used[first:].count(2) <= 4  # a later trial may look at two threads again


@pytest.mark.alone
@pytest.mark.skipif(cpu_threads() < 2, reason="one core: nothing to choose")
def test_before_a_reply_the_cores_other_processes_keep_busy_are_left_to_them():
    """The real OS counters: a process spinning on one core while the chat waits (the model loading, the user
    typing) makes the next reply start on the cores left; once it is gone, every core again."""
    most = cpu_threads()
    chooser = ThreadChooser(most)
    chooser.look()
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(LOOK * 3)
        assert chooser.look() == max(o for o in chooser.options if o <= most - 1)
        assert 0.6 < chooser.others < most
    finally:
        spinner.kill()
        spinner.wait()
    time.sleep(LOOK * 3)
    assert chooser.look() == most and chooser.others < 0.5
    assert chooser.look() == most  # a look right after another changes nothing


def test_a_quiet_machine_s_choice_is_kept_and_the_next_start_begins_on_it(monkeypatch):
    """What the trials chose while the OS's counters said the machine was quiet is kept (per machine and model
    shape, by the pacer); the next start on a quiet machine begins on it with no trial, and a process that takes a
    core mid-reply still moves it within a few steps. A start beside a busy process keeps nothing."""
    clock = [100.0, 0.0, 0.0]  # the counters: now, busy CPU seconds of this process's cores, this process's own
    monkeypatch.setattr(threads, "_cpu_seconds", lambda: tuple(clock))

    def start(kept, keep, busy=0.0) -> ThreadChooser:
        chooser = ThreadChooser(2, kept, keep)
        chooser.mark = tuple(clock)
        clock[0], clock[1] = clock[0] + 1, clock[1] + busy  # a second of the model loading
        chooser.look()
        return chooser

    kept = []
    busy = start(None, kept.append, busy=0.9)  # another process on a core: starts on one thread, keeps nothing
    run(busy, BUSY, 200)
    assert kept == []
    first = start(None, kept.append)
    assert 1 in run(first, QUIET, 40)[: EARLY + 2]  # nothing kept: a trial a few steps in
    assert kept == [{"quiet": 2}]
    second = start(kept[-1], kept.append)
    assert set(run(second, QUIET, LONGEST - 1)) == {2}  # no trial while the steps keep their first pace
    used = run(second, BUSY, 20)  # a process takes a core: steps of 60 ms against 10
    assert 1 in used[:6] and used[-1] == 1
