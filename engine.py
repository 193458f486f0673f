"""The one training/evaluation loop, shared by FER2013, CK+ and pruned-model fine-tuning.

    train_one_epoch  batched augmentation on device-resident uint8 data -> SGD steps
    evaluate         10-crop (or centre) test-time augmentation, logits averaged over crops
    fit              epochs, honest model selection, metrics.csv, atomic best/last checkpoints,
                     exact resume, NaN guard

Scripts call ``add_train_args`` to get the common flags, ``resolve_args`` to fill recipe
defaults (and restore a run's saved configuration on --resume), then ``fit``.
"""
import argparse
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

import prune
import transforms as T
from data_io import DataError
from utils import (CHECKPOINT_FORMAT, MetricsCSV, Stopwatch, clean_state_dict, is_main_process, load_checkpoint,
                   rank_world, rng_state, save_checkpoint, set_rng_state, write_json)

CROP = 44  # training crop and test crops of the 48x48 faces

# Recipe-governed flags default to None on the command line and are filled from a recipe,
# so `--recipe fast --lr 0.02` changes only the lr and config.json shows what really ran.
RECIPE_KEYS = ("epochs", "bs", "lr", "momentum", "wd", "schedule", "decay_start", "decay_every",
               "decay_rate", "warmup", "clip", "label_smoothing", "erase", "affine", "ema", "nesterov")
PUBLISHED_FER = dict(epochs=250, bs=128, lr=0.01, momentum=0.9, wd=5e-4, schedule="step", decay_start=80,
                     decay_every=5, decay_rate=0.9, warmup=0, clip=0.1, label_smoothing=0.0, erase=0.0, affine=0.0,
                     ema=0.0, nesterov=False)
# 100 epochs = 40% of the published 250: the published optimiser with a cosine decay and label
# smoothing. CPU tuning on PublicTest (bench/tune_fast.py, VGG19 width 0.125, 12 epochs): EMA,
# affine and erasing each lost 1-2 points, lr 0.03 + 1 warm-up epoch gained ~1 point on one seed;
# too little evidence to change the default before a full-size GPU run (see BENCHMARKS.md).
FAST_FER = dict(PUBLISHED_FER, epochs=100, schedule="cosine", warmup=0, label_smoothing=0.1)
# The CPU-scale protocol (VGG19 at --width 0.25 on the full FER2013, about an hour on 2 cores):
# one-cycle to lr 0.05 with Nesterov momentum, the recipe that reached 68.5% honest in 30 epochs.
CPU_FER = dict(PUBLISHED_FER, epochs=30, schedule="onecycle", lr=0.05, nesterov=True, label_smoothing=0.1)
# Flags a resumed run may change; everything else comes back from the saved config.
RESUME_OVERRIDABLE = ("epochs", "device", "eval_every", "compile", "resume", "amp", "eval_bs", "test_curves")


class TrainingDiverged(RuntimeError):
    pass


def add_model_args(ap):
    """--model and --width, for the scripts that train a network from scratch."""
    import models
    ap.add_argument("--model", default="VGG19", metavar="NAME", help=f"{', '.join(models.MODELS)} (default: VGG19)")
    ap.add_argument("--width", type=float, default=1.0, metavar="W",
                    help="scale every conv width by W, e.g. 0.25 for a CPU-sized net (ResNet: stem, stages, "
                         "shortcuts and block interiors) (default: 1.0)")
    return ap


def canonical_model(args):
    """Normalise args.model to the registry's spelling, or exit with one error line."""
    import models
    from data_io import cli_error
    try:
        args.model = models.canonical_name(args.model)
    except ValueError as e:
        cli_error(f"--model: {e}")
    return args.model


def model_info(model, arch, data, **extra):
    """What every checkpoint carries to rebuild the model and label its outputs."""
    return {"arch": arch, "cfg": model.cfg, "model_args": model.model_args, "num_classes": data.num_classes,
            "in_channels": 1,
            "class_names": data.class_names, "dataset": data.name, "synthetic": data.synthetic, **extra}


def build_model_from_args(args, num_classes):
    """The network asked for by --model/--width (args.model already canonical)."""
    import models
    if not 0 < args.width <= 4:
        raise DataError(f"--width {args.width}: must be in (0, 4]")
    cfg, model_args = models.scaled(args.model, args.width)
    return models.build_model(args.model, cfg=cfg, num_classes=num_classes, **model_args)


def add_train_args(ap, recipes, default_recipe):
    """The flags every training script shares (see README, 'Common flags')."""
    ap.add_argument("--data", metavar="FILE", help="HDF5 data file (default: the script's own)")
    ap.add_argument("--out", metavar="DIR", help="output folder (default: checkpoints/<DATASET>_<MODEL>)")
    ap.add_argument("--device", default="auto", metavar="DEV", help="auto, cpu, cuda or cuda:N (default: auto)")
    ap.add_argument("--recipe", default=default_recipe, choices=sorted(recipes),
                    help=f"hyper-parameter set filling the flags below (default: {default_recipe})")
    r = recipes[default_recipe]
    g = ap.add_argument_group("recipe flags (default: from --recipe; shown for the default recipe)")
    g.add_argument("--epochs", type=int, metavar="N", help=f"epochs (default: {r['epochs']})")
    g.add_argument("--bs", type=int, metavar="N", help=f"batch size (default: {r['bs']})")
    g.add_argument("--lr", type=float, metavar="LR", help=f"peak learning rate (default: {r['lr']})")
    g.add_argument("--momentum", type=float, metavar="M", help=f"SGD momentum (default: {r['momentum']})")
    g.add_argument("--wd", type=float, metavar="W", help=f"weight decay (default: {r['wd']})")
    g.add_argument("--schedule", choices=("step", "cosine", "onecycle"),
                   help=f"lr schedule (default: {r['schedule']})")
    g.add_argument("--decay-start", type=int, metavar="E", help=f"step: decay after epoch E (default: {r['decay_start']})")
    g.add_argument("--decay-every", type=int, metavar="K", help=f"step: every K epochs (default: {r['decay_every']})")
    g.add_argument("--decay-rate", type=float, metavar="F", help=f"step: multiply lr by F (default: {r['decay_rate']})")
    g.add_argument("--warmup", type=float, metavar="E", help=f"cosine: linear warm-up epochs (default: {r['warmup']})")
    g.add_argument("--clip", type=float, metavar="V", help=f"clamp gradients to [-V, V], 0 = off (default: {r['clip']})")
    g.add_argument("--label-smoothing", type=float, metavar="A", help=f"(default: {r['label_smoothing']})")
    g.add_argument("--erase", type=float, metavar="P", help=f"random-erasing probability (default: {r['erase']})")
    g.add_argument("--affine", type=float, metavar="DEG",
                   help=f"random rotation up to DEG degrees with +-10%% zoom, 0 = off (default: {r['affine']})")
    g.add_argument("--nesterov", action="store_const", const=True,
                   help=f"Nesterov momentum (default: {r['nesterov']})")
    g.add_argument("--ema", type=float, metavar="D",
                   help="exponential moving average of the weights (and BatchNorm statistics) with decay D per "
                        f"step; the average is what is evaluated, selected and saved as 'net'; 0 = off (default: {r['ema']})")
    o = ap.add_argument_group("run")
    o.add_argument("--seed", type=int, default=0, metavar="S", help="seed for init, shuffling and augmentation (default: 0)")
    o.add_argument("--resume", action="store_true", help="continue from last.pth in the output folder")
    o.add_argument("--amp", default="auto", choices=("auto", "none", "bf16", "fp16"),
                   help="mixed precision; auto = bf16 on CUDA, none on CPU (default: auto)")
    o.add_argument("--channels-last", action="store_true", help="NHWC memory layout (faster convs on GPUs)")
    o.add_argument("--compile", action="store_true", help="torch.compile the model")
    o.add_argument("--eval-every", type=int, default=1, metavar="K", help="evaluate every K epochs and the last (default: 1)")
    add_eval_bs_arg(o)
    o.add_argument("--test-curves", action="store_true",
                   help="score every split at every evaluation (curves and test-selected maxima of the test "
                        "splits, for comparison with test-selected protocols); default: a split other than the "
                        "selection split is scored only when the selection split improves")
    o.add_argument("--tta", default="tencrop", choices=("tencrop", "center"),
                   help="test-time augmentation (default: tencrop)")
    o.add_argument("--sr", action="store_true", help="network slimming: L1 sparsity on BatchNorm scales")
    o.add_argument("--s", type=sparsity_arg, default="auto", metavar="S",
                   help="sparsity strength for --sr: a number, or auto = the s that takes a BatchNorm scale the "
                        "loss does not defend to zero at --s-zero-at of the schedule (default: auto)")
    o.add_argument("--s-zero-at", type=float, default=0.5, metavar="F",
                   help="--s auto: fraction of the run at which an undefended scale reaches zero (default: 0.5)")
    return ap


def same_file(a, b):
    return os.path.realpath(os.fspath(a)) == os.path.realpath(os.fspath(b))


# Images per 10-crop evaluation batch. On a CPU, 16 images (160 crops) stay in cache and score
# ~2x the crops/s of 256 (bench/bench_eval.py); a GPU wants big batches.
EVAL_BS_AUTO = {"cpu": 16, "cuda": 256}


def add_eval_bs_arg(ap):
    ap.add_argument("--eval-bs", type=eval_bs_arg, default="auto", metavar="N",
                    help=f"images per evaluation batch (x10 crops); auto = {EVAL_BS_AUTO['cpu']} on a CPU, "
                         f"{EVAL_BS_AUTO['cuda']} on a GPU (default: auto)")


def eval_bs_arg(text):
    if text == "auto":
        return text
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a whole number nor 'auto'") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be at least 1")
    return v


def eval_batch_size(value, device):
    """--eval-bs as a number for this device."""
    return EVAL_BS_AUTO.get(torch.device(device).type, 256) if value == "auto" else int(value)


def sparsity_arg(text):
    if text == "auto":
        return text
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a number nor 'auto'") from None
    if not v >= 0:
        raise argparse.ArgumentTypeError(f"{text}: must be >= 0")
    return v


def parse_args(ap, argv=None):
    """``ap.parse_args(argv)``, remembering which flags were typed (``args.typed``).

    A resumed run keeps its saved settings; only flags typed on the resuming command may
    override them, so telling a typed ``--amp auto`` from the default matters.
    """
    args = ap.parse_args(argv)
    defaults = {a: a.default for a in ap._actions}
    try:
        for a in ap._actions:
            a.default = argparse.SUPPRESS
        typed, _ = ap.parse_known_args(argv)
    finally:
        for a, d in defaults.items():
            a.default = d
    args.typed = sorted(vars(typed))
    return args


def resolve_args(args, recipes, out_dir):
    """Fill recipe defaults; with --resume, restore the saved run's configuration first.

    On resume only the flags in RESUME_OVERRIDABLE that were typed (``parse_args``) replace the
    saved values; other typed flags that differ are named and ignored; a different --data is
    refused, since the run's record would name the wrong file.
    """
    typed = set(getattr(args, "typed", None) or [k for k, v in vars(args).items() if v is not None])
    args = argparse.Namespace(**{k: v for k, v in vars(args).items() if k != "typed"})
    last = os.path.join(out_dir, "last.pth")
    if args.resume and os.path.exists(last):
        saved = load_checkpoint(last)["args"]
        given = {k: v for k, v in vars(args).items() if k in typed}
        if given.get("data") and saved.get("data") and not same_file(given["data"], saved["data"]):
            raise DataError(f"--data {given['data']}: {last} trained on {saved['data']}; resume with that "
                            "file or start a new --out")
        merged = {**vars(args), **saved, **{k: given[k] for k in RESUME_OVERRIDABLE if k in given}}
        changed = sorted(k for k in given if k not in RESUME_OVERRIDABLE and k in saved and given[k] != saved[k]
                         and k != "data" and not (k == "s" and given[k] == "auto" and saved.get("s_rule") == "auto"))
        if changed:
            print(f"note: --resume keeps the saved {', '.join(changed)} of {last}; "
                  "start a new --out to change them", file=sys.stderr)
        if merged["epochs"] != saved["epochs"] and saved.get("schedule") in ("cosine", "onecycle"):
            print(f"note: --epochs {merged['epochs']} on resume (was {saved['epochs']}) stretches the "
                  f"{saved['schedule']} schedule over the new length: the learning rate jumps at the resumed epoch",
                  file=sys.stderr)
        args = argparse.Namespace(**merged)
        for k in RECIPE_KEYS:  # a run saved before a recipe key existed ran without it
            if getattr(args, k, None) is None:
                setattr(args, k, PUBLISHED_FER[k])
    else:
        if args.recipe not in recipes:
            raise DataError(f"--recipe {args.recipe}: choose from {', '.join(recipes)}")
        for k, v in recipes[args.recipe].items():
            if getattr(args, k, None) is None:
                setattr(args, k, v)
    for k in ("epochs", "bs"):
        if getattr(args, k) < 1:
            raise DataError(f"--{k} {getattr(args, k)}: must be at least 1")
    if not args.lr > 0:
        raise DataError(f"--lr {args.lr}: must be positive")
    if not 0 < getattr(args, "s_zero_at", 0.5) <= 1:
        raise DataError(f"--s-zero-at {args.s_zero_at}: must be in (0, 1]")
    if not 0 <= args.ema < 1:
        raise DataError(f"--ema {args.ema}: must be in [0, 1), e.g. 0.999")
    args.out = out_dir
    return args


# ----------------------------------------------------------------------------------------
# Optimisation pieces

def lr_factor(args, steps_per_epoch):
    """Multiplier of the base lr at optimizer step ``step`` (integer arithmetic for epochs)."""
    total = args.epochs * steps_per_epoch

    def f(step):
        epoch = step // steps_per_epoch
        if args.schedule == "step":  # published: lr * rate^((epoch - start) // every) after `start`
            return args.decay_rate ** ((epoch - args.decay_start) // args.decay_every) if epoch > args.decay_start else 1.0
        if args.schedule == "cosine":
            warm = int(args.warmup * steps_per_epoch)
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))
        # one-cycle: linear up for 25% of the steps (from lr/10), then linear down to lr/1000
        up = max(1, int(0.25 * total))
        if step < up:
            return 0.1 + 0.9 * step / up
        return max(1e-3, 1 - (step - up) / max(1, total - up))
    return f


def run_precision(ck, device):
    """(autocast dtype, name) a saved run evaluated with, so later scores use the same precision."""
    dtype = amp_dtype(argparse.Namespace(amp=ck.get("args", {}).get("amp") or "none"), torch.device(device))
    return dtype, {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def amp_dtype(args, device):
    mode = args.amp
    if mode == "auto":
        mode = "bf16" if device.type == "cuda" else "none"
    return {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[mode]


# ----------------------------------------------------------------------------------------
# One epoch of training, one evaluation

def make_generators(seed, device):
    """'shuffle' is identical on every process (same permutation); 'augment' differs per rank."""
    rank, _ = rank_world()
    shuffle = torch.Generator(device=device)
    shuffle.manual_seed(seed)
    augment = torch.Generator(device=device)
    augment.manual_seed(seed * 1000 + 1 + rank)
    return {"shuffle": shuffle, "augment": augment}


def train_one_epoch(model, x, y, optimizer, scheduler, args, gens, scaler=None, dtype=None, desc="train",
                    after_step=None, l1_scales=(), teacher=None):
    """x: uint8 (N, 1, 48, 48) on the device; returns loss, accuracy and data/compute seconds.

    ``after_step()`` runs after every optimizer step (the weight average's update);
    ``l1_scales`` are the BatchNorm scales that get network slimming's L1 term (with --sr);
    ``teacher`` (eval mode) adds knowledge distillation with weight args.kd_alpha at temperature
    args.kd_t on the same augmented batch.

    Under torchrun every process walks the same permutation and takes its share of each global
    batch of ``args.bs`` images; gradients are averaged by DistributedDataParallel.
    """
    model.train()
    device = x.device
    rank, world = rank_world()
    n = len(x)
    clock = Stopwatch(device)
    stats = torch.zeros(3, device=device)  # loss sum, correct, images (this process)
    perm = torch.randperm(n, device=device, generator=gens["shuffle"])
    for i in tqdm(range(0, n, args.bs), desc=desc, leave=False, disable=None if rank == 0 else True):
        t0 = clock.start()
        idx = perm[i:i + args.bs][rank::world]
        xb = T.train_augment(x[idx], CROP, gens["augment"], flip=True, erase=args.erase,
                             affine=args.affine)  # (B, 1, 44, 44) float
        yb = y[idx]
        if args.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        clock.stop("data", t0)
        t1 = clock.start()
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            out = model(xb)  # (B, num_classes)
            loss = F.cross_entropy(out.float(), yb, label_smoothing=args.label_smoothing)
            if teacher is not None:
                loss = (1 - args.kd_alpha) * loss + args.kd_alpha * distillation_loss(out, teacher, xb, args.kd_t)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        if args.clip:
            nn.utils.clip_grad_value_(model.parameters(), args.clip)
        if args.sr:
            prune.add_bn_l1_subgradient(l1_scales, args.s)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        scheduler.step()
        if after_step is not None:
            after_step()
        stats += torch.stack([loss.detach().float() * len(idx), (out.argmax(1) == yb).sum().float(),
                              torch.tensor(float(len(idx)), device=device)])
        clock.stop("compute", t1)
    if world > 1:
        torch.distributed.all_reduce(stats)
    loss_sum, correct, count = stats.tolist()
    loss = loss_sum / count
    if not math.isfinite(loss):
        raise TrainingDiverged(f"training loss became {loss}")
    spans = clock.totals()
    return {"loss": loss, "acc": 100.0 * correct / count, "data_s": spans.get("data", 0.0),
            "compute_s": spans.get("compute", 0.0)}


def distillation_loss(student_logits, teacher, xb, t):
    """Hinton et al.'s soft-target term: t^2 * KL(teacher/t || student/t), batch mean."""
    with torch.no_grad():
        target = F.log_softmax(teacher(xb).float() / t, dim=1)  # (B, C)
    return t * t * F.kl_div(F.log_softmax(student_logits.float() / t, dim=1), target, reduction="batchmean",
                            log_target=True)


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


# ----------------------------------------------------------------------------------------
# The run

def fit(model, train, evals, args, model_info, select="PublicTest", log=print, teacher=None):
    """Train ``model`` on ``train`` = (x, y), evaluating each split in ``evals`` = {name: (x, y)}.

    Honest selection: ``best.pth`` is the epoch with the highest ``select`` accuracy (or the
    last epoch when ``select`` is None); the other splits are reported at that epoch. The best
    accuracy over epochs of every split is also kept, labelled test-selected, for comparison
    with protocols that chose epochs on the test set.

    ``model_info`` (arch, cfg, num_classes, in_channels, class_names, dataset, ...) goes into
    every checkpoint so any script can rebuild the model. ``teacher``: a trained network to distil
    from (fine-tuning a pruned model). Returns the summary dict.
    """
    device = train[0].device
    out = args.out
    main = is_main_process()
    if not main:  # only the first process logs and writes files
        log = lambda *a, **k: None  # noqa: E731
    os.makedirs(out, exist_ok=True)
    if main:  # two processes resuming one folder would overwrite each other's checkpoints
        lock = claim_run_folder(out)  # noqa: F841 (held until fit returns)
    last_path, best_path = os.path.join(out, "last.pth"), os.path.join(out, "best.pth")
    steps = math.ceil(len(train[0]) / args.bs)

    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.wd,
                                nesterov=bool(args.nesterov))
    factor = lr_factor(args, steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    l1_scales = ()
    if args.sr:
        # 'auto' becomes a number once, so config.json and a resumed run use the same s
        args.s_rule = getattr(args, "s_rule", None) or ("auto" if args.s == "auto" else "given")
        plan = prune.sparsity_plan(args.s, args.s_zero_at if args.s == "auto" else None, args.lr, factor,
                                   args.epochs * steps, args.wd, args.momentum)
        args.s, args.sparsity = plan["s"], plan
        l1_scales = [bn.weight for bn in prune.prunable_bns(model)]
        rule = f"auto, zero at {args.s_zero_at:g} of the run" if args.s_rule == "auto" else "given"
        log(f"sparsity: s = {plan['s']:.3g} ({rule}); L1 pull "
            f"s*sum(lr) = {plan['l1_pull']:.3g} ({plan['l1_pull_with_momentum']:.3g} with momentum), weight decay "
            f"alone leaves x{plan['wd_shrink']:.3f}; an undefended scale ends at {plan['unaided_scale_at_end']:.3f}; "
            f"L1 on {len(l1_scales)} prunable BatchNorm layers")
    dtype = amp_dtype(args, device)
    eval_bs = eval_batch_size(args.eval_bs, device)
    scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
    gens = make_generators(args.seed, device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    run_model = model
    if rank_world()[1] > 1:
        # BatchNorm statistics are synchronised across processes on GPUs; on CPU (gloo) each
        # process normalises with its own share of the batch
        if device.type == "cuda":
            run_model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        run_model = nn.parallel.DistributedDataParallel(run_model, device_ids=[device] if device.type == "cuda" else None)
    if args.compile:
        run_model = torch.compile(run_model)
    # With --ema the averaged copy is what gets evaluated, selected and saved as "net" (so pruning,
    # fine-tuning, export and predict all see it); the raw weights travel as "train_net" for resume.
    ema, eval_model = None, run_model
    if args.ema:
        ema = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(args.ema),
                                                  use_buffers=True)
        eval_model = torch.compile(ema.module) if args.compile else ema.module

    start, best = 0, {"epoch": 0, "select": select, "score": -1.0, "at_best": {}, "test_selected": {}}
    if args.resume and os.path.exists(last_path):
        ck = load_checkpoint(last_path, map_location=device)
        if (ck["arch"], ck.get("cfg"), ck.get("model_args", {})) != (model_info["arch"], model_info.get("cfg"),
                                                                     model_info.get("model_args", {})):
            raise DataError(f"{last_path} holds {ck['arch']} cfg {ck.get('cfg')} {ck.get('model_args', {})}, "
                            "not the model asked for")
        if (ema is None) != ("train_net" not in ck):
            raise DataError(f"{last_path} was saved {'without' if ema is not None else 'with'} --ema; "
                            "resume it with the same setting")
        model.load_state_dict(ck.get("train_net", ck["net"]))
        if ema is not None:
            ema.module.load_state_dict(ck["net"])
            ema.n_averaged.fill_(ck["ema_updates"])
        optimizer.load_state_dict(ck["optimizer"])
        scheduler.load_state_dict(ck["scheduler"])
        if scaler is not None and ck.get("scaler"):
            scaler.load_state_dict(ck["scaler"])
        per_rank = ck.get("rng_per_rank")
        if per_rank is not None and len(per_rank) != rank_world()[1]:
            log(f"note: {last_path} was saved by {len(per_rank)} processes, now {rank_world()[1]}: the random "
                "streams restart from their seeds")
        else:  # each process gets its own augmentation and dropout streams back
            set_rng_state(per_rank[rank_world()[0]] if per_rank else ck["rng"], gens)
        start, best = ck["epoch"], ck["metrics"]
        log(f"resumed from {last_path} at epoch {start}")
    elif args.resume:
        log(f"--resume: no {last_path} yet, starting from scratch")
    if main:
        metrics_csv = MetricsCSV(os.path.join(out, "metrics.csv"), resume_epoch=start if args.resume else None)
        write_json({"args": vars(args), "model": model_info, "device": describe_device(device),
                    "processes": rank_world()[1], "torch": torch.__version__}, os.path.join(out, "config.json"))
    if start >= args.epochs:
        log(f"already trained for {start} epochs (--epochs {args.epochs}); nothing to do")

    def checkpoint(epoch, preds, rngs):
        extra = {} if ema is None else {"train_net": clean_state_dict(model.state_dict()),
                                        "ema_updates": int(ema.n_averaged)}
        net = model if ema is None else ema.module
        return {"format": CHECKPOINT_FORMAT, **model_info, "net": clean_state_dict(net.state_dict()), **extra,
                "epoch": epoch, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else None, "rng": rngs[0],
                "rng_per_rank": rngs if len(rngs) > 1 else None,
                "metrics": best, "args": vars(args), "predictions": preds}

    for epoch in range(start + 1, args.epochs + 1):
        t0 = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        try:
            tr = train_one_epoch(run_model, *train, optimizer, scheduler, args, gens, scaler, dtype,
                                 desc=f"epoch {epoch}/{args.epochs}", l1_scales=l1_scales, teacher=teacher,
                                 after_step=None if ema is None else lambda: ema.update_parameters(model))
        except TrainingDiverged as e:
            raise TrainingDiverged(f"{e} at epoch {epoch} (lr {lr:.3g}); stopped. The last good checkpoint "
                                   f"is kept: {last_path if epoch > 1 else '(none yet)'}. Try a lower --lr.") from None
        train_s = time.perf_counter() - t0
        row = {"epoch": epoch, "lr": lr, "train_loss": tr["loss"], "train_acc": tr["acc"]}
        preds = {}
        if epoch % args.eval_every == 0 or epoch == args.epochs:
            t1 = time.perf_counter()

            def score_split(name):
                ev = evaluate(eval_model, *evals[name], eval_bs, args.tta, dtype, args.channels_last)
                row[f"{name}_loss"], row[f"{name}_acc"] = ev["loss"], ev["acc"]
                preds[name] = ev["pred"]
                prev = best["test_selected"].get(name)
                if prev is None or ev["acc"] > prev[0]:
                    best["test_selected"][name] = [ev["acc"], epoch]

            # The selection split first; the others are needed only at an epoch that becomes
            # best.pth (their honest figure), unless --test-curves asks for every epoch.
            if select:
                score_split(select)
            score = row[f"{select}_acc"] if select else float(epoch)
            improved = score > best["score"]
            for name in evals:
                if name != select:
                    if improved or args.test_curves:
                        score_split(name)
                    else:
                        row[f"{name}_loss"] = row[f"{name}_acc"] = ""
            eval_s = time.perf_counter() - t1
            if improved:
                best.update(epoch=epoch, score=score, at_best={k: row[f"{k}_acc"] for k in evals})
        else:
            eval_s, improved = 0.0, False
            for name in evals:
                row[f"{name}_loss"] = row[f"{name}_acc"] = ""
        row.update(train_s=train_s, data_s=tr["data_s"], compute_s=tr["compute_s"], eval_s=eval_s,
                   images_per_s=len(train[0]) / max(train_s, 1e-9),
                   peak_mem_gib=torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0)
        rngs = gather_objects(rng_state(gens))  # every process's streams, for an exact resume
        if main:
            metrics_csv.append(row)
            ck = checkpoint(epoch, preds, rngs)
            if improved:
                save_checkpoint(ck, best_path)
            save_checkpoint(ck, last_path)
        accs = "  ".join(f"{k} {row[f'{k}_acc']:.2f}" for k in evals if row[f"{k}_acc"] != "")
        log(f"epoch {epoch:3d}  lr {lr:.4g}  loss {tr['loss']:.4f}  train {tr['acc']:.2f}  {accs}  "
            f"({train_s:.1f}s train, {eval_s:.1f}s eval){'  *' if improved else ''}")

    summary = {"dataset": model_info.get("dataset"), "arch": model_info["arch"], "epochs": args.epochs,
               "selected_by": select or "last epoch", "best_epoch": best["epoch"],
               "honest": best["at_best"],
               # a test split's maximum over epochs is known only if it was scored at every evaluation
               "test_selected_max": {k: v for k, v in best["test_selected"].items()
                                     if k == select or not select or args.test_curves},
               "synthetic": model_info.get("synthetic", False)}
    if main:
        write_json(summary, os.path.join(out, "summary.json"))
    return summary


def claim_run_folder(out):
    """An exclusive lock on ``out/.lock`` for this process's lifetime, or one DataError line."""
    import fcntl
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


def gather_objects(obj):
    """[obj of rank 0, obj of rank 1, ...] (a one-item list in a single process)."""
    world = rank_world()[1]
    if world == 1:
        return [obj]
    out = [None] * world
    torch.distributed.all_gather_object(out, obj)
    return out


def describe_device(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def format_summary(summary):
    """Human-readable result lines, test-selected figures clearly labelled."""
    tag = " [SYNTHETIC data]" if summary.get("synthetic") else ""
    lines = [f"{summary['dataset']} {summary['arch']}{tag}: selected epoch {summary['best_epoch']} "
             f"by {summary['selected_by']}"]
    for k, v in summary["honest"].items():
        lines.append(f"  {k:12s} {v:7.3f}  (at the selected epoch)")
    for k, (acc, ep) in summary["test_selected_max"].items():
        lines.append(f"  {k:12s} {acc:7.3f}  (test-selected: best over epochs, epoch {ep}; comparison only)")
    return "\n".join(lines)
