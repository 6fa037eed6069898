"""Exact speculation: drafts from the conversation, verified several per pass, give the tokens (and at a seed the
draws) of plain decoding, leave the cache as plain decoding would, and are chosen only where they pay."""

import json
import math

import pytest
import torch

from llm42.bench.replay import oracle, replay
from llm42.gen import speculate
from llm42.gen.generate import generate_steps, open_cache
from llm42.gen.lookup import Lookup
from llm42.gen.speculate import PROBE_EVERY, STALE, Speculation
from llm42.settings import SamplingSettings

pytestmark = pytest.mark.slow  # end to end: the full suite and CI run it, the quick tier does not

GREEDY = SamplingSettings(temperature=0, repetition_penalty=1.0, max_new_tokens=60)
CHEAP = [1.0, 1.05, 1.1, 1.15, 1.2, 1.3, 1.4, 1.5, 1.6]  # verify costs in steps: weights dominate
ALWAYS = Speculation.seeing(CHEAP, rate=1 - 1e-6, passes=1e6)  # acceptance near 1: the longest drafts every time


def quote_prompt(tok) -> list[int]:
    text = (
        "Fix the typos: The quikc brown fox jumsp over the lazzy dog. The quikc brown fox jumsp over the lazzy dog "
        "again and again."
    )
    if tok.chat_template is None:  # the random 42dot-shape model: its text as it is
        return tok.encode(text * 3, add_special_tokens=False)
    return tok.apply_chat_template(
        [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True, return_dict=True
    )["input_ids"]


def run(cache, prompt, s, stop_ids, speculation=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    return list(generate_steps(cache, prompt, s, stop_ids, g, speculation=speculation))


def fresh(speculation: Speculation) -> Speculation:
    return Speculation(speculation.costs, list(speculation.reached), list(speculation.taken))


def test_lookup_drafts_what_followed_the_last_ngram_never_itself_never_past_a_stop():
    look = Lookup([5, 6, 7, 8, 9, 0, 5, 6], stop_ids={0})
    assert look.draft(3) == [7, 8, 9]  # after "5 6" came "7 8 9"
    assert look.draft(9) == [7, 8, 9]  # ... and then a stop token: the draft ends before it
    assert Lookup([1, 2, 3]).draft(4) == []  # "2 3" occurs only where the text ends: no match with itself
    look = Lookup([1, 2, 3, 4, 2, 3, 5, 1, 2, 3])
    assert look.draft(2) == [4, 2]  # the longest match wins: "1 2 3" (then "4 2"), not the later "2 3" (then "5")
    look.add(5)
    assert look.draft(2) == [1, 2]  # "2 3 5" was followed by "1 2"


def test_a_draft_goes_on_where_the_text_has_been_copying_from():
    text = [3, 4, 5, 6, 7, 8, 0, 5, 6, 7, 9, 0, 3, 4]  # "5 6 7" goes on as "8" in one place, "9" in a later one
    look = Lookup(text, stop_ids={0})
    assert look.draft(2) == [5, 6]  # after "3 4": copying the first place
    for token in (5, 6, 7):
        look.add(token)
    assert look.draft(2) == [8]  # ... which it still matches: not the later "5 6 7"
    assert Lookup([*text, 5, 6, 7], stop_ids={0}).draft(2) == [9]  # without that history: the latest occurrence
    look.add(1)  # the text leaves the copy: the n-grams decide again
    assert look.draft(2) == []


def test_a_copy_is_picked_up_again_after_the_reply_changes_a_word():
    text = [1, 2, 10, 11, 12, 13, 14, 15, 16, 0]  # a prompt quoting "10 .. 16", then the end of its turn
    look = Lookup(text, stop_ids={0})
    for token in (10, 11):
        look.add(token)
    assert look.draft(3) == [12, 13, 14]  # the reply copies the text
    for token in (99, 98, 13):  # ... fixes "12" into two tokens of its own, then goes on with the text
        look.add(token)
    assert look.draft(3) == [14, 15, 16]  # no n-gram of "99 98 13" is anywhere: "13" a little past "12" is
    assert look.draft(9) == [14, 15, 16]  # never past the end of a turn
    fresh_look = Lookup(text, stop_ids={0})
    for token in (10, 11, 99, 98, 13):  # the same reply without a draft before: it was copying all the same
        fresh_look.add(token)
    assert fresh_look.draft(3) == []  # no draft set the place, so nothing to pick up: only n-grams decide
    look.add(7)  # the reply leaves the text for good: the last token is not found past where it left
    assert look.draft(3) == []


@pytest.mark.parametrize("name", ["smollm2_loaded", "tiny42_loaded"])
def test_greedy_speculation_gives_the_tokens_of_plain_decoding(name, request):
    model, tok = request.getfixturevalue(name)
    prompt, stops = quote_prompt(tok), {tok.eos_token_id}
    cache = open_cache(model, 1024)
    plain = [st.token for st in run(cache, prompt, GREEDY, stops)]
    plain_ids = list(cache.ids)
    spec = fresh(ALWAYS)
    steps = run(cache, prompt, GREEDY, stops, spec)
    assert [st.token for st in steps] == plain
    assert cache.ids == plain_ids and cache.kv.n == len(plain_ids)  # what plain decoding would hold
    if name == "smollm2_loaded":  # a real model repeating the text: most drafts are accepted
        assert spec.drafted >= 10 and spec.accepted >= spec.drafted // 2, (spec.drafted, spec.accepted)
        assert sum(st.drafted for st in steps) == spec.drafted and sum(st.accepted for st in steps) == spec.accepted


def test_sampled_speculation_draws_the_same_reply_at_a_seed(smollm2_loaded):
    model, tok = smollm2_loaded
    prompt, stops = quote_prompt(tok), {tok.eos_token_id}
    cache = open_cache(model, 1024)
    drafted = 0
    for s in (SamplingSettings(max_new_tokens=40), SamplingSettings(repetition_penalty=1.0, max_new_tokens=40)):
        for seed in range(2):  # 42dot's defaults (temperature 0.5, top-k 20, top-p 0.95, penalty 1.2), and no penalty
            spec = fresh(ALWAYS)
            assert [st.token for st in run(cache, prompt, s, stops, spec, seed)] == [
                st.token for st in run(cache, prompt, s, stops, None, seed)
            ]
            drafted += spec.drafted
    assert drafted > 20  # the drafts were there to accept or reject


def test_sampled_speculation_has_plain_sampling_s_distribution(smollm2_loaded):
    """Other seeds with speculation on and off: the second and third tokens (drawn from a verify pass's rows
    where a draft was found, accepted or not) have the same distribution (chi-square, p = 0.001)."""
    model, tok = smollm2_loaded
    reply_so_far = tok.encode("The quikc brown fox jumsp over the", add_special_tokens=False)
    prompt, stops = quote_prompt(tok) + reply_so_far, {tok.eos_token_id}
    cache = open_cache(model, 1024)
    s = SamplingSettings(temperature=1.0, top_k=0, top_p=1.0, repetition_penalty=1.0, max_new_tokens=3)
    counts: list[dict[tuple, int]] = [{}, {}]
    spec = fresh(ALWAYS)
    n = 80
    for seed in range(n):
        for i, sp in enumerate((spec, None)):
            tokens = tuple(st.token for st in run(cache, prompt, s, stops, sp, seed + i * n)[1:])
            counts[i][tokens] = counts[i].get(tokens, 0) + 1
    assert spec.drafted > n // 2  # most came from verify passes
    keys = [k for k in set(counts[0]) | set(counts[1]) if counts[0].get(k, 0) + counts[1].get(k, 0) >= 10]
    rest = [n - sum(c.get(k, 0) for k in keys) for c in counts]
    table = [[c.get(k, 0) for k in keys] + [r] for c, r in zip(counts, rest)]
    stat = sum(
        (table[i][j] - (table[0][j] + table[1][j]) / 2) ** 2 / ((table[0][j] + table[1][j]) / 2)
        for i in range(2)
        for j in range(len(keys) + 1)
        if table[0][j] + table[1][j]
    )
    df = len(keys)  # (2 - 1) * (categories - 1), with the pooled rare ones as a category
    z = 3.09  # p = 0.001, one-sided; Wilson-Hilferty's approximation of the chi-square quantile
    critical = df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3
    assert df >= 2 and stat < critical, (stat, critical, table)


def test_the_prompt_cache_keeps_working_across_turns_after_speculation(smollm2_loaded):
    model, tok = smollm2_loaded
    prompt, stops = quote_prompt(tok), {tok.eos_token_id}
    cache = open_cache(model, 1024)
    reply = [st.token for st in run(cache, prompt, GREEDY, stops, fresh(ALWAYS))]
    follow = prompt + reply + tok.encode("\nAgain, please.", add_special_tokens=False)
    second = [st.token for st in run(cache, follow, GREEDY, stops, fresh(ALWAYS))]
    assert cache.reused >= len(prompt) + len(reply) - 1  # the first turn came from the cache
    assert second == [st.token for st in run(open_cache(model, 1024), follow, GREEDY, stops)]


def test_a_reader_that_stops_early_leaves_the_cache_plain_decoding_would(smollm2_loaded):
    model, tok = smollm2_loaded
    prompt, stops = quote_prompt(tok), {tok.eos_token_id}
    cache = open_cache(model, 1024)
    for taken in (3, 7, 12):
        held = []
        for speculation in (None, fresh(ALWAYS)):
            steps = generate_steps(cache, prompt, GREEDY, stops, speculation=speculation)
            for _ in range(taken):
                next(steps)
            steps.close()  # as when a stop string ends the reply, or Ctrl+C
            held.append((list(cache.ids), cache.kv.n))
        assert held[0] == held[1] and held[0][1] == len(prompt) + taken - 1


def test_the_draft_length_follows_acceptance_and_cost():
    costly = [1.0, 1.6, 2.2, 2.8, 3.4, 4.0, 4.6, 5.2, 5.8]  # compute-bound: each drafted token costs 0.6 steps
    open_chat = Speculation.seeing(costly, rate=0.1, passes=10)  # one in ten accepted
    assert [open_chat.choose() for _ in range(PROBE_EVERY - 1)] == [0] * (PROBE_EVERY - 1)
    assert open_chat.choose() == 1  # now and then one short draft tests whether acceptance has risen
    quoting = Speculation.seeing(CHEAP, rate=0.9, passes=10)
    assert quoting.choose() >= 4  # nine in ten accepted and cheap verifies: long drafts
    for _ in range(30):
        quoting.record(4, 0)  # the conversation stops repeating itself
    assert quoting.choose() == 0


def test_acceptance_is_tracked_per_position_in_the_draft():
    """A copied run is either off from its first token or right for a while: half the drafts wrong at once and
    half right throughout make the first position a coin toss and the later ones near certain, so long drafts pay
    even where each extra drafted token costs a third of a step."""
    spec = Speculation([1.0 + k / 3 for k in range(9)])
    for _ in range(20):
        spec.record(8, 0)
        spec.record(8, 8)
    rates = spec.rates()
    assert 0.4 < rates[0] < 0.6 and min(rates[1:]) > 0.85
    assert spec.choose() == 8


def test_a_learned_price_starts_the_costs_and_verifies_move_it():
    assert Speculation.learning(None).costs[1] == pytest.approx(1.25)  # nothing learned yet: the assumed price
    free = Speculation.learning({"price": 0.0})  # verifies that cost no more than a step, learned on an earlier start
    assert free.costs == [1.0] * 9
    kept = []
    spec = Speculation.learning(None, keep=kept.append)
    spec.stepped(0.010)
    for _ in range(5):
        spec.verified(4, 0.014)  # 4 drafts for 0.4 of a step: 0.1 per drafted token
    assert spec.price == pytest.approx(0.1) and spec.costs[8] == pytest.approx(1.8)
    assert kept == [{"price": spec.price, "own": {4: pytest.approx(1.4)}}]


def test_each_draft_length_learns_its_own_cost_and_the_chooser_follows():
    """Costs are no line: on two cores a 9-row verify can cost far more than 8 rows (its rows of x no longer go
    through the weights in one group). Where a length's own verifies say so, that is its cost, and a longer draft
    that costs more than it yields is not chosen."""
    kept = []
    spec = Speculation.learning(None, keep=kept.append)
    spec.stepped(0.010)
    for _ in range(5):
        spec.verified(2, 0.011)  # 0.05 per drafted token
    for _ in range(3):
        spec.verified(8, 0.026)  # 2.6 steps
    assert spec.price == pytest.approx(0.05)
    assert spec.costs[7] == pytest.approx(1.35) and spec.costs[8] == pytest.approx(2.6)  # the line, then its own
    for _ in range(30):
        spec.record(7, 7)  # every drafted token accepted
    assert spec.choose() == 7  # 8 tokens for 1.35 steps beat 9 for 2.6
    again = Speculation.learning(json.loads(json.dumps(kept[-1])))  # the next start, from the cache file
    assert again.costs == pytest.approx(spec.costs)


@pytest.mark.parametrize("kept", [0.2, "x", {"price": -1}, {"price": 0.1, "own": {"99": 2.0}}, {"own": {}}])
def test_kept_costs_that_do_not_read_as_costs_start_afresh(kept):
    assert speculate._valid(kept) is None  # an older start's single price, a hand-edited file


def test_a_replayed_reply_drafts_and_accepts_what_its_generation_did(smollm2_loaded):
    """`bench --replay` rests on this: a reply replayed through the drafter and the chooser at fixed costs drafts
    and accepts exactly what generating it with speculation did (the tokens never depend on drafting)."""
    model, tok = smollm2_loaded
    prompt, stops = quote_prompt(tok), {tok.eos_token_id}
    cache = open_cache(model, 1024)
    costs = [1.0 + 0.2 * k for k in range(9)]
    for s in (GREEDY, SamplingSettings(max_new_tokens=60)):
        spec = Speculation(list(costs))
        reply = [st.token for st in run(cache, prompt, s, stops, spec)]
        spent, plain, drafted, accepted = replay(prompt, reply, stops, costs, s.max_new_tokens)
        assert (drafted, accepted) == (spec.drafted, spec.accepted) and accepted > 0
        assert plain == len(reply) - 1 and spent < plain  # the quoted text paid
        assert oracle(prompt, reply, costs)[0] <= spent  # no drafter from the conversation beats the oracle


def test_the_oracle_drafts_each_next_stretch_found_in_the_conversation():
    costs = [1.0 + 0.5 * k for k in range(9)]
    assert oracle([1, 2, 3, 4, 5], [9, 1, 2, 3, 4, 5, 7], costs) == (1.0 + 0.5 * 5, 6)  # 1..5 drafted, 7 drawn
    assert oracle([1, 2, 3], [7, 8, 9], costs) == (2.0, 2)  # nothing to copy: plain steps


def test_a_cost_measured_high_is_measured_again_now_and_then():
    """A cost kept from an earlier start (older kernels, a busy minute) says 8 drafts cost 2.5 steps; they cost 1.4
    now. The chooser would never draft 8 again and so never learn it; it tries 8 once every STALE verifies while
    the price's line says 8 would pay, and follows what it measures: back to 8 where it is cheap, and at most once
    per STALE verifies where it really is dear."""

    def chat(spec: Speculation, cost_of, verifies: int) -> list[int]:
        spec.stepped(0.010)
        chosen = []
        for _ in range(verifies):
            k = spec.choose()
            spec.verified(k, 0.010 * cost_of(k))
            spec.record(k, k)  # every drafted token accepted
            chosen.append(k)
        return chosen

    cheap = Speculation.learning({"price": 0.05, "own": {"8": 2.5}})
    assert cheap.costs[8] == 2.5  # the kept cost stands until this start measures its own
    chosen = chat(cheap, lambda k: 1 + 0.05 * k, 3 * STALE)
    assert cheap.costs[8] == pytest.approx(1.4) and chosen[-STALE:] == [8] * STALE

    dear = Speculation.learning({"price": 0.05, "own": {"8": 2.5}})
    chosen = chat(dear, lambda k: 2.5 if k == 8 else 1 + 0.05 * k, 3 * STALE)
    assert dear.costs[8] == pytest.approx(2.5) and 1 <= chosen.count(8) <= 4 and chosen[-1] == 7
