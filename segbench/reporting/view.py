"""Turn a table JSON (segbench.tables.assemble_table) into the plain view model the templates render.

Cell colours depend on the scale. At the paper scale, tolerance bands colour each reproduced cell by how
far it lies from the paper's value, the sign respected (a value better than the paper's, e.g. a lower
error, is never red):

* Mask R-CNN (COCO AP, percentage points): within 1 AP -> ``good`` (green),
  within 3 AP -> ``near`` (amber), else ``far`` (red);
* U-Net (error rates and IoU, fractions): within 10 % relative -> ``good``, within 25 % -> ``near``,
  else ``far``.

Cells without a reproduced value or without a paper value are ``none`` (uncoloured). At the smoke and
mini scales the paper's absolute values are not expected (synthetic data, tiny models), so a cell is
coloured by the claims made on it instead: green when every claim on that row and metric reproduces,
amber when one is within noise (right sign, < 2 std), red when one is not reproduced; cells no claim
is about stay uncoloured.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from segbench.status import table_state
from segbench.tables.assemble import NONINFERIOR_STD

ABSOLUTE_SCALES = ("paper",)
RUN_FILES = ("config.json", "train_log.jsonl", "metrics.json")


@dataclass(frozen=True)
class Tolerance:
    """Bands on ``|delta|``: green within ``max(good_abs, good_rel*|paper|)``, amber within the near pair."""

    unit: str
    good_abs: float
    good_rel: float
    near_abs: float
    near_rel: float

    def classify(self, delta: float | None, paper: float | None, *, lower_is_better: bool = False) -> str:
        """The band of ``delta = reproduced - paper``; a delta in the better direction (positive, or
        negative for a lower-is-better metric) is at worst ``near``: beating the paper is no failure."""
        if delta is None or paper is None:
            return "none"
        size = abs(delta)
        if size <= max(self.good_abs, self.good_rel * abs(paper)):
            return "good"
        better = delta < 0 if lower_is_better else delta > 0
        if better or size <= max(self.near_abs, self.near_rel * abs(paper)):
            return "near"
        return "far"

    def describe(self) -> str:
        def band(abs_: float, rel: float) -> str:
            parts = ([f"{abs_:g} {self.unit}"] if abs_ else []) + ([f"{rel:.0%} relative"] if rel else [])
            return " or ".join(parts)

        return (
            f"green: |delta| within {band(self.good_abs, self.good_rel)}; "
            f"amber: within {band(self.near_abs, self.near_rel)}, or further in the better direction; "
            "red: further in the worse direction"
        )


CLAIM_BANDS = {"yes": "good", "noise": "near", "no": "far"}
CLAIM_LEGEND = (
    "green: every claim on this row and metric reproduces; amber: one is within noise (right sign, "
    "< 2 std); red: one is not reproduced; uncoloured: no claim on this cell"
)


def claim_state(direction: dict[str, Any]) -> str:
    """``yes`` (reproduced), ``noise`` (right sign, < 2 std), ``no`` (not reproduced) or ``none``."""
    if direction.get("reproduced") is None:
        return "none"
    if direction["reproduced"]:
        return "yes"
    return "noise" if str(direction.get("verdict", "")).startswith("within noise") else "no"


def claim_bands(table: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(row id, column) -> band of the worst claim on it."""
    order = ["good", "near", "far"]
    out: dict[tuple[str, str], str] = {}
    for d in table.get("directions", []):
        band = CLAIM_BANDS.get(claim_state(d))
        if band is None:
            continue
        for row in (d.get("better"), d.get("worse")):
            key = (row, d.get("metric"))
            out[key] = max(out.get(key, "good"), band, key=order.index)
    return out


TOLERANCES = {
    "maskrcnn": Tolerance("AP", good_abs=1.0, good_rel=0.0, near_abs=3.0, near_rel=0.0),
    "unet": Tolerance("", good_abs=0.0, good_rel=0.10, near_abs=0.0, near_rel=0.25),
}
DEFAULT_TOLERANCE = TOLERANCES["maskrcnn"]


def tolerance_for(table: dict[str, Any]) -> Tolerance:
    return TOLERANCES.get(table.get("paper", ""), DEFAULT_TOLERANCE)


def digits_for(table: dict[str, Any]) -> str:
    """Number format: U-Net's metrics are small fractions spanning decades (warping error 0.000353), so
    three significant digits; Mask R-CNN's are AP in percent, one decimal as in the paper."""
    return ".3g" if table.get("paper") == "unet" else ".1f"


def fmt(value: float | None, spec: str, signed: bool = False) -> str:
    if value is None:
        return "–"
    return format(value, ("+" if signed else "") + spec)


def scale_is_absolute(scale: str) -> bool:
    """Whether the paper's absolute values are expected at this scale (only at the paper scale)."""
    return scale in ABSOLUTE_SCALES


def url_between(target: Path, page_dir: Path) -> str:
    """A relative, URL-quoted link from a page in ``page_dir`` to ``target``."""
    rel = os.path.relpath(target, page_dir)
    return quote(Path(rel).as_posix())


def cell_view(value: dict[str, Any], band: str, digits: str, reference_only: bool) -> dict[str, Any]:
    per_seed = [v for v in value.get("per_seed", []) if v is not None]
    reproduced = fmt(value.get("mean"), digits)
    if value.get("std") is not None:
        reproduced += f" ± {fmt(value['std'], digits)}"
    return {
        "reproduced": None if reference_only else reproduced,
        "n": value.get("n", 0),
        "paper": fmt(value.get("paper"), digits),
        "delta": fmt(value.get("delta"), digits, signed=True),
        "band": "none" if reference_only else band,
        "seeds": ", ".join(fmt(v, digits) for v in per_seed),
    }


def test_text(direction: dict[str, Any], digits: str) -> str:
    """How the claim was tested, in words: paired t-test (seeds, p) and the std the gap is measured in."""
    test = direction.get("test")
    parts = []
    if test and test.get("p_value") is not None:
        parts.append(f"paired t-test, {test['n']} seeds, p = {test['p_value']:.2g}")
    elif direction.get("gap") is not None and direction.get("gap_in_std") is None:
        parts.append("1 seed: sign only")
    if direction.get("std_used") is not None:
        floored = direction["std_used"] > (direction.get("pooled_std") or 0.0)
        parts.append(f"std {fmt(direction['std_used'], digits)}" + (" (floor)" if floored else " (pooled)"))
    return "; ".join(parts) or "–"


def claim_text(direction: dict[str, Any], better: str, worse: str) -> str:
    """A claim in words: ``A better than B``, or for the paper's "on par" and "nearly as good" claims
    (kinds ``equivalent`` and ``noninferior``) what their verdict tests."""
    kind = direction.get("kind", "better")
    if kind == "equivalent":
        return f"{better} on par with {worse} (within ±{float(direction['margin']):g} {direction.get('metric', '')})"
    if kind == "noninferior":
        return f"{better} no worse than {worse} (within {NONINFERIOR_STD:g} std)"
    return f"{better} better than {worse}"


def direction_view(direction: dict[str, Any], labels: dict[str, str], digits: str) -> dict[str, Any]:
    verdict = (
        direction.get("verdict")
        or {True: "reproduced", False: "not reproduced", None: "not measured"}[direction.get("reproduced")]
    )
    gap_std = direction.get("gap_in_std")
    spread = direction.get("gap_std")
    better = labels.get(direction.get("better", ""), direction.get("better", ""))
    worse = labels.get(direction.get("worse", ""), direction.get("worse", ""))
    return {
        "source": direction.get("source", "paper"),
        "paper_gap": fmt(direction.get("paper_gap"), digits, signed=True),
        "gap_spread": "" if spread is None else f" ± {fmt(spread, digits)}",
        "test": test_text(direction, digits),
        "claim": direction.get("claim", ""),
        "claim_text": claim_text(direction, better, worse),
        "better": better,
        "worse": worse,
        "metric": direction.get("metric", ""),
        "gap": fmt(direction.get("gap"), digits, signed=True),
        "gap_in_std": "–" if gap_std is None else f"{gap_std:+.1f}",
        "verdict": verdict,
        "state": {True: "yes", False: "no", None: "none"}[direction.get("reproduced")],
        "band": CLAIM_BANDS.get(claim_state(direction), "none"),
    }


def run_views(table: dict[str, Any], results: Path, page_dir: Path) -> list[dict[str, Any]]:
    """One entry per run instance (``<run>-seed<k>``) with its provenance and links to its files."""
    out = []
    for rid, info in sorted(table.get("runs", {}).items()):
        run_dir = results / table["scale"] / "runs" / rid
        links = [
            {
                "name": name,
                "href": url_between(run_dir / name, page_dir),
                "exists": (run_dir / name).is_file(),
            }
            for name in RUN_FILES
        ]
        out.append(
            {
                "run_id": rid,
                "links": links,
                **{
                    k: info.get(k)
                    for k in ("config_hash", "git_commit", "device", "train_wall_time_s", "eval_wall_time_s")
                },
            }
        )
    return out


def config_diff_view(table: dict[str, Any], results: Path, width: int = 60) -> dict[str, Any]:
    """The config keys that differ between the table's runs, from their recorded ``config.json``
    (:mod:`segbench.configdiff`): ``{"runs": [run, ...], "rows": [{"key", "values": [text, ...]}]}``;
    values longer than ``width`` characters are cut (the full value in ``"full"``)."""
    from segbench.configdiff import config_diff, format_value, table_run_configs

    configs = table_run_configs(table, results)
    rows = []
    for entry in config_diff(configs) if len(configs) > 1 else []:
        full = [format_value(entry["values"][run]) for run in configs]
        rows.append(
            {
                "key": entry["key"],
                "values": [v if len(v) <= width else v[: width - 1] + "…" for v in full],
                "full": full,
            }
        )
    return {"runs": list(configs), "rows": rows}


def table_view(table: dict[str, Any], results: Path, page_dir: Path) -> dict[str, Any]:
    """Everything a table page shows, already formatted."""
    tol, digits = tolerance_for(table), digits_for(table)
    absolute = scale_is_absolute(table["scale"])
    lower = bool(table.get("lower_is_better", False))
    by_claims = claim_bands(table)

    def band(row: dict[str, Any], col: str) -> str:
        if not absolute:
            return by_claims.get((row["id"], col), "none")
        value = row["values"][col]
        return tol.classify(value.get("delta"), value.get("paper"), lower_is_better=lower)

    labels = {row["id"]: row["label"] for row in table["rows"]}
    rows = [
        {
            "id": row["id"],
            "label": row["label"],
            "runs": row.get("runs", []),
            "reference_only": row.get("reference_only", False),
            "cells": [
                cell_view(row["values"][col], band(row, col), digits, row.get("reference_only", False))
                for col in table["columns"]
            ],
            "converged": row.get("converged", {}).get("text"),
        }
        for row in table["rows"]
    ]
    directions = [direction_view(d, labels, digits) for d in table.get("directions", [])]
    bands = [c["band"] for r in rows for c in r["cells"] if c["band"] != "none"]
    tables_dir = results / table["scale"] / "tables"
    return {
        "name": table["table"],
        "title": table["title"],
        "paper": table["paper"],
        "citation": table["citation"],
        "scale": table["scale"],
        "scale_description": table.get("scale_description", ""),
        "absolute": absolute,
        "split": table.get("split"),
        "evaluated_on": table.get("evaluated_on"),
        "columns": table["columns"],
        "metrics": table.get("metrics", {}),
        "lower_is_better": table.get("lower_is_better", False),
        "tolerance": tol.describe() if absolute else CLAIM_LEGEND,
        "rows": rows,
        "converged": any(r["converged"] is not None for r in rows),  # tables assembled before: no column
        "convergence_rule": table.get("convergence_rule"),
        "directions": directions,
        "paper_directions": [d for d in directions if d["source"] == "paper"],
        "our_directions": [d for d in directions if d["source"] == "ours"],
        "directions_reproduced": sum(d["state"] == "yes" for d in directions if d["source"] == "paper"),
        "std_rule": next((d.get("std_rule") for d in table.get("directions", []) if d.get("std_rule")), None),
        "our_reproduced": sum(d["state"] == "yes" for d in directions if d["source"] == "ours"),
        "band_counts": {b: bands.count(b) for b in ("good", "near", "far")},
        "freshness": table_state(table["table"], table["scale"], results),
        "runs": run_views(table, results, page_dir),
        "config_diff": config_diff_view(table, results),
        "provenance": table.get("provenance", {}),
        "sources": [
            {
                "name": f"{table['table']}.{ext}",
                "href": url_between(tables_dir / f"{table['table']}.{ext}", page_dir),
            }
            for ext in ("json", "csv", "md")
        ],
    }
