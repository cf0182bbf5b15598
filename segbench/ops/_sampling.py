"""Vectorized bilinear sample-and-reduce over RoI bins: the engine behind max-RoIAlign and RoIWarp.

One routine, :func:`sample_bins`, covers every RoI layer that samples bilinearly: it takes each RoI's
continuous start and size on the feature map (already scaled, offset and, for RoIWarp, quantized),
places ``gh x gw`` sampling points in each of the ``oh x ow`` bins exactly as torchvision's RoIAlign
kernel does, and reduces them by average or max.

Bilinear conventions (copied from torchvision's ``roi_align`` CPU/CUDA kernels, ``T`` = input dtype):

* sample ``y = start_y + ph * bin_h + (iy + 0.5) * bin_h / gh`` (same operation order, so float32
  results match bit for bit), likewise ``x``;
* a sample with ``y < -1 or y > H or x < -1 or x > W`` is 0 (all four weights 0);
* otherwise ``y <= 0 -> 0``; ``y_low = int(y)``; if ``y_low >= H - 1`` then
  ``y_low = y_high = H - 1`` (clamp to the edge), else ``y_high = y_low + 1``; ``ly = y - y_low``;
* ``value = hy*hx*f[yl,xl] + hy*lx*f[yl,xh] + ly*hx*f[yh,xl] + ly*lx*f[yh,xh]``;
* average: sum over the bin's samples divided by ``max(gh * gw, 1)`` (a bin without samples is 0);
  max: the largest sample value (a bin without samples is 0); the gradient of a max bin flows to the
  four bilinear neighbours of its arg-max sample only, weighted by the bilinear weights.

Implementation (no Python loop over RoIs, bins or pixels; CPU and CUDA alike):

* the feature map is viewed channels-last, ``[N*H*W, C]``, so that a sample's corner is one
  contiguous row of ``C`` values;
* per axis, each RoI's ``oh*gh`` sample rows and ``ow*gw`` sample columns give the low/high index
  and weight tables (sampling is separable); their outer product gives, for every sampling point,
  its four corner rows and bilinear weights (``[k, Y, X, 4]``, small: no ``C``);
* average: every bin is one linear combination of ``gh*gw*4`` corner rows with weights
  ``w / (gh*gw)``, so ``F.embedding_bag(corners, features, mode="sum", per_sample_weights=weights)``
  over bags of one bin each gives the output ``[k, oh, ow, C]`` in one fused pass;
* max: the same ``embedding_bag`` with one bag per sampling point builds the sampled grid
  ``[k, Y, X, C]`` (nothing of size ``4*k*Y*X*C``);
* that grid *is* a channels-last ``[k, C, Y, X]`` image whose ``gh x gw`` tiles are the bins, so
  ``F.max_pool2d(..., return_indices=True)`` with kernel = stride = ``(gh, gw)`` reduces it
  (vectorized over channels) and gives the arg-max sample of every output;
* RoIs are walked in chunks whose sampled grid stays under ``_CHUNK_ELEMENTS`` values; with adaptive
  sampling (``sampling_ratio <= 0``: a per-RoI ``gh, gw``) they are first sorted by grid size, and
  each chunk holds one grid size. The loops run over chunks and distinct grid sizes only.

The backward pass is a custom ``autograd.Function``. Max: for every output, the four corners and
weights of its saved arg-max sample are gathered from the small tables and ``grad * w`` is
scatter-added into the channels-last gradient (``4 * K * C * oh * ow`` elements, no dense
sampled-grid gradient). Average: the forward's bin tables, kept, are transposed by one sort of
their corner rows, and ``embedding_bag`` over bags of one feature row each sums ``w / (gh*gw) * grad``
of every bin that samples the row (the transpose of the forward's sparse product). Gradients flow
to ``input`` only (the RoIs get none, as in torchvision); the backward is not itself differentiable
(as torchvision's).

Speed (one CPU thread): the average's forward + backward takes 0.12-0.17x the time of torchvision's CPU
``roi_align`` (whose backward is a serial scatter loop) at the paper's shapes (``segbench bench
roi_ops``: 512 RoIs on 256 channels), about 0.3x at the mini's (32 channels); the values agree to
float32 rounding (the sum order differs), and to 1e-12 in float64 (``tests/test_ops_roi.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

# Largest sampled grid (values) built at once, per chunk of RoIs: 32 MiB in float32.
_CHUNK_ELEMENTS = 1 << 23


def _axis_tables(
    start: Tensor, bin_size: Tensor, n_bins: int, grid: int, size: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-RoI sample positions along one axis, ``[k, n_bins * grid]``: low index, high index,
    weight of the low index, weight of the high index (both 0 for a sample outside ``[-1, size]``).
    """
    dtype, device = start.dtype, start.device
    ph = torch.arange(n_bins, dtype=dtype, device=device).repeat_interleave(grid)  # [n_bins*grid]
    iy = (torch.arange(grid, dtype=dtype, device=device) + 0.5).repeat(n_bins)  # [n_bins*grid]
    s = start[:, None]
    b = bin_size[:, None]
    # same evaluation order as the C++ kernel: (start + ph * bin) + ((iy + .5) * bin) / grid
    y = (s + ph * b) + (iy * b) / grid
    valid = (y >= -1.0) & (y <= size)  # False for NaN too
    y = torch.where(valid, y, torch.zeros_like(y)).clamp(min=0)  # invalid: any in-range index, weight 0
    low = y.to(torch.int64)  # y >= 0, so truncation is floor
    at_edge = low >= size - 1
    low = torch.where(at_edge, torch.full_like(low, size - 1), low)
    high = torch.where(at_edge, low, low + 1)
    y = torch.where(at_edge, low.to(dtype), y)
    ly = y - low.to(dtype)
    hy = 1.0 - ly
    zero = torch.zeros((), dtype=dtype, device=device)
    hy = torch.where(valid, hy, zero)
    ly = torch.where(valid, ly, zero)
    return low, high, hy, ly


def _corners(
    rois: Sequence[Tensor], oh: int, ow: int, gh: int, gw: int, height: int, width: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per RoI, the low/high corners of its sample rows and columns: rows of the channels-last
    ``[N*H*W, C]`` map ``[k, Y, 2]`` (image and row offset), columns ``[k, X, 2]``, and their bilinear
    weights, same shapes (``Y = oh*gh`` sample rows, ``X = ow*gw`` sample columns). ``rois``: the
    RoIs' ``(batch_idx, y0, x0, bin_h, bin_w)``."""
    batch_idx, y0, x0, bin_h, bin_w = rois
    yl, yh, wyl, wyh = _axis_tables(y0, bin_h, oh, gh, height)  # [k, Y]
    xl, xh, wxl, wxh = _axis_tables(x0, bin_w, ow, gw, width)  # [k, X]
    base = (batch_idx * (height * width))[:, None]
    rows = torch.stack([base + yl * width, base + yh * width], dim=2)
    cols = torch.stack([xl, xh], dim=2)
    return rows, cols, torch.stack([wyl, wyh], dim=2), torch.stack([wxl, wxh], dim=2)


def _corner_tables(
    rois: Sequence[Tensor], oh: int, ow: int, gh: int, gw: int, height: int, width: int
) -> tuple[Tensor, Tensor]:
    """Rows of the channels-last ``[N*H*W, C]`` map and bilinear weights of the four corners of every
    sampling point: two ``[k, Y, X, 4]`` tables (corners ordered low-low, low-high, high-low,
    high-high as ``(y, x)``). Arguments as :func:`_corners`."""
    rows, cols, wy, wx = _corners(rois, oh, ow, gh, gw, height, width)
    k, n_y, n_x = rows.shape[0], rows.shape[1], cols.shape[1]
    idx = (rows[:, :, None, :, None] + cols[:, None, :, None, :]).reshape(k, n_y, n_x, 4)
    w = (wy[:, :, None, :, None] * wx[:, None, :, None, :]).reshape(k, n_y, n_x, 4)
    return idx, w


def _bin_tables(
    rois: Sequence[Tensor], oh: int, ow: int, gh: int, gw: int, height: int, width: int
) -> tuple[Tensor, Tensor]:
    """The average as a sparse product: for every bin (``k*oh*ow`` rows, RoI-major) the ``gh*gw*4``
    rows of the channels-last ``[N*H*W, C]`` map it samples and their weights ``w / (gh*gw)``, two
    ``[k*oh*ow, gh*gw*4]`` tables; a bin's entries are the outer product of its ``gh`` sample rows'
    low/high corners and its ``gw`` sample columns' (one broadcast, with a contiguous inner axis).
    Arguments as :func:`_corners`."""
    rows, cols, wy, wx = _corners(rois, oh, ow, gh, gw, height, width)
    k = rows.shape[0]
    entries = gh * gw * 4
    idx = rows.view(k, oh, 1, gh * 2, 1) + cols.view(k, 1, ow, 1, gw * 2)
    w = wy.view(k, oh, 1, gh * 2, 1) * (wx / (gh * gw)).view(k, 1, ow, 1, gw * 2)
    return idx.view(k * oh * ow, entries), w.view(k * oh * ow, entries)


def _transposed_sum(idx: Tensor, w: Tensor, grad: Tensor, rows: int) -> Tensor:
    """``M^T @ grad`` for the sparse ``M`` whose row ``i`` has weights ``w[i]`` at columns ``idx[i]``:
    the entries sorted by column (stable, so the sum order is fixed), then one ``embedding_bag`` per
    column over the ``grad`` rows that reach it. ``[rows, C]``."""
    per_row = idx.shape[1]
    cols = idx.reshape(-1)
    order = torch.sort(cols.to(torch.int32), stable=True)[1]
    counts = torch.bincount(cols, minlength=rows)
    offsets = torch.zeros(rows, dtype=torch.int64, device=idx.device)
    offsets[1:] = counts.cumsum(0)[:-1]
    return F.embedding_bag(
        torch.div(order, per_row, rounding_mode="floor"),
        grad,
        offsets,
        mode="sum",
        per_sample_weights=w.reshape(-1).index_select(0, order),
    )


def _plan(
    roi_h: Tensor, roi_w: Tensor, oh: int, ow: int, sampling_ratio: int, channels: int
) -> tuple[Tensor | None, list[tuple[int, int, int, int]]]:
    """How to walk the RoIs: ``(order, [(start, end, gh, gw), ...])``.

    ``order`` (None: identity) sorts the RoIs by sampling grid, so that every chunk is the
    contiguous range ``start:end`` of the sorted RoIs, all with a ``gh x gw`` grid per bin and a
    sampled grid of at most ``_CHUNK_ELEMENTS`` values (at least one RoI per chunk).
    """
    k = roi_h.shape[0]
    if k == 0:
        return None, []
    order: Tensor | None = None
    if sampling_ratio > 0:
        groups = [(0, k, sampling_ratio, sampling_ratio)]
    else:
        # non-finite sizes get no sampling point (0) rather than an undefined integer conversion
        gh = torch.nan_to_num(torch.ceil(roi_h / oh), 0.0, 0.0, 0.0).clamp(min=0).to(torch.int64)
        gw = torch.nan_to_num(torch.ceil(roi_w / ow), 0.0, 0.0, 0.0).clamp(min=0).to(torch.int64)
        stride = int(gw.max()) + 1
        key = gh * stride + gw
        uniq, counts = torch.unique(key, return_counts=True)
        if uniq.numel() > 1:
            order = torch.argsort(key, stable=True)
        groups = []
        start = 0
        for u, n in zip(uniq.tolist(), counts.tolist(), strict=True):
            groups.append((start, start + n, u // stride, u % stride))
            start += n
    chunks: list[tuple[int, int, int, int]] = []
    for start, end, gh_, gw_ in groups:
        step = max(1, _CHUNK_ELEMENTS // max(oh * ow * gh_ * gw_ * channels, 1))
        for s in range(start, end, step):
            chunks.append((s, min(s + step, end), gh_, gw_))
    return order, chunks


def _take(t: Tensor, order: Tensor | None) -> Tensor:
    return t if order is None else t.index_select(0, order)


class _SampleBins(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, batch_idx, y0, x0, roi_h, roi_w, oh, ow, sampling_ratio, mode):  # noqa: D102
        n, c, height, width = input.shape
        k = batch_idx.shape[0]
        order, chunks = _plan(roi_h, roi_w, oh, ow, sampling_ratio, c)
        # RoI geometry in walking order
        geo = [_take(t, order) for t in (batch_idx, y0, x0, roi_h / oh, roi_w / ow)]
        # channels-last rows: one sample corner is one contiguous row of C values
        feat = input.permute(0, 2, 3, 1).reshape(n * height * width, c)
        out = None
        if len(chunks) != 1 or chunks[0][2] <= 0 or chunks[0][3] <= 0:
            out = input.new_empty((k, c, oh, ow))
        args: list = []  # per chunk, for the backward: the bin tables (avg) or every output's arg-max (max)
        for start, end, gh, gw in chunks:
            if gh <= 0 or gw <= 0:  # no sampling point: the bin is 0 (avg and max alike)
                out[start:end] = 0
                args.append(None)
                continue
            rois = [t[start:end] for t in geo]
            if mode == "avg":
                bins = _bin_tables(rois, oh, ow, gh, gw, height, width)
                red = F.embedding_bag(bins[0], feat, mode="sum", per_sample_weights=bins[1])
                red = red.view(end - start, oh, ow, c).permute(0, 3, 1, 2)
                args.append(bins if ctx.needs_input_grad[0] else None)  # the backward transposes them
            else:
                idx, w = _corner_tables(rois, oh, ow, gh, gw, height, width)
                kk, n_y, n_x, _ = idx.shape
                # the sampled grid [kk, Y, X, C]: each sample = weighted sum of its 4 corner rows (fused)
                vals = F.embedding_bag(idx.view(-1, 4), feat, mode="sum", per_sample_weights=w.view(-1, 4))
                grid = vals.view(kk, n_y, n_x, c).permute(0, 3, 1, 2)  # [kk, C, Y, X], channels-last
                if ctx.needs_input_grad[0]:
                    red, am = F.max_pool2d(grid, (gh, gw), (gh, gw), return_indices=True)
                else:  # inference: no arg-max to keep
                    red, am = F.max_pool2d(grid, (gh, gw), (gh, gw)), None
                del vals, grid
                args.append(am)  # channels-last [kk, C, oh, ow], i.e. laid out [kk, oh, ow, C]
            if out is None:  # a single chunk: its result is the output
                out = red.contiguous()
            else:
                out[start:end] = red
        if out is None:  # no RoI
            out = input.new_zeros((k, c, oh, ow))
        if order is not None:
            out = torch.empty_like(out).index_copy_(0, order, out)
        ctx.geometry = (oh, ow, sampling_ratio, mode, (n, c, height, width))
        ctx.args = args  # intermediates of this Function only (no graph), kept off save_for_backward
        ctx.save_for_backward(batch_idx, y0, x0, roi_h, roi_w)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):  # noqa: D102
        batch_idx, y0, x0, roi_h, roi_w = ctx.saved_tensors
        args = ctx.args
        oh, ow, sampling_ratio, mode, (n, c, height, width) = ctx.geometry
        order, chunks = _plan(roi_h, roi_w, oh, ow, sampling_ratio, c)
        geo = [_take(t, order) for t in (batch_idx, y0, x0, roi_h / oh, roi_w / ow)]
        grad_feat = grad_out.new_zeros((n * height * width, c))  # channels-last rows
        g = _take(grad_out.permute(0, 2, 3, 1), order).contiguous()  # [k, oh, ow, C], walking order
        p = oh * ow
        for (start, end, gh, gw), am in zip(chunks, args, strict=True):
            if gh <= 0 or gw <= 0:
                continue
            gk = g[start:end]
            if mode == "avg":  # the forward's bin tables, transposed
                grad_feat += _transposed_sum(*am, gk.reshape(-1, c), n * height * width)
                continue
            # max: for every output (kk, ph, pw, c) its arg-max sample's 4 corner rows and weights,
            # gathered corner by corner from contiguous [kk, Y*X] tables (the fast gather path)
            idx, w = _corner_tables([t[start:end] for t in geo], oh, ow, gh, gw, height, width)
            kk, n_y, n_x, _ = idx.shape
            am = am.permute(0, 2, 3, 1).reshape(kk, p * c)
            idx = idx.view(kk, n_y * n_x, 4).permute(2, 0, 1).contiguous()
            w = w.view(kk, n_y * n_x, 4).permute(2, 0, 1).contiguous()
            gk = gk.reshape(kk * p, c)
            for j in range(4):
                rows = torch.gather(idx[j], 1, am).view(kk * p, c)
                src = torch.gather(w[j], 1, am).view(kk * p, c).mul_(gk)
                # column j of a [., C] row is channel j: scatter along the rows of grad_feat
                grad_feat.scatter_add_(0, rows, src)
        grad_input = grad_feat.view(n, height, width, c).permute(0, 3, 1, 2).contiguous()
        return grad_input, None, None, None, None, None, None, None, None, None


def sample_bins(
    input: Tensor,
    batch_idx: Tensor,
    y0: Tensor,
    x0: Tensor,
    roi_h: Tensor,
    roi_w: Tensor,
    output_size: tuple[int, int],
    sampling_ratio: int,
    aggregation: str,
) -> Tensor:
    """Bilinearly sample every bin of every RoI and reduce: ``[K, C, oh, ow]``.

    ``y0, x0`` are the RoIs' top-left corners and ``roi_h, roi_w`` their sizes, on the feature map
    (continuous coordinates, pixel ``i`` centred at ``i``), in ``input``'s dtype; ``batch_idx`` is
    int64. ``sampling_ratio > 0`` gives that many points per bin side, else ``ceil(roi / bin count)``
    per RoI. ``aggregation`` is ``"avg"`` or ``"max"``.
    """
    oh, ow = output_size
    return _SampleBins.apply(
        input, batch_idx, y0, x0, roi_h, roi_w, int(oh), int(ow), int(sampling_ratio), aggregation
    )
