"""Miniature backbone pretraining (segbench/engine/pretrain.py): corpus, spec, cache, and the fine-tuning
start it gives every mini Mask R-CNN run (He et al. 2017, section 3.1: ImageNet-pretrained backbones)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from segbench.data.synthetic import glyphs
from segbench.engine import pretrain
from segbench.errors import InputError
from segbench.models.maskrcnn import build_maskrcnn
from segbench.paths import pretrained_weights, stored_weights
from segbench.provenance import config_hash
from segbench.registry import pretraining_specs, resolve_run

REPO = Path(__file__).resolve().parents[1]

TINY = {
    "backbone": "resnet50",
    "norm": "gn",
    "width_divisor": 16,
    "blocks": [1, 1, 1, 1],
    "corpus": {"image_size": 32, "num_train": 64, "num_val": 32, "object_size": [12, 28]},
    "schedule": {"iterations": 3, "batch_size": 8, "lr": 0.05, "warmup_iters": 1},
    "seed": 0,
}


def test_glyph_corpus_is_deterministic_and_covers_the_classes() -> None:
    a, labels = glyphs.corpus({}, 0, "train", 400)
    b, _ = glyphs.corpus({}, 0, "train", 400)
    val, _ = glyphs.corpus({}, 0, "val", 5)
    assert a.shape == (400, 64, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a[:5], val)  # val draws from its own stream
    assert len(glyphs.CLASSES) == 45 and len(set(labels.tolist())) > 40


@pytest.mark.parametrize("shape", glyphs.SHAPES)
def test_every_glyph_is_drawn_near_its_extent(shape: str) -> None:
    mask = glyphs.glyph_mask(64, shape, 32, 32, 40, 0.3)
    rows, cols = np.nonzero(mask)
    assert mask.sum() > 60, shape
    assert max(np.ptp(rows), np.ptp(cols)) <= 42, shape


def test_mini_runs_carry_the_pretraining_spec_and_paper_runs_do_not() -> None:
    mini = resolve_run("r50_c4", "mini", 0)
    assert mini["pretraining"]["backbone"] == "resnet50"
    assert mini["pretraining"]["blocks"] == list(mini["model"]["blocks"]["resnet50"])
    assert "pretraining" not in resolve_run("r50_c4", "paper", 0)
    # one spec per backbone: the runs of one backbone share their pretrained weights
    backbones = sorted(s["backbone"] for s in pretraining_specs("mini").values())
    assert backbones == ["resnet101", "resnet50", "resnext101_32x8d"]


def test_c5_runs_see_larger_images_at_mini() -> None:
    assert resolve_run("r50_c5_roialign", "mini", 0)["input"]["min_size"] == 256
    assert resolve_run("r50_c4", "mini", 0)["input"]["min_size"] == 176  # 1.375x the 128-px images


def test_pretrain_writes_weights_and_record_that_the_backbone_loads(tmp_path: Path) -> None:
    path = pretrained_weights(tmp_path, "mini", TINY)
    assert path.name == f"resnet50-{config_hash(TINY)}.pt"
    record = pretrain.ensure_pretrained(TINY, path, scale="mini")
    assert record == path and path.exists()
    info = json.loads(path.with_suffix(".json").read_text())
    assert info["spec_hash"] == config_hash(TINY) and 0 <= info["val_top1"] <= 1
    assert info["provenance"]["wall_time_s"] > 0 and info["classes"] == 45
    mtime = path.stat().st_mtime_ns
    pretrain.ensure_pretrained(TINY, path)  # cached: not pretrained again
    assert path.stat().st_mtime_ns == mtime

    cfg = resolve_run("r50_fpn", "smoke", 0)
    cfg["model"].update(width_divisor=16, norm="gn", blocks=[1, 1, 1, 1], pretrained=True)
    cfg["model"]["pretrained_weights"] = str(path)
    cfg["model"]["num_classes"] = 6
    model = build_maskrcnn(cfg)
    init = model.segbench_init
    assert init["backbone_weights"] == "synthetic-pretrained" and init["weights"] == str(path)
    assert init["frozen_stages"] == ("conv1", "bn1", "layer1")
    trunk = pretrain.load_trunk_state(path, TINY)
    body = model.backbone.body
    assert torch.equal(body.layer3[0].conv2.weight, trunk["layer3.0.conv2.weight"])
    assert not body.layer1[0].conv1.weight.requires_grad and body.layer2[0].conv1.weight.requires_grad


def test_filling_the_cache_leaves_the_callers_random_streams_alone(tmp_path: Path) -> None:
    """A run that pretrains into an empty cache must initialise its heads as one that finds it full."""
    torch.manual_seed(123)
    np.random.seed(7)
    expected_torch, expected_np = torch.rand(3), np.random.rand(3)
    torch.manual_seed(123)
    np.random.seed(7)
    pretrain.ensure_pretrained(TINY, tmp_path / "w.pt")
    assert torch.equal(torch.rand(3), expected_torch) and np.array_equal(np.random.rand(3), expected_np)


def test_weights_of_another_spec_are_refused_by_name(tmp_path: Path) -> None:
    path = pretrain.ensure_pretrained(TINY, tmp_path / "w.pt")
    other = {**TINY, "seed": 1}
    with pytest.raises(Exception, match="another spec"):
        pretrain.load_trunk_state(path, other)


def test_pretraining_lowers_the_loss(tmp_path: Path) -> None:
    spec = {
        **TINY,
        "schedule": {**TINY["schedule"], "iterations": 40, "lr": 0.05},
        "corpus": {**TINY["corpus"], "num_train": 128},
    }
    info = pretrain.pretrain(spec, tmp_path / "w.pt")
    curve = [point["loss"] for point in info["loss_curve"]]
    assert curve[-1] < curve[0]


def test_a_run_that_fills_the_cache_trains_as_one_that_finds_it_full(tmp_path: Path) -> None:
    """A run pretrains its backbone in a fresh process when the cache is empty; its training must not
    differ from a run whose cache the DAG's pretrain rule filled first (loss by loss, bit for bit)."""
    from segbench.engine.runner import train_run
    from segbench.trainlog import read_train_log

    data = tmp_path / "data"
    cfg = resolve_run("r50_fpn", "smoke")
    filled = tmp_path / "b" / "smoke" / "runs" / cfg["run_id"]
    spec = cfg["pretraining"]
    pretrain.pretrain(spec, pretrained_weights(tmp_path / "b", "smoke", spec), scale="smoke")
    losses = []
    for results in (tmp_path / "a", tmp_path / "b"):
        run_dir = results / "smoke" / "runs" / cfg["run_id"]
        train_run(cfg, run_dir, data)
        log = read_train_log(run_dir / "train_log.jsonl")
        losses.append([entry["loss"] for entry in log if "iteration" in entry])
    assert pretrained_weights(tmp_path / "a", "smoke", spec).exists() and filled.exists()
    assert losses[0] == losses[1] and len(losses[0]) == cfg["schedule"]["iterations"]


# -- pinned weights (the mini ones are committed: another machine fine-tunes from the very same file) ----
def test_the_record_pins_the_weights_and_a_changed_file_is_refused_by_name(tmp_path: Path) -> None:
    path = pretrain.ensure_pretrained(TINY, tmp_path / "mini" / "pretrained" / "w.pt")
    record = json.loads(path.with_suffix(".json").read_text())
    assert record["weights_sha256"] == pretrain.sha256_file(path)
    assert pretrain.verify_pinned(path, TINY) == record["weights_sha256"]
    path.write_bytes(path.read_bytes() + b"x")  # another CPU's pretraining, or a corrupt copy
    with pytest.raises(
        InputError, match=r"w\.pt: sha256 .* is not the pinned .*segbench pretrain --scale mini"
    ):
        pretrain.ensure_pretrained(TINY, path)


def test_a_missing_pt_is_decompressed_from_the_committed_xz_bit_for_bit(tmp_path: Path) -> None:
    """The committed form is the .pt.xz (a clone has no .pt): the weights come back byte for byte."""
    path = pretrain.ensure_pretrained(TINY, tmp_path / "mini" / "pretrained" / "w.pt")
    original = path.read_bytes()
    assert stored_weights(path).stat().st_size < len(original)
    path.unlink()
    assert pretrain.verify_pinned(path, TINY) == pretrain.sha256_file(path)
    assert path.read_bytes() == original


def test_a_corrupt_xz_is_refused_by_name(tmp_path: Path) -> None:
    path = pretrain.ensure_pretrained(TINY, tmp_path / "mini" / "pretrained" / "w.pt")
    path.unlink()
    stored_weights(path).write_bytes(b"not xz")
    with pytest.raises(InputError, match=r"w\.pt\.xz: not a readable xz file .*git checkout"):
        pretrain.ensure_pretrained(TINY, path)
    assert not path.exists()


def test_a_missing_pinned_file_is_refused_not_pretrained_again(tmp_path: Path) -> None:
    path = pretrain.ensure_pretrained(TINY, tmp_path / "mini" / "pretrained" / "w.pt")
    path.unlink()
    stored_weights(path).unlink()
    with pytest.raises(InputError, match=r"w\.pt\.xz: missing; its record pins sha256 .*git checkout"):
        pretrain.ensure_pretrained(TINY, path)
    assert not path.exists()
    pretrain.ensure_pretrained(TINY, path, force=True)  # only on request: new weights, newly pinned
    assert pretrain.verify_pinned(path, TINY) == pretrain.sha256_file(path)


def test_a_run_that_finds_a_pinned_backbone_loads_it_and_records_its_sha256(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a fresh clone does with the committed mini backbones: a run whose results root holds a pinned
    backbone loads that file (it is not pretrained again: the file is unchanged) and its provenance names
    the file and its sha256."""
    from segbench.engine import maskrcnn as engine
    from segbench.engine.runner import backbone_of

    cfg = resolve_run("r50_c4_roipool", "smoke", 0)
    cfg["pretraining"] = TINY
    pinned = pretrain.ensure_pretrained(TINY, pretrained_weights(tmp_path, "smoke", TINY), scale="smoke")
    before = (pinned.stat().st_mtime_ns, pretrain.sha256_file(pinned))

    def no_pretraining(*args: object) -> None:
        raise AssertionError("pretrained again instead of loading the pinned backbone")

    monkeypatch.setattr(pretrain, "require", no_pretraining)  # the first step of pretraining
    run_dir = tmp_path / "smoke" / "runs" / cfg["run_id"]
    assert engine.pretrained_backbone(cfg, run_dir) == pinned
    assert (pinned.stat().st_mtime_ns, pretrain.sha256_file(pinned)) == before
    identity = backbone_of(cfg, run_dir)
    assert identity == {"file": pinned.name, "sha256": before[1], "pinned_sha256": before[1]}


def test_a_fresh_clone_has_every_mini_backbone_pinned(tmp_path: Path) -> None:
    """The mini backbones are committed (the miniature's downloaded ImageNet files, issue #35): every
    pretraining spec the mini runs need has its record and its .pt.xz tracked by git (not the .pt, which
    is gitignored), and in a results root holding only those two files (a clone) the weights decompress
    to the sha256 the record pins, so a run there loads them (test above) instead of pretraining."""
    import shutil
    import subprocess

    tracked = set(
        subprocess.run(
            ["git", "ls-files", "results/mini/pretrained"],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
        ).stdout.split()
    )
    specs = pretraining_specs("mini")
    assert len(specs) == 3  # ResNet-50, ResNet-101, ResNeXt-101
    for spec in specs.values():
        committed = pretrained_weights(REPO / "results", "mini", spec)
        names = {f"results/mini/pretrained/{committed.name}{suffix}" for suffix in ("", ".xz")}
        assert tracked & names == {f"results/mini/pretrained/{committed.name}.xz"}, committed
        path = pretrained_weights(tmp_path, "mini", spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        for source in (committed.with_suffix(".json"), stored_weights(committed)):
            shutil.copy(source, path.parent / source.name)
        record = json.loads(path.with_suffix(".json").read_text())
        assert record["spec"] == spec, path
        assert pretrain.verify_pinned(path, spec) == record["weights_sha256"], path


def test_status_calls_a_run_from_another_pinned_backbone_stale(tmp_path: Path) -> None:
    """After `segbench pretrain --force` pins new weights, every run that recorded the old sha256 is stale
    (the DAG then retrains it); a run that predates the recording is left to the audit to name."""
    from segbench.status import backbone_differs

    cfg = resolve_run("r50_c4_roipool", "smoke", 0)
    cfg["pretraining"] = TINY
    weights = pretrain.ensure_pretrained(TINY, pretrained_weights(tmp_path, "smoke", TINY), scale="smoke")
    run_dir = tmp_path / "smoke" / "runs" / cfg["run_id"]
    run_dir.mkdir(parents=True)
    done = run_dir / "train_done.json"

    def trained_from(sha: str | None) -> None:
        backbone = None if sha is None else {"file": weights.name, "sha256": sha}
        done.write_text(json.dumps({"provenance": {"backbone": backbone}}))

    trained_from(pretrain.sha256_file(weights))
    assert backbone_differs(cfg, run_dir) is None
    trained_from(None)
    assert backbone_differs(cfg, run_dir) is None
    trained_from("0" * 64)
    why = backbone_differs(cfg, run_dir)
    assert why and "sha256 000000000000, the committed one is" in why and "--force" in why
