"""``keypoints``: COCO-format person keypoints on articulated stick figures.

Each person is a figure of capsule limbs, a torso polygon and a head disk, posed at random (torso tilt,
arm and leg angles, elbow and knee bends, foreshortening, a global lean) and drawn at a random scale.
Its 17 keypoints follow COCO's order and names; the category carries COCO's ``keypoints`` and
``skeleton``. Figures face the camera, so the person's left is on the image's right. Visibility flags
follow COCO: 2 = visible, 1 = labelled but covered by a person drawn later, 0 = not labelled (outside
the image; stored as ``0, 0, 0``). The segmentation is the figure's visible part. Layout (as COCO)::

    images/{train,val}/<12-digit id>.png
    annotations/person_keypoints_{train,val}.json
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from segbench.data.synthetic import _draw as draw
from segbench.data.synthetic._coco import mask_annotation, write_coco_dataset

KEYPOINT_NAMES = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
SKELETON = [  # COCO's person skeleton, 1-based keypoint indices
    [16, 14],
    [14, 12],
    [17, 15],
    [15, 13],
    [12, 13],
    [6, 12],
    [7, 13],
    [6, 7],
    [6, 8],
    [7, 9],
    [8, 10],
    [9, 11],
    [2, 3],
    [1, 2],
    [1, 3],
    [2, 4],
    [3, 5],
    [4, 6],
    [5, 7],
]
CATEGORIES = [
    {
        "id": 1,
        "name": "person",
        "supercategory": "person",
        "keypoints": list(KEYPOINT_NAMES),
        "skeleton": SKELETON,
    }
]
KP = {name: i for i, name in enumerate(KEYPOINT_NAMES)}

# Body proportions as fractions of the figure height (ankle to top of head is about 1).
TORSO, SHOULDER_HALF, HIP_HALF, NECK, HEAD_RADIUS = 0.30, 0.11, 0.08, 0.10, 0.075
UPPER_ARM, FOREARM, THIGH, SHIN = 0.16, 0.14, 0.24, 0.23
ARM_RADIUS, LEG_RADIUS = 0.032, 0.045

DEFAULTS: dict[str, Any] = {
    "image_size": 160,
    "num_train": 300,
    "num_val": 100,
    "persons_per_image": [1, 4],
    "person_height": [30, 140],
    "min_visible_area": 12,
    "noise_std": 8.0,
}


def generate(out_dir: Path, params: dict[str, Any], seed: int) -> None:
    """Write both splits of a person-keypoints dataset under ``out_dir``."""
    write_coco_dataset(
        out_dir,
        {**DEFAULTS, **params},
        seed,
        render=render_image,
        annotate=person_annotation,
        annotation_stem="person_keypoints",
        categories=CATEGORIES,
        generator="keypoints",
        description="segbench synthetic persons (COCO-format person keypoints)",
    )


def person_annotation(person: tuple[np.ndarray, list], ann_id: int, image_id: int) -> dict[str, Any]:
    mask, keypoints = person
    ann = mask_annotation(mask, ann_id, image_id, 1)
    ann["keypoints"] = keypoints
    ann["num_keypoints"] = int(sum(v > 0 for v in keypoints[2::3]))
    return ann


def render_image(
    rng: np.random.Generator, p: dict[str, Any]
) -> tuple[np.ndarray, list[tuple[np.ndarray, list]]]:
    """One RGB image and its persons as ``(visible_mask, keypoints [x, y, v] * 17)``."""
    size = int(p["image_size"])
    shape = (size, size)
    image = draw.textured_background(rng, size)
    owner = np.full(shape, -1, np.int32)
    figures = []
    lo, hi = p["persons_per_image"]
    for k in range(int(rng.integers(lo, hi + 1))):
        height = float(np.exp(rng.uniform(*np.log(p["person_height"]))))
        hip = np.array([rng.uniform(0.1, 0.9) * size, rng.uniform(0.2, 0.8) * size])
        joints = pose(rng, hip, height)
        grain = 10 * draw.smooth_noise(rng, shape, 1.5)[..., None]
        textures = {part: rng.uniform(20, 235, size=3) + grain for part in ("skin", "shirt", "trousers")}
        mask = np.zeros(shape, bool)
        for part, part_mask in body_parts(shape, joints, height):
            image[part_mask] = textures[part][part_mask]
            mask |= part_mask
        owner[mask] = k
        figures.append(joints)
    image = ndimage.gaussian_filter(image, sigma=(0.6, 0.6, 0))
    image += rng.normal(0.0, float(p["noise_std"]), image.shape)
    persons = []
    for k, joints in enumerate(figures):
        visible = owner == k
        keypoints = keypoint_triplets(joints, owner, k)
        if visible.sum() >= int(p["min_visible_area"]) and any(keypoints[2::3]):
            persons.append((visible, keypoints))
    return draw.to_uint8(image), persons


def pose(rng: np.random.Generator, hip: np.ndarray, height: float) -> np.ndarray:
    """17 x 2 joint positions (x, y) of a random pose whose hip centre is ``hip``."""
    lean = rng.normal(0.0, 0.25)
    up = np.array([np.sin(lean), -np.cos(lean)])
    right = np.array([np.cos(lean), np.sin(lean)]) * rng.uniform(0.55, 1.0)  # image right, foreshortened
    s = height
    neck = hip + up * TORSO * s
    head = neck + up * NECK * s
    j = np.zeros((17, 2))
    j[KP["left_shoulder"]], j[KP["right_shoulder"]] = (
        neck + right * SHOULDER_HALF * s,
        neck - right * SHOULDER_HALF * s,
    )
    j[KP["left_hip"]], j[KP["right_hip"]] = hip + right * HIP_HALF * s, hip - right * HIP_HALF * s
    turn = rng.uniform(-0.4, 0.4)  # head turn moves the face sideways
    j[KP["nose"]] = head + right * turn * HEAD_RADIUS * s - up * 0.2 * HEAD_RADIUS * s
    for side, sign in (("left", 1.0), ("right", -1.0)):
        j[KP[f"{side}_eye"]] = (
            head + right * (turn + sign * 0.4) * HEAD_RADIUS * s + up * 0.2 * HEAD_RADIUS * s
        )
        j[KP[f"{side}_ear"]] = head + right * (0.5 * turn + sign * 0.95) * HEAD_RADIUS * s
        down = -up
        shoulder, hip_side = j[KP[f"{side}_shoulder"]], j[KP[f"{side}_hip"]]
        arm = rng.uniform(-0.3, 2.6)  # 0: hanging down, ~1.6: horizontal, 2.6: raised
        elbow = shoulder + rotate(down, sign * arm) * UPPER_ARM * s
        wrist = elbow + rotate(down, sign * (arm + rng.uniform(-0.3, 2.0))) * FOREARM * s
        leg = rng.uniform(-0.15, 0.6)
        knee = hip_side + rotate(down, sign * leg) * THIGH * s
        ankle = knee + rotate(down, sign * leg - rng.uniform(-0.2, 1.2) * sign) * SHIN * s
        j[KP[f"{side}_elbow"]], j[KP[f"{side}_wrist"]] = elbow, wrist
        j[KP[f"{side}_knee"]], j[KP[f"{side}_ankle"]] = knee, ankle
    return np.concatenate([j, head[None]])  # row 17: the head centre (not a keypoint)


def rotate(v: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def body_parts(shape: tuple[int, int], joints: np.ndarray, height: float):
    """``(colour part, mask)`` of each body part, back to front."""
    j = {name: joints[i] for name, i in KP.items()}
    head = joints[17]
    arm_r, leg_r = max(ARM_RADIUS * height, 0.8), max(LEG_RADIUS * height, 0.8)
    for side in ("left", "right"):
        yield "trousers", draw.capsule_mask(shape, j[f"{side}_hip"], j[f"{side}_knee"], leg_r)
        yield "trousers", draw.capsule_mask(shape, j[f"{side}_knee"], j[f"{side}_ankle"], leg_r * 0.85)
    torso = np.stack([j["left_shoulder"], j["right_shoulder"], j["right_hip"], j["left_hip"]])
    yield (
        "shirt",
        draw.polygon_mask(shape, torso)
        | draw.capsule_mask(shape, j["left_shoulder"], j["right_shoulder"], arm_r)
        | draw.capsule_mask(shape, j["left_hip"], j["right_hip"], leg_r),
    )
    neck = (j["left_shoulder"] + j["right_shoulder"]) / 2
    yield "skin", draw.capsule_mask(shape, neck, head, arm_r)
    yield (
        "skin",
        draw.ellipse_mask(shape, head[0], head[1], HEAD_RADIUS * height, HEAD_RADIUS * height * 1.15),
    )
    for side in ("left", "right"):
        yield "shirt", draw.capsule_mask(shape, j[f"{side}_shoulder"], j[f"{side}_elbow"], arm_r)
        yield "skin", draw.capsule_mask(shape, j[f"{side}_elbow"], j[f"{side}_wrist"], arm_r * 0.85)


def keypoint_triplets(joints: np.ndarray, owner: np.ndarray, k: int) -> list[float]:
    """COCO ``[x, y, v] * 17`` for person ``k``: v = 0 outside the image, 1 where a later person covers
    the point, else 2."""
    size_y, size_x = owner.shape
    out: list[float] = []
    for x, y in joints[:17]:
        ix, iy = int(round(x)), int(round(y))
        if not (0 <= ix < size_x and 0 <= iy < size_y):
            out += [0.0, 0.0, 0]
            continue
        v = 1 if owner[iy, ix] > k else 2
        out += [round(float(x), 2), round(float(y), 2), v]
    return out
