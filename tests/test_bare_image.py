"""segbench on a bare GPU image (docs/gpu.md): the CLI starts without its optional packages, from a
working tree on ``PYTHONPATH`` with no install, and a command that needs a missing package says which in
one line (exit 2). Packages are made absent in a subprocess by a ``sitecustomize`` that hides them from
every import finder, as if they were not installed; the pins of pyproject.toml, constraints.txt and
environment.yml are checked against each other."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from segbench.errors import InputError
from segbench.optional import PACKAGES, MissingPackage, require

REPO = Path(__file__).resolve().parents[1]
#: What the issue names: segbench must start without these.
OPTIONAL = ("jsonschema", "pycocotools", "faster_coco_eval")
#: What else a bare image may lack; --help, list and plan need none of them either.
ALSO_ABSENT = ("scipy", "skimage", "tifffile", "numba", "pandas", "matplotlib", "snakemake", "dvc", "tqdm")

SITECUSTOMIZE = '''
import os
import sys

ABSENT = set(os.environ["SEGBENCH_TEST_ABSENT"].split(","))


class _Hide:
    """Wraps a meta path finder: an absent package is not found (find_spec None), as if not installed."""

    def __init__(self, finder):
        self.finder = finder

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ABSENT:
            return None
        return self.finder.find_spec(name, path, target)

    def __getattr__(self, attr):
        return getattr(self.finder, attr)


finders = sys.meta_path
if os.environ.get("SEGBENCH_TEST_UNINSTALLED"):  # no editable install: segbench only from PYTHONPATH
    finders = [f for f in finders if not type(f).__module__.startswith("__editable__")]
sys.meta_path[:] = [_Hide(f) if hasattr(f, "find_spec") else f for f in finders]
'''


#: Runs ``segbench.cli.main`` on each named command line in one process (torch is imported once), the
#: way ``python -m segbench`` does, and prints what each returned and wrote, with what a probe found.
DRIVER = """
import contextlib, importlib.util, io, json, sys
import segbench
from segbench.cli import main

report = {"segbench": segbench.__file__, "found": {m: importlib.util.find_spec(m) is not None for m in sys.argv[2:]}}
for name, argv in json.loads(sys.argv[1]).items():
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as exc:  # --help
            rc = exc.code
    report[name] = {"rc": rc, "stdout": out.getvalue(), "stderr": err.getvalue()}
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def blocker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bare_image")
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    return folder


def bare(blocker: Path, *args: str, absent=OPTIONAL + ALSO_ABSENT) -> subprocess.CompletedProcess:
    """``python ARGS`` from the repository root, as docs/gpu.md runs it: ``PYTHONPATH=.``, no install
    (an editable install's finder is dropped), the ``absent`` packages hidden."""
    env = {
        **os.environ,
        "PYTHONPATH": f"{blocker}{os.pathsep}.",
        "SEGBENCH_TEST_ABSENT": ",".join(absent),
        "SEGBENCH_TEST_UNINSTALLED": "1",
    }
    env.pop("SEGBENCH_REGISTRY", None)
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )


def write_coco(folder: Path) -> tuple[Path, Path]:
    """A one-box ground truth and its one detection: evaluating them needs pycocotools."""
    gt, dt = folder / "gt.json", folder / "dt.json"
    image = {"id": 1, "width": 10, "height": 10, "file_name": "a.png"}
    ann = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "area": 25, "iscrowd": 0}
    categories = [{"id": 1, "name": "a"}]
    gt.write_text(json.dumps({"images": [image], "annotations": [ann], "categories": categories}))
    dt.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.9}]))
    return gt, dt


@pytest.fixture(scope="module")
def bare_cli(blocker: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Every command below on the bare image: OPTIONAL and ALSO_ABSENT hidden, segbench not installed."""
    tmp = tmp_path_factory.mktemp("bare_cli")
    gt, dt = write_coco(tmp)
    tif = tmp / "x.tif"
    tif.write_bytes(b"x")
    commands = {
        "help": ["--help"],
        "list": ["list"],
        "plan": ["plan", "reproduce_table2", "--scale", "paper", "--gpus", "8"],
        "plan_json": ["plan", "all", "--scale", "paper", "--json"],
        "coco": ["metrics", "coco", "--gt", str(gt), "--dt", str(dt), "--iou-type", "bbox"],
        "isbi": ["metrics", "isbi", "--pred", str(tif), "--labels", str(tif)],
        "generate": ["data", "generate", "shapes_smoke", "--data-root", str(tmp / "data")],
    }
    out = bare(blocker, "-c", DRIVER, json.dumps(commands), *OPTIONAL, *ALSO_ABSENT, "torch")
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def test_the_bare_image_lacks_the_packages_and_the_install(bare_cli):
    assert not any(found for name, found in bare_cli["found"].items() if name != "torch")
    assert bare_cli["found"]["torch"]
    assert Path(bare_cli["segbench"]).resolve() == REPO / "segbench" / "__init__.py"


@pytest.mark.parametrize("command", ["help", "list", "plan"])
def test_cli_starts_without_optional_packages(bare_cli, command):
    result = bare_cli[command]
    assert result["rc"] == 0, result["stderr"][-2000:]
    assert result["stdout"].strip() and "Traceback" not in result["stderr"]


def test_plan_without_optional_packages_matches_the_full_install(bare_cli, capsys):
    from segbench.cli import main

    assert main(["plan", "all", "--scale", "paper", "--json"]) == 0
    assert json.loads(bare_cli["plan_json"]["stdout"]) == json.loads(capsys.readouterr().out)


def one_line_error(result: dict) -> str:
    assert result["rc"] == 2, result
    lines = result["stderr"].strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("segbench: error: "), result["stderr"]
    return lines[0]


def test_coco_evaluation_without_pycocotools_names_it(bare_cli):
    line = one_line_error(bare_cli["coco"])
    assert "needs the Python package pycocotools" in line and "pip install 'pycocotools>=2.0.7'" in line


def test_any_missing_dependency_is_one_line(bare_cli):
    """The CLI's net: a dependency imported deep inside a command (numba, scipy or tifffile for the ISBI
    metrics) is named in one line."""
    line = one_line_error(bare_cli["isbi"])
    assert re.search(r"segbench metrics needs the Python package (numba|scipy|tifffile), which", line)


def test_data_generation_without_scipy_names_it(bare_cli):
    line = one_line_error(bare_cli["generate"])
    assert re.search(r"generator 'shapes' needs the Python package (scipy|tifffile)", line)


def test_python_m_segbench_from_the_working_tree_without_install(blocker, tmp_path):
    """docs/gpu.md: a copied working tree runs as ``PYTHONPATH=. python -m segbench`` (no pip install);
    a command that needs a missing package exits 2 with one line on stderr, no traceback."""
    out = bare(blocker, "-m", "segbench", "--help")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "usage: segbench" in out.stdout
    gt, dt = write_coco(tmp_path)
    args = ["metrics", "coco", "--gt", str(gt), "--dt", str(dt), "--iou-type", "bbox"]
    out = bare(blocker, "-m", "segbench", *args)
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and "pycocotools" in out.stderr, out.stderr


# -- in process: the lazy imports and the registry without jsonschema ----------------------------------
def hide(monkeypatch: pytest.MonkeyPatch, package: str) -> None:
    """Make ``package`` (and its imported submodules) fail to import, as if not installed."""
    for name in [m for m in sys.modules if m == package or m.startswith(f"{package}.")] + [package]:
        monkeypatch.setitem(sys.modules, name, None)


def test_mask_encoding_and_annotations_name_pycocotools(monkeypatch):
    from segbench.data.coco import coco_api
    from segbench.engine.maskrcnn import encode_masks

    hide(monkeypatch, "pycocotools")
    with pytest.raises(MissingPackage, match=r"needs the Python package pycocotools"):
        encode_masks(torch.ones(1, 1, 4, 4))
    with pytest.raises(MissingPackage, match=r"reading COCO-format annotations"):
        coco_api({"images": [], "annotations": [], "categories": []})
    assert encode_masks(torch.ones(0, 1, 4, 4)) == []  # nothing to encode needs no package


def test_faster_backend_names_faster_coco_eval(monkeypatch):
    from segbench.metrics.coco import _run_faster

    hide(monkeypatch, "faster_coco_eval")
    with pytest.raises(MissingPackage, match=r"faster-coco-eval.*or use --backend pycocotools"):
        _run_faster({}, [], "bbox", None)


def test_require_reraises_what_is_not_a_missing_dependency(monkeypatch):
    with pytest.raises(ModuleNotFoundError):
        require("segbench_no_such_module", "a test")
    hide(monkeypatch, "tqdm")  # a dependency: named
    with pytest.raises(MissingPackage, match=r"pip install 'tqdm>=4.65'"):
        require("tqdm", "a test")
    assert isinstance(MissingPackage("x"), InputError)  # exit 2, like every bad-input error


def raw_registry() -> dict:
    from segbench.registry import registry_path

    return yaml.safe_load(registry_path().read_text(encoding="utf-8"))


def test_registry_without_jsonschema_gives_the_same_registry(monkeypatch):
    from segbench.registry import validate_registry

    full = validate_registry(raw_registry())
    hide(monkeypatch, "jsonschema")
    assert validate_registry(raw_registry()) == full


def test_registry_without_jsonschema_still_checks_references(monkeypatch):
    from segbench.registry import validate_registry

    hide(monkeypatch, "jsonschema")
    data = raw_registry()
    data["scales"]["rehearsal"]["base"] = "no_such_scale"
    with pytest.raises(InputError, match=r"scales/rehearsal/base: unknown scale 'no_such_scale'"):
        validate_registry(data, source="reg.yaml")
    with pytest.raises(InputError, match=r"reg\.yaml: malformed registry .*pip install 'jsonschema>=4\.18'"):
        validate_registry({"scales": {"x": 3}, "tables": {}, "runs": {}}, source="reg.yaml")


# -- the pins -------------------------------------------------------------------------------------------
def pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def constraints() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (REPO / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line.strip())
            assert match, f"constraints.txt: {line!r} is not name==version"
            name = re.sub(r"[-_.]+", "-", match[1]).lower()
            assert name not in pins, f"constraints.txt: {name} pinned twice"
            pins[name] = match[2]
    return pins


def test_constraints_pin_every_dependency_inside_its_range():
    from packaging.requirements import Requirement

    project = pyproject()["project"]
    pins = constraints()
    for text in project["dependencies"] + project["optional-dependencies"]["dev"]:
        req = Requirement(text)
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        assert name in pins, f"constraints.txt pins no version of {name} (pyproject.toml: {text})"
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} not in {text}"
    assert re.fullmatch(r"\d+\.\d+\.\d+", pins["torch"]) and re.fullmatch(
        r"\d+\.\d+\.\d+", pins["torchvision"]
    )


def test_torch_is_a_range_everywhere_and_pinned_once():
    deps = pyproject()["project"]["dependencies"]
    assert "torch>=2.4,<3" in deps and "torchvision>=0.19,<1" in deps
    env = yaml.safe_load((REPO / "environment.yml").read_text(encoding="utf-8"))
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "torch>=2.4,<3" in pip and "torchvision>=0.19,<1" in pip
    assert {text.replace(" ", "") for _, text in PACKAGES.values()} <= set(deps)  # the one-line hints
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert 'pip install -c constraints.txt -e ".[dev]"' in makefile
