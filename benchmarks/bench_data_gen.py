"""Wall time to generate each synthetic dataset (``segbench data prepare``) into a temporary data root.

The mini datasets are the embedded default; each should take well under a minute on one CPU core.

    .venv/bin/python benchmarks/bench_data_gen.py                 # every *_mini dataset
    .venv/bin/python benchmarks/bench_data_gen.py shapes_smoke em_mini
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from segbench import data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="datasets (default: every synthetic *_mini entry)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    names = args.names or [
        n for n, e in data.load_datasets().items() if e["source"] == "synthetic" and n.endswith("_mini")
    ]
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'dataset':<18} {'seconds':>8} {'files':>6} {'MiB':>7}")
        for name in names:
            start = time.perf_counter()
            root = data.prepare(name, Path(tmp), seed=args.seed, force=True)
            seconds = time.perf_counter() - start
            files = data.read_manifest(root)["files"]
            mib = sum(rec["bytes"] for rec in files.values()) / 2**20
            print(f"{name:<18} {seconds:8.2f} {len(files):6d} {mib:7.1f}")


if __name__ == "__main__":
    main()
