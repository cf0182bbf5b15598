"""``segbench data``: list, prepare, generate, download and verify the registry's datasets."""

from __future__ import annotations

import argparse
import logging

from segbench.errors import InputError
from segbench.io import dumps
from segbench.paths import data_root


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="list, generate, download and verify datasets (datasets.yaml)")
    actions = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    lister = actions.add_parser("list", help="the registry's datasets")
    lister.add_argument("--json", action="store_true", help="print the entries as JSON")
    lister.set_defaults(func=run_list)

    helps = {
        "prepare": "generate (synthetic) or locate/download (real) datasets",
        "generate": "generate synthetic datasets",
        "download": "download real datasets (or verify a copy already in the data root)",
        "verify": "check a dataset's files against its MANIFEST.json",
    }
    for action, text in helps.items():
        q = actions.add_parser(action, help=text)
        q.add_argument("names", nargs="+", metavar="NAME")
        q.add_argument("--data-root", default=None, help="data root (default: $SEGBENCH_DATA or <repo>/data)")
        if action in ("prepare", "generate"):
            q.add_argument("--seed", type=int, default=0, help="generator seed (synthetic data)")
        if action != "verify":
            q.add_argument("--force", action="store_true", help="regenerate / re-download even if complete")
            q.add_argument(
                "--verify",
                action="store_true",
                help="re-hash every file against the MANIFEST (default: only files whose size or "
                "mtime changed)",
            )
        q.set_defaults(func=run_action, action=action)


def run_list(args: argparse.Namespace) -> int:
    from segbench.data import load_datasets

    datasets = load_datasets()
    if args.json:
        print(dumps(datasets, indent=2, sort_keys=True))
        return 0
    width = max(map(len, datasets))
    for name, entry in datasets.items():
        print(f"{name:<{width}}  {entry['source']:<9}  {entry['format']:<8}  {entry.get('description', '')}")
    return 0


def run_action(args: argparse.Namespace) -> int:
    from segbench import data
    from segbench.data.preparation import describe_checksums

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    root = data_root(args.data_root)
    for name in args.names:
        source = data.dataset_entry(name)["source"]
        if args.action == "generate" and source != "synthetic":
            raise InputError(f"{name}: not a synthetic dataset; use `segbench data download {name}`")
        if args.action == "download" and source != "real":
            raise InputError(f"{name}: a {source} dataset; use `segbench data prepare {name}`")
        if args.action == "verify":
            manifest = data.verify(name, root)
            print(
                f"{name}: {len(manifest['files'])} files match {data.dataset_dir(name, root) / data.MANIFEST}"
            )
        else:
            path = data.prepare(
                name, root, seed=getattr(args, "seed", 0), force=args.force, verify=args.verify
            )
            print(f"{name}: ready in {path}")
        if source == "real":  # which checksum each file was checked against: published, or trust on first use
            for line in describe_checksums(name, root):
                print(line)
    return 0
