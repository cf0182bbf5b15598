"""``segbench list``: the tables, rows, runs and scales of the experiment registry."""

from __future__ import annotations

import argparse

from segbench.io import dumps
from segbench.paths import record_run_dir, runs_dir
from segbench.registry import artifacts, load_registry, row_runs, runs_for_tables, seeds_for_run, table_names


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "list",
        help="list tables, rows, runs and scales of the experiment registry",
        description="List what the registry defines. --json gives the machine-readable form "
        "that the Snakefile and dvc.yaml are built from.",
    )
    p.add_argument(
        "--json", action="store_true", help="print JSON (tables with rows and scales, runs, artifacts)"
    )
    p.add_argument("--runs", action="store_true", help="list the distinct runs (trained once each per seed)")
    p.add_argument(
        "--scale",
        default=None,
        help="with --runs: list run instances (run-seedK) at this scale with their state "
        "(current / stale / missing), headline metric and train time from metrics.json",
    )
    p.add_argument(
        "--results", default=None, help="with --runs --scale: results root (default: <repo>/results)"
    )
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
            "paper": t["paper"],
            "title": t["title"],
            "group": t.get("group"),
            "columns": t["columns"],
            "split": t.get("split"),
            "evaluated_on": t.get("evaluated_on"),
            "scales": {s: {"seeds": t["seeds"][s]} for s in reg["scales"] if s in t["seeds"]},
            "rows": [
                {
                    "id": r["id"],
                    "label": r["label"],
                    "runs": row_runs(r),
                    "reference_only": not row_runs(r),
                    "paper_values": r["paper_values"],
                }
                for r in t["rows"]
            ],
        }
    return {
        "citations": {k: v["citation"] for k, v in reg["papers"].items()},
        "default_scale": reg["default_scale"],
        "scales": {k: v["description"] for k, v in reg["scales"].items()},
        "tables": out_tables,
        "artifacts": arts,
        "runs": {
            name: {
                "family": r["family"],
                "dataset": r["dataset"],
                "model": r["model"],
                "seeds": {s: n for s in reg["scales"] if (n := len(seeds_for_run(name, s, reg)))},
            }
            for name, r in reg["runs"].items()
        },
    }


def instance_lines(tables: list[str], scale: str, results: str | None = None) -> list[str]:
    """One line per run instance at ``scale``: id, state (segbench.status.run_state), headline metric
    (as the report's run_metrics figure picks it) and train wall time from its metrics.json."""
    from segbench.io import read_json
    from segbench.paths import results_root
    from segbench.registry import resolve_run
    from segbench.reporting.figures.curves import headline
    from segbench.status import run_state

    reg = load_registry()
    root = results_root(results)
    instances = runs_for_tables(tables, scale, reg)
    width = max((len(rs.run_id) for rs in instances), default=10)
    lines = [f"{'run instance':{width}s}  {'state':22s}  {'headline metric':26s}  train time"]
    states = []
    for rs in instances:
        run_dir = record_run_dir(root, scale, rs.run_id)
        state = run_state(resolve_run(rs.run, scale, rs.seed, reg), run_dir)
        states.append(state.state)
        metric, train = "-", "-"
        path = run_dir / "metrics.json"
        if path.is_file():
            try:
                record = read_json(path, "run metrics")
            except Exception:  # a torn or foreign file: the state column already says what to do
                record = {}
            found = headline(record.get("metrics", {}) if isinstance(record, dict) else {})
            if found:
                _, label, value = found
                metric = f"{label} {value:.4g}"
            seconds = record.get("train_wall_time_s") if isinstance(record, dict) else None
            if isinstance(seconds, int | float):
                train = f"{seconds:.0f} s" if seconds < 600 else f"{seconds / 60:.1f} min"
        lines.append(f"{rs.run_id:{width}s}  {state.state:22s}  {metric:26s}  {train}")
    lines.append(
        f"{len(instances)} run instances at scale {scale} under {runs_dir(root, scale)}: "
        + ", ".join(f"{states.count(s)} {s}" for s in dict.fromkeys(["current", *states]))
    )
    return lines


def run(args: argparse.Namespace) -> int:
    summary = registry_summary(args.table)
    if args.json:
        print(dumps(summary, indent=2))
        return 0
    if args.runs:
        if args.scale:
            from segbench.registry import check_scale

            registry = load_registry()
            check_scale(args.scale, registry)
            at_scale = [t for t in summary["tables"] if t in table_names(registry, args.scale)]
            print("\n".join(instance_lines(at_scale, args.scale, args.results)))
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
