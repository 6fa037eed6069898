"""Stop strings: held while they might start, dropped when complete, released when not."""

from llm42.gen.stops import StopFilter


def run(chunks, stops=("<human>:",)):
    f, shown = StopFilter(stops), []
    for c in chunks:
        text, hit = f.feed(c)
        shown.append(text)
        if hit:
            return shown, True
    shown.append(f.flush())
    return shown, False


def test_marker_split_over_tokens_is_never_shown():
    shown, hit = run(["답변입니다.", " <", "hu", "man", ">:", " 다음"])
    assert hit and "".join(shown) == "답변입니다. "
    assert all("<" not in s for s in shown)


def test_false_start_is_released():
    shown, hit = run(["a <", "b> c"])
    assert not hit and "".join(shown) == "a <b> c"
    assert shown[0] == "a "  # "<" held until it is known not to be "<human>:"


def test_no_stop_strings_passes_through():
    assert run(["x<hu", "man>:"], stops=()) == (["x<hu", "man>:", ""], False)


def test_held_tail_flushed_at_the_end():
    shown, hit = run(["끝 <hum"])
    assert not hit and shown == ["끝 ", "<hum"]
