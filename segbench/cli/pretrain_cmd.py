"""``segbench pretrain``: pretrain a scale's width-reduced backbones on the glyphs corpus (once, cached)."""

from __future__ import annotations

import argparse
import json

from segbench.errors import InputError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pretrain",
        help="pretrain the backbones of a CPU scale on the synthetic classification corpus",
        description="The CPU scales' stand-in for ImageNet pretraining (segbench.engine.pretrain): each "
        "distinct backbone spec the scale's runs need is trained as a classifier on the glyphs corpus "
        "and cached as <results>/<scale>/pretrained/<backbone>-<spec hash>.pt (committed as .pt.xz) with a .json record "
        "(accuracy, wall time, provenance, the weights' sha256). Existing weights are checked against the "
        "sha256 their record pins (the mini ones are committed) and left alone unless --force, which "
        "pretrains anew and pins the new file: every run trained from the old one then differs.",
    )
    p.add_argument(
        "--scale",
        default=None,
        help="scale whose runs' backbones to pretrain (default: the registry's default_scale)",
    )
    p.add_argument("--backbone", default=None, help="only this backbone (e.g. resnet50)")
    p.add_argument("--spec", default=None, help="only the spec with this hash (the Snakemake rule's key)")
    p.add_argument("--results", default=None, help="results root (default: <repo>/results)")
    p.add_argument(
        "--force",
        action="store_true",
        help="pretrain again and pin the new weights (the committed ones are replaced)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from segbench.engine.pretrain import ensure_pretrained
    from segbench.paths import pretrained_weights
    from segbench.registry import check_scale, load_registry, pretraining_specs

    args.scale = args.scale or load_registry()["default_scale"]
    check_scale(args.scale)
    specs = pretraining_specs(args.scale)
    chosen = {
        h: s
        for h, s in specs.items()
        if (args.spec is None or h == args.spec) and (args.backbone is None or s["backbone"] == args.backbone)
    }
    if not chosen:
        known = ", ".join(f"{s['backbone']}-{h}" for h, s in specs.items()) or "none (ImageNet weights)"
        raise InputError(
            f"no pretraining spec at scale {args.scale!r} matches backbone={args.backbone} spec={args.spec}; "
            f"the scale's specs: {known}"
        )
    home = load_registry()["scales"][args.scale].get("pretrained_from") or args.scale  # real_cpu: mini's
    for spec in chosen.values():
        path = pretrained_weights(args.results, home, spec)
        ensure_pretrained(spec, path, scale=home, force=args.force)
        record = json.loads(path.with_suffix(".json").read_text())
        print(
            f"{path.name}: val top-1 {record['val_top1']:.3f} over {record['classes']} classes "
            f"(chance {record['chance']:.3f}), {record['provenance']['wall_time_s']} s, "
            f"sha256 {str(record.get('weights_sha256'))[:12]}"
        )
    return 0
