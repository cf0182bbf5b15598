"""``segbench list``: the tables, rows, runs and scales of the experiment registry."""

from __future__ import annotations

import argparse
import json

from segbench.registry import artifacts, load_registry, row_runs, runs_for_tables, seeds_for_run


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list tables, rows, runs and scales of the experiment registry",
                       description="List what the registry defines. --json gives the machine-readable form "
                                   "that the Snakefile and dvc.yaml are built from.")
    p.add_argument("--json", action="store_true", help="print JSON (tables with rows and scales, runs, artifacts)")
    p.add_argument("--runs", action="store_true", help="list the distinct runs (trained once each per seed)")
    p.add_argument("--scale", default=None, help="with --runs: list run instances (run-seedK) at this scale")
    p.add_argument("--table", default=None, help="only this table or artifact (e.g. table2, unet_table1)")
    p.set_defaults(func=run)


def registry_summary(table_filter: str | None = None) -> dict:
    reg = load_registry()
    arts = artifacts(reg)
    tables = arts.get(table_filter, [table_filter]) if table_filter else list(reg["tables"])
    out_tables = {}
    for name in tables:
        t = reg["tables"][name]
        out_tables[name] = {
            "paper": t["paper"], "title": t["title"], "group": t.get("group"), "columns": t["columns"],
            "split": t.get("split"), "evaluated_on": t.get("evaluated_on"),
            "scales": {s: {"seeds": t["seeds"][s]} for s in reg["scales"] if s in t["seeds"]},
            "rows": [{"id": r["id"], "label": r["label"], "runs": row_runs(r),
                      "reference_only": not row_runs(r), "paper_values": r["paper_values"]} for r in t["rows"]],
        }
    return {
        "citations": {k: v["citation"] for k, v in reg["papers"].items()},
        "default_scale": reg["default_scale"],
        "scales": {k: v["description"] for k, v in reg["scales"].items()},
        "tables": out_tables,
        "artifacts": arts,
        "runs": {name: {"family": r["family"], "dataset": r["dataset"], "model": r["model"],
                        "seeds": {s: n for s in reg["scales"] if (n := len(seeds_for_run(name, s, reg)))}}
                 for name, r in reg["runs"].items()},
    }


def run(args: argparse.Namespace) -> int:
    summary = registry_summary(args.table)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    if args.runs:
        if args.scale:
            for rs in runs_for_tables(list(summary["tables"]), args.scale):
                print(rs.run_id)
            return 0
        for name, r in summary["runs"].items():
            seeds = ", ".join(f"{s}:{n}" for s, n in r["seeds"].items())
            print(f"{name:28s} {r['family']:9s} {r['dataset']:22s} seeds {seeds}")
        return 0
    for name, t in summary["tables"].items():
        print(f"{name}  [{t['paper']}] {t['title']}")
        print(f"    columns: {', '.join(t['columns'])}")
        for row in t["rows"]:
            what = "reference only" if row["reference_only"] else "runs: " + ", ".join(row["runs"])
            print(f"    - {row['label']}  ({what})")
    print("\nscales: " + "; ".join(f"{k}: {v}" for k, v in summary["scales"].items()))
    print("targets: " + " ".join(f"reproduce_{a}" for a in summary["artifacts"]))
    return 0
