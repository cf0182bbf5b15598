"""segbench.progress: tqdm on a terminal, one line per tenth in a log (what the train rule shows)."""

from __future__ import annotations

import io

from segbench.progress import PREFIX, LineProgress, progress_bar


def test_a_log_gets_one_line_per_tenth_with_the_latest_values() -> None:
    out = io.StringIO()
    with progress_bar(300, desc="r50_fpn-seed0", stream=out) as bar:
        assert isinstance(bar, LineProgress)
        for i in range(300):
            bar.set_postfix(loss=f"{1 / (i + 1):.3f}")
            bar.update(1)
    lines = out.getvalue().splitlines()
    assert len(lines) == 10 and all(line.startswith(PREFIX + "r50_fpn-seed0: ") for line in lines)
    assert lines[0].startswith("progress r50_fpn-seed0: 30/300 it (10%), loss 0.033, ")
    assert "ETA" in lines[0] and "ETA" not in lines[-1]
    assert lines[-1].startswith("progress r50_fpn-seed0: 300/300 it (100%), loss 0.003")


def test_a_resumed_or_interrupted_bar_says_where_it_stopped() -> None:
    out = io.StringIO()
    try:
        with LineProgress(100, initial=40, desc="run", stream=out) as bar:
            for _ in range(15):
                bar.update(1)
            raise RuntimeError("stop")
    except RuntimeError:
        pass
    assert out.getvalue().splitlines() == [
        line for line in out.getvalue().splitlines() if line.startswith("progress run: ")
    ]
    assert [line.split(":")[1].split()[0] for line in out.getvalue().splitlines()] == ["50/100", "55/100"]


def test_disabled_bars_write_nothing() -> None:
    out = io.StringIO()
    with progress_bar(10, stream=out, disable=True) as bar:
        bar.update(10)
    assert out.getvalue() == ""
