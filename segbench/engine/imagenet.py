"""Where a run's ImageNet-pretrained backbone comes from: torchvision's weights, or a rehearsal stand-in.

The paper fine-tunes ImageNet-pretrained backbones (He et al. 2017, section 3.1); at the paper scale the
backbone builder (:mod:`segbench.models.maskrcnn.backbones`) asks torchvision for them, and torchvision
looks them up in ``$TORCH_HOME/hub/checkpoints/`` before downloading. A scale with ``imagenet: stand-in``
(the rehearsal) runs that same lookup against a private ``$TORCH_HOME`` under the data root, in which
this module has placed a file of the right architecture, key names and file name whose values are random
(BatchNorm statistics included, so frozen BatchNorm does something visible). The user's own torchvision
cache is never written: a random file there would silently replace real ImageNet weights later.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

STAND_IN = "stand-in"
STAND_IN_TORCH_HOME = "torch-home-stand-in"  # under the data root


def stand_in_torch_home(data_root: str | os.PathLike[str]) -> Path:
    """The private ``$TORCH_HOME`` of the rehearsal's stand-in weights."""
    return Path(data_root) / STAND_IN_TORCH_HOME


def checkpoint_path(torch_home: Path, backbone: str) -> Path:
    """Where torchvision looks for ``backbone``'s ImageNet weights under ``torch_home`` (its URL's name)."""
    from segbench.models.maskrcnn.backbones import imagenet_weights

    return torch_home / "hub" / "checkpoints" / Path(urlparse(imagenet_weights(backbone).url).path).name


def place_stand_in(torch_home: Path, backbone: str, *, seed: int = 0) -> Path:
    """Write random-valued weights of torchvision's ``backbone`` where torchvision's ImageNet lookup finds
    them (once; concurrent jobs wait on a lock). Keys as in torchvision's published files: no
    ``num_batches_tracked``; BatchNorm scales, shifts and running statistics drawn at random."""
    import torchvision

    from segbench.io import waiting_lock, write_with

    path = checkpoint_path(torch_home, backbone)
    path.parent.mkdir(parents=True, exist_ok=True)
    with waiting_lock(path.parent, f"stand-in-{backbone}"):
        if path.exists():
            return path
        state = stand_in_state_dict(getattr(torchvision.models, backbone), seed)
        write_with(path, lambda tmp: torch.save(state, tmp), "stand-in ImageNet weights")
    return path


def stand_in_state_dict(architecture: Any, seed: int) -> dict[str, torch.Tensor]:
    """A state dict of ``architecture(weights=None)`` with random BatchNorm scales and shifts, whose running
    statistics are then measured on random images (as BatchNorm would have measured them in training), so
    that frozen BatchNorm normalises, as it does with real ImageNet statistics; fine-tuning from it is
    stable at the paper's learning rate."""
    from torch import nn

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = architecture(weights=None)
        for name, module in model.named_modules():
            if isinstance(module, nn.BatchNorm2d):
                # a block's last BatchNorm scales its residual branch down, as in trained ResNets, so the
                # residual stream does not grow with depth
                low, high = (0.05, 0.25) if name.endswith("bn3") else (0.5, 1.5)
                nn.init.uniform_(module.weight, low, high)
                nn.init.normal_(module.bias, 0.0, 0.1)
                module.reset_running_stats()
                module.momentum = None  # a cumulative average over the calibration batches
        model.train()
        with torch.no_grad():
            for _ in range(2):
                model(torch.randn(8, 3, 160, 160))
    return {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


@contextlib.contextmanager
def imagenet_source(cfg: dict[str, Any], data_root: str | os.PathLike[str]) -> Iterator[None]:
    """While a run trains or evaluates: with ``cfg["imagenet"] == "stand-in"``, ``$TORCH_HOME`` points at
    the stand-in cache (filled for the run's backbone); otherwise nothing changes."""
    if cfg.get("imagenet") != STAND_IN:
        yield
        return
    torch_home = stand_in_torch_home(data_root)
    place_stand_in(torch_home, str(cfg["model"].get("backbone", "resnet50")))
    before = os.environ.get("TORCH_HOME")
    os.environ["TORCH_HOME"] = str(torch_home)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TORCH_HOME", None)
        else:
            os.environ["TORCH_HOME"] = before


def imagenet_backbone(cfg: dict[str, Any]) -> str | None:
    """The backbone whose torchvision ImageNet weights the run ``cfg`` fine-tunes (the paper scale's
    Mask R-CNN runs), ``None`` where none are used: other families, a scale that pretrains in miniature
    (``pretraining``: mini, smoke), ``pretrained: false``, widths or depths other than ImageNet's."""
    if cfg.get("family") != "maskrcnn" or cfg.get("pretraining"):
        return None
    from segbench.models.maskrcnn.backbones import imagenet_inapplicable
    from segbench.models.maskrcnn.config import settings_from_config

    settings = settings_from_config(cfg)
    return None if imagenet_inapplicable(settings) else settings.backbone


def require_imagenet(cfg: dict[str, Any]) -> Path | None:
    """Refuse a run that fine-tunes ImageNet weights (:func:`imagenet_backbone`) unless torchvision's file
    is in ``$TORCH_HOME/hub/checkpoints/`` with the hash its name carries, or torchvision downloads it now;
    one line: which file, where it goes, how to get it. The rehearsal's stand-ins are placed by
    :func:`imagenet_source` instead. Returns the file (``None`` where no ImageNet weights are used)."""
    backbone = imagenet_backbone(cfg)
    if backbone is None or cfg.get("imagenet") == STAND_IN:
        return None
    from segbench.errors import InputError
    from segbench.models.maskrcnn.backbones import imagenet_weights

    weights = imagenet_weights(backbone)
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    path = folder / Path(urlparse(weights.url).path).name
    problem = _file_problem(path)
    if problem is not None:
        try:  # torchvision's own lookup: downloads into the same folder where the network allows
            weights.get_state_dict(progress=False, check_hash=True)
            problem = _file_problem(path)
        except Exception as exc:  # noqa: BLE001 - offline, proxy, disk: all end in the one line below
            problem = (
                f"{problem}; the download failed ({type(exc).__name__}: {' '.join(str(exc).split())[:120]})"
            )
    if problem is None:
        return path
    raise InputError(
        f"{cfg.get('run_id', cfg.get('run'))}: the ImageNet weights of {backbone} ({weights}) are needed at "
        f'{path} ({problem}); download {weights.url} into {folder}/ (or run `python -c "import '
        f"torchvision; torchvision.models.{backbone}(weights='{weights.name}')\"` where there is network "
        "and copy the file), or set TORCH_HOME to the folder that holds hub/checkpoints/"
    )


def _file_problem(path: Path) -> str | None:
    """Why ``path`` is not a usable torchvision weights file: missing, or its sha256 does not start with
    the hash prefix in its name (a truncated or corrupt copy); ``None`` when it is."""
    if not path.is_file():
        return "not found"
    match = torch.hub.HASH_REGEX.search(path.name)
    if match is None:
        return None
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if not digest.hexdigest().startswith(match.group(1)):
        return f"its sha256 does not start with {match.group(1)}: a corrupt copy; delete it"
    return None
