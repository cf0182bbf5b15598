"""RoI layers (segbench.ops): RoIPool, RoIWarp, RoIAlign (avg / max) and the multi-level pooler.

torchvision is the reference for what it implements (RoIPool, averaging RoIAlign, MultiScaleRoIAlign);
the max variants and RoIWarp are checked against the plain loop reference below, which follows
torchvision's RoIAlign kernel line by line in the input's dtype.
"""

from __future__ import annotations

import copy
import math
import pickle
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torchvision

from segbench.errors import InputError
from segbench.ops import (
    ROI_LAYERS,
    MultiScaleRoIPooler,
    make_roi_layer,
    map_levels,
    register_roi_layer,
    roi_align,
    roi_pool,
    roi_warp,
)
from segbench.ops._sampling import sample_bins

# --------------------------------------------------------------------------------------------------
# plain reference (loops over RoIs, bins and sampling points; channels vectorized)


def c_round(v) -> float:
    """C's round(): halves away from zero (exact for float32 inputs: done in double)."""
    v = float(v)
    return math.copysign(math.floor(abs(v) + 0.5), v)


def bilinear(fmap: np.ndarray, y, x):
    """torchvision's bilinear_interpolate on one [C, H, W] map: value [C] and (y, x, weight) corners."""
    T = fmap.dtype.type
    _, height, width = fmap.shape
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return np.zeros(fmap.shape[0], fmap.dtype), []
    if y <= 0:
        y = T(0)
    if x <= 0:
        x = T(0)
    y_low, x_low = int(y), int(x)
    if y_low >= height - 1:
        y_high = y_low = height - 1
        y = T(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_high = x_low = width - 1
        x = T(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - T(y_low), x - T(x_low)
    hy, hx = T(1) - ly, T(1) - lx
    corners = [
        (y_low, x_low, hy * hx),
        (y_low, x_high, hy * lx),
        (y_high, x_low, ly * hx),
        (y_high, x_high, ly * lx),
    ]
    value = sum(w * fmap[:, yy, xx] for yy, xx, w in corners)
    return value, corners


def reference(
    inp,
    rois,
    output_size,
    scale,
    sampling_ratio,
    aggregation,
    *,
    aligned=False,
    quantize=False,
    grad_out=None,
):
    """Loop reference of roi_align (quantize=False) and roi_warp (quantize=True): output and, given
    grad_out, the gradient w.r.t. the input."""
    inp = inp.detach().numpy()
    rois = rois.detach().numpy()
    T = inp.dtype.type
    n, c, height, width = inp.shape
    oh, ow = output_size
    out = np.zeros((len(rois), c, oh, ow), inp.dtype)
    grad = np.zeros(inp.shape, np.float64)
    g_out = None if grad_out is None else grad_out.detach().numpy().astype(np.float64)
    for k, roi in enumerate(rois):
        b = int(roi[0])
        if quantize:
            x1, y1, x2, y2 = (T(c_round(T(v) * T(scale))) for v in roi[1:])
            roi_w, roi_h = max(x2 - x1, T(1)), max(y2 - y1, T(1))
        else:
            off = T(0.5) if aligned else T(0)
            x1, y1, x2, y2 = (T(v) * T(scale) - off for v in roi[1:])
            roi_w, roi_h = x2 - x1, y2 - y1
            if not aligned:
                roi_w, roi_h = max(roi_w, T(1)), max(roi_h, T(1))
        bin_h, bin_w = roi_h / T(oh), roi_w / T(ow)
        gh = sampling_ratio if sampling_ratio > 0 else max(int(np.ceil(roi_h / T(oh))), 0)
        gw = sampling_ratio if sampling_ratio > 0 else max(int(np.ceil(roi_w / T(ow))), 0)
        for ph in range(oh):
            for pw in range(ow):
                values, corners = [], []
                for iy in range(gh):
                    y = y1 + T(ph) * bin_h + T(iy + 0.5) * bin_h / T(gh)
                    for ix in range(gw):
                        x = x1 + T(pw) * bin_w + T(ix + 0.5) * bin_w / T(gw)
                        v, cs = bilinear(inp[b], y, x)
                        values.append(v)
                        corners.append(cs)
                if not values:
                    continue
                v = np.stack(values)  # [S, C]
                if aggregation == "avg":
                    out[k, :, ph, pw] = v.sum(0) / T(len(values))
                    if g_out is not None:
                        for cs in corners:
                            for yy, xx, w in cs:
                                grad[b, :, yy, xx] += float(w) * g_out[k, :, ph, pw] / len(values)
                else:
                    arg = v.argmax(0)  # first maximum, like max_pool2d
                    out[k, :, ph, pw] = v[arg, np.arange(c)]
                    if g_out is not None:
                        for ch in range(c):
                            for yy, xx, w in corners[arg[ch]]:
                                grad[b, ch, yy, xx] += float(w) * g_out[k, ch, ph, pw]
    return torch.from_numpy(out), torch.from_numpy(grad)


# --------------------------------------------------------------------------------------------------
# inputs


def make_case(seed: int, dtype=torch.float64, n=2, c=3, height=9, width=11, scale=0.5):
    """Random features and RoIs (image coordinates = map / scale) covering the awkward cases."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, height, width, generator=g, dtype=dtype)
    img_h, img_w = height / scale, width / scale
    boxes = [
        [0.0, 0.0, img_w, img_h],  # the whole image, on the border
        [0.0, 0.0, 1.3, 0.9],  # smaller than one bin, on the corner
        [img_w - 1.5, img_h - 2.0, img_w, img_h],  # tiny, far corner
        [-img_w * 0.3, -img_h * 0.4, img_w * 1.3, img_h * 1.2],  # larger than the map
        [-6.0, 3.0, 7.5, 11.0],  # partly outside (left)
        [img_w - 5.0, img_h - 6.0, img_w + 9.0, img_h + 4.0],  # partly outside (bottom right)
        [img_w + 3.0, 2.0, img_w + 9.0, 8.0],  # entirely outside
        [5.2, 4.7, 5.2, 9.1],  # zero width
    ]
    for _ in range(10):
        xy = torch.rand(2, generator=g) * torch.tensor([img_w, img_h])
        wh = torch.rand(2, generator=g) * torch.tensor([img_w, img_h]) * 0.8 + 0.2
        boxes.append([float(xy[0]), float(xy[1]), float(xy[0] + wh[0]), float(xy[1] + wh[1])])
    boxes_t = torch.tensor(boxes, dtype=dtype)
    batch = (torch.arange(len(boxes)) % n).to(dtype)[:, None]
    return x, torch.cat([batch, boxes_t], dim=1)


# --------------------------------------------------------------------------------------------------
# torchvision equivalence


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("output_size", [7, (2, 3)])
def test_roi_pool_equals_torchvision(seed, output_size):
    x, rois = make_case(seed, torch.float32)
    got = roi_pool(x, rois, output_size, 0.5, sampling_ratio=2)
    want = torchvision.ops.roi_pool(x, rois, output_size, 0.5)
    assert torch.equal(got, want)
    per_image = [rois[rois[:, 0] == i, 1:] for i in range(2)]
    order = torch.cat([torch.where(rois[:, 0] == i)[0] for i in range(2)])
    assert torch.equal(roi_pool(x, per_image, output_size, 0.5), want[order])


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [1, 2, -1])
def test_roi_align_avg_equals_torchvision(aligned, sampling_ratio):
    x, rois = make_case(3, torch.float32)
    want = torchvision.ops.roi_align(x, rois, (3, 4), 0.5, sampling_ratio, aligned)
    assert torch.equal(roi_align(x, rois, (3, 4), 0.5, sampling_ratio, aligned=aligned), want)
    # the shared sampler, in average mode, reproduces torchvision too (it is what the max mode uses)
    off = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (rois[:, i] * 0.5 - off for i in (1, 2, 3, 4))
    w, h = x2 - x1, y2 - y1
    if not aligned:
        w, h = w.clamp(min=1), h.clamp(min=1)
    ours = sample_bins(x, rois[:, 0].long(), y1, x1, h, w, (3, 4), sampling_ratio, "avg")
    torch.testing.assert_close(ours, want, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------------
# the loop reference: max RoIAlign, RoIWarp (max and avg), forward and backward


CASES = [
    # (layer, aggregation, aligned)
    ("roi_align", "max", False),
    ("roi_align", "max", True),
    ("roi_warp", "max", False),
    ("roi_warp", "avg", False),
    ("roi_align", "avg", True),  # the reference itself, checked against torchvision's average
]


@pytest.mark.parametrize("layer,aggregation,aligned", CASES)
@pytest.mark.parametrize("sampling_ratio", [1, 2, -1])
def test_against_loop_reference(layer, aggregation, aligned, sampling_ratio):
    x, rois = make_case(10 + sampling_ratio)
    x.requires_grad_(True)
    fn = make_roi_layer(layer, aggregation, aligned)
    out = fn(x, rois, (3, 4), 0.5, sampling_ratio)
    grad_out = torch.randn(out.shape, dtype=out.dtype, generator=torch.Generator().manual_seed(7))
    out.backward(grad_out)
    want, want_grad = reference(
        x, rois, (3, 4), 0.5, sampling_ratio, aggregation,
        aligned=aligned, quantize=layer == "roi_warp", grad_out=grad_out,
    )  # fmt: skip
    torch.testing.assert_close(out.detach(), want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(x.grad, want_grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("layer", ["roi_align", "roi_warp"])
def test_max_float32_single_channel_and_memory_formats(layer):
    x, rois = make_case(21, torch.float32, c=1, height=6, width=5, scale=0.25)
    fn = make_roi_layer(layer, "max")
    got = fn(x, rois, 2, 0.25, -1)
    want, _ = reference(x, rois, (2, 2), 0.25, -1, "max", quantize=layer == "roi_warp")
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    x, rois = make_case(22, torch.float32)
    want = fn(x, rois, 3, 0.5, 2)
    assert want.is_contiguous()
    assert torch.equal(fn(x.contiguous(memory_format=torch.channels_last), rois, 3, 0.5, 2), want)
    assert torch.equal(fn(x[:, :, :, 1:], rois, 3, 0.5, 2), fn(x[:, :, :, 1:].contiguous(), rois, 3, 0.5, 2))
    with torch.no_grad():  # inference skips the arg-max bookkeeping, same values
        assert torch.equal(fn(x.requires_grad_(True), rois, 3, 0.5, 2), want)


def test_non_finite_rois_do_not_index_out_of_range():
    x = torch.randn(1, 2, 5, 5)
    rois = torch.tensor([[0.0, float("nan"), 1.0, 3.0, 4.0], [0.0, 1.0, 1.0, float("inf"), 2.0]])
    for sr in (2, -1):
        out = roi_align(x, rois, 2, 1.0, sr, aggregation="max")
        assert out.shape == (2, 2, 2, 2)


def test_roi_warp_avg_equals_roi_align_on_quantized_boxes():
    x, rois = make_case(5, torch.float32)
    q = rois.clone()
    q[:, 1:] = torch.tensor([[c_round(v * 0.5) for v in r] for r in rois[:, 1:].tolist()])
    want = torchvision.ops.roi_align(x, q, 3, 1.0, 2, False)
    assert torch.equal(roi_warp(x, rois, 3, 0.5, 2, aggregation="avg"), want)
    # quantization rounds halves away from zero, as torchvision's roi_pool (torch.round would not)
    half = torch.tensor([[0.0, 5.0, 3.0, 9.0, 7.0]])  # * 0.5 -> 2.5, 1.5, 4.5, 3.5
    assert torch.equal(
        roi_warp(x, half, 2, 0.5, 1, "avg"),
        torchvision.ops.roi_align(x, torch.tensor([[0.0, 3.0, 2.0, 5.0, 4.0]]), 2, 1.0, 1, False),
    )


def test_chunked_and_grouped_paths(monkeypatch):
    """Tiny chunks force many chunks (and, adaptive, many grid-size groups): same result."""
    from segbench.ops import _sampling

    x, rois = make_case(8)
    x.requires_grad_(True)
    outs, grads = [], []
    for chunk in (1 << 23, 1):
        monkeypatch.setattr(_sampling, "_CHUNK_ELEMENTS", chunk)
        for sr in (2, -1):
            out = roi_align(x, rois, 3, 0.5, sr, aggregation="max")
            (g,) = torch.autograd.grad(out.sum(), x)
            outs.append(out)
            grads.append(g)
    torch.testing.assert_close(outs[0], outs[2], rtol=0, atol=0)
    torch.testing.assert_close(outs[1], outs[3], rtol=0, atol=0)
    torch.testing.assert_close(grads[0], grads[2])
    torch.testing.assert_close(grads[1], grads[3])


def test_empty_rois():
    x = torch.randn(1, 4, 5, 5, requires_grad=True)
    rois = torch.zeros(0, 5)
    for name in ROI_LAYERS:
        for agg in ("avg", "max"):
            out = make_roi_layer(name, agg)(x, rois, 3, 1.0, -1)
            assert out.shape == (0, 4, 3, 3)
    out = roi_align(x, rois, 2, 1.0, 2, aggregation="max")
    out.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


# --------------------------------------------------------------------------------------------------
# hand-computed: f[y, x] = 4y + x on a 4x4 map (bilinear reproduces a linear ramp exactly)


def ramp():
    return (4 * torch.arange(4.0)[:, None] + torch.arange(4.0)[None, :]).view(1, 1, 4, 4).double()


def test_hand_computed_ramp():
    f = ramp()
    box = torch.tensor([[0.0, 0.5, 0.5, 2.5, 2.5]], dtype=torch.float64)
    # RoIAlign, 2x2 bins of 1 px, 2x2 samples at 0.75, 1.25 | 1.75, 2.25
    avg = roi_align(f, box, 2, 1.0, 2)
    mx = roi_align(f, box, 2, 1.0, 2, aggregation="max")
    assert avg[0, 0].tolist() == [[5.0, 6.0], [9.0, 10.0]]  # bin centres 1, 2
    assert mx[0, 0].tolist() == [[6.25, 7.25], [10.25, 11.25]]  # bottom-right samples
    # gradient of the max: the arg-max sample (2.25, 2.25) of bin (1, 1) -> its 4 neighbours
    f.requires_grad_(True)
    out = roi_align(f, box, 2, 1.0, 2, aggregation="max")
    (g,) = torch.autograd.grad(out[0, 0, 1, 1], f)
    want = torch.zeros(4, 4, dtype=torch.float64)
    want[2, 2], want[2, 3], want[3, 2], want[3, 3] = 0.5625, 0.1875, 0.1875, 0.0625
    assert torch.equal(g[0, 0], want)
    # RoIWarp quantizes the box to (0, 0, 3, 3): bins of 1.5 px, samples at 0.75 and 2.25 (sr 1)
    warp = roi_warp(f, torch.tensor([[0.0, 0.4, 0.4, 2.6, 2.6]], dtype=torch.float64), 2, 1.0, 1)
    assert warp[0, 0].tolist() == [[3.75, 5.25], [9.75, 11.25]]
    # ... while RoIAlign keeps 0.4..2.6: bins of 1.1 px, samples at 0.95 and 2.05
    align = roi_align(f, torch.tensor([[0.0, 0.4, 0.4, 2.6, 2.6]], dtype=torch.float64), 2, 1.0, 1)
    torch.testing.assert_close(align[0, 0], torch.tensor([[4.75, 5.85], [9.15, 10.25]], dtype=torch.float64))


def test_hand_computed_border_rules():
    f = ramp()

    # one 1x1 bin, one sample at the box centre
    def sample(y, x):
        box = torch.tensor([[0.0, x - 0.5, y - 0.5, x + 0.5, y + 0.5]], dtype=torch.float64)
        return roi_align(f, box, 1, 1.0, 1, aggregation="max").item()

    assert sample(1.5, 2.5) == 4 * 1.5 + 2.5
    assert sample(-0.5, 1.0) == 1.0  # y in [-1, 0]: clamped to row 0
    assert sample(3.5, 1.0) == 13.0  # y in [H-1, H]: clamped to row 3
    assert sample(-1.5, 1.0) == 0.0  # y < -1: zero
    assert sample(1.0, 4.5) == 0.0  # x > W: zero
    assert sample(4.0, 4.0) == 15.0  # exactly H and W: still inside, the corner value


# --------------------------------------------------------------------------------------------------
# gradcheck (double, small, random: no ties for max)


GRAD_LAYERS = [
    ("roi_pool", "max", False),
    ("roi_warp", "max", False),
    ("roi_warp", "avg", False),
    ("roi_align", "avg", False),
    ("roi_align", "avg", True),
    ("roi_align", "max", False),
    ("roi_align", "max", True),
]


@pytest.mark.parametrize("layer,aggregation,aligned", GRAD_LAYERS)
def test_gradcheck(layer, aggregation, aligned):
    x, rois = make_case(30, c=2, height=5, width=6)
    x.requires_grad_(True)
    fn = make_roi_layer(layer, aggregation, aligned)
    for sr in (2, -1):
        assert torch.autograd.gradcheck(lambda t, sr=sr: fn(t, rois, (2, 3), 0.5, sr), (x,), fast_mode=True)
    small = rois[[3, 5, 9, 12]]
    assert torch.autograd.gradcheck(lambda t: fn(t, small, 2, 0.5, -1), (x,))


# --------------------------------------------------------------------------------------------------
# multi-level pooler


def fpn_features(seed=0, n=2, c=4, size=128):
    """Maps "0".."3" at strides 4..32 of a 512x512 (padded) batch, and an unused "pool"."""
    g = torch.Generator().manual_seed(seed)
    feats = OrderedDict()
    for i, name in enumerate(["0", "1", "2", "3", "pool"]):
        s = size // 2**i
        feats[name] = torch.randn(n, c, s, s, generator=g)
    return feats


def random_boxes(seed, count, img=512):
    g = torch.Generator().manual_seed(seed)
    side = torch.exp(torch.rand(count, 2, generator=g) * math.log(img)) + 2  # 3 .. ~512 px, log-uniform
    xy = torch.rand(count, 2, generator=g) * (img - side).clamp(min=1)
    big = torch.tensor([[0.0, 0.0, 500.0, 470.0], [20.0, 10.0, 510.0, 505.0], [-30.0, 40.0, 480.0, 560.0]])
    return torch.cat([torch.cat([xy, xy + side], dim=1), big])


def test_pooler_equals_torchvision_fpn_and_single_level():
    feats = fpn_features()
    image_shapes = [(512, 512), (500, 463)]  # features come from the padded 512x512 batch
    boxes = [random_boxes(1, 40), random_boxes(2, 25)]
    names = ["0", "1", "2", "3"]
    for featmap_names in (names, ["0"], ["2"]):
        want = torchvision.ops.MultiScaleRoIAlign(featmap_names, 7, 2)(feats, boxes, image_shapes)
        pooler = MultiScaleRoIPooler(featmap_names, 7, 2, make_roi_layer("roi_align", "avg"))
        got = pooler(feats, boxes, image_shapes)
        assert torch.equal(got, want), featmap_names
    # every level is actually used by this box set
    levels = map_levels(boxes, 2, 5)
    assert set(levels.tolist()) == {0, 1, 2, 3}
    # the default layer is averaging RoIAlign; (h, w) output sizes and adaptive sampling pass through
    want = torchvision.ops.MultiScaleRoIAlign(names, (5, 3), -1)(feats, boxes, image_shapes)
    pooler = MultiScaleRoIPooler(names, (5, 3), -1)
    assert torch.equal(pooler(feats, boxes, image_shapes), want)
    # a plain module: copies (EMA, checkpoints) and pickles with its layer
    assert torch.equal(copy.deepcopy(pooler)(feats, boxes, image_shapes), want)
    assert isinstance(
        pickle.loads(pickle.dumps(MultiScaleRoIPooler(names, 7, 2, make_roi_layer("roi_warp")))),
        MultiScaleRoIPooler,
    )


def test_pooler_routes_each_box_to_its_level_with_any_layer():
    feats = fpn_features(3)
    boxes = [random_boxes(4, 30), random_boxes(5, 10)]
    image_shapes = [(512, 512), (512, 512)]
    fn = make_roi_layer("roi_align", "max")
    got = MultiScaleRoIPooler(["0", "1", "2", "3"], 7, 2, fn)(feats, boxes, image_shapes)
    rois = torch.cat([torch.cat([torch.full((len(b), 1), float(i)), b], 1) for i, b in enumerate(boxes)])
    levels = map_levels(boxes, 2, 5)
    for lvl, name in enumerate(["0", "1", "2", "3"]):
        idx = torch.where(levels == lvl)[0]
        assert torch.equal(got[idx], fn(feats[name], rois[idx], 7, 1 / 2 ** (lvl + 2), 2))


@pytest.mark.parametrize(
    ("layer", "aggregation"),
    [("roi_pool", "max"), ("roi_warp", "max"), ("roi_align", "avg"), ("roi_align", "max")],
)
def test_every_roi_layer_pools_in_float32_under_bf16_autocast(layer: str, aggregation: str) -> None:
    """AMP on the CPU (the rehearsal scale): torchvision's CPU roi_pool has no bfloat16 kernel, and its
    CUDA autocast wrappers pool in float32; the pooler does the same for every layer, at every level."""
    feats = fpn_features(3)
    boxes = [random_boxes(4, 30), random_boxes(5, 10)]
    image_shapes = [(512, 512), (512, 512)]
    pooler = MultiScaleRoIPooler(["0", "1", "2", "3"], 7, 2, make_roi_layer(layer, aggregation))
    want = pooler(feats, boxes, image_shapes)
    low = OrderedDict((k, v.to(torch.bfloat16).requires_grad_()) for k, v in feats.items())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = pooler(low, boxes, image_shapes)
    assert got.dtype == torch.bfloat16
    # float32 pooling of the bf16 features, then cast; with a gradient, as `got` (on the CPU the
    # training path of averaging RoIAlign is ours, equal to torchvision's up to float32 rounding)
    exact = pooler(
        OrderedDict((k, v.detach().float().requires_grad_()) for k, v in low.items()), boxes, image_shapes
    )
    assert torch.equal(got, exact.detach().to(torch.bfloat16))
    assert torch.allclose(got.float(), want, rtol=0.02, atol=0.02)
    got.float().sum().backward()
    grads = [v.grad for v in low.values() if v.grad is not None]  # levels that received boxes
    assert grads and all(g.dtype == torch.bfloat16 and g.abs().sum() > 0 for g in grads)


def test_level_assignment_by_hand():
    # k = floor(4 + log2(sqrt(w h) / 224)), clamped to [2, 5]; returned relative to k_min = 2
    sides = [224, 223.9, 112, 111.9, 448, 1000, 56, 10, 1]
    boxes = torch.tensor([[0.0, 0.0, s, s] for s in sides])
    assert map_levels([boxes], 2, 5).tolist() == [2, 1, 1, 0, 3, 3, 0, 0, 0]
    # a wide box counts by its geometric mean side: 448 x 112 -> sqrt = 224 -> level 4
    assert map_levels([torch.tensor([[10.0, 10.0, 458.0, 122.0]])], 2, 5).tolist() == [2]
    # C4-style single level (k_min = k_max = 4): everything on it
    assert map_levels([boxes], 4, 4).tolist() == [0] * len(sides)


def test_pooler_is_a_drop_in_for_torchvision_mask_rcnn():
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    torch.manual_seed(0)
    backbone = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=8, padding=1), torch.nn.ReLU())
    backbone.out_channels = 8
    model = MaskRCNN(
        backbone,
        num_classes=3,
        min_size=64,
        max_size=64,
        rpn_anchor_generator=AnchorGenerator(((16, 32),), ((1.0,),)),
        box_roi_pool=MultiScaleRoIPooler(["0"], 7, 2, make_roi_layer("roi_warp", "max")),
        mask_roi_pool=MultiScaleRoIPooler(["0"], 14, 2, make_roi_layer("roi_align", "max")),
        rpn_batch_size_per_image=32,
        box_batch_size_per_image=16,
    )
    images = [torch.rand(3, 64, 64)]
    masks = torch.zeros(1, 64, 64, dtype=torch.uint8)
    masks[0, 10:40, 12:50] = 1
    targets = [
        {"boxes": torch.tensor([[12.0, 10.0, 50.0, 40.0]]), "labels": torch.tensor([1]), "masks": masks}
    ]
    losses = model(images, targets)
    sum(losses.values()).backward()
    assert backbone[0].weight.grad is not None and torch.isfinite(backbone[0].weight.grad).all()


# --------------------------------------------------------------------------------------------------
# registry and errors


def test_make_roi_layer_names_and_errors():
    x, rois = make_case(0, torch.float32)
    assert torch.equal(make_roi_layer("roi_pool")(x, rois, 2, 0.5), roi_pool(x, rois, 2, 0.5))
    assert torch.equal(
        make_roi_layer("roi_align", aligned=True)(x, rois, 2, 0.5, 2),
        roi_align(x, rois, 2, 0.5, 2, aligned=True),
    )
    with pytest.raises(InputError) as err:
        make_roi_layer("roi_foo")
    msg = str(err.value)
    assert "\n" not in msg and all(name in msg for name in ("roi_align", "roi_pool", "roi_warp"))
    with pytest.raises(InputError, match="avg, max"):
        make_roi_layer("roi_align", "median")
    with pytest.raises(InputError, match="aligned"):
        make_roi_layer("roi_warp", "max", aligned=True)
    with pytest.raises(InputError):
        roi_align(x, rois[:, 1:], 2)
    with pytest.raises(InputError):
        roi_align(x[0], rois, 2)


def test_register_roi_layer_extends_the_registry():
    def crop_center(input, rois, output_size, spatial_scale=1.0, sampling_ratio=-1, aggregation="avg"):
        return roi_align(input, rois, output_size, spatial_scale, sampling_ratio, aggregation=aggregation)

    register_roi_layer("test_crop_center", crop_center)
    try:
        x, rois = make_case(0, torch.float32)
        fn = make_roi_layer("test_crop_center", "max")
        assert torch.equal(fn(x, rois, 2, 0.5, 2), roi_align(x, rois, 2, 0.5, 2, aggregation="max"))
        with pytest.raises(InputError, match="test_crop_center"):
            make_roi_layer("nope")
    finally:
        ROI_LAYERS.pop("test_crop_center")


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [2, -1])
def test_cpu_training_fast_path_of_average_roi_align_equals_torchvision(aligned, sampling_ratio):
    """With a gradient to compute on the CPU, averaging RoIAlign runs our vectorized sampler: values and
    input gradients must be torchvision's."""
    g = torch.Generator().manual_seed(3)
    feats = torch.rand(2, 5, 13, 17, generator=g, dtype=torch.float64)
    boxes = torch.rand(12, 4, generator=g, dtype=torch.float64) * 30 - 5
    boxes[:, 2:] = boxes[:, :2] + torch.rand(12, 2, generator=g, dtype=torch.float64) * 25
    rois = torch.cat([torch.randint(0, 2, (12, 1), generator=g).to(torch.float64), boxes], dim=1)
    ours_in = feats.clone().requires_grad_(True)
    ref_in = feats.clone().requires_grad_(True)
    ours = roi_align(ours_in, rois, (4, 3), 0.5, sampling_ratio, "avg", aligned)
    ref = torchvision.ops.roi_align(ref_in, rois, (4, 3), 0.5, sampling_ratio, aligned)
    torch.testing.assert_close(ours, ref)
    grad = torch.rand(ours.shape, generator=g, dtype=torch.float64)
    ours.backward(grad)
    ref.backward(grad)
    torch.testing.assert_close(ours_in.grad, ref_in.grad)
