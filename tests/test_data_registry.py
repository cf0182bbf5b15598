"""The dataset registry: coverage of experiments.yaml, validation, path resolution, the real ISBI 2012 copy,
and the ``segbench data`` command."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml

from segbench import data
from segbench.cli import main
from segbench.data.registry import validate_entry
from segbench.errors import InputError
from segbench.paths import data_root
from segbench.registry import expand_derived_scales

EXPERIMENTS = Path(data.registry.DATASETS_YAML).with_name("experiments.yaml")


def test_every_dataset_of_every_scale_is_registered():
    scales = expand_derived_scales(yaml.safe_load(EXPERIMENTS.read_text()))["scales"]
    wanted = {name for scale in scales.values() for name in scale["datasets"].values()}
    assert wanted <= set(data.load_datasets())


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(InputError) as err:
        data.dataset_entry("no_such_set")
    message = str(err.value)
    assert "no_such_set" in message and "shapes_mini" in message and "isbi2012" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "change, complaint",
    [
        ({"colour": "red"}, "unknown keys"),
        ({"format": "voc"}, "format must be one of"),
        ({"generator": "nope"}, "generator must be one of"),
        ({"params": {"image_size": 64, "wings": 2}}, "unknown params"),
        ({"layout": {"train": {"images": "images/train"}}}, "needs exactly 'images' and 'annotations'"),
    ],
)
def test_malformed_entries_are_refused_by_name(change, complaint):
    entry = {**data.dataset_entry("shapes_smoke"), **change}
    with pytest.raises(InputError, match=complaint) as err:
        validate_entry("broken_set", entry)
    assert "broken_set" in str(err.value)


def test_missing_dataset_names_path_and_fix(tmp_path):
    with pytest.raises(InputError, match=r"em_mini.*train-volume\.tif.*segbench data prepare em_mini"):
        data.dataset_paths("em_mini", tmp_path)
    with pytest.raises(InputError, match="registration"):
        data.dataset_paths("isbi2012", tmp_path)


def test_coco_entries_share_the_image_directory(tmp_path):
    assert data.dataset_dir("coco2017_person_keypoints", tmp_path) == data.dataset_dir("coco2017", tmp_path)


def readme_hashes(readme: Path) -> dict[str, tuple[str, str]]:
    """``file -> (file sha256, pixel sha256)`` from the table in the shared ISBI README."""
    rows = re.findall(
        r"\| `([\w-]+\.tif)` \|.*?\| `([0-9a-f]{64})` \| `([0-9a-f]{64})` \|", readme.read_text()
    )
    return {name: (file_hash, pixel_hash) for name, file_hash, pixel_hash in rows}


@pytest.mark.shared_data
def test_isbi2012_resolves_against_the_shared_copy(shared_data, monkeypatch):
    monkeypatch.setenv("SEGBENCH_DATA", str(shared_data))
    paths = data.dataset_paths("isbi2012", data_root())
    expected = readme_hashes(shared_data / "isbi2012" / "README.md")
    # the shared copy may also carry the test volume (its labels are secret); the dataset is the training pair
    assert {"train-volume.tif", "train-labels.tif"} <= set(expected)
    for key in ("volume", "labels"):
        stack = tifffile.imread(paths[key])
        assert stack.shape == (30, 512, 512) and stack.dtype == np.uint8
        pixel_hash = hashlib.sha256(np.ascontiguousarray(stack).tobytes()).hexdigest()
        assert pixel_hash == expected[paths[key].name][1]


@pytest.mark.shared_data
def test_prepare_records_a_manifest_for_a_real_copy(shared_data, tmp_path):
    target = tmp_path / "isbi2012"
    target.mkdir()
    for name in ("train-volume.tif", "train-labels.tif"):
        (target / name).symlink_to(shared_data / "isbi2012" / name)
    assert data.prepare("isbi2012", tmp_path) == target
    manifest = data.read_manifest(target)
    expected = readme_hashes(shared_data / "isbi2012" / "README.md")
    assert {name: rec["sha256"] for name, rec in manifest["files"].items()} == {
        name: expected[name][0] for name in ("train-volume.tif", "train-labels.tif")
    }


def test_cli_prepare_list_and_verify(tmp_path, capsys):
    assert main(["data", "prepare", "em_smoke", "--data-root", str(tmp_path), "--seed", "3"]) == 0
    assert data.read_manifest(tmp_path / "em_smoke")["seed"] == 3
    assert main(["data", "verify", "em_smoke", "--data-root", str(tmp_path)]) == 0
    assert main(["data", "list", "--json"]) == 0
    assert '"shapes_mini"' in capsys.readouterr().out

    (tmp_path / "em_smoke" / "train-volume.tif").write_bytes(b"tampered")
    assert main(["data", "verify", "em_smoke", "--data-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "train-volume.tif" in err
    assert main(["data", "generate", "coco2017", "--data-root", str(tmp_path)]) == 2
    assert main(["data", "prepare", "nonexistent", "--data-root", str(tmp_path)]) == 2


def test_a_registered_format_is_validated_and_resolved_by_its_spec(tmp_path):
    """A new dataset format is one register_format call: validation and path resolution read the spec."""
    from segbench.data.formats import FORMATS, DatasetFormat, register_format
    from segbench.data.registry import resolve_layout, validate_entry

    def check(layout, fail):
        if set(layout) != {"stack"}:
            fail("npz layout needs exactly 'stack'")

    entry = {"source": "synthetic", "format": "npz_toy", "generator": "shapes", "params": {}, "layout": {}}
    with pytest.raises(InputError, match="format must be one of .*'coco'.*got 'npz_toy'"):
        validate_entry("toy", {**entry, "layout": {"stack": "a.npz"}})
    register_format(DatasetFormat("npz_toy", "NPZ", check, lambda layout, at: {"stack": at(layout["stack"])}))
    try:
        with pytest.raises(InputError, match="npz layout needs exactly 'stack'"):
            validate_entry("toy", {**entry, "layout": {"volume": "a.npz"}})
        validate_entry("toy", {**entry, "layout": {"stack": "a.npz"}})
        assert resolve_layout({**entry, "layout": {"stack": "a.npz"}}, tmp_path) == {
            "stack": tmp_path / "a.npz"
        }
    finally:
        FORMATS.unregister("npz_toy")
