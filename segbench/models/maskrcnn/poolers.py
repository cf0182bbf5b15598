"""RoI feature extraction (section 3, "RoIAlign"; Table 2c): every pooler comes from :mod:`segbench.ops`.

The RoI layer (RoIPool / RoIWarp / RoIAlign, max or average, aligned or not) is the only thing that
changes between Table 2c's variants; :class:`segbench.ops.MultiScaleRoIPooler` has the call signature of
torchvision's ``MultiScaleRoIAlign`` and so drops into ``RoIHeads``. With one feature map (C4, C5) it is
a single-level pooler; with FPN's P2-P5 it assigns each RoI a level by its scale (FPN paper, eq. 1,
whose canonical 224 is the model key ``roi_canonical_scale``).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from segbench.models.maskrcnn.config import MaskRCNNSettings
from segbench.ops import MultiScaleRoIPooler, make_roi_layer


def make_roi_pooler(featmap_names: Sequence[str], output_size: int, s: MaskRCNNSettings) -> nn.Module:
    """A pooler of ``output_size`` x ``output_size`` RoI features with the run's RoI layer."""
    roi_layer = make_roi_layer(s.roi_layer, s.roi_aggregation, s.roi_aligned)
    return MultiScaleRoIPooler(
        list(featmap_names), output_size, s.sampling_ratio, roi_layer, canonical_scale=s.roi_canonical_scale
    )
