"""What the repetition penalty covers, on hand-made token ids: the reply's recent tokens, less those that go on
quoting the prompt where the reply has not quoted that part yet; or 42dot's scope, everything."""

from llm42.gen.penalty import Scope

PROMPT = [1, 2, 3, 4, 5, 6, 7, 8, 9]  # a text (1-7), then the template's tail (8 9)


def scope_after(reply: list[int], last_n: int = 64, prompt=PROMPT) -> Scope:
    s = Scope(50, "cpu", prompt, last_n)
    for token in reply:
        s.add(token)
    return s


def test_a_reply_quoting_the_prompt_is_not_penalized_for_going_on_quoting():
    assert scope_after([]).tokens() == []  # the prompt is not in scope: a reply may use its words
    assert sorted(scope_after([2, 3, 4, 3, 4]).tokens()) == [2, 3, 4]  # the reply's own repeats are
    s = scope_after([4, 1, 2, 3])  # 4 is in the reply already, but after "1 2 3" it goes on quoting the prompt
    assert sorted(s.tokens()) == [1, 2, 3]
    s = scope_after([2, 3, 4, 5, 6, 2, 3, 4])  # "2 3 4 5 6" quoted, then "2 3 4" again: 5 now would be a loop
    assert 5 in s.tokens()
    s = scope_after([1, 2, 3, 4, 5, 6, 7, 1, 2, 3])  # the whole text quoted, then its start again
    assert 4 in s.tokens()


def test_a_repeated_stretch_of_the_prompt_can_be_quoted_once_per_place():
    prompt = [1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 9]  # the same sentence twice in the prompt
    assert 4 not in scope_after([1, 2, 3, 4, 1, 2, 3], prompt=prompt).tokens()  # its second place
    assert 4 in scope_after([1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3], prompt=prompt).tokens()  # a third time: no place left


def test_the_window_keeps_the_reply_s_last_n_tokens():
    s = scope_after([20, 21, 22, 21], last_n=3)
    assert sorted(s.tokens()) == [21, 22]  # 20 left the window; 21 twice counts once
    s.add(23)
    assert sorted(s.tokens()) == [21, 22, 23]
    assert scope_after([20, 20, 21], last_n=0).tokens() == []  # nothing: the penalty has nothing to act on


def test_42dots_scope_is_every_token_of_the_prompt_and_the_reply():
    s = scope_after([20, 2, 21], last_n=-1)
    assert sorted(s.tokens()) == sorted({*PROMPT, 20, 21})
    assert sorted(s.tensor().tolist()) == sorted(s.tokens())
