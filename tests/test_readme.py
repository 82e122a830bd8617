"""The README's quick start runs as written (with fewer training steps, to stay fast)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_quick_start_runs(capsys):
    text = README.read_text()
    code = re.search(r"## Quick start\s+```python\n(.*?)```", text, re.S).group(1)
    assert "max_steps=2000" in code
    namespace = {}
    exec(compile(code.replace("max_steps=2000", "max_steps=40").replace("regularizer_ramp=None, random_state=0)",
                                                                      "regularizer_ramp=None, random_state=0, verbose=False)"),
                 str(README), "exec"), namespace)
    amap = namespace["amap"]
    assert amap.values.shape == (6, 50)
    score = float(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0.0 <= score <= 1.0
