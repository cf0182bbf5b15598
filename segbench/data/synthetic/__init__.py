"""Deterministic synthetic datasets in the on-disk formats of the real ones (COCO, ISBI 2012, CTC).

Each generator module has ``DEFAULTS`` (its parameters) and ``generate(out_dir, params, seed)``, which
writes every file of one dataset under ``out_dir`` and depends on nothing but ``params`` and ``seed``
(same seed -> byte-identical files).
"""

from __future__ import annotations

from types import ModuleType

from segbench.data.synthetic import cells, coco2017, em, keypoints, shapes

GENERATORS: dict[str, ModuleType] = {
    "shapes": shapes,
    "keypoints": keypoints,
    "em": em,
    "cells": cells,
    "coco2017": coco2017,
}
