import json
from typing import Annotated

import pytest

from ponder.errors import UnknownNameError
from ponder.tools import DocumentIndex, Tool, evaluate, get_tool, resolve_tools, tool, tool_names
from ponder.tools.calculator import CalculatorError


def test_calculator_evaluates_arithmetic_exactly():
    assert evaluate("(48 / 2) + 48") == 72
    assert evaluate("2^10") == 1024
    assert evaluate("-3 + 4 * (2 - 5)") == -15
    assert evaluate("sqrt(16) + abs(-2) + max(1, 7)") == 13
    assert evaluate("1,000 * 3") == 3000
    assert get_tool("calculator").call({"expression": "10 / 4"}) == "2.5"
    assert get_tool("calculator").call({"expression": "9.0 * 2"}) == "18"


@pytest.mark.parametrize(
    "expr",
    [
        "__import__('os').system('echo hi')",
        "open('/etc/passwd')",
        "(1).__class__",
        "[x for x in range(10)]",
        "lambda: 1",
        "'a' * 3",
        "9 ** 9 ** 9",
    ],
)
def test_calculator_refuses_anything_but_arithmetic(expr):
    with pytest.raises(CalculatorError):
        evaluate(expr)
    assert get_tool("calculator").call({"expression": expr}).startswith("error:")


def test_schema_is_derived_from_the_signature():
    @tool(name="unit_test_convert")
    def convert(amount: Annotated[float, "how much"], unit: str = "cm", exact: bool = False) -> str:
        """Convert a length.

        More text that is not part of the description.
        """
        return f"{amount}{unit}{exact}"

    t = get_tool("unit_test_convert")
    fn = t.schema()["function"]
    assert fn["name"] == "unit_test_convert"
    assert fn["description"] == "Convert a length."
    props = fn["parameters"]["properties"]
    assert props["amount"] == {"type": "number", "description": "how much"}
    assert props["unit"]["default"] == "cm" and props["exact"]["type"] == "boolean"
    assert fn["parameters"]["required"] == ["amount"]
    assert t.call('{"amount": 2}') == "2.0cmFalse"
    assert "unit_test_convert" in tool_names()


def test_tool_errors_come_back_as_text_not_exceptions():
    def boom(x: int) -> int:
        """Always fails."""
        raise RuntimeError("kaput")

    t = Tool.from_function(boom)
    assert t.call({"x": 1}) == "error: RuntimeError: kaput"
    assert t.call("{not json").startswith("error: arguments are not valid JSON")
    assert "x: Input should be a valid integer" in t.call({"x": "abc"})
    assert t.call({"x": 1, "required": ["x"]}) == "error: RuntimeError: kaput"  # extra key dropped
    assert t.call("[1]").startswith("error: arguments must be a JSON object")


def test_resolve_tools_accepts_names_tools_and_functions_and_names_unknown_ones():
    def plain(a: int) -> int:
        """Double."""
        return 2 * a

    got = resolve_tools(["calculator", plain, Tool.from_function(plain, "twice")])
    assert [t.name for t in got] == ["calculator", "plain", "twice"]
    with pytest.raises(UnknownNameError, match="valid choices: .*calculator"):
        resolve_tools(["nope"])


def test_bm25_ranks_the_relevant_document_first():
    index = DocumentIndex(
        [
            "Natalia sold clips to her friends in April and May",
            "A train travels 60 miles per hour for 3 hours",
            "Weng earns 12 dollars an hour for babysitting",
        ]
    )
    [(best, score), *_] = index.search("how far does the train travel in 3 hours", k=2)
    assert best == 1 and score > 0
    assert index.search("zebra quantum", k=3) == []


def test_search_problems_finds_a_similar_gsm8k_train_problem():
    out = json.loads(
        get_tool("search_problems").call(
            {"query": "Natalia sold clips to 48 friends in April, half as many in May", "k": 1}
        )
    )
    assert len(out) == 1
    assert out[0]["answer"] == "72"
    assert "<<" not in out[0]["solution"]
    assert get_tool("search_problems").call({"query": "x", "k": 9}).startswith("error:")
