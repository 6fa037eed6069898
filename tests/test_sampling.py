"""Sampling on hand-made logits: no model needed."""

import torch

from llm42.sampling import processors, sample
from llm42.settings import SamplingSettings

IDS = torch.tensor([[0, 1]])


def settings(**kw):
    base = dict(temperature=1.0, top_p=1.0, top_k=0, repetition_penalty=1.0)
    base.update(kw)
    return SamplingSettings(**base)


def test_temperature_zero_is_argmax_every_time():
    logits = torch.tensor([[1.0, 3.0, 2.9, -1.0]])
    s = settings(temperature=0)
    assert {sample(IDS, logits, s, torch.Generator().manual_seed(i)) for i in range(50)} == {1}


def test_top_k_one_is_argmax_even_when_hot():
    logits = torch.tensor([[1.0, 3.0, 2.9, -1.0]])
    s = settings(temperature=5.0, top_k=1)
    assert {sample(IDS, logits, s, torch.Generator().manual_seed(i)) for i in range(50)} == {1}


def test_top_p_keeps_the_smallest_set_over_p():
    # probabilities 0.5, 0.3, 0.2: p=0.7 keeps the first two only
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.2]]))
    s = settings(top_p=0.7)
    drawn = {sample(IDS[:, :0], logits, s, torch.Generator().manual_seed(i)) for i in range(200)}
    assert drawn == {0, 1}


def test_repetition_penalty_lowers_seen_tokens_like_hf():
    logits = torch.tensor([[2.0, -2.0, 1.0]])
    out = processors(settings(repetition_penalty=2.0, temperature=0))(torch.tensor([[0, 1]]), logits)
    assert out.tolist() == [[1.0, -4.0, 1.0]]  # positive divided, negative multiplied, unseen kept


def test_penalty_turns_greedy_away_from_a_repeat():
    logits = torch.tensor([[2.0, 1.5, 0.0]])
    assert sample(torch.tensor([[0]]), logits, settings(temperature=0, repetition_penalty=2.0)) == 1


def test_same_seed_same_draws():
    logits = torch.randn(1, 100, generator=torch.Generator().manual_seed(0))
    s = settings()
    a = [sample(IDS, logits, s, g) for g in [torch.Generator().manual_seed(7)] for _ in range(20)]
    b = [sample(IDS, logits, s, g) for g in [torch.Generator().manual_seed(7)] for _ in range(20)]
    assert a == b and len(set(a)) > 1
