"""The README digest of assembled tables: headline values, directions, and the command per table."""

from __future__ import annotations

from pathlib import Path

from segbench.tables.summary import summary_markdown


def cell(mean: float | None, std: float | None, n: int, paper: float | None) -> dict:
    return {"mean": mean, "std": std, "n": n, "paper": paper}


TABLES = [
    {
        "table": "table2c",
        "paper": "maskrcnn",
        "columns": ["AP", "AP50", "AP75"],
        "rows": [
            {
                "label": "RoIPool (max)",
                "reference_only": False,
                "values": {
                    "AP": cell(1.0, 0.1, 3, 26.9),
                    "AP50": cell(2, 0, 3, 48.8),
                    "AP75": cell(0.34, 0.29, 3, 26.4),
                },
            },
            {"label": "peer", "reference_only": True, "values": {"AP75": cell(None, None, 0, 30.0)}},
        ],
        "directions": [
            {
                "claim": "roialign_avg > roipool on AP75",
                "verdict": "reproduced",
                "gap": 1.334,
                "gap_in_std": 4.31,
            }
        ],
    },
    {
        "table": "unet_table2",
        "paper": "unet",
        "columns": ["PhC-U373", "DIC-HeLa"],
        "rows": [
            {
                "label": "u-net (2015)",
                "reference_only": False,
                "values": {"PhC-U373": cell(0.49421, None, 1, 0.9203), "DIC-HeLa": cell(None, None, 0, None)},
            }
        ],
        "directions": [
            {
                "claim": "unet > threshold on DIC-HeLa",
                "source": "ours",
                "verdict": "reproduced (1 seed: sign only, untested)",
                "gap": 0.125,
                "gap_in_std": None,
            }
        ],
    },
]


def test_summary_rows_and_directions() -> None:
    text = summary_markdown("mini", Path("unused"), TABLES)
    lines = text.splitlines()
    assert (
        "| [table2c](results/mini/tables/table2c.md) AP75 | RoIPool (max) | 0.34 ± 0.29 (3) | 26.4 |" in lines
    )
    assert (
        "| [unet_table2](results/mini/tables/unet_table2.md) PhC-U373 | u-net (2015) | 0.4942 (1) | 0.9203 |"
        in lines
    )
    assert not any("peer" in line for line in lines)  # reference-only rows are the paper's, not ours
    assert (
        "| table2c | roialign_avg > roipool on AP75 | the paper's | reproduced | +1.33 | 4.3 | "
        "`snakemake --cores all reproduce_table2` |"
    ) in lines
    assert (
        "| unet_table2 | unet > threshold on DIC-HeLa | ours (vs a segbench baseline) | reproduced (1 seed: sign only, untested) | +0.125 | - | "
        "`snakemake --cores all reproduce_unet_table2` |"
    ) in lines
    assert "verdict at mini" in text
