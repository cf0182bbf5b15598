"""The cost model of a plan: the runs a target needs at a scale, their schedules, data and GPU time
(see :mod:`segbench.plan`)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from segbench.errors import InputError
from segbench.models.backbone_specs import backbone_spec
from segbench.paths import bench_dir as default_bench_dir

#: Pixels of a COCO image at the paper's training size: short side 800, a 4:3 image's long side 1067.
PAPER_PIXELS = 800 * 1067

#: A U-Net training step (forward + backward) over one forward pass, which the benchmark times: the
#: usual rule of thumb (backward is about twice the forward's work).
UNET_TRAIN_OVER_FORWARD = 3.0


@dataclass(frozen=True)
class GpuType:
    name: str
    maskrcnn_img_s: float  # ResNet-50-FPN Mask R-CNN training images/s per GPU at the paper's input size
    why: str


_V100_D2 = 16 / 0.261 / 8  # detectron2 MODEL_ZOO, R50-FPN 1x: 0.261 s per 16-image iteration on 8 x V100
_H100_OVER_A100 = (
    40.0 / 19.18
)  # MLPerf Training Mask R-CNN: ~40 min on 8 x A100 (v2.1), 19.18 min on 8 x H100 (v3.0)

#: Published anchors (../shared/reference/anchors.md and the paper's section 4.4).
GPU_TYPES: dict[str, GpuType] = {
    "h100": GpuType(
        "h100",
        round(_V100_D2 * _H100_OVER_A100, 1),
        f"R50-FPN {_V100_D2 * _H100_OVER_A100:.1f} img/s per H100 = detectron2's 8 x V100 "
        f"{_V100_D2:.2f} img/s/GPU x {_H100_OVER_A100:.2f} (MLPerf H100/A100 time ratio; the A100 "
        "taken as no faster than the V100, a conservative chain)",
    ),
    "a100": GpuType(
        "a100",
        round(_V100_D2, 2),
        f"R50-FPN {_V100_D2:.2f} img/s per A100 = detectron2's 8 x V100 figure (conservative: NVIDIA's "
        "fused AMP code reaches 24 img/s on one A100)",
    ),
    "v100": GpuType(
        "v100",
        round(_V100_D2, 2),
        f"R50-FPN {_V100_D2:.2f} img/s per V100 (detectron2 MODEL_ZOO: 0.261 s per 16-image "
        "iteration on 8 x V100)",
    ),
    "m40": GpuType(
        "m40",
        round(16 / 0.72 / 8, 2),
        f"R50-FPN {16 / 0.72 / 8:.2f} img/s per M40 (the paper: 0.72 s per 16-image mini-batch on 8 GPUs)",
    ),
}

GPU_SHORT = {
    "h100": "detectron2 V100 x MLPerf H100/A100",
    "a100": "detectron2 V100, conservative",
    "v100": "detectron2 MODEL_ZOO",
    "m40": "the paper, section 4.4",
}

#: Architectures the benchmark may not have measured -> the measured one closest in cost.
NEAREST_ARCH = {"c5": "fpn"}  # both run the whole ResNet once per image and light per-RoI heads


@dataclass
class RunPlan:
    run_id: str
    run: str
    family: str
    dataset: str
    download_bytes: int | None
    download_note: str
    iterations: int
    images_per_batch: int
    images_seen: int
    gpus: int
    img_s_per_gpu: float | None
    gpu_hours: float
    wall_hours: float
    source: str


@dataclass
class Plan:
    target: str
    scale: str
    gpus: int
    gpu_type: str
    tables: list[str]
    runs: list[RunPlan] = field(default_factory=list)
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    factor: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def gpu_hours(self) -> float:
        return sum(r.gpu_hours for r in self.runs)

    @property
    def wall_hours(self) -> float:
        """Multi-GPU runs one after another on their GPUs (side by side where ``gpus`` holds several),
        then single-GPU runs packed onto the GPUs."""
        multi = sum(r.wall_hours * r.gpus for r in self.runs if r.gpus > 1) / self.gpus
        lanes = [0.0] * self.gpus
        for hours in sorted((r.wall_hours for r in self.runs if r.gpus <= 1), reverse=True):
            lanes[lanes.index(min(lanes))] += hours
        return multi + max(lanes, default=0.0)

    @property
    def download_bytes(self) -> int:
        return sum(d["bytes"] or 0 for d in self.datasets.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "scale": self.scale,
            "gpus": self.gpus,
            "gpu_type": self.gpu_type,
            "tables": self.tables,
            "runs": [asdict(r) for r in self.runs],
            "datasets": self.datasets,
            "factor": self.factor,
            "total": {
                "runs": len(self.runs),
                "gpu_hours": self.gpu_hours,
                "wall_hours": self.wall_hours,
                "download_bytes": self.download_bytes,
            },
            "notes": self.notes,
        }


# -- benchmark records ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchRecord:
    path: Path
    data: dict[str, Any]

    @property
    def device(self) -> str:
        return str(self.data.get("device", "cpu"))

    @property
    def device_name(self) -> str:
        return str(self.data.get("device_name") or self.device)

    def rows(self) -> dict[str, dict[str, Any]]:
        return {str(r["run"]): r for r in self.data.get("rows", []) if r.get("run") is not None}


def load_bench(bench_dir: Path, suite: str, gpu_type: str) -> BenchRecord | None:
    """The suite's record for ``gpu_type`` where one exists (a CUDA record naming it), else its CPU record."""
    records = []
    for path in sorted(bench_dir.glob(f"{suite}-*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(
                f"{path}: unreadable benchmark record ({exc}); rerun `segbench bench {suite}`"
            ) from None
        if (
            isinstance(data, dict)
            and data.get("suite", suite) == suite
            and data.get("status", "ok") == "ok"
            and data.get("rows")
        ):
            records.append(BenchRecord(path, data))
    for record in records:
        if record.device.startswith("cuda") and gpu_type.lower() in record.device_name.lower():
            return record
    return next((r for r in records if r.device == "cpu"), None)


def _size_pixels(size: str) -> int:
    try:
        h, w = (int(v) for v in str(size).lower().split("x"))
    except ValueError:
        raise InputError(f"benchmark size {size!r}: expected HxW (e.g. 320x320)") from None
    return h * w


def _size_text(cfg: dict[str, Any]) -> str:
    short = int(cfg["input"].get("min_size", 800))
    return f"{short}x{min(int(cfg['input'].get('max_size', 1333)), round(short * 4 / 3))}"


def train_pixels(cfg: dict[str, Any]) -> int:
    """Pixels of one training image of a Mask R-CNN run: short side ``min_size``, a 4:3 long side capped
    at ``max_size``."""
    short = int(cfg["input"].get("min_size", 800))
    return short * min(int(cfg["input"].get("max_size", 1333)), round(short * 4 / 3))


# -- the plan ---------------------------------------------------------------------------------------------
def plan(
    target: str,
    scale: str = "paper",
    *,
    gpus: int | None = None,
    gpu_type: str = "h100",
    bench_dir: str | Path | None = None,
) -> Plan:
    """The runs ``target`` (a table, artifact, ``all`` or ``reproduce_<name>``) needs at ``scale`` and what
    they cost on ``gpus`` GPUs of ``gpu_type``; reads nothing but the registries and the bench records."""
    from segbench.families import family_spec
    from segbench.launch import gpus_needed, launch_ranks
    from segbench.registry import check_scale, load_registry, resolve_run, runs_for_tables
    from segbench.schedule import effective_schedule
    from segbench.status import assembled_with

    gpu_type = gpu_type.lower()
    if gpu_type not in GPU_TYPES:
        raise InputError(
            f"unknown GPU type {gpu_type!r}; choose one of {', '.join(GPU_TYPES)} "
            "(segbench.plan.GPU_TYPES documents each one's speed)"
        )
    reg = load_registry()
    check_scale(scale, reg)
    artifact = target.removeprefix("reproduce_")
    tables = assembled_with(artifact, reg, scale)  # "all": the tables defined at the scale
    paper_gpus = int(
        reg["scales"][scale]["families"].get("maskrcnn", {}).get("schedule", {}).get("gpus") or 1
    )
    gpus = paper_gpus if gpus is None else int(gpus)  # --gpus 0 is refused, not read as "the paper's"
    if gpus < 1:
        raise InputError(
            f"--gpus {gpus}: a plan needs at least 1 GPU; use --gpus 1 or more (default: the paper's {paper_gpus})"
        )
    bench = Path(bench_dir) if bench_dir is not None else default_bench_dir()
    result = Plan(target, scale, gpus, gpu_type, tables)
    speeds = _Speeds(bench, gpu_type, scale, reg)
    for rs in runs_for_tables(tables, scale, reg):
        cfg = resolve_run(rs.run, scale, rs.seed, reg)
        dataset = cfg["dataset"]["name"]
        size, note = _download_size(cfg["dataset"])
        directory = cfg["dataset"].get("directory", dataset)
        if directory not in result.datasets or result.datasets[directory]["bytes"] is None:
            result.datasets[directory] = {"datasets": [], "bytes": size, "note": note}
        if dataset not in result.datasets[directory]["datasets"]:
            result.datasets[directory]["datasets"].append(dataset)
        family = family_spec(cfg["family"])
        # the processes the workflow launches on `--resources gpu=N` (torchrun, one per GPU); one for the
        # single-GPU families; none for a classical baseline (effective_schedule: None)
        run_gpus = launch_ranks(gpus_needed(cfg, reg) or paper_gpus, gpus) if family.distributed else 1
        sched = effective_schedule(cfg, replicas=run_gpus, gpus=run_gpus)
        if sched is None:
            run_gpus, iterations, batch, seen = 0, 0, 0, 0
            img_s, source = None, "no training: a classical baseline, evaluated on the CPU"
        else:
            iterations, batch = sched.iterations, sched.images_per_batch
            seen = iterations * batch
            if family.speed is not None:
                img_s, source = getattr(speeds, family.speed)(cfg)
            else:
                img_s, source = None, f"not costed: no speed record for the {family.name} family"
        gpu_hours = seen / img_s / 3600 if img_s else 0.0
        wall = gpu_hours / run_gpus if run_gpus else 0.0
        result.runs.append(
            RunPlan(
                rs.run_id,
                rs.run,
                cfg["family"],
                dataset,
                size,
                note,
                iterations,
                batch,
                seen,
                run_gpus,
                img_s,
                gpu_hours,
                wall,
                source,
            )
        )
    result.factor = speeds.factor_record()
    result.notes = [
        "training only: evaluation (5k minival images per Mask R-CNN run) is not included",
        f"wall time assumes linear scaling: each Mask R-CNN run as torchrun --nproc_per_node="
        f"{launch_ranks(paper_gpus, gpus)} on as many of the {gpus} GPU(s) (the workflow's launch with "
        f"--resources gpu={gpus}; 2 images per GPU, the paper's 16-image schedule rescaled by the linear "
        f"scaling rule), runs one after another; single-GPU runs (U-Net) share the {gpus} GPU(s)",
        "Mask R-CNN cost taken proportional to pixels (bench size -> the run's training size)",
    ]
    return result


def _download_size(entry: dict[str, Any]) -> tuple[int | None, str]:
    if entry.get("source") == "derived":
        return 0, f"derived locally from {entry['derive_from']}"
    if entry.get("source") != "real":
        return 0, "synthetic: generated locally"
    downloads = entry.get("downloads", [])
    if any(d.get("url") is None for d in downloads):
        return None, "placed by hand (registration required)"
    sizes = [d.get("size_bytes") for d in downloads]
    if any(s is None for s in sizes):
        return None, "size not in datasets.yaml"
    return sum(sizes), "download"


class _Speeds:
    """Per-GPU training speed of each run, and the sentence that says where it comes from."""

    def __init__(self, bench: Path, gpu_type: str, scale: str, reg: dict[str, Any]) -> None:
        self.bench, self.gpu, self.scale, self.reg = bench, GPU_TYPES[gpu_type], scale, reg
        self.maskrcnn_record = load_bench(bench, "maskrcnn", gpu_type)
        self.unet_record = load_bench(bench, "unet", gpu_type)
        self._factor: tuple[float, str] | None = None
        self.short_why = ""

    # The CPU -> GPU factor, calibrated on the CPU record's row of the registry's reference benchmark run
    # (the first of benchmarks.maskrcnn.runs in experiments.yaml; the published GPU figures are R50-FPN's).
    def factor(self) -> tuple[float, str]:
        if self._factor is None:
            record = self.maskrcnn_record
            ref = (self.reg.get("benchmarks", {}).get("maskrcnn", {}).get("runs") or [""])[0]
            if record is None or record.device != "cpu" or ref not in record.rows():
                raise InputError(
                    f"no CPU Mask R-CNN benchmark with a {ref!r} row in {self.bench} to calibrate the "
                    f"{self.gpu.name} estimate; run `segbench bench maskrcnn --runs {ref}`"
                )
            size = record.data.get("settings", {}).get("size", "320x320")
            bench_px = _size_pixels(size)
            measured = float(record.rows()[ref]["train_img_s"])
            cpu = measured * bench_px / PAPER_PIXELS
            x = self.gpu.maskrcnn_img_s / cpu
            self.short_why = (
                f"R50-FPN {self.gpu.maskrcnn_img_s:g} img/s per {self.gpu.name.upper()} at 800x1067 "
                f"({GPU_SHORT[self.gpu.name]}) / {cpu:.3g} img/s for {ref} on this CPU at that size"
            )
            why = (
                f"{self.gpu.why}, vs {cpu:.3g} img/s for {ref} on this CPU at 800x1067 "
                f"({self._rel(record.path)}: {measured:.3g} img/s at {size}, cost proportional to pixels)"
            )
            self._factor = (x, why)
        return self._factor

    def factor_record(self) -> dict[str, Any] | None:
        if self._factor is None:
            return None
        return {
            "gpu_type": self.gpu.name,
            "factor": self._factor[0],
            "why": self._factor[1],
            "anchor_img_s": self.gpu.maskrcnn_img_s,
        }

    def _rel(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(Path.cwd().resolve()))
        except ValueError:
            return str(path)

    def maskrcnn(self, cfg: dict[str, Any]) -> tuple[float, str]:
        from segbench.registry import resolve_run

        record = self.maskrcnn_record
        if record is None:
            raise InputError(f"no Mask R-CNN benchmark record in {self.bench}; run `segbench bench maskrcnn`")
        rows = record.rows()
        measured = self._nearest(cfg, rows, resolve_run)
        row = rows[measured]
        mcfg = {"model": self._model(measured, resolve_run)} if measured in self.reg["runs"] else cfg
        backbone = str(cfg["model"].get("backbone", "resnet50"))
        spec = backbone_spec(backbone)
        cost, cost_why = spec.cost, spec.cost_why or spec.label
        base_cost = backbone_spec(str(mcfg["model"].get("backbone", "resnet50"))).cost
        ratio = cost / base_cost
        bench_size = record.data.get("settings", {}).get("size", "320x320")
        pixels = _size_pixels(bench_size) / train_pixels(cfg)
        img_s = float(row["train_img_s"]) * pixels / ratio
        as_what = "measured" if measured == cfg["run"] else f"as {measured}, the nearest measured run"
        backbone_note = f", /{ratio:.3g} for the backbone ({cost_why})" if ratio != 1.0 else ""
        scale_note = (
            f"{float(row['train_img_s']):.3g} img/s at {bench_size}, x{pixels:.3g} for {_size_text(cfg)}"
        )
        if record.device.startswith("cuda"):
            return img_s, (
                f"source: {self._rel(record.path)} (GPU {record.device_name}, {as_what}: {scale_note}"
                f"{backbone_note}; used directly)"
            )
        x, _ = self.factor()
        why = self.short_why
        return img_s * x, (
            f"source: {self._rel(record.path)} (CPU, {as_what}: {scale_note}{backbone_note}; "
            f"scaled by {x:.0f} for {self.gpu.name}: {why})"
        )

    def _nearest(self, cfg: dict[str, Any], rows: dict[str, dict[str, Any]], resolve_run) -> str:
        if cfg["run"] in rows:
            return cfg["run"]
        model = cfg["model"]
        arch = model.get("arch")
        arch = (
            arch
            if any(self._model(r, resolve_run).get("arch") == arch for r in rows)
            else NEAREST_ARCH.get(arch, arch)
        )
        tasks = set(model.get("tasks", ()))

        def score(name: str) -> tuple[bool, bool, int, int, float]:
            # same architecture, same tasks, most tasks shared, fewest differing; ties go to the slower
            # run (the estimate errs on the expensive side)
            m = self._model(name, resolve_run)
            other = set(m.get("tasks", ()))
            return (
                m.get("arch") == arch,
                other == tasks,
                len(other & tasks),
                -len(other ^ tasks),
                -float(rows[name].get("train_img_s") or 0.0),
            )

        return max(rows, key=score)

    def _model(self, run: str, resolve_run) -> dict[str, Any]:
        """A measured run's architecture keys (arch, tasks, backbone): the run's own registry keys, which
        no scale overlays, so a run whose dataset the scale does not map (COCO's at real_cpu) still serves."""
        if run not in self.reg["runs"]:
            return {}
        return dict(self.reg["runs"][run].get("model", {}))

    def unet(self, cfg: dict[str, Any]) -> tuple[float, str]:
        record = self.unet_record
        if record is None:
            raise InputError(f"no U-Net benchmark record in {self.bench}; run `segbench bench unet`")
        row = record.data["rows"][0]
        bench_tile = int(row.get("tile", record.data.get("settings", {}).get("tile", 572)))
        tile = int(cfg["input"].get("tile", bench_tile))
        step_s = float(row["ms_per_tile"]) / 1e3 * UNET_TRAIN_OVER_FORWARD * (tile / bench_tile) ** 2
        what = (
            f"{float(row['ms_per_tile']):.0f} ms per {bench_tile} px tile forward, x{UNET_TRAIN_OVER_FORWARD:g} "
            f"for a training step"
            + (f", x{(tile / bench_tile) ** 2:.3g} for {tile} px tiles" if tile != bench_tile else "")
        )
        if record.device.startswith("cuda"):
            return (
                1.0 / step_s,
                f"source: {self._rel(record.path)} (GPU {record.device_name}, {what}; used directly)",
            )
        x, _ = self.factor()
        why = self.short_why
        same = (
            ""
            if self.maskrcnn_record and self.maskrcnn_record.device_name == record.device_name
            else " [calibrated on another CPU: less reliable]"
        )
        return x / step_s, (
            f"source: {self._rel(record.path)} (CPU, {what}; scaled by {x:.0f} for {self.gpu.name}, "
            f"the Mask R-CNN calibration of this CPU{same}: {why})"
        )
