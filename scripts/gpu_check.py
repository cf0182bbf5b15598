#!/usr/bin/env python3
"""The GPU path's first-contact check: one command, one JSON, at most 8 minutes on one H100.

Run it from the repository root on a freshly lent GPU machine (``PYTHONPATH=. python scripts/gpu_check.py``
or ``make gpu-check``); ``--cpu`` runs the same steps at tiny sizes on the CPU (``make gpu-check-cpu``; CI
runs it). The steps are in :mod:`gpu_check_steps` (``--list`` prints them). Each runs in its own Python
process, under a timeout cut from the run's time budget (``--budget``, default 480 s on the GPU), so that
a CUDA error, a hang or an out-of-memory kill ends that step only: a step that raises, crashes or times out
is recorded as failed with its error line, and the next one runs. ``--in-process`` runs them in this
process instead (no timeouts; for debugging).

Output, in ``--out`` (else ``$OUT``, else ``results/bench/gpu_check/``): ``gpu_check.json``, rewritten after
every step (so a run killed from outside keeps what it measured), ``gpu_check.md`` (a short summary) and each
step's log in ``gpu_check_logs/``. Exit status: 0 when every step that ran passed, 1 otherwise, 2 for bad
arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent
for _path in (str(SCRIPTS), str(REPO)):  # the working tree's segbench, installed or not (PYTHONPATH=.)
    if _path not in sys.path:
        sys.path.insert(0, _path)

import gpu_check_steps as steps_module  # noqa: E402
from gpu_check_steps import Skip, StepIO, one_line  # noqa: E402

from segbench.errors import InputError  # noqa: E402

JSON_NAME = "gpu_check.json"
MD_NAME = "gpu_check.md"
LOG_DIR = "gpu_check_logs"
DEFAULT_OUT = REPO / "results" / "bench" / "gpu_check"
BUDGET_S = {"gpu": 480.0, "cpu": 600.0}
MIN_STEP_S = 10.0  # a step is not started with less of the budget left
LOG_TAIL_LINES = 15


@dataclass(frozen=True)
class Step:
    """One check: its function is ``gpu_check_steps.<name>(ctx, io)``."""

    name: str
    title: str
    timeout_gpu: float
    timeout_cpu: float
    gpu_only: bool = False  # skipped with --cpu
    cpu_opt_in: str | None = None  # with --cpu, runs only when this context flag is set

    def timeout(self, mode: str) -> float:
        return self.timeout_gpu if mode == "gpu" else self.timeout_cpu


STEPS: tuple[Step, ...] = (
    Step("environment", "Python, torch, torchvision, CUDA, the device, optional packages", 90, 60),
    Step("nvidia_smi", "nvidia-smi -L and the driver", 30, 30, gpu_only=True),
    Step(
        "roi_ops", "RoIAlign avg/max, RoIWarp, RoIPool, torchvision roi_align; deterministic off/on", 120, 120
    ),
    Step("mask_targets", "mask targets: time and peak memory, deterministic off/on", 120, 120),
    Step("maskrcnn_r50_fpn", "R50-FPN training step, fp32 and AMP, beside torchvision's model", 150, 240),
    Step("maskrcnn_x101_fpn", "X101-FPN training step, fp32 and AMP", 120, 180),
    Step("maskrcnn_r50_c4_roialign_max", "R50-C4 RoIAlign-max training step, fp32 and AMP", 90, 120),
    Step("unet_572", "U-Net tiles/s (training and inference), 572 px tiles", 90, 120),
    Step("unet_isbi_fold", "short paper-setting U-Net on one real ISBI 2012 fold, evaluated", 150, 180),
    Step("dag_table2_smoke", "smoke Table 2 through the Snakemake DAG", 240, 900, cpu_opt_in="with_dag"),
)
ALWAYS = ("environment",)  # runs even when --only leaves it out: the JSON names the device from it

Executor = Callable[[Step, dict[str, Any], float], dict[str, Any]]


# -- running one step -------------------------------------------------------------------------------------
def step_record(
    name: str,
    status: str,
    seconds: float,
    numbers: Mapping[str, Any] | None = None,
    *,
    error: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """A step's entry of the JSON: name, status (ok | failed | skipped), seconds, numbers, error/reason."""
    record: dict[str, Any] = {
        "name": name,
        "status": status,
        "seconds": round(seconds, 3),
        "numbers": dict(numbers or {}),
    }
    if error is not None:
        record["error"] = error
    if reason is not None:
        record["reason"] = reason
    return record


def call_step(
    fn: Callable[[dict[str, Any], StepIO], Any], name: str, ctx: dict[str, Any], io: StepIO
) -> dict:
    """Run ``fn(ctx, io)``, turning :class:`Skip` and any exception into the step's record."""
    start = time.perf_counter()
    try:
        fn(ctx, io)
    except Skip as exc:
        return step_record(name, "skipped", time.perf_counter() - start, io.numbers, reason=one_line(exc))
    except Exception as exc:  # the step failed; the check goes on with the next one
        traceback.print_exc()
        return step_record(name, "failed", time.perf_counter() - start, io.numbers, error=one_line(exc))
    return step_record(name, "ok", time.perf_counter() - start, io.numbers)


def in_process_executor(functions: Mapping[str, Callable] | None = None) -> Executor:
    """Run each step in this process (no timeout); ``functions`` overrides step functions by name."""

    def execute(step: Step, ctx: dict[str, Any], timeout: float) -> dict[str, Any]:
        fn = (functions or {}).get(step.name) or getattr(steps_module, step.name)
        return call_step(fn, step.name, ctx, StepIO())

    return execute


def child_command(step: Step, context: Path, result: Path) -> list[str]:
    """The command line of a step's own process."""
    return [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        step.name,
        "--context",
        str(context),
        "--result",
        str(result),
    ]


def child_env() -> dict[str, str]:
    """The environment of a step's process: the working tree first on PYTHONPATH, unbuffered output."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def exit_description(rc: int) -> str:
    if rc < 0:
        with contextlib.suppress(ValueError):
            name = signal.Signals(-rc).name
            hint = " (killed: out of memory?)" if name == "SIGKILL" else ""
            return f"signal {name}{hint}"
        return f"signal {-rc}"
    return f"exit status {rc}"


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    return [line[:300] for line in text.splitlines()[-lines:]]


def isolated_executor(out: Path, scratch: Path) -> Executor:
    """Run each step in a fresh Python process (its own CUDA context), killed at the step's timeout."""

    def execute(step: Step, ctx: dict[str, Any], timeout: float) -> dict[str, Any]:
        context = scratch / "context.json"
        context.write_text(json.dumps(ctx))
        result = scratch / f"{step.name}.result.json"
        result.unlink(missing_ok=True)
        log = out / LOG_DIR / f"{step.name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        with open(log, "w") as fh:
            proc = subprocess.Popen(
                child_command(step, context, result),
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=REPO,
                env=child_env(),
                start_new_session=True,  # its own process group: a timeout kills what it started too
            )
            try:
                rc: int | None = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                rc = None
        seconds = time.perf_counter() - start
        try:
            message = json.loads(result.read_text())
        except (OSError, ValueError):
            message = {}
        numbers = message.get("numbers", {})
        if rc is None:
            record = step_record(
                step.name, "failed", seconds, numbers, error=f"timed out after {timeout:.0f} s (killed)"
            )
        elif "status" in message:
            record = step_record(
                step.name,
                message["status"],
                seconds,
                numbers,
                error=message.get("error"),
                reason=message.get("reason"),
            )
        else:
            tail = log_tail(log, 1)
            record = step_record(
                step.name,
                "failed",
                seconds,
                numbers,
                error=f"the step's process ended with {exit_description(rc)} and no result"
                + (f"; last log line: {tail[0]}" if tail else ""),
            )
        record["log"] = f"{LOG_DIR}/{step.name}.log"
        if record["status"] == "failed":
            record["log_tail"] = log_tail(log)
        return record

    return execute


def child_main(name: str, context: Path, result: Path) -> int:
    """The body of a step's own process: run the step, write its record to ``result``."""
    ctx = json.loads(context.read_text())
    io = StepIO(result)
    record = call_step(getattr(steps_module, name), name, ctx, io)
    io.write(record)
    return 0


# -- the whole check --------------------------------------------------------------------------------------
def git_state() -> dict[str, Any]:
    """The commit checked and whether the tree differs from it (None where there is no git)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=20, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {
        "git_commit": commit or os.environ.get("SEGBENCH_GIT_COMMIT"),
        "git_dirty": None if status is None else bool(status),
    }


def device_from(record: dict[str, Any], device: dict[str, Any]) -> dict[str, Any]:
    """Fold the environment / nvidia_smi numbers into the report's ``device``."""
    numbers = record.get("numbers", {})
    keys = {
        "environment": (
            "name",
            "type",
            "capability",
            "memory_gib",
            "count",
            "torch",
            "torchvision",
            "cuda",
            "cudnn",
            "python",
        ),
        "nvidia_smi": ("driver",),
    }[record["name"]]
    return {**device, **{k: numbers[k] for k in keys if k in numbers}}


def new_report(ctx: dict[str, Any], argv: Sequence[str], budget: float) -> dict[str, Any]:
    return {
        "tool": "scripts/gpu_check.py",
        "mode": ctx["mode"],
        "command": " ".join(["python", "scripts/gpu_check.py", *argv]),
        "host": platform.node(),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "budget_s": budget,
        **git_state(),
        "device": {},
        "steps": [],
    }


def finish(report: dict[str, Any], seconds: float) -> dict[str, Any]:
    counts = {s: sum(r["status"] == s for r in report["steps"]) for s in ("ok", "failed", "skipped")}
    report.update(seconds=round(seconds, 1), counts=counts, passed=counts["failed"] == 0)
    return report


def run_checks(
    ctx: dict[str, Any],
    steps: Sequence[Step],
    execute: Executor,
    *,
    budget: float,
    argv: Sequence[str] = (),
    write: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Every step in order, each recorded whatever the others did; ``write`` is called after each."""
    report = new_report(ctx, argv, budget)
    start = time.perf_counter()
    no_cuda = None
    for step in steps:
        remaining = budget - (time.perf_counter() - start)
        if step.gpu_only and ctx["mode"] == "cpu":
            record = step_record(step.name, "skipped", 0.0, reason="--cpu: no GPU to query")
        elif ctx["mode"] == "cpu" and step.cpu_opt_in and not ctx.get(step.cpu_opt_in):
            flag = "--" + step.cpu_opt_in.replace("_", "-")
            record = step_record(step.name, "skipped", 0.0, reason=f"--cpu without {flag} (CI runs it apart)")
        elif no_cuda and step.name != "nvidia_smi":
            record = step_record(step.name, "skipped", 0.0, reason=no_cuda)
        elif remaining < MIN_STEP_S:
            record = step_record(
                step.name, "failed", 0.0, error=f"not started: the {budget:.0f} s budget was spent"
            )
        else:
            print(f"gpu_check: {step.name} ({step.title}) ...", file=sys.stderr, flush=True)
            record = execute(step, ctx, min(step.timeout(ctx["mode"]), remaining))
            print(
                f"gpu_check: {step.name}: {record['status']} ({record['seconds']:.1f} s)"
                + (f": {record.get('error') or record.get('reason')}" if record["status"] != "ok" else ""),
                file=sys.stderr,
                flush=True,
            )
        report["steps"].append(record)
        if step.name in ("environment", "nvidia_smi"):
            report["device"] = device_from(record, report["device"])
        if (
            step.name == "environment"
            and ctx["mode"] == "gpu"
            and record["numbers"].get("cuda_available") is False
        ):
            no_cuda = "the environment step found no usable CUDA device (see its error)"
        if write is not None:
            write(finish(report, time.perf_counter() - start))
    return finish(report, time.perf_counter() - start)


# -- output -----------------------------------------------------------------------------------------------
def write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    tmp.replace(path)


def markdown(report: dict[str, Any]) -> str:
    """The short summary beside the JSON."""
    dev = report.get("device", {})
    counts = report.get("counts", {})
    ran = counts.get("ok", 0) + counts.get("failed", 0)
    verdict = (
        f"all {ran} steps that ran passed"
        if report.get("passed")
        else f"{counts.get('failed', 0)} of {ran} steps that ran failed"
    )
    versions = ", ".join(
        f"{k} {dev[k]}" for k in ("torch", "torchvision", "cuda", "cudnn", "driver") if dev.get(k) is not None
    )
    commit = report.get("git_commit") or "unknown"
    lines = [
        f"# GPU check ({report['mode']}): {dev.get('name', 'unknown device')}",
        "",
        f"{verdict} ({counts.get('skipped', 0)} skipped); {report.get('seconds', 0):.0f} s of a "
        f"{report['budget_s']:.0f} s budget. Commit `{commit[:12]}`"
        + (" (tree modified)" if report.get("git_dirty") else "")
        + f"; {versions}.",
        "",
        f"Command: `{report['command']}`; host {report['host']}, {report['started_utc']}.",
        "",
        "| step | status | s | figures / error |",
        "|---|---|---:|---|",
    ]
    for r in report["steps"]:
        text = r.get("error") or r.get("reason") or r["numbers"].get("summary", "")
        lines.append(f"| {r['name']} | {r['status']} | {r['seconds']:.1f} | {str(text).replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def writer(out: Path) -> Callable[[dict[str, Any]], None]:
    def write(report: dict[str, Any]) -> None:
        write_json(out / JSON_NAME, report)
        (out / MD_NAME).write_text(markdown(report))

    return write


# -- command line -----------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="scripts/gpu_check.py",
        description="The GPU path's first-contact check (see the module docstring): each step in its own "
        "process, timed and measured, recorded in gpu_check.json and gpu_check.md.",
    )
    p.add_argument("--cpu", action="store_true", help="the same steps at tiny sizes on the CPU (CI)")
    p.add_argument(
        "--out", help="output folder (default: $OUT where set, else results/bench/gpu_check/ of the tree)"
    )
    p.add_argument("--only", help="comma-separated step names (environment always runs); --list names them")
    p.add_argument("--with-dag", action="store_true", help="with --cpu: run the smoke Table 2 DAG step too")
    p.add_argument(
        "--data-root", help="where isbi2012/ is looked for (default: $SEGBENCH_DATA, else data/ of the tree)"
    )
    p.add_argument(
        "--budget",
        type=float,
        help="seconds for the whole check (default 480 on the GPU, 600 with --cpu, +900 with --with-dag)",
    )
    p.add_argument("--in-process", action="store_true", help="run the steps in this process, no timeouts")
    p.add_argument(
        "--keep-scratch", action="store_true", help="keep the scratch folder (its path is printed)"
    )
    p.add_argument("--list", action="store_true", help="print the steps and exit")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--context", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def select_steps(only: str | None) -> list[Step]:
    """The steps ``--only`` names (in the check's order, with :data:`ALWAYS`); all without it."""
    if not only:
        return list(STEPS)
    names = {n.strip() for n in only.split(",") if n.strip()}
    known = {s.name for s in STEPS}
    unknown = sorted(names - known)
    if unknown or not names:
        raise InputError(
            f"--only {only!r}: unknown step(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(s.name for s in STEPS)}"
        )
    return [s for s in STEPS if s.name in names or s.name in ALWAYS]


def output_dir(value: str | None) -> Path:
    """``--out``, else ``$OUT`` (the GPU machine's return folder), else results/bench/gpu_check/."""
    out = Path(value or os.environ.get("OUT") or DEFAULT_OUT).expanduser()
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: is a file, not a folder; name a folder for gpu_check.json")
    out.mkdir(parents=True, exist_ok=True)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.child:
        return child_main(args.child, Path(args.context), Path(args.result))
    if args.list:
        for s in STEPS:
            print(f"{s.name:32s} {s.title}")
        return 0
    try:
        steps = select_steps(args.only)
        out = output_dir(args.out)
        if args.budget is not None and args.budget < MIN_STEP_S:
            raise InputError(f"--budget {args.budget:g}: must be at least {MIN_STEP_S:g} seconds")
    except InputError as exc:
        print(f"gpu_check: error: {exc}", file=sys.stderr)
        return exc.exit_code
    mode = "cpu" if args.cpu else "gpu"
    budget = args.budget
    if budget is None:  # --cpu --with-dag: the DAG's own time on top
        dag = next(s for s in STEPS if s.name == "dag_table2_smoke")
        budget = BUDGET_S[mode] + (dag.timeout_cpu if mode == "cpu" and args.with_dag else 0)
    scratch = Path(tempfile.mkdtemp(prefix="segbench-gpu-check-"))
    ctx = {
        "mode": mode,
        "out": str(out.resolve()),
        "scratch": str(scratch),
        "repo": str(REPO),
        "data_root": args.data_root,
        "with_dag": bool(args.with_dag),
    }
    execute = in_process_executor() if args.in_process else isolated_executor(out, scratch)
    try:
        report = run_checks(ctx, steps, execute, budget=budget, argv=argv, write=writer(out))
    finally:
        if args.keep_scratch:
            print(f"gpu_check: scratch kept in {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    writer(out)(report)
    print(markdown(report))
    print(f"gpu_check: wrote {out / JSON_NAME} and {out / MD_NAME}", file=sys.stderr)
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
