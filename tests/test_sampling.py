"""Sampling on hand-made logits, no model needed: the distribution llm42 draws from is transformers' own."""

import pytest
import torch
from transformers.generation.logits_process import (
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from llm42.cpu import native
from llm42.gen import sampling
from llm42.gen.penalty import Scope
from llm42.gen.sampling import pick
from llm42.settings import SamplingSettings


def settings(**kw):
    base = dict(temperature=1.0, top_p=1.0, top_k=0, repetition_penalty=1.0)
    base.update(kw)
    return SamplingSettings(**base)


def hf_probs(logits: torch.Tensor, seen: list[int], s: SamplingSettings) -> torch.Tensor:
    """What transformers' generate samples from: its processors in its order, then softmax."""
    steps = LogitsProcessorList()
    if s.repetition_penalty != 1.0:
        steps.append(RepetitionPenaltyLogitsProcessor(s.repetition_penalty))
    steps.append(TemperatureLogitsWarper(s.temperature))
    if s.top_k:
        steps.append(TopKLogitsWarper(s.top_k))
    if s.top_p < 1:
        steps.append(TopPLogitsWarper(s.top_p))
    return torch.softmax(steps(torch.tensor([seen]), logits[None].clone()), dim=-1)[0]


def ours_probs(logits: torch.Tensor, seen: list[int], s: SamplingSettings) -> torch.Tensor:
    scope = torch.tensor(seen)  # as transformers' processor takes them: every token given, repeats too
    drawn = pick(logits, s, scope, torch.Generator().manual_seed(0), explain=True)
    out = torch.zeros(logits.shape[0])
    out[drawn.ids] = drawn.probs
    return out


@pytest.fixture(params=["llm42", "pytorch"])
def path(request, monkeypatch):
    """Where the distribution is computed on the CPU: llm42's kernel (native.sample_dist, where it is built) or the
    PyTorch operations that run everywhere else (a GPU's logits, a top-k over 64, no C compiler)."""
    if request.param == "llm42" and native.library() is None:
        pytest.skip("llm42's C kernels are not built here")
    if request.param == "pytorch":
        monkeypatch.setattr(sampling, "_native", lambda *args: None)
    return request.param


@pytest.mark.parametrize(
    "s",
    [
        settings(temperature=0.5, top_p=0.95, top_k=20, repetition_penalty=1.2),  # 42dot's recommended settings
        settings(temperature=1.3, top_k=5),
        settings(temperature=0.7, top_p=0.5),
        settings(temperature=1.0, top_k=50, top_p=0.9, repetition_penalty=0.8),
        settings(temperature=2.0),
    ],
    ids=["42dot", "top-k", "top-p", "penalty<1", "plain"],
)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_the_distribution_equals_transformers_processors(s, dtype, path):
    g = torch.Generator().manual_seed(1)
    for trial in range(20):
        # bf16-rounded logits, as a bf16 model makes them: ties at the k-th score are common there
        logits = (torch.randn(3000, generator=g) * 3).bfloat16().float()
        seen = torch.randint(0, 3000, (40,), generator=g).tolist()  # repeats too: each id is penalized once
        expected, got = hf_probs(logits, seen, s), ours_probs(logits.to(dtype), seen, s)
        # each probability is a softmax over the same few values: equal up to float rounding of the sum
        assert torch.allclose(got.sort().values, expected.sort().values, rtol=1e-5, atol=1e-7), trial
        # the same candidates, ties at the k-th kept; where top-p cuts between tokens of exactly equal score,
        # which of them stays is up to a sort (transformers' own sort breaks such ties differently by shape)
        differ = ((expected > 0) != (got > 0)).nonzero().flatten()
        tempered = hf_probs(logits, seen, settings(temperature=s.temperature, repetition_penalty=s.repetition_penalty))
        assert (expected > 0).sum() == (got > 0).sum() and len(set(tempered[differ].tolist())) <= 1, trial


def test_ties_at_the_kth_score_are_all_kept(path):
    logits = torch.tensor([5.0, 4.0, 3.0, 3.0, 3.0, 1.0])
    drawn = pick(logits, settings(top_k=3), explain=True)
    assert sorted(drawn.ids.tolist()) == [0, 1, 2, 3, 4]  # TopKLogitsWarper keeps every score >= the 3rd


def test_greedy_takes_the_first_of_equal_scores_after_the_penalty(path):
    logits = torch.tensor([1.0, 3.0, 2.5, 3.0, -1.0] + [0.0] * 30).bfloat16()  # 35: a tail past blocks of 16
    assert pick(logits, settings(temperature=0)).token == 1  # as argmax: the first of the highest
    seen = torch.tensor([1, 1, 3])
    penalized = settings(temperature=0, repetition_penalty=1.5)
    assert pick(logits, penalized, seen).token == 2  # 1 and 3 now 2.0, once each
    logits[[20, 33]] = 2.5
    assert pick(logits, penalized, seen).token == 2
    logits[34] = 2.6
    assert pick(logits, penalized, seen).token == 34


def test_logits_that_are_not_numbers_leave_the_kernel_to_pytorch():
    logits = torch.full((40,), float("nan"))
    assert sampling._native(logits, settings(temperature=0.5, top_k=5), None) is None
    assert pick(logits, settings(temperature=0)).token == 0  # PyTorch's argmax: NaN is the highest


def test_draws_follow_the_distribution():
    """Over many draws the frequencies match the probabilities (a chi-square bound at 1e-6 false alarms)."""
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05, 1e-9]))
    g = torch.Generator().manual_seed(3)
    n = 20000
    counts = torch.bincount(torch.tensor([pick(logits, settings(), generator=g).token for _ in range(n)]), minlength=5)
    p = torch.tensor([0.5, 0.3, 0.15, 0.05])
    chi2 = float((((counts[:4] - n * p) ** 2) / (n * p)).sum())
    assert chi2 < 30.0 and counts[4] == 0  # 3 degrees of freedom: P(chi2 > 30) < 2e-6


def test_temperature_zero_is_argmax_every_time():
    logits = torch.tensor([1.0, 3.0, 2.9, -1.0])
    assert {
        pick(logits, settings(temperature=0), generator=torch.Generator().manual_seed(i)).token for i in range(50)
    } == {1}


def test_top_k_one_is_argmax_even_when_hot():
    logits = torch.tensor([1.0, 3.0, 2.9, -1.0])
    assert {
        pick(logits, settings(temperature=5.0, top_k=1), generator=torch.Generator().manual_seed(i)).token
        for i in range(50)
    } == {1}


def test_top_p_keeps_the_smallest_set_over_p():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.2]))  # p=0.7 keeps the first two only
    assert {
        pick(logits, settings(top_p=0.7), generator=torch.Generator().manual_seed(i)).token for i in range(200)
    } == {0, 1}


def test_repetition_penalty_turns_greedy_away_from_a_repeat():
    logits = torch.tensor([2.0, 1.5, 0.0])
    seen = Scope(3, "cpu", [0], last_n=-1).tensor()
    assert pick(logits, settings(temperature=0, repetition_penalty=2.0), seen).token == 1
    assert pick(logits, settings(temperature=0, repetition_penalty=1.0), seen).token == 0


def test_same_seed_same_draws():
    logits = torch.randn(100, generator=torch.Generator().manual_seed(0))
    s = settings()
    a = [pick(logits, s, generator=g).token for g in [torch.Generator().manual_seed(7)] for _ in range(20)]
    b = [pick(logits, s, generator=g).token for g in [torch.Generator().manual_seed(7)] for _ in range(20)]
    assert a == b and len(set(a)) > 1
