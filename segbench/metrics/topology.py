"""2D digital topology for the ISBI 2012 warping error: simple points, the simple-point warp and the
classification of the mismatches that survive it.

Conventions (the organisers' "minimum splits and mergers" warping error, see
``shared/reference/isbi_metrics.md``):

* foreground = cell (1), 4-connected; background = membrane (0), 8-connected;
* a pixel ``x`` is *simple* when T4(x, cell) = 1 and T8(x, membrane) = 1, the topological numbers taken in
  the 3 x 3 neighbourhood with the centre excluded (Bertrand): T4 counts the 4-connected components of
  the cell pixels among the 8 neighbours that are 4-adjacent to ``x``; T8 counts the 8-connected
  components of the membrane pixels among the 8 neighbours. Simplicity depends on the 8 neighbours only,
  so a 256-entry lookup table indexed by the neighbour bits is exact (:data:`SIMPLE_LUT`);
* images are embedded in a canvas one pixel larger on every side, filled with membrane: outside the image
  counts as membrane.

The hot loops are compiled with numba (``cache=True``, ``nogil=True``).

Public API (image coordinates; what :mod:`segbench.metrics.isbi` uses):

* :func:`flip_order` -- the mismatching pixels in the order the warp tries them;
* :func:`warp` -- the simple-point warp of a source towards a target;
* :func:`classify_mismatches` -- the classes (:data:`CLASSES`) of the pixels the warp left;
* :func:`warp_and_classify` -- both steps at once, as a :class:`WarpOutcome` with named fields;
* :data:`N_CLASSES` -- the length of a class-count vector (one count per :data:`CLASSES`, in that order).

The numba kernels behind them (``_warp_kernel``, ``_classify_kernel``) work on the padded canvas and are
private.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np
from scipy import ndimage

# Neighbour bit i of the lookup-table index <-> offset (dy, dx), clockwise from the north-west corner.
NEIGHBOUR_OFFSETS: tuple[tuple[int, int], ...] = (
    (-1, -1),
    (-1, 0),
    (-1, 1),
    (0, 1),
    (1, 1),
    (1, 0),
    (1, -1),
    (0, -1),
)
_DY = np.array([o[0] for o in NEIGHBOUR_OFFSETS], dtype=np.int64)
_DX = np.array([o[1] for o in NEIGHBOUR_OFFSETS], dtype=np.int64)

# Mismatch classes, in the order of the counts returned by :func:`classify_mismatches`.
CLASSES: tuple[str, ...] = (
    "split",
    "merge",
    "hole_addition",
    "hole_deletion",
    "object_addition",
    "object_deletion",
)
SPLIT, MERGE, HOLE_ADDITION, HOLE_DELETION, OBJECT_ADDITION, OBJECT_DELETION = range(len(CLASSES))
#: Length of a class-count vector (:func:`warp_and_classify`, ``WarpOutcome.classes``).
N_CLASSES = len(CLASSES)

_FOUR = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)


# --------------------------------------------------------------------------------------------------
# Lookup table, built from the definition of the topological numbers
# --------------------------------------------------------------------------------------------------
def _components(members: list[int], adjacent) -> list[set[int]]:
    """Connected components of ``members`` (ring indices) under the relation ``adjacent``."""
    parent = {m: m for m in members}

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for i, a in enumerate(members):
        for b in members[i + 1 :]:
            if adjacent(a, b):
                parent[find(a)] = find(b)
    groups: dict[int, set[int]] = {}
    for m in members:
        groups.setdefault(find(m), set()).add(m)
    return list(groups.values())


def _adj4(a: int, b: int) -> bool:
    (ya, xa), (yb, xb) = NEIGHBOUR_OFFSETS[a], NEIGHBOUR_OFFSETS[b]
    return abs(ya - yb) + abs(xa - xb) == 1


def _adj8(a: int, b: int) -> bool:
    (ya, xa), (yb, xb) = NEIGHBOUR_OFFSETS[a], NEIGHBOUR_OFFSETS[b]
    return max(abs(ya - yb), abs(xa - xb)) == 1


def topological_numbers(code: int) -> tuple[int, int]:
    """(T4(x, cell), T8(x, membrane)) for the neighbourhood whose cell neighbours are the set bits of
    ``code`` (bit i <-> :data:`NEIGHBOUR_OFFSETS` [i]; the centre is excluded)."""
    cells = [i for i in range(8) if code >> i & 1]
    membrane = [i for i in range(8) if not code >> i & 1]
    four_neighbours = {i for i, (dy, dx) in enumerate(NEIGHBOUR_OFFSETS) if abs(dy) + abs(dx) == 1}
    t4 = sum(1 for comp in _components(cells, _adj4) if comp & four_neighbours)
    t8 = len(_components(membrane, _adj8))  # every ring pixel is 8-adjacent to the centre
    return t4, t8


def _build_lut() -> np.ndarray:
    lut = np.zeros(256, dtype=np.bool_)
    for code in range(256):
        t4, t8 = topological_numbers(code)
        lut[code] = t4 == 1 and t8 == 1
    return lut


#: ``SIMPLE_LUT[code]``: is the centre a simple point (4-connected cells, 8-connected membrane)?
SIMPLE_LUT: np.ndarray = _build_lut()
SIMPLE_LUT.setflags(write=False)


def neighbourhood_code(img: np.ndarray, y: int, x: int) -> int:
    """Lookup-table index of pixel (y, x) of a binary image (out-of-image neighbours count as membrane)."""
    h, w = img.shape
    code = 0
    for i, (dy, dx) in enumerate(NEIGHBOUR_OFFSETS):
        yy, xx = y + dy, x + dx
        if 0 <= yy < h and 0 <= xx < w and img[yy, xx]:
            code |= 1 << i
    return code


def is_simple(img: np.ndarray, y: int, x: int) -> bool:
    """Is (y, x) a simple point of the binary image ``img`` (outside the image = membrane)?"""
    return bool(SIMPLE_LUT[neighbourhood_code(img, y, x)])


# --------------------------------------------------------------------------------------------------
# Compiled kernels (canvas coordinates: the image occupies rows 1..h, columns 1..w)
# --------------------------------------------------------------------------------------------------
@numba.njit(cache=True, nogil=True)
def _code(src, y, x):
    c = 0
    if src[y - 1, x - 1]:
        c |= 1
    if src[y - 1, x]:
        c |= 2
    if src[y - 1, x + 1]:
        c |= 4
    if src[y, x + 1]:
        c |= 8
    if src[y + 1, x + 1]:
        c |= 16
    if src[y + 1, x]:
        c |= 32
    if src[y + 1, x - 1]:
        c |= 64
    if src[y, x - 1]:
        c |= 128
    return c


@numba.njit(cache=True, nogil=True)
def _warp_kernel(src, ys, xs, lut):
    """Flip, in the given order, every listed pixel that is simple in the current ``src``; repeat passes
    until nothing is left or a pass flips nothing. Returns the still-mismatching mask over the list."""
    n = ys.shape[0]
    remaining = np.ones(n, dtype=np.bool_)
    left = n
    while left > 0:
        flipped = 0
        for i in range(n):
            if not remaining[i]:
                continue
            y = ys[i]
            x = xs[i]
            if lut[_code(src, y, x)]:
                src[y, x] = 1 - src[y, x]
                remaining[i] = False
                flipped += 1
        left -= flipped
        if flipped == 0:
            break
    return remaining


@numba.njit(cache=True, nogil=True)
def _find(parent, a):
    while parent[a] != a:
        a = parent[a]
    return a


@numba.njit(cache=True, nogil=True)
def _splits_on_removal(lab, y, x, k, dy, dx, h, w, stamp, mark, owner, queue):
    """Would setting cell pixel (y, x) of 4-connected component ``k`` to membrane split ``k``, i.e. leave
    its in-image 8-neighbours in ``k`` in more than one 4-connected piece?

    The neighbours in ``k`` form runs around the ring (consecutive ring positions are 4-adjacent); one
    run: no split. Otherwise a multi-source 4-connected flood fill of ``k`` minus (y, x) grows one front per
    run, merging fronts that meet: all merged -> no split; a front that runs out of pixels before meeting
    the others -> split. The cost is that of the smaller piece or of the local detour, not of ``k``.
    """
    ink = np.zeros(8, dtype=np.bool_)
    any_k = False
    for d in range(8):
        yy = y + dy[d]
        xx = x + dx[d]
        if 1 <= yy <= h and 1 <= xx <= w and lab[yy, xx] == k:
            ink[d] = True
            any_k = True
    if not any_k:
        return False
    d0 = -1
    for d in range(8):
        if ink[d] and not ink[(d + 7) % 8]:
            d0 = d
            break
    if d0 < 0:  # all 8 neighbours in k: one run
        return False
    run_of = np.full(8, -1, dtype=np.int64)
    nr = 0
    for step in range(8):
        d = (d0 + step) % 8
        if ink[d]:
            if not ink[(d + 7) % 8]:
                nr += 1
            run_of[d] = nr - 1
    if nr <= 1:
        return False
    parent = np.arange(nr)
    pending = np.zeros(nr, dtype=np.int64)  # queued pixels per front (valid at set roots)
    sets = nr
    mark[y, x] = stamp  # the removed pixel blocks the fill
    head = 0
    tail = 0
    for d in range(8):
        if run_of[d] >= 0:
            yy = y + dy[d]
            xx = x + dx[d]
            mark[yy, xx] = stamp
            owner[yy, xx] = run_of[d]
            queue[tail, 0] = yy
            queue[tail, 1] = xx
            tail += 1
            pending[run_of[d]] += 1
    while head < tail:
        cy = queue[head, 0]
        cx = queue[head, 1]
        head += 1
        r = _find(parent, owner[cy, cx])
        pending[r] -= 1
        for d in range(1, 8, 2):  # the 4-neighbours: offsets 1, 3, 5, 7
            yy = cy + dy[d]
            xx = cx + dx[d]
            if lab[yy, xx] != k or (yy == y and xx == x):
                continue
            if mark[yy, xx] != stamp:
                mark[yy, xx] = stamp
                owner[yy, xx] = r
                queue[tail, 0] = yy
                queue[tail, 1] = xx
                tail += 1
                pending[r] += 1
            else:
                r2 = _find(parent, owner[yy, xx])
                if r2 != r:
                    parent[r2] = r
                    pending[r] += pending[r2]
                    sets -= 1
                    if sets == 1:
                        return False
        if pending[r] == 0:  # this piece is exhausted without meeting the others
            return True
    return sets > 1


@numba.njit(cache=True, nogil=True)
def _classify_kernel(src, lab, ys, xs, h, w, dy, dx):
    """Counts per class (see :data:`CLASSES`) of the listed mismatching pixels of the warped source."""
    counts = np.zeros(N_CLASSES, dtype=np.int64)
    # flood-fill work arrays, allocated on the first split check
    mark = np.zeros((1, 1), dtype=np.int64)
    owner = np.zeros((1, 1), dtype=np.int64)
    queue = np.zeros((1, 2), dtype=np.int64)
    labels = np.empty(8, dtype=lab.dtype)
    stamp = 0
    for i in range(ys.shape[0]):
        y = ys[i]
        x = xs[i]
        # U: distinct labels among the in-image 8-neighbours (centre excluded)
        nu = 0
        for d in range(8):
            yy = y + dy[d]
            xx = x + dx[d]
            if 1 <= yy <= h and 1 <= xx <= w:
                v = lab[yy, xx]
                new = True
                for j in range(nu):
                    if labels[j] == v:
                        new = False
                        break
                if new:
                    labels[nu] = v
                    nu += 1
        cell = src[y, x] != 0
        if nu == 1:
            if labels[0] == 0:
                counts[OBJECT_DELETION if cell else OBJECT_ADDITION] += 1
            else:
                counts[HOLE_ADDITION if cell else HOLE_DELETION] += 1
        elif nu == 2:
            if not cell:
                counts[HOLE_ADDITION] += 1
            else:
                # set the pixel to membrane, relabel, recount: > 2 labels around it -> split. The labels
                # other than the pixel's own stay; its own becomes one label per piece it falls into, so
                # the count exceeds 2 exactly when U holds the own label and removal splits it.
                k = lab[y, x]
                own_in_u = labels[0] == k or labels[1] == k
                if mark.shape[0] == 1:
                    mark = np.zeros(lab.shape, dtype=np.int64)
                    owner = np.zeros(lab.shape, dtype=np.int64)
                    queue = np.zeros((lab.shape[0] * lab.shape[1], 2), dtype=np.int64)
                stamp += 1
                if own_in_u and _splits_on_removal(lab, y, x, k, dy, dx, h, w, stamp, mark, owner, queue):
                    counts[SPLIT] += 1
                else:
                    counts[HOLE_DELETION] += 1
        elif nu >= 3:
            counts[SPLIT if cell else MERGE] += 1
        # nu == 0 only for a 1 x 1 image: no neighbours, no class
    return counts


# --------------------------------------------------------------------------------------------------
# Python entry points (one 2D slice)
# --------------------------------------------------------------------------------------------------
def pad_canvas(img: np.ndarray) -> np.ndarray:
    """``img`` (2D, nonzero = cell) as uint8 0/1 in a canvas one pixel larger on every side, filled with 0."""
    canvas = np.zeros((img.shape[0] + 2, img.shape[1] + 2), dtype=np.uint8)
    canvas[1:-1, 1:-1] = img != 0
    return canvas


def flip_order(mismatch: np.ndarray, key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image coordinates (ys, xs) of the ``mismatch`` pixels, scanned column by column (x outer, y inner)
    and stably sorted by ``key`` descending (the key is used as given, e.g. already rounded to float32)."""
    xs, ys = np.nonzero(mismatch.T)  # row-major over the transpose = column-major over the image
    k = key[ys, xs]
    order = np.argsort(-k, kind="stable")
    return ys[order], xs[order]


def warp(
    source: np.ndarray, target: np.ndarray, ys: np.ndarray, xs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Simple-point warp of binary ``source`` towards binary ``target`` (2D, same shape).

    ``ys, xs``: the mismatching pixels in flip order (see :func:`flip_order`). Returns ``(warped, remaining)``:
    the warped source (uint8 0/1, image size) and a boolean mask over the list of the pixels still
    mismatching. ``target`` is only used to check the list.
    """
    if ys.size and np.any((source[ys, xs] != 0) == (target[ys, xs] != 0)):
        raise ValueError("the flip list contains pixels where source and target agree")
    canvas = pad_canvas(source)
    remaining = _warp_kernel(canvas, ys.astype(np.int64) + 1, xs.astype(np.int64) + 1, SIMPLE_LUT)
    return canvas[1:-1, 1:-1].copy(), remaining


def label4(img: np.ndarray) -> tuple[np.ndarray, int]:
    """4-connected components of the nonzero pixels of a 2D image (0 = membrane), int32 labels."""
    lab, n = ndimage.label(img, structure=_FOUR, output=np.int32)
    return lab, int(n)


def classify_mismatches(warped: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> dict[str, int]:
    """Classify the pixels (ys, xs) that still mismatch after the warp (see :data:`CLASSES`).

    ``warped``: the warped source, 2D binary (nonzero = cell). Rules (U = distinct 4-connected labels of
    the warped source among the pixel's in-image 8-neighbours, 0 = membrane):
    U = {0}: cell -> object deletion, membrane -> object addition; U = {k != 0}: cell -> hole addition,
    membrane -> hole deletion; |U| = 2: membrane -> hole addition, cell -> split if setting it to
    membrane and relabelling leaves more than 2 distinct labels around it, else hole deletion;
    |U| >= 3: membrane -> merge, cell -> split. Each pixel is judged against the same warped source
    (the trial removal is not kept).
    """
    return dict(zip(CLASSES, (int(c) for c in _classify_counts(warped, ys, xs)), strict=True))


def _classify_counts(warped: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    canvas = pad_canvas(warped)
    return _classify_canvas(canvas, ys.astype(np.int64) + 1, xs.astype(np.int64) + 1, *warped.shape)


def _classify_canvas(canvas: np.ndarray, cy: np.ndarray, cx: np.ndarray, h: int, w: int) -> np.ndarray:
    if not cy.size:
        return np.zeros(N_CLASSES, dtype=np.int64)
    lab, _ = label4(canvas)
    return _classify_kernel(canvas, lab, cy, cx, h, w, _DY, _DX)


class WarpOutcome(NamedTuple):
    """What the simple-point warp of a source towards a target leaves (:func:`warp_and_classify`)."""

    mismatches_before: int  # pixels where source and target differ
    mismatches_after: int  # of those, the ones the warp could not flip
    classes: np.ndarray  # int64 [N_CLASSES]: the remaining pixels per class of CLASSES, in that order

    @property
    def split(self) -> int:
        return int(self.classes[SPLIT])

    @property
    def merge(self) -> int:
        return int(self.classes[MERGE])

    def as_dict(self) -> dict[str, int]:
        """``{class name: count}`` over :data:`CLASSES`."""
        return dict(zip(CLASSES, (int(c) for c in self.classes), strict=True))


def warp_and_classify(source: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> WarpOutcome:
    """Warp binary ``source`` (2D, nonzero = cell) by flipping the listed mismatching pixels ``ys, xs`` in
    that order (:func:`flip_order`; the target is implied: every listed pixel differs from it), then
    classify the pixels that still mismatch against the warped source (:func:`classify_mismatches`).

    The same as :func:`warp` followed by :func:`classify_mismatches`, without leaving the padded canvas.
    """
    canvas = pad_canvas(source)
    cy = np.asarray(ys, dtype=np.int64) + 1
    cx = np.asarray(xs, dtype=np.int64) + 1
    remaining = _warp_kernel(canvas, cy, cx, SIMPLE_LUT)
    ry, rx = cy[remaining], cx[remaining]
    classes = _classify_canvas(canvas, ry, rx, *source.shape)
    return WarpOutcome(int(cy.size), int(ry.size), classes)
