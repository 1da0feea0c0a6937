"""``import ponder`` stays light: the online public face loads, the offline stacks do not.

Measured when this test was written (``python -X importtime -c 'import ponder'``): about 1.4 s,
most of it the ``openai`` SDK (the OpenAI-compatible backend); none of the modules below. Training
(scikit-learn, torch), plotting (matplotlib), evaluation and the learning code load only when a
command or an import asks for them, so a chain runs without them and starts fast.
"""

from __future__ import annotations

import json
import subprocess
import sys

# What importing ponder must not load: each entry matches the module and its submodules.
HEAVY = (
    "sklearn",
    "torch",
    "matplotlib",
    "ponder.learning",
    "ponder.evaluation",
    # pulled in by the above or by optional extras; named so a stray import shows up here too
    "numpy",
    "scipy",
    "transformers",
    "vllm",
    "math_verify",
    "xllamacpp",
    "fastapi",
    "ponder.serve",
    "ponder.cli",
)

PROBE = """
import json, sys
{imports}
heavy = {heavy!r}
loaded = sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in heavy))
print(json.dumps({{"loaded": loaded, "ponder": sorted(m for m in sys.modules if m == "ponder"
                                                 or m.startswith("ponder."))}}))
"""


def _probe(*imports: str) -> dict[str, list[str]]:
    code = PROBE.format(imports="\n".join(imports), heavy=HEAVY)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out: dict[str, list[str]] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def test_import_ponder_loads_no_heavy_or_offline_module() -> None:
    got = _probe("import ponder", "ponder.Session, ponder.RunLimits, ponder.Outcome, ponder.run")
    assert got["loaded"] == [], f"import ponder loaded {got['loaded']}"
    # the public face really was imported: the engine and the strategies are there
    assert {"ponder.orchestrator.session", "ponder.strategies"} <= set(got["ponder"])


def test_the_probe_sees_a_heavy_import() -> None:
    """Not vacuous: the same probe reports an offline package when one is imported."""
    got = _probe("import ponder", "import ponder.evaluation")
    assert "ponder.evaluation" in got["loaded"]
