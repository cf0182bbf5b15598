"""Every plugin example of docs/adding_a_method.md runs: each fenced block marked
```python title="FILE.py" probe="ATTRIBUTE@RUN"``` is saved as FILE.py, registered as a plugin and probed
(segbench.plugin_probe) on RUN's method run at the smoke and mini scales, the sizes `segbench compare` uses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from segbench.models import MODEL_PLUGINS
from segbench.models.maskrcnn import MASK_HEADS, MASK_LOSSES
from segbench.models.unet_losses import UNET_LOSSES
from segbench.ops import ROI_LAYERS
from segbench.plugin_probe import probe_method_run
from segbench.plugins import method_run_config, register_plugin
from segbench.registry import resolve_run

DOC = Path(__file__).resolve().parents[1] / "docs" / "adding_a_method.md"
BLOCK = re.compile(
    r'^```python title="(?P<file>[\w.]+\.py)" probe="(?P<attr>\w+)@(?P<run>\w+)"\n(?P<code>.*?)^```$',
    re.MULTILINE | re.DOTALL,
)
REGISTRIES = {
    "roi_layer": ROI_LAYERS,
    "mask_head": MASK_HEADS,
    "mask_loss": MASK_LOSSES,
    "unet_loss": UNET_LOSSES,
    "model": MODEL_PLUGINS,
}
EXAMPLES = [m.groupdict() for m in BLOCK.finditer(DOC.read_text(encoding="utf-8"))]


@pytest.mark.parametrize("example", EXAMPLES, ids=[e["file"] for e in EXAMPLES])
def test_doc_example_passes_the_probe(example, tmp_path):
    path = tmp_path / example["file"]
    path.write_text(example["code"], encoding="utf-8")
    plugin = register_plugin(f"{path}:{example['attr']}")
    try:
        for scale in ("smoke", "mini"):
            probe_method_run(plugin, method_run_config(resolve_run(example["run"], scale, 0), plugin))
    finally:
        REGISTRIES[plugin.kind].unregister(plugin.name)


def test_examples_cover_every_kind_and_both_model_families():
    kinds = {kind for e in EXAMPLES for kind in re.findall(r'segbench_kind = "(\w+)"', e["code"])}
    assert kinds == set(REGISTRIES)
    model_families = {
        resolve_run(e["run"], "smoke", 0)["family"]
        for e in EXAMPLES
        if 'segbench_kind = "model"' in e["code"]
    }
    assert model_families == {"unet", "maskrcnn"}  # a U-Net-family model and a Mask R-CNN (new backbone)
