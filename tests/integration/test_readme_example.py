"""The README's first Python example runs as shown on the embedded model and prints what it shows.

The example's point is test-time scaling: the greedy chain-of-thought answer is wrong and the
seeded sample + majority chain fixes it. This test runs the README's code block verbatim (a
subprocess, the default runtime) and checks what it prints against the output block the README
shows after it: greedy wrong, the vote the README's answer; so the README stays true.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ponder.grading import is_equivalent

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"
ANSWER_LINE = re.compile(r"^(greedy|majority of \d+): (\S+) +\|", re.M)


def _first_python_example() -> tuple[str, str, str]:
    """(code, shown output, gold answer) of the README's "Use it from Python" section."""
    text = README.read_text()
    section = text.split("## Use it from Python", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    shown = re.search(r"```text\n(.*?)```", section, re.S)
    gold = re.search(r"right answer is (\d+)", section)
    assert code and shown and gold, "README's first Python example lost its code/output/answer"
    return code.group(1), shown.group(1), gold.group(1)


def test_readme_example_shows_sampling_fixing_the_greedy_answer():
    code, shown, gold = _first_python_example()
    expected = dict(ANSWER_LINE.findall(shown))
    assert set(expected) == {"greedy", "majority of 8"}, shown
    assert not is_equivalent(expected["greedy"], gold)  # the README claims greedy is wrong
    assert is_equivalent(expected["majority of 8"], gold)  # ... and the majority right

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = dict(ANSWER_LINE.findall(proc.stdout))
    assert set(got) == set(expected), proc.stdout
    # greedy still wrong (which wrong answer varies with llama.cpp's thread count), vote still right
    assert not is_equivalent(got["greedy"], gold), proc.stdout
    assert got["majority of 8"] == expected["majority of 8"], proc.stdout
    assert "8 model calls" in proc.stdout and "1 model call," in proc.stdout
