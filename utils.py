"""Shared helpers: devices, seeding and RNG state, atomic checkpoints, meters, metrics CSV."""
import csv
import fcntl
import json
import os
import random
import time

import numpy as np
import torch

import transforms as T
from data_io import DataError, atomic_output

CHECKPOINT_FORMAT = 1


def pick_device(name="auto"):
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DataError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
    if name == "cuda" and world_size() > 1:  # torchrun: one GPU per process
        name = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    return torch.device(name)


# ----------------------------------------------------------------------------------------
# Multi-process training (torchrun): helpers that are no-ops in a single process

def world_size():
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_distributed(device_name="auto"):
    """Join the process group torchrun set up (NCCL on GPUs, gloo on CPUs); (rank, world)."""
    import torch.distributed as dist
    if world_size() == 1:
        return 0, 1
    if not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and not device_name.startswith("cpu")
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return dist.get_rank(), dist.get_world_size()


def finish_distributed():
    """Leave the process group cleanly: every process waits for the others, the DDP wrapper
    (whose reducer holds the group and sits in a reference cycle, so it would otherwise live on
    until interpreter exit) is collected while the group is still alive, then the group is
    destroyed, so no process exits with gloo's threads still attached."""
    import gc

    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()


def rank_world():
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process():
    return rank_world()[0] == 0


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state(generators=None):
    """Every RNG a training run draws from, as tensors (safe for weights_only loading)."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.stack(torch.cuda.get_rng_state_all())
    for name, g in (generators or {}).items():
        state[name] = g.get_state()
    return state


def set_rng_state(state, generators=None):
    # a checkpoint loaded with map_location=cuda moves these tensors to the GPU; every RNG,
    # a CUDA generator's included, takes its state back only as a CPU ByteTensor
    state = {k: v.cpu() for k, v in state.items()}
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(list(state["cuda"]))
    for name, g in (generators or {}).items():
        if name in state:
            g.set_state(state[name])


def clean_state_dict(state_dict):
    """Strip DataParallel/DDP ``module.`` and torch.compile ``_orig_mod.`` prefixes."""
    out = {}
    for k, v in state_dict.items():
        for prefix in ("module.", "_orig_mod."):
            while k.startswith(prefix):
                k = k[len(prefix):]
        out[k] = v
    return out


def save_checkpoint(ckpt, path):
    """Write with torch.save to a temporary file in the same folder, then rename over ``path``."""
    with atomic_output(path) as tmp:
        torch.save(ckpt, tmp)


def load_checkpoint(path, map_location="cpu"):
    """Load one of our checkpoints with ``weights_only=True`` (no pickled code ever runs)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"checkpoint {path} not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # pickled modules, truncated files, other formats
        msg = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise DataError(f"{path}: not a loadable checkpoint of this repo ({msg})") from None
    if not isinstance(ckpt, dict) or "net" not in ckpt or "arch" not in ckpt:
        raise DataError(f"{path}: not a checkpoint of this repo (no 'arch'/'net' entries)")
    return ckpt


def write_json(obj, path):
    with atomic_output(path) as tmp, open(tmp, "w") as f:
        json.dump(obj, f, indent=2, default=str)
        f.write("\n")


class Stopwatch:
    """Accumulates named time spans; on CUDA with events, so the GPU is never synced per batch."""

    def __init__(self, device):
        self.cuda = torch.device(device).type == "cuda"
        self.spans = {}

    def start(self):
        if self.cuda:
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            return e
        return time.perf_counter()

    def stop(self, name, started):
        if self.cuda:
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            self.spans.setdefault(name, []).append((started, e))
        else:
            self.spans.setdefault(name, []).append(time.perf_counter() - started)

    def totals(self):
        """Seconds per name (synchronises CUDA once)."""
        if self.cuda:
            torch.cuda.synchronize()
            return {k: sum(a.elapsed_time(b) for a, b in v) / 1000 for k, v in self.spans.items()}
        return {k: sum(v) for k, v in self.spans.items()}


class MetricsCSV:
    """metrics.csv, one row per epoch; on resume, rows after the resumed epoch are dropped."""

    def __init__(self, path, resume_epoch=None):
        self.path = path
        self.fields = None
        rows = []
        if resume_epoch is not None and os.path.exists(path):
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["epoch"]) <= resume_epoch]
        if rows:
            self.fields = list(rows[0])
        with atomic_output(path) as tmp, open(tmp, "w", newline="") as f:
            if rows:
                w = csv.DictWriter(f, self.fields)
                w.writeheader()
                w.writerows(rows)

    def append(self, row):
        new = self.fields is None
        if new:
            self.fields = list(row)
        with open(self.path, "a", newline="") as f:
            # a run resumed from a metrics.csv written before a column existed keeps its old columns
            w = csv.DictWriter(f, self.fields, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def read_metrics(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def wall_seconds(rows):
    """A run's training + evaluation seconds, summed over its metrics.csv rows (resumes included)."""
    return sum(float(r["train_s"] or 0) + float(r["eval_s"] or 0) for r in rows)


def latency_ms(fn, reps=20, warmup=1):
    """Mean wall milliseconds of ``fn()`` over ``reps`` calls, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    return 1000 * (time.perf_counter() - t) / reps


def interleaved_latency_ms(fns, rounds=5, reps=10):
    """{name: median ms} for several callables timed in turn, round after round, so a noisy,
    shared machine slows all of them alike and their ratios stay meaningful."""
    times = {k: [] for k in fns}
    for fn in fns.values():
        latency_ms(fn, 1, warmup=2)
    for _ in range(rounds):
        for k, fn in fns.items():
            times[k].append(latency_ms(fn, reps, warmup=0))
    return {k: float(np.median(v)) for k, v in times.items()}


def face_latency_fn(model, dtype=None, channels_last=False, crops=10):
    """A callable scoring ``crops`` 44x44 crops (10 = one face, how predict.py runs; 160 = an
    evaluation batch) in the given autocast dtype and memory format (a run's own: inference.run_precision)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.eval().to(memory_format=fmt)
    x = torch.randn(crops, 1, T.CROP, T.CROP).contiguous(memory_format=fmt)

    def run():
        with torch.no_grad(), torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            model(x)
    return run


def claim_run_folder(out):
    """An exclusive lock on ``out/.lock`` for this process's lifetime, or one DataError line."""
    f = open(os.path.join(out, ".lock"), "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        holder = f.read().strip() or "?"
        f.close()
        raise DataError(f"{out} is in use by another training process (pid {holder}); wait for it or use another --out") from None
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return f


def check_classes(have, have_what, want, want_what):
    """Stop with one line when two class lists differ (a CK+ model on FER2013 data, a teacher of
    other classes): 7 outputs each would otherwise be compared or distilled silently."""
    if list(have) != list(want):
        raise DataError(f"{have_what} has classes {list(have)} but {want_what} has {list(want)}; they must match")
