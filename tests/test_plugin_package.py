"""``examples/plugin_package``, a third-party plugin package, as a researcher uses it: installed with
``pip install -e`` into a virtual environment of its own, found through its ``segbench.plugins`` entry
points, probed, and compared at the smoke scale through ``segbench compare`` (the loss) and through
Snakemake's ``--config methods=...`` (the model), then shown by ``segbench report``.

The environment is built offline: a venv without pip of its own (``--without-pip``) whose site-packages
holds a ``.pth`` line naming this interpreter's site-packages, so torch, pip, setuptools and Snakemake come
from the environment the tests run in, and nothing is downloaded (``--no-index``; ``--no-build-isolation``
builds with that setuptools). segbench is the checkout under test (``PYTHONPATH``), and a ``segbench``
script in the venv's ``bin`` runs it with the venv's interpreter, as an installed console script would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from segbench.paths import REPO_ROOT

pytestmark = pytest.mark.slow

PACKAGE = REPO_ROOT / "examples" / "plugin_package"
DISTRIBUTION, VERSION = "segbench-unet-extras", "0.1.0"
TABLE, SEEDS = "unet_table1", 3
VERDICTS = {"better", "worse", "inconclusive", "no significant difference", "untested"}


def run(cmd: list[str], env: dict[str, str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(cmd)}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A venv with the example package installed editable (``pip install -e examples/plugin_package``)."""
    pytest.importorskip(
        "setuptools", reason="pip builds the example package with the environment's setuptools"
    )
    tmp = tmp_path_factory.mktemp("plugin-package")
    root = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    python = root / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    base = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (Path(site) / "segbench_test_base.pth").write_text("".join(f"{p}\n" for p in base), encoding="utf-8")
    script = root / "bin" / "segbench"
    script.write_text(f"#!{python}\nimport sys\nfrom segbench.cli import main\nsys.exit(main())\n")
    script.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(REPO_ROOT),
        "OMP_NUM_THREADS": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    env.pop("VIRTUAL_ENV", None)
    pip = [str(python), "-m", "pip", "install", "--no-index", "--no-build-isolation", "-e", str(PACKAGE)]
    run(pip, env, tmp, timeout=300)
    return {"python": str(python), "env": env, "tmp": tmp}


def test_pip_install_exposes_the_entry_points(venv: dict) -> None:
    code = (
        "import json; from importlib.metadata import entry_points\n"
        "print(json.dumps({ep.name: [ep.value, ep.dist.name, ep.dist.version] "
        "for ep in entry_points(group='segbench.plugins')}))"
    )
    found = json.loads(run([venv["python"], "-c", code], venv["env"], venv["tmp"]).stdout)
    assert found["dice_bce"] == ["segbench_unet_extras.losses:dice_bce", DISTRIBUTION, VERSION]
    assert found["res_unet"] == ["segbench_unet_extras.models:res_unet", DISTRIBUTION, VERSION]
    # installed editable: the module is the checkout's file, so an edit is what the next run imports
    where = "import segbench_unet_extras.losses as m; print(m.__file__)"
    path = run([venv["python"], "-c", where], venv["env"], venv["tmp"]).stdout.strip()
    assert Path(path) == PACKAGE / "src" / "segbench_unet_extras" / "losses.py"


def test_both_plugins_pass_the_probe_on_the_real_tiles(venv: dict) -> None:
    code = (
        "from segbench.plugin_probe import probe_method_run\n"
        "from segbench.plugins import method_run_config, register_plugin\n"
        "from segbench.registry import resolve_run\n"
        "for name, kind in (('dice_bce', 'unet_loss'), ('res_unet', 'model')):\n"
        "    plugin = register_plugin(name)\n"
        "    assert plugin.kind == kind, plugin\n"
        "    for scale in ('smoke', 'mini'):\n"
        "        probe_method_run(plugin, method_run_config(resolve_run('unet_isbi', scale, 0), plugin))\n"
        "print('probed')"
    )
    assert "probed" in run([venv["python"], "-c", code], venv["env"], venv["tmp"]).stdout


def check_record(path: Path, name: str, kind: str) -> dict:
    record = json.loads(path.read_text())
    rows = {row["id"]: row for row in record["rows"]}
    assert set(rows) == {"unet", "idsia", "threshold", f"method_{name}"}
    method = rows[f"method_{name}"]
    assert method["method"] and method["runs"] == [f"unet_isbi+{name}"]
    assert all(v["n"] == SEEDS for v in method["values"].values())
    assert record["method"]["spec"] == name and record["method"]["kind"] == kind
    identity = record["method"].get("identity")
    if identity is not None:  # the plugin's distribution is part of the method runs' identity
        assert identity["distribution"] == DISTRIBUTION and identity["version"] == VERSION
    assert len(record["comparisons"]) == 9 and {c["verdict"] for c in record["comparisons"]} <= VERDICTS
    return record


def test_compare_the_loss_then_the_model_through_snakemake_and_report_both(venv: dict) -> None:
    tmp: Path = venv["tmp"]  # type: ignore[assignment]
    results, data, reports = tmp / "results", tmp / "data", tmp / "reports"
    compare = [venv["python"], "-m", "segbench", "compare", "--method", "dice_bce", "--table", TABLE]
    compare += ["--seeds", str(SEEDS), "--scale", "smoke"]
    compare += ["--results", str(results), "--data-root", str(data)]
    run(compare, venv["env"], tmp)
    check_record(results / "smoke" / "compare" / f"{TABLE}--dice_bce.json", "dice_bce", "unet_loss")

    target = results / "smoke" / "compare" / f"{TABLE}--res_unet.json"
    page = reports / "smoke" / "compare" / f"{TABLE}--res_unet.html"  # the DAG declares the page too
    snakemake = [venv["python"], "-m", "snakemake", "--cores", "2", "--nolock", str(page), "--config"]
    snakemake += ["scale=smoke", f"results={results}", f"reports={reports}", f"data_root={data}"]
    # no `seeds:` here: Snakemake reads --config values with YAML's BaseLoader, every scalar a string, which
    # the config schema refuses for seeds (an integer); the default is 3, which is SEEDS
    snakemake.append(f"methods=[{{method: res_unet, table: {TABLE}}}]")
    run(snakemake, venv["env"], REPO_ROOT, timeout=900)
    check_record(target, "res_unet", "model")
    assert page.exists() and "unet_isbi+res_unet-seed2" in page.read_text()
    config = json.loads((results / "smoke" / "runs" / "unet_isbi+res_unet-seed0" / "config.json").read_text())
    assert config["config"]["model"]["plugin"] == "res_unet"

    report = [venv["python"], "-m", "segbench", "report", "--scale", "smoke", "--no-figures"]
    run([*report, "--results", str(results), "--out", str(reports)], venv["env"], tmp)
    index = (reports / "smoke" / "index.html").read_text()
    for name in ("dice_bce", "res_unet"):
        assert f'href="compare/{TABLE}--{name}.html"' in index
        page = (reports / "smoke" / "compare" / f"{TABLE}--{name}.html").read_text()
        assert page.count('<tr class="claim verdict-') == 9 and f"unet_isbi+{name}-seed2" in page
        assert '<svg class="spark"' in page  # the method's training loss over its baseline's
