"""Running a trained network: precision, 10-crop test-time augmentation, accuracy.

    cpu_precision / resolve_precision   what --amp auto means on this machine, decided once per run
    run_precision                       the precision a saved run was trained and scored in
    predict_logits / evaluate           10-crop (or centre) logits averaged over crops

Used by training (engine.py), the prune report, plot_confusion_matrix.py and predict.py, so a
model is always scored the way it was selected.
"""
import argparse
import math

import torch
import torch.nn.functional as F

import transforms as T
from utils import rank_world

CROP = T.CROP  # training crop and test crops of the 48x48 faces (transforms.CROP)


# ----------------------------------------------------------------------------------------
# Precision

def _cpu_flag(torch_probe, cpuinfo_flag):
    """Whether the CPU has a feature: torch's own probe where this torch has it, else /proc/cpuinfo."""
    probe = getattr(torch.cpu, torch_probe, None)
    if probe is not None:
        try:
            return bool(probe())
        except RuntimeError:
            pass
    try:
        with open("/proc/cpuinfo") as f:
            return cpuinfo_flag in f.read().split()
    except OSError:
        return False


def cpu_precision():
    """What ``--amp auto`` picks on this CPU, and why.

    bf16 autocast pays on a CPU only with native bf16 arithmetic (AMX tiles or AVX512-BF16), and
    only together with channels_last (oneDNN's fast bf16 convolutions are NHWC); elsewhere bf16
    is emulated and slower than fp32 (bench/bench_precision.py measures the four settings).
    """
    amx, avx = _cpu_flag("_is_amx_tile_supported", "amx_bf16"), _cpu_flag("_is_avx512_bf16_supported", "avx512_bf16")
    if amx or avx:
        unit = "AMX" if amx else "AVX512-BF16"
        return {"amp": "bf16", "channels_last": True, "name": "bf16 autocast + channels_last",
                "why": f"auto: this CPU has native bf16 arithmetic ({unit})"}
    return {"amp": "none", "channels_last": False, "name": "fp32",
            "why": "auto: this CPU has no native bf16 arithmetic (neither AMX nor AVX512-BF16)"}


def resolve_precision(amp, channels_last, device, why=None):
    """``--amp auto`` turned into this run's setting, once: {"amp": bf16 / fp16 / none, "channels_last",
    "precision_why"}. The training loop records it in config.json and every checkpoint, so a resumed
    run (whose ``amp`` is no longer auto, ``why`` its saved reason) keeps the precision it really used."""
    if amp == "auto":
        if device.type == "cuda":
            return {"amp": "bf16", "channels_last": bool(channels_last), "precision_why": "auto: bf16 autocast on CUDA"}
        choice = cpu_precision()
        return {"amp": choice["amp"], "channels_last": bool(channels_last) or choice["channels_last"],
                "precision_why": choice["why"]}
    return {"amp": amp, "channels_last": bool(channels_last), "precision_why": why or f"--amp {amp}"}


def describe_precision(p):
    """The log line of a resolve_precision result."""
    name = {"none": "fp32", "bf16": "bf16 autocast", "fp16": "fp16 autocast"}[p["amp"]]
    return f"precision: {name}{' + channels_last' if p['channels_last'] else ''} ({p['precision_why']})"


def run_precision(ck, device):
    """(autocast dtype, name, channels_last) a saved run evaluated with, so later scores match it.

    Runs saved before ``--amp auto`` was resolved at the start of training recorded 'auto',
    which then meant bf16 on CUDA and fp32 on every CPU; that is what they get here.
    """
    saved = ck.get("args", {})
    dtype = amp_dtype(argparse.Namespace(amp=saved.get("amp") or "none"), torch.device(device))
    name = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
    return dtype, name, bool(saved.get("channels_last"))


def scoring_model(ck, source, device):
    """(model in eval mode on ``device``, dtype, precision name, channels_last): a saved run's network
    set up to be scored as its training loop scored it (``run_precision``)."""
    import models
    dtype, name, nhwc = run_precision(ck, device)
    model = models.model_from_checkpoint(ck, source).to(device).eval()
    if nhwc:
        model = model.to(memory_format=torch.channels_last)
    return model, dtype, name, nhwc


def amp_dtype(args, device):
    mode = args.amp
    if mode == "auto":  # only a run recorded before resolve_precision existed still says auto
        mode = "bf16" if device.type == "cuda" else "none"
    return {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[mode]


# ----------------------------------------------------------------------------------------
# Test-time augmentation

@torch.no_grad()
def predict_logits(model, x, bs=256, tta="tencrop", dtype=None, channels_last=False):
    """uint8 (N, 1, 48, 48) -> float logits (N, num_classes), averaged over the test crops.

    Under torchrun each process scores one contiguous chunk and the chunks are gathered, so
    every process gets all N rows, each image counted exactly once.
    """
    rank, world = rank_world()
    if world > 1:
        n = len(x)
        chunk = math.ceil(n / world)
        mine = _logits(model, x[rank * chunk:(rank + 1) * chunk], bs, tta, dtype, channels_last)
        padded = torch.zeros(chunk, mine.shape[1], device=mine.device, dtype=mine.dtype)
        padded[:len(mine)] = mine
        parts = [torch.empty_like(padded) for _ in range(world)]
        torch.distributed.all_gather(parts, padded)
        return torch.cat(parts)[:n]
    return _logits(model, x, bs, tta, dtype, channels_last)


def _logits(model, x, bs, tta, dtype, channels_last):
    model.eval()
    if len(x) == 0:  # a process with nothing to score still needs the class count
        return torch.zeros(0, _num_classes(model), device=x.device)
    out = []
    for i in range(0, len(x), bs):
        xb = x[i:i + bs]
        xf = T.to_float(xb)  # normalise 48x48 once, not each of the 10 overlapping crops
        crops = T.ten_crop(xf, CROP) if tta == "tencrop" else T.center_crop(xf, CROP)[:, None]  # (B, K, 1, 44, 44)
        inp = crops.flatten(0, 1)  # (B*K, 1, 44, 44)
        if channels_last:
            inp = inp.contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = model(inp).float()
        out.append(logits.view(len(xb), crops.shape[1], -1).mean(1))
    return torch.cat(out)


def _num_classes(model):
    m = model.module if hasattr(model, "module") else model
    return m.classifier.out_features


def evaluate(model, x, y, bs=256, tta="tencrop", dtype=None, channels_last=False):
    logits = predict_logits(model, x, bs, tta, dtype, channels_last)
    pred = logits.argmax(1)
    return {"loss": F.cross_entropy(logits, y).item(), "acc": 100.0 * (pred == y).float().mean().item(),
            "pred": pred.cpu()}
