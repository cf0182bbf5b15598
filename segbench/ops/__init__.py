"""RoI layers of Mask R-CNN Table 2c (RoIPool, RoIWarp, RoIAlign; max or average) and the multi-level
pooler that feeds them to the box, mask and keypoint heads."""

from segbench.ops.poolers import MultiScaleRoIPooler, infer_scale, map_levels
from segbench.ops.roi_layers import (
    AGGREGATIONS,
    ROI_LAYERS,
    boxes_to_rois,
    make_roi_layer,
    register_roi_layer,
    roi_align,
    roi_pool,
    roi_warp,
)

__all__ = [
    "AGGREGATIONS",
    "ROI_LAYERS",
    "MultiScaleRoIPooler",
    "boxes_to_rois",
    "infer_scale",
    "make_roi_layer",
    "map_levels",
    "register_roi_layer",
    "roi_align",
    "roi_pool",
    "roi_warp",
]
