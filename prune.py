"""Network slimming (Liu et al., ICCV 2017): global BatchNorm-scale threshold -> compact network.

Sparsity training (``add_bn_l1_subgradient``, --sr) pushes unimportant channels' BN scales
towards zero, on the prunable BatchNorm layers only; here one threshold over all prunable |gamma|
removes ``percent`` of the channels, and the kept slices of every conv / BN / classifier are copied into a genuinely smaller model
rebuilt from its new cfg. ``masked_model`` zeroes the same channels in the original instead:
in eval mode both compute the same function, which is the correctness check.

Prunable channels: every conv of a VGG; the inner channels (conv1/bn1) of each ResNet basic
block, so residual widths stay consistent.
"""
import copy
import io
import math

import torch
import torch.nn as nn

import models
from models.resnet import ResNet
from models.vgg import VGG


def prunable_bns(model):
    """The BatchNorm layers whose channels may be removed, in network order."""
    if isinstance(model, VGG):
        return [m for m in model.features if isinstance(m, nn.BatchNorm2d)]
    if isinstance(model, ResNet):
        return [block.bn1 for block in model.layers]
    raise TypeError(f"cannot prune {type(model).__name__}")


def add_bn_l1_subgradient(scales, s):
    """Network slimming's L1 term: add s * sign(gamma) to the grad of each BN scale in ``scales``.

    ``scales`` are the weights of ``prunable_bns(model)``: a scale that pruning can never remove
    (a ResNet stem, a block's second BN, a shortcut) gains nothing from being pulled to zero.
    """
    for w in scales:
        if w.grad is not None:
            w.grad.add_(torch.sign(w.detach()), alpha=s)


def setup_sparsity(model, args, factor, total_steps, log=print):
    """Resolve --s for this run (args.s becomes a number once, so config.json and a resumed run
    use the same s; args.sparsity records the pull), log it, and return the scales to pull."""
    args.s_rule = getattr(args, "s_rule", None) or ("auto" if args.s == "auto" else "given")
    plan = sparsity_plan(args.s, args.s_zero_at if args.s == "auto" else None, args.lr, factor, total_steps,
                         args.wd, args.momentum)
    args.s, args.sparsity = plan["s"], plan
    scales = [bn.weight for bn in prunable_bns(model)]
    rule = f"auto, zero at {args.s_zero_at:g} of the run" if args.s_rule == "auto" else "given"
    log(f"sparsity: s = {plan['s']:.3g} ({rule}); L1 pull s*sum(lr) = {plan['l1_pull']:.3g} "
        f"({plan['l1_pull_with_momentum']:.3g} with momentum), weight decay alone leaves x{plan['wd_shrink']:.3f}; "
        f"an undefended scale ends at {plan['unaided_scale_at_end']:.3f}; L1 on {len(scales)} prunable BatchNorm layers")
    return scales


def lr_sum(lr, factor, total_steps, upto=1.0):
    """Sum of the learning rate over the first ``upto`` fraction of the run's optimizer steps."""
    return lr * sum(factor(t) for t in range(int(round(upto * total_steps))))


def unaided_scale(s, lr_total, wd, momentum, gamma0=1.0):
    """Where a BN scale with no gradient from the loss ends after SGD has moved ``lr_total``.

    With momentum m a constant pull acts 1/(1-m) times over, so with K = lr_total / (1-m)
    d(gamma) = -(wd * gamma + s) dK, i.e. gamma = (gamma0 + s/wd) e^(-wd K) - s/wd, floored at 0
    (the sign term stops at zero). This predicted the measured prune threshold of the
    10-epoch s=1e-3 calibration run exactly (0.247, ../shared/CALIBRATION.md).
    """
    k = lr_total / (1 - momentum)
    if wd == 0:
        return max(0.0, gamma0 - s * k)
    decay = math.exp(-wd * k)
    return max(0.0, (gamma0 + s / wd) * decay - s / wd)


def auto_sparsity(lr_until_zero, wd, momentum, gamma0=1.0):
    """The s for which an unaided scale reaches exactly zero after SGD has moved ``lr_until_zero``."""
    k = lr_until_zero / (1 - momentum)
    if wd == 0:
        return gamma0 / k
    decay = math.exp(-wd * k)
    return wd * gamma0 * decay / (1 - decay)


def sparsity_plan(s, zero_at, lr, factor, total_steps, wd, momentum):
    """Resolve ``--s`` (a number or 'auto') for a schedule; returns the numbers config.json records.

    l1_pull = s * sum(lr) is the distance the L1 term alone moves a scale with plain SGD
    (x 1/(1-momentum) with momentum); wd_shrink is the factor weight decay alone leaves.
    'auto' picks s so that a scale the loss does not defend reaches zero ``zero_at`` of the way
    through the schedule, which makes the strength mean the same on any schedule.
    """
    total = lr_sum(lr, factor, total_steps)
    if s == "auto":
        s = auto_sparsity(lr_sum(lr, factor, total_steps, zero_at), wd, momentum)
    s = float(s)
    return {"s": s, "rule": f"auto, zero at {zero_at:g} of the run" if zero_at is not None else "given",
            "lr_sum": total, "l1_pull": s * total, "l1_pull_with_momentum": s * total / (1 - momentum),
            "wd_shrink": math.exp(-wd * total / (1 - momentum)),
            "unaided_scale_at_end": unaided_scale(s, total, wd, momentum)}


def channel_masks(model, percent, min_channels=8):
    """Bool keep-mask per prunable BN: one global |gamma| threshold prunes ``percent`` of channels.

    A layer keeps at least ``min(min_channels, its width)`` channels (its largest |gamma|), so a
    high ratio never empties a layer. Returns (masks, threshold).
    """
    if not 0 <= percent < 1:
        raise ValueError(f"--percent {percent}: must be in [0, 1)")
    bns = prunable_bns(model)
    gammas = torch.cat([bn.weight.detach().abs().flatten().cpu() for bn in bns])
    k = int(len(gammas) * percent)  # channels to remove
    threshold = torch.sort(gammas).values[k].item() if k > 0 else 0.0
    masks = []
    for bn in bns:
        g = bn.weight.detach().abs().cpu()
        keep = g >= threshold if k > 0 else torch.ones_like(g, dtype=torch.bool)
        floor = min(min_channels, len(g))
        if keep.sum() < floor:
            keep = torch.zeros_like(keep)
            keep[torch.topk(g, floor).indices] = True
        masks.append(keep)
    return masks, threshold


def masked_model(model, masks):
    """A copy of ``model`` with the pruned channels' BN scale and shift set to zero."""
    m = copy.deepcopy(model)
    with torch.no_grad():
        for bn, keep in zip(prunable_bns(m), masks):
            drop = ~keep.to(bn.weight.device)
            bn.weight[drop] = 0
            bn.bias[drop] = 0
    return m


def _copy_bn(dst, src, keep):
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(dst, name).data.copy_(getattr(src, name).data[keep])
    dst.num_batches_tracked.data.copy_(src.num_batches_tracked.data)


def compact_model(model, masks):
    """A new, smaller network holding only the kept channels (same outputs as ``masked_model``)."""
    model = model.cpu()
    masks = [k.cpu() for k in masks]
    num_classes = model.classifier.out_features
    if isinstance(model, VGG):
        cfg, i = [], 0
        for v in model.cfg:
            cfg.append(v if v == "M" else int(masks[i].sum()))
            i += v != "M"
        first = next(m for m in model.features if isinstance(m, nn.Conv2d))
        new = VGG(cfg=cfg, num_classes=num_classes, in_channels=first.in_channels)
        old_convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
        new_convs = [m for m in new.features if isinstance(m, nn.Conv2d)]
        old_bns, new_bns = prunable_bns(model), prunable_bns(new)
        prev = torch.ones(first.in_channels, dtype=torch.bool)
        for oc, nc, ob, nb, keep in zip(old_convs, new_convs, old_bns, new_bns, masks):
            nc.weight.data.copy_(oc.weight.data[keep][:, prev])
            _copy_bn(nb, ob, keep)
            prev = keep
        new.classifier.weight.data.copy_(model.classifier.weight.data[:, prev])
        new.classifier.bias.data.copy_(model.classifier.bias.data)
        return new
    # ResNet: only each block's inner width changes; everything else is copied whole
    cfg = [int(k.sum()) for k in masks]
    name = "Resnet18" if len(cfg) == 8 else "Resnet34"
    new = ResNet(name, cfg=cfg, num_classes=num_classes, in_channels=model.conv1.in_channels, planes=model.planes)
    state = new.state_dict()
    for key, value in model.state_dict().items():
        state[key] = value.clone()
    for b, (ob, keep) in enumerate(zip(model.layers, masks)):
        p = f"layers.{b}."
        state[p + "conv1.weight"] = ob.conv1.weight.data[keep].clone()
        for n in ("weight", "bias", "running_mean", "running_var"):
            state[p + f"bn1.{n}"] = getattr(ob.bn1, n).data[keep].clone()
        state[p + "conv2.weight"] = ob.conv2.weight.data[:, keep].clone()
    new.load_state_dict(state)
    return new


# ----------------------------------------------------------------------------------------
# Size and cost

def producing_convs(model):
    """The convolution that writes each prunable BN's channels, in the order of prunable_bns."""
    if isinstance(model, VGG):
        convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
        assert len(convs) == len(prunable_bns(model))
        return convs
    return [block.conv1 for block in model.layers]


def count_macs(model, size=44, in_channels=1, per_module=False):
    """Multiply-accumulates of one forward pass on a (1, C, size, size) input (convs + linear).

    FLOPs in the 2-ops-per-MAC convention are twice this. ``per_module=True`` returns
    {module: MACs} instead of the total.
    """
    macs = {}

    def hook(m, inp, out):
        if isinstance(m, nn.Conv2d):
            macs[m] = out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, nn.Linear):
            macs[m] = m.in_features * m.out_features
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, in_channels, size, size, device=next(model.parameters()).device))
    model.train(was)
    for h in handles:
        h.remove()
    return macs if per_module else int(sum(macs.values()))


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def weights_mb(model):
    """Size of the saved state_dict (weights and BN statistics only), in MB."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.tell() / 2**20


def layer_table(model, masks, compact=None):
    """Per prunable layer: name, kept, total, median |gamma| before pruning, and the MACs of the
    convolution producing it before (and, given the compact model, after) pruning. The MACs show
    where the arithmetic is: a threshold that spares the early, high-resolution layers removes
    weights faster than multiply-adds."""
    stem = "conv{}" if isinstance(model, VGG) else "block{}.inner"
    macs = count_macs(model, per_module=True)
    before = [macs[c] for c in producing_convs(model)]
    after = [None] * len(masks)
    if compact is not None:
        macs_c = count_macs(compact, per_module=True)
        after = [macs_c[c] for c in producing_convs(compact)]
    rows = []
    for i, (bn, keep) in enumerate(zip(prunable_bns(model), masks)):
        rows.append({"layer": stem.format(i + 1), "kept": int(keep.sum()), "total": len(keep),
                     "median_abs_gamma": float(bn.weight.detach().abs().median()),
                     "macs": before[i], "macs_pruned": after[i]})
    return rows


def max_output_difference(a, b, device="cpu", n=8, seed=0):
    """Largest |a(x) - b(x)| over random inputs, both in eval mode."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 44, 44, generator=g).to(device)
    a, b = a.to(device).eval(), b.to(device).eval()
    with torch.no_grad():
        return (a(x) - b(x)).abs().max().item()


__all__ = ["add_bn_l1_subgradient", "setup_sparsity", "sparsity_plan", "auto_sparsity", "unaided_scale", "prunable_bns",
           "channel_masks", "masked_model", "compact_model", "count_macs", "n_params",
           "weights_mb", "layer_table", "max_output_difference"]


# ----------------------------------------------------------------------------------------
# The command line shared by prune_vgg.py and prune_resnet.py

def main(argv=None, family="VGG", doc=""):
    import argparse
    import os

    import config

    import engine
    from data_io import DataError, cli_error
    from dataset import H5Dataset
    from utils import CHECKPOINT_FORMAT, load_checkpoint, pick_device, save_checkpoint, write_json

    ap = argparse.ArgumentParser(description=doc.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", "--model", dest="checkpoint", required=True, metavar="CKPT",
                    help="trained (ideally --sr) checkpoint, e.g. best.pth (--model: the original spelling)")
    ap.add_argument("--percent", type=float, default=0.5, metavar="P", help="fraction of channels to remove (default: 0.5)")
    ap.add_argument("--min-channels", type=int, default=8, metavar="N",
                    help="never keep fewer channels in a layer (default: 8)")
    ap.add_argument("--out", "--save", dest="out", metavar="DIR",
                    help="output folder (default: <checkpoint folder>_pruned; --save: the original spelling)")
    ap.add_argument("--data", metavar="FILE", help="HDF5 to evaluate on (default: the one the model trained on)")
    ap.add_argument("--device", default="auto", metavar="DEV", help="auto, cpu, cuda (default: auto)")
    config.add_eval_bs_arg(ap)
    ap.add_argument("--no-eval", action="store_true", help="skip the 10-crop evaluation of both models")
    args = ap.parse_args(argv)
    try:
        if not 0 <= args.percent < 1:
            raise DataError(f"--percent {args.percent}: must be in [0, 1)")
        if args.min_channels < 1:
            raise DataError(f"--min-channels {args.min_channels}: must be at least 1")
        ck = load_checkpoint(args.checkpoint)
        arch = ck["arch"]
        if not arch.startswith(family):
            other = "prune_resnet.py" if arch.startswith("Resnet") else "prune_vgg.py"
            raise DataError(f"{args.checkpoint} holds a {arch}, not a {family}: use {other}")
        device = pick_device(args.device)
        model = models.model_from_checkpoint(ck)
        masks, threshold = channel_masks(model, args.percent, args.min_channels)
        compact = compact_model(model, masks)
        diff = max_output_difference(masked_model(model, masks), compact, device)
        if diff > 1e-3:
            raise RuntimeError(f"compact model differs from the masked model by {diff:g}: a bug, please report")
        save = args.out or os.path.dirname(os.path.abspath(args.checkpoint)).rstrip("/") + "_pruned"
        os.makedirs(save, exist_ok=True)
        acc = {}
        if not args.no_eval:
            data = H5Dataset(args.data or ck.get("args", {}).get("data") or "data/data.h5")
            splits = [s for s in ("PublicTest", "PrivateTest") if s in data.splits]
            dtype, precision = engine.run_precision(ck, device)  # the precision the parent was scored in
            for tag, net in (("unpruned", model), ("pruned", compact)):
                net = net.to(device)
                acc[tag] = {s: engine.evaluate(net, *data.load(s, device), config.eval_batch_size(args.eval_bs, device),
                                               dtype=dtype)["acc"] for s in splits}
        before = {"params": n_params(model), "macs": count_macs(model), "weights_mb": weights_mb(model)}
        after = {"params": n_params(compact), "macs": count_macs(compact), "weights_mb": weights_mb(compact)}
        report = {
            "source": os.path.abspath(args.checkpoint), "arch": arch, "percent": args.percent, "threshold": threshold,
            "min_channels": args.min_channels, "cfg_before": model.cfg, "cfg_after": compact.cfg,
            "layers": layer_table(model, masks, compact),
            "unpruned": before, "pruned": after,
            "ratios": {k: before[k] / max(after[k], 1e-12) for k in before},
            "macs_note": "multiply-accumulates per 44x44 image (FLOPs = 2x)",
            "max_abs_diff_masked_vs_compact": diff,
            "accuracy_10crop": acc, "accuracy_precision": precision if acc else None,
            # every prunable |gamma| before pruning, per layer: plot_curves.py --prune draws them
            "abs_gamma": [bn.weight.detach().abs().cpu().tolist() for bn in prunable_bns(model)],
            "sparsity": ck.get("args", {}).get("sparsity"),
        }
        info = {k: ck[k] for k in ("num_classes", "in_channels", "class_names", "dataset", "synthetic") if k in ck}
        save_checkpoint({"format": CHECKPOINT_FORMAT, "arch": arch, "cfg": compact.cfg,
                         "model_args": compact.model_args, **info,
                         "net": compact.cpu().state_dict(), "epoch": 0, "pruned_from": os.path.abspath(args.checkpoint),
                         "percent": args.percent, "metrics": {"prune": report}, "args": {"data": args.data or
                                                                                          ck.get("args", {}).get("data")}},
                        os.path.join(save, "pruned.pth"))
        write_json(report, os.path.join(save, "prune_report.json"))
        text = format_report(report)
        with open(os.path.join(save, "prune_report.txt"), "w") as f:
            f.write(text)
        print(text)
        print(f"wrote {os.path.join(save, 'pruned.pth')}, prune_report.json, prune_report.txt")
        return report
    except DataError as e:
        cli_error(str(e))
    except ValueError as e:
        cli_error(str(e))


def format_report(r):
    lines = [f"Network slimming of {r['arch']} at {r['percent']:.2f} (global |gamma| threshold {r['threshold']:.4g}, "
             f"min {r['min_channels']} channels/layer)", "",
             f"{'layer':14s} {'kept':>6s} / total  {'median |gamma|':>14s}  {'MACs before':>11s}  {'after':>11s}"]
    total = max(r["unpruned"]["macs"], 1)
    for l in r["layers"]:
        after = f"{l['macs_pruned']:11,d}" if l.get("macs_pruned") is not None else f"{'':11s}"
        lines.append(f"{l['layer']:14s} {l['kept']:6d} / {l['total']:<5d}  {l['median_abs_gamma']:14.3f}  "
                     f"{l['macs']:11,d}  {after}  ({100 * l['macs'] / total:4.1f}% of all)")
    b, a, q = r["unpruned"], r["pruned"], r["ratios"]
    lines += ["", f"{'':14s} {'unpruned':>12s} {'pruned':>12s} {'ratio':>8s}",
              f"{'params':14s} {b['params']:12,d} {a['params']:12,d} {q['params']:7.2f}x",
              f"{'MACs/image':14s} {b['macs']:12,d} {a['macs']:12,d} {q['macs']:7.2f}x",
              f"{'weights MB':14s} {b['weights_mb']:12.2f} {a['weights_mb']:12.2f} {q['weights_mb']:7.2f}x"]
    for split in r["accuracy_10crop"].get("unpruned", {}):
        lines.append(f"{split + ' %':14s} {r['accuracy_10crop']['unpruned'][split]:12.3f} "
                     f"{r['accuracy_10crop']['pruned'][split]:12.3f}   (before fine-tuning)")
    g = torch.tensor([v for layer in r.get("abs_gamma", []) for v in layer])
    if len(g):
        lines.append(f"\n|gamma| of the {len(g)} prunable channels: median {g.median().item():.3g}; "
                     f"{(g < 1e-2).float().mean().item():.1%} below 0.01, {(g < 1e-3).float().mean().item():.1%} below 0.001")
    lines.append(f"\nmasked model vs compact model: max |output difference| {r['max_abs_diff_masked_vs_compact']:.2e}")
    lines.append("MACs = multiply-accumulates per 44x44 image (FLOPs = 2x MACs)")
    return "\n".join(lines) + "\n"
