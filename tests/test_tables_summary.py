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
                "interval": {"low": 0.52, "high": 2.15, "level": 0.9},
                "p_value": 0.004,
                "p_adjusted": 0.012,
                "caveats": ["loss not levelled off: r50_c4 (1/3 seeds)"],
            }
        ],
    },
    {
        "table": "unet_table2",
        "paper": "unet",
        "columns": ["PhC-U373 SEG", "DIC-HeLa SEG"],
        "rows": [
            {
                "label": "u-net (2015)",
                "reference_only": False,
                "values": {
                    "PhC-U373 SEG": cell(0.49421, None, 1, 0.9203),
                    "DIC-HeLa SEG": cell(None, None, 0, None),
                },
            }
        ],
        "directions": [
            {
                "claim": "unet > threshold on DIC-HeLa SEG",
                "source": "ours",
                "verdict": "untested",
                "gap": 0.125,
            }
        ],
    },
]


def test_summary_rows_and_directions() -> None:
    text = summary_markdown("mini", Path("unused"), TABLES)
    lines = text.splitlines()
    assert (
        "| [table2c](results/mini/tables/table2c.md) AP75 | RoIPool (max) | 0.3 ± 0.3 (3) | 26.4 |" in lines
    )
    assert (
        "| [unet_table2](results/mini/tables/unet_table2.md) PhC-U373 SEG | u-net (2015) | 0.494 (1) | 0.9203 |"
        in lines
    )
    assert not any("peer" in line for line in lines)  # reference-only rows are the paper's, not ours
    assert (
        "| table2c | roialign_avg > roipool on AP75 | the paper's | reproduced | +1.3 [+0.5, +2.1] | 0.012 | 1 | "
        "`snakemake --cores all reproduce_table2` |"
    ) in lines
    assert (
        "| unet_table2 | unet > threshold on DIC-HeLa SEG | ours (vs a segbench baseline) | untested | +0.125 | - | - | "
        "`snakemake --cores all reproduce_unet_table2` |"
    ) in lines
    assert "Claims at mini: the paper's 1 reproduced of 1 measured; ours 0 reproduced of 1 measured" in text
    assert "verdict at mini" in text
