"""The inline thinking parser (``ponder.protocol.thinking``): whole texts and streams cut at every
place, CJK and digits, markers split across chunks, unclosed and template-opened thinking."""

from __future__ import annotations

import pytest

from ponder.protocol.thinking import (
    DEFAULT_MARKERS,
    Split,
    ThinkingSplitter,
    check_markers,
    joined,
    split_thinking,
)

THOUGHT = "让我想想：12 + 30 = 42，或许 \\boxed{99}？不对。"
ANSWER = "答案是 \\boxed{42}。"


@pytest.mark.parametrize(
    "text,expected",
    [
        (f"<think>\n{THOUGHT}\n</think>\n\n{ANSWER}", Split(THOUGHT, ANSWER)),
        (f"  <think>{THOUGHT}</think>{ANSWER}", Split(THOUGHT, ANSWER)),
        (f"{THOUGHT}\n</think>\n\n{ANSWER}", Split(THOUGHT, ANSWER)),  # template opened it
        (f"<think>\n{THOUGHT}", Split(THOUGHT, "")),  # unclosed: cut at max_tokens
        ("<think>\n\n</think>\n\n42", Split(None, "42")),  # empty block: no thinking
        (f"  {ANSWER}\n", Split(None, f"  {ANSWER}\n")),  # no thinking: unchanged
        ("The tag <think> is HTML-ish. 7", Split(None, "The tag <think> is HTML-ish. 7")),
        ("a <think>b</think> c", Split(None, "a <think>b</think> c")),  # not at the start
        ("", Split(None, "")),
        ("<think>a</think>b</think>c", Split("a", "b</think>c")),  # one block only
    ],
)
def test_split_whole_texts(text: str, expected: Split) -> None:
    assert split_thinking(text) == expected


def test_a_configured_marker_pair() -> None:
    markers = ("[[推理]]", "[[/推理]]")
    got = split_thinking(f"[[推理]]{THOUGHT}[[/推理]] {ANSWER}", markers)
    assert got == Split(THOUGHT, ANSWER)
    assert split_thinking(f"<think>{THOUGHT}</think>{ANSWER}", markers).thinking is None


def test_starts_thinking_reads_the_text_as_thinking_until_the_close() -> None:
    assert split_thinking("12 and 30</think>42", starts_thinking=True) == Split("12 and 30", "42")
    assert split_thinking("12 and 30", starts_thinking=True) == Split("12 and 30", "")


def stream(text: str, cuts: list[int], **kw: object) -> tuple[str, str, list[tuple[str, str]]]:
    s = ThinkingSplitter(**kw)  # type: ignore[arg-type]
    parts = []
    prev = 0
    for c in [*cuts, len(text)]:
        parts.append(s.feed(text[prev:c]))
        prev = c
    parts.append(s.finish())
    return "".join(t for t, _ in parts), "".join(a for _, a in parts), parts


TEXTS = [
    f"<think>\n{THOUGHT}\n</think>\n\n{ANSWER}",
    f"<think>{THOUGHT}   more 123 </think>   {ANSWER}",
    f"<think>\n{THOUGHT}",
    f"  {ANSWER}",
    "<thin is not a marker",
    "<think>a < b </thi nk </think>2",
]


@pytest.mark.parametrize("text", TEXTS)
def test_a_stream_cut_anywhere_gives_the_whole_texts_split(text: str) -> None:
    whole = split_thinking(text)
    for i in range(len(text) + 1):
        for j in range(i, min(len(text), i + 9) + 1):  # two cuts: markers split three ways
            thinking, answer, _ = stream(text, [i, j])
            assert (thinking or None, answer) == (whole.thinking, whole.answer), (i, j)


@pytest.mark.parametrize("text", TEXTS)
def test_a_stream_one_character_at_a_time(text: str) -> None:
    thinking, answer, _ = stream(text, list(range(1, len(text))))
    whole = split_thinking(text)
    assert (thinking or None, answer) == (whole.thinking, whole.answer)


def test_a_stream_gives_out_thinking_before_the_close_marker_arrives() -> None:
    s = ThinkingSplitter()
    assert s.feed("<th") == ("", "")
    assert s.feed("ink>\n思考 1") == ("思考 1", "")
    assert s.feed("2 </th") == ("2", "")  # the space may end the thinking: held
    assert s.feed("ink>\n\n答") == ("", "答")
    assert s.feed("案 42") == ("", "案 42")
    assert s.finish() == ("", "")
    assert s.saw_thinking and s.thinking_text == "思考 12"


def test_a_stream_with_no_thinking_passes_the_answer_through() -> None:
    s = ThinkingSplitter()
    assert s.feed("  ") == ("", "")  # may still open a thinking block
    assert s.feed("42 is") == ("", "  42 is")
    assert s.feed(" <think>x</think>") == ("", " <think>x</think>")
    assert not s.saw_thinking


def test_a_stream_the_template_opened() -> None:
    thinking, answer, _ = stream("想 1</think>2", [2, 5], starts_thinking=True)
    assert (thinking, answer) == ("想 1", "2")


@pytest.mark.parametrize("bad", [("", "x"), ("x",), ("a", "a"), ("a", "b", "c")])
def test_bad_marker_pairs_are_refused(bad: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        check_markers(bad)


def test_joined_rebuilds_what_was_generated() -> None:
    assert joined(None, ANSWER) == ANSWER
    assert split_thinking(joined(THOUGHT, ANSWER)) == Split(THOUGHT, ANSWER)
    assert joined(THOUGHT, "x", DEFAULT_MARKERS).startswith("<think>")
