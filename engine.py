"""The one training/evaluation loop, shared by FER2013, CK+ and pruned-model fine-tuning.

    train_one_epoch  batched augmentation on device-resident uint8 data -> SGD steps
    evaluate         10-crop (or centre) test-time augmentation, logits averaged over crops
    fit              epochs, honest model selection, metrics.csv, atomic best/last checkpoints,
                     exact resume, NaN guard

Scripts get their flags and the resolved run configuration from ``config.py``, then call
``fit``.
"""
import argparse
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

import prune
import transforms as T
from config import eval_batch_size
from inference import CROP, amp_dtype, describe_precision, evaluate, resolve_precision
from data_io import DataError
from utils import (CHECKPOINT_FORMAT, MetricsCSV, Stopwatch, claim_run_folder, clean_state_dict, is_main_process,
                   load_checkpoint, rank_world, rng_state, save_checkpoint, set_rng_state, write_json)

class TrainingDiverged(RuntimeError):
    pass


# ----------------------------------------------------------------------------------------
# Optimisation pieces

def lr_factor(args, steps_per_epoch, plateau=None):
    """Multiplier of the base lr at optimizer step ``step`` (integer arithmetic for epochs).

    plateau: the dict ``plateau_update`` keeps; its ``scale`` is the multiplier (the schedule
    depends on the selection split's accuracy, not on the step).
    """
    total = args.epochs * steps_per_epoch

    def f(step):
        if args.schedule == "plateau":
            return plateau["scale"]
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


def plateau_update(plateau, score, args):
    """ReduceLROnPlateau on the selection split's accuracy (``score``; None when not scored this
    epoch): after ``plateau_patience`` epochs without a new best, multiply the lr by
    ``plateau_factor``. The state is a plain dict so that it travels in the checkpoint."""
    if score is None:
        return
    if score > plateau["best"]:
        plateau["best"], plateau["bad"] = score, 0
    else:
        plateau["bad"] += 1
        if plateau["bad"] > args.plateau_patience:
            plateau["scale"] *= args.plateau_factor
            plateau["bad"] = 0


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
                    after_step=None, l1_scales=(), teacher=None, l1_weights=None):
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
        xb = T.train_augment(x[idx], CROP, gens["augment"], flip=True, erase=args.erase, affine=args.affine,
                             translate=args.translate, zoom=args.zoom)  # (B, 1, 44, 44) float
        yb = y[idx]
        mixed = args.mix != "none"
        if mixed:  # per-image partner and weight; the loss mixes the two labels the same way
            xb, yb2, lam = T.mix(xb, yb, gens["augment"], args.mix, args.mix_alpha)
        if args.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        clock.stop("data", t0)
        t1 = clock.start()
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            out = model(xb)  # (B, num_classes)
            if mixed:
                per = [F.cross_entropy(out.float(), t, label_smoothing=args.label_smoothing, reduction="none")
                       for t in (yb, yb2)]
                loss = (lam * per[0] + (1 - lam) * per[1]).mean()
            else:
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
            prune.add_bn_l1_subgradient(l1_scales, args.s, l1_weights)
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


# ----------------------------------------------------------------------------------------
# The run

def fit(model, train, evals, args, model_info, select="PublicTest", log=print, teacher=None, subsets=None):
    """Train ``model`` on ``train`` = (x, y), evaluating each split in ``evals`` = {name: (x, y)}.

    Honest selection: ``best.pth`` is the epoch with the highest ``select`` accuracy (or the
    last epoch when ``select`` is None); the other splits are reported at that epoch. The best
    accuracy over epochs of a split is also kept, labelled test-selected, where every epoch was
    scored, for comparison with protocols that chose epochs on the test set.

    ``model_info`` (arch, cfg, model_args, num_classes, class_names, dataset, ...) goes into every
    checkpoint so any script can rebuild the model. ``teacher``: a trained network to distil from
    (fine-tuning a pruned model). ``subsets`` = {name: (split, row indices)}: a part of a split
    scored from that split's predictions at no extra cost (PrivateTest_dedup: PrivateTest without
    the images that also occur in Training). Returns the summary dict.
    """
    device, out, main = train[0].device, args.out, is_main_process()
    if not main:  # only the first process logs and writes files
        log = lambda *a, **k: None  # noqa: E731
    os.makedirs(out, exist_ok=True)
    lock = claim_run_folder(out) if main else None  # noqa: F841 (one writer per folder, held until return)
    last_path, best_path = os.path.join(out, "last.pth"), os.path.join(out, "best.pth")

    # optimiser, lr schedule (per step), sparsity, precision, random streams, wrappers
    steps = math.ceil(len(train[0]) / args.bs)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.wd,
                                nesterov=bool(args.nesterov))
    plateau = {"scale": 1.0, "best": -1.0, "bad": 0}  # used by --schedule plateau only
    factor = lr_factor(args, steps, plateau)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    # what this run resolves once (precision; the sparsity strength) joins its record, a new namespace:
    # config.json, every checkpoint and a resume carry it, and the caller's args stay as parsed
    precision = resolve_precision(args.amp, args.channels_last, device, getattr(args, "precision_why", None))
    log(describe_precision(precision))
    args = argparse.Namespace(**{**vars(args), **precision})
    l1_scales = ()
    if args.sr:
        try:
            l1_scales, sparsity = prune.setup_sparsity(model, args, factor, args.epochs * steps, log)
        except TypeError as e:  # an architecture that declares no slimming units
            raise DataError(f"--sr: {e}") from None
        args = argparse.Namespace(**{**vars(args), **sparsity})
    dtype, eval_bs = amp_dtype(args, device), eval_batch_size(args.eval_bs, device)
    scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
    gens = make_generators(args.seed, device)
    model, run_model, ema, eval_model = wrap_for_training(model, args, device)
    if teacher is not None and args.channels_last:
        # a teacher left in the default format has its weights reordered for the channels_last
        # batch at every step: bench/bench_finetune.py measured that as most of the teacher's cost
        teacher = teacher.to(memory_format=torch.channels_last)
    state = {"model": model, "ema": ema, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler,
             "gens": gens, "model_info": model_info, "args": args, "plateau": plateau}

    start, best = 0, {"epoch": 0, "select": select, "score": -1.0, "at_best": {}, "test_selected": {}}
    if args.resume and os.path.exists(last_path):
        start, best = restore(last_path, state, device, log)
    elif args.resume:
        log(f"--resume: no {last_path} yet, starting from scratch")
    if start >= args.epochs:  # a finished run's record stays as it was
        log(f"already trained for {start} epochs (--epochs {args.epochs}); nothing to do")
    elif main:
        metrics_csv = MetricsCSV(os.path.join(out, "metrics.csv"), resume_epoch=start if args.resume else None)
        write_json({"args": vars(args), "model": model_info, "device": describe_device(device),
                    "processes": rank_world()[1], "torch": torch.__version__}, os.path.join(out, "config.json"))

    for epoch in range(start + 1, args.epochs + 1):
        t0 = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        # --sr-cost macs: a channel's pull follows what it costs at this epoch's live widths
        l1_weights = prune.sparsity_weights(model, args.sr_cost) if args.sr else None
        try:
            tr = train_one_epoch(run_model, *train, optimizer, scheduler, args, gens, scaler, dtype,
                                 desc=f"epoch {epoch}/{args.epochs}", l1_scales=l1_scales, teacher=teacher,
                                 l1_weights=l1_weights,
                                 after_step=None if ema is None else lambda: ema.update_parameters(model))
        except TrainingDiverged as e:
            raise TrainingDiverged(f"{e} at epoch {epoch} (lr {lr:.3g}); stopped. The last good checkpoint "
                                   f"is kept: {last_path if epoch > 1 else '(none yet)'}. Try a lower --lr.") from None
        train_s = time.perf_counter() - t0
        row = {"epoch": epoch, "lr": lr, "train_loss": tr["loss"], "train_acc": tr["acc"]}
        t1 = time.perf_counter()
        # --select-last K: only the last K epochs may become best.pth, so only they are scored with
        # the full test-time augmentation (every one of them); earlier evaluations are a centre-crop
        # curve of the selection split, a tenth of the cost
        window = args.select_last
        selectable = not window or not select or epoch > args.epochs - window
        due = epoch % args.eval_every == 0 or epoch == args.epochs or (window and selectable)
        improved, preds = score_epoch(eval_model, evals, select, best, row, epoch, args, eval_bs, dtype, due,
                                      selectable, subsets)
        if args.schedule == "plateau":  # the full score where there is one, else the centre-crop curve
            sel = row.get(f"{select}_acc", "") if select else ""
            sel = sel if sel != "" else row.get(f"{select}_center_acc", "")
            plateau_update(plateau, sel if sel != "" else None, args)
            for group in optimizer.param_groups:  # the next epoch starts at the new lr, not one step later
                group["lr"] = group["initial_lr"] * plateau["scale"]
        row.update(train_s=train_s, data_s=tr["data_s"], compute_s=tr["compute_s"],
                   eval_s=time.perf_counter() - t1 if due else 0.0, images_per_s=len(train[0]) / max(train_s, 1e-9),
                   peak_mem_gib=torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0)
        rngs = gather_objects(rng_state(gens))  # every process's streams, for an exact resume
        if main:
            metrics_csv.append(row)
            ck = checkpoint_dict(state, epoch, best, preds, rngs)
            # without a selection split (CK+ folds) best.pth is the last epoch: write it once, at the end
            if improved and (select or epoch == args.epochs):
                save_checkpoint(ck, best_path)
            save_checkpoint(ck, last_path)
        accs = "  ".join(f"{k} {row[f'{k}_acc']:.2f}" for k in evals if row[f"{k}_acc"] != "")
        log(f"epoch {epoch:3d}  lr {lr:.4g}  loss {tr['loss']:.4f}  train {tr['acc']:.2f}  {accs}  "
            f"({train_s:.1f}s train, {row['eval_s']:.1f}s eval){'  *' if improved and select else ''}")  # * = new best.pth

    summary = {"dataset": model_info.get("dataset"), "arch": model_info["arch"], "epochs": args.epochs,
               "selected_by": select or "last epoch", "best_epoch": best["epoch"], "honest": best["at_best"],
               # a test split's maximum over epochs is known only if it was scored at every evaluation
               "test_selected_max": {k: v for k, v in best["test_selected"].items()
                                     if k == select or not select or args.test_curves},
               "synthetic": model_info.get("synthetic", False)}
    if model_info.get("split_roles"):
        summary["split_roles"] = model_info["split_roles"]
    if main and (start < args.epochs or not os.path.exists(os.path.join(out, "summary.json"))):
        write_json(summary, os.path.join(out, "summary.json"))
    return summary


def wrap_for_training(model, args, device):
    """(model, run_model, ema, eval_model): DDP/SyncBN under torchrun, torch.compile, weight EMA.

    With --ema the averaged copy is what gets evaluated, selected and saved as "net" (so pruning,
    fine-tuning, export and predict all see it); the raw weights travel as "train_net" for resume.
    """
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    run_model = model
    if rank_world()[1] > 1:
        # BatchNorm statistics are synchronised across processes on GPUs; on CPU (gloo) each
        # process normalises with its own share of the batch
        if device.type == "cuda":
            run_model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        run_model = nn.parallel.DistributedDataParallel(run_model,
                                                        device_ids=[device] if device.type == "cuda" else None)
    if args.compile:
        run_model = torch.compile(run_model)
    ema, eval_model = None, run_model
    if args.ema:
        ema = torch.optim.swa_utils.AveragedModel(
            model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(args.ema), use_buffers=True)
        eval_model = torch.compile(ema.module) if args.compile else ema.module
    return model, run_model, ema, eval_model


def score_epoch(eval_model, evals, select, best, row, epoch, args, eval_bs, dtype, due=True, selectable=True,
                subsets=None):
    """Score this epoch's splits into ``row`` and update ``best``; returns (improved, predictions).

    The selection split first; the others only at an epoch that becomes best.pth (their honest
    figure) unless --test-curves asks for every epoch. Splits not scored get empty cells. An
    epoch outside the --select-last window only gets a centre-crop score of the selection split
    (column <split>_center_acc), which chooses nothing. A subset of a split (``subsets``) is
    scored whenever its split is, from the same predictions.
    """
    preds, subsets = {}, subsets or {}
    for name in evals:
        row[f"{name}_loss"] = row[f"{name}_acc"] = ""
    for name in subsets:
        row[f"{name}_acc"] = ""
    if args.select_last and select:
        row[f"{select}_center_acc"] = ""
    if not due:
        return False, preds
    if not selectable:
        ev = evaluate(eval_model, *evals[select], eval_bs, "center", dtype, args.channels_last)
        row[f"{select}_center_acc"] = ev["acc"]
        return False, preds

    def score(name):
        ev = evaluate(eval_model, *evals[name], eval_bs, args.tta, dtype, args.channels_last)
        row[f"{name}_loss"], row[f"{name}_acc"], preds[name] = ev["loss"], ev["acc"], ev["pred"]
        scored = {name: ev["acc"]}
        for sub, (split, idx) in subsets.items():
            if split == name:
                y = evals[name][1].cpu()[idx]
                row[f"{sub}_acc"] = scored[sub] = 100.0 * (ev["pred"][idx] == y).float().mean().item()
        for k, acc in scored.items():
            prev = best["test_selected"].get(k)
            if prev is None or acc > prev[0]:
                best["test_selected"][k] = [acc, epoch]

    if select:
        score(select)
    value = row[f"{select}_acc"] if select else float(epoch)
    improved = value > best["score"]
    for name in evals:
        if name != select and (improved or args.test_curves):
            score(name)
    if improved:
        best.update(epoch=epoch, score=value, at_best={k: row[f"{k}_acc"] for k in (*evals, *subsets)
                                                      if row[f"{k}_acc"] != ""})
    return improved, preds


def checkpoint_dict(state, epoch, best, preds, rngs):
    """Everything that rebuilds the model (model_info) and resumes the run, as plain tensors/values."""
    model, ema, scaler = state["model"], state["ema"], state["scaler"]
    extra = {} if ema is None else {"train_net": clean_state_dict(model.state_dict()),
                                    "ema_updates": int(ema.n_averaged)}
    net = model if ema is None else ema.module
    return {"format": CHECKPOINT_FORMAT, **state["model_info"], "net": clean_state_dict(net.state_dict()), **extra,
            "epoch": epoch, "optimizer": state["optimizer"].state_dict(), "scheduler": state["scheduler"].state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None, "rng": rngs[0],
            "rng_per_rank": rngs if len(rngs) > 1 else None,
            "metrics": best, "args": vars(state["args"]), "predictions": preds, "plateau": dict(state["plateau"])}


def restore(last_path, state, device, log):
    """Load last.pth into the run's pieces; returns (epoch, best metrics)."""
    ck = load_checkpoint(last_path, map_location=device)
    info, ema = state["model_info"], state["ema"]
    if (ck["arch"], ck.get("cfg"), ck.get("model_args", {})) != (info["arch"], info.get("cfg"),
                                                                 info.get("model_args", {})):
        raise DataError(f"{last_path} holds {ck['arch']} cfg {ck.get('cfg')} {ck.get('model_args', {})}, "
                        "not the model asked for")
    if (ema is None) != ("train_net" not in ck):
        raise DataError(f"{last_path} was saved {'without' if ema is not None else 'with'} --ema; "
                        "resume it with the same setting")
    state["model"].load_state_dict(ck.get("train_net", ck["net"]))
    if ema is not None:
        ema.module.load_state_dict(ck["net"])
        ema.n_averaged.fill_(ck["ema_updates"])
    state["optimizer"].load_state_dict(ck["optimizer"])
    state["scheduler"].load_state_dict(ck["scheduler"])
    if ck.get("plateau"):
        state["plateau"].update(ck["plateau"])
    if state["scaler"] is not None and ck.get("scaler"):
        state["scaler"].load_state_dict(ck["scaler"])
    per_rank = ck.get("rng_per_rank")
    if per_rank is not None and len(per_rank) != rank_world()[1]:
        log(f"note: {last_path} was saved by {len(per_rank)} processes, now {rank_world()[1]}: the random "
            "streams restart from their seeds")
    else:  # each process gets its own augmentation and dropout streams back
        set_rng_state(per_rank[rank_world()[0]] if per_rank else ck["rng"], state["gens"])
    log(f"resumed from {last_path} at epoch {ck['epoch']}")
    return ck["epoch"], ck["metrics"]


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
    for k, role in (summary.get("split_roles") or {}).items():
        if k in summary["honest"]:
            lines.append(f"  {k} here = {role}: not comparable with FER2013's own {k}")
    return "\n".join(lines)
