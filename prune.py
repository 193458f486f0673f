"""Network slimming (Liu et al., ICCV 2017) as a library: sparsity maths, channel choice, the
compact rebuild and cost counting. It imports nothing from training; the command line of
prune_vgg.py / prune_resnet.py is prune_cli.py.

Sparsity training (``add_bn_l1_subgradient``, --sr) pushes unimportant channels' BN scales
towards zero, on the prunable BatchNorm layers only; one threshold over all prunable |gamma|
then removes ``percent`` of the channels, and the kept slices of every producer / BN / consumer
are copied into a genuinely smaller model of the same family. ``masked_model`` zeroes the same
channels in the original instead: in eval mode both compute the same function, which is the
correctness check.

Where channels may be cut is the model's own knowledge (``model.slimming_units()`` and
``model.pruned(kept)``, see models/__init__.py): every conv of a VGG, the inner channels of each
ResNet basic block (so residual widths stay consistent), or whatever a new architecture declares.
"""
import copy
import io
import math

import torch
import torch.nn as nn

import transforms as T


def slimming_units(model):
    """The model's prunable channel groups, resolved to modules: [{label, bn, producer, consumers}]."""
    declare = getattr(model, "slimming_units", None)
    if declare is None:
        raise TypeError(f"{type(model).__name__} does not declare slimming_units(): network slimming cannot "
                        "prune it (models/__init__.py, 'Slimming protocol', says what to add)")
    mods = dict(model.named_modules())
    return [{"label": u["label"], "bn": mods[u["bn"]], "producer": mods[u["producer"]],
             "consumers": [mods[c] for c in u["consumers"]], "names": u} for u in declare()]


def prunable_bns(model):
    """The BatchNorm layers whose channels may be removed, in network order."""
    return [u["bn"] for u in slimming_units(model)]


def producing_convs(model):
    """The convolution that writes each prunable BN's channels, in the order of prunable_bns."""
    return [u["producer"] for u in slimming_units(model)]


def add_bn_l1_subgradient(scales, s, weights=None):
    """Network slimming's L1 term: add s * weight * sign(gamma) to the grad of each BN scale.

    ``scales`` are the weights of ``prunable_bns(model)``: a scale that pruning can never remove
    (a ResNet stem, a block's second BN, a shortcut) gains nothing from being pulled to zero.
    ``weights`` (one per layer, default 1): ``sparsity_weights``, the compute-aware pull.
    """
    for k, w in enumerate(scales):
        if w.grad is not None:
            w.grad.add_(torch.sign(w.detach()), alpha=s * (weights[k] if weights is not None else 1.0))


def setup_sparsity(model, args, factor, total_steps, log=print):
    """This run's --s resolved once, logged: (the scales to pull, {"s": a number, "s_rule": auto or given,
    "sparsity": the plan, "sr_cost"}). The training loop records the second in config.json and the
    checkpoints, so a resumed run pulls with the same s (its saved ``s_rule`` says how it was chosen)."""
    s_rule = getattr(args, "s_rule", None) or ("auto" if args.s == "auto" else "given")
    sr_cost = getattr(args, "sr_cost", None) or "uniform"
    plan = sparsity_plan(args.s, args.s_zero_at if args.s == "auto" else None, args.lr, factor, total_steps,
                         args.wd, args.momentum, s_max=getattr(args, "s_max", S_AUTO_MAX))
    scales = [bn.weight for bn in prunable_bns(model)]
    plan["cost"] = sr_cost
    plan["weights_at_start"] = [round(w, 4) for w in sparsity_weights(model, sr_cost)]
    rule = f"auto, zero at {args.s_zero_at:g} of the run" if s_rule == "auto" else "given"
    if plan.get("capped_from"):
        rule = (f"auto would pick {plan['capped_from']:.3g} on a schedule this short, more than the loss can "
                f"resist; capped at --s-max {plan['s']:.3g}")
    log(f"sparsity: s = {plan['s']:.3g} ({rule}); L1 pull s*sum(lr) = {plan['l1_pull']:.3g} "
        f"({plan['l1_pull_with_momentum']:.3g} with momentum), weight decay alone leaves x{plan['wd_shrink']:.3f}; "
        f"an undefended scale ends at {plan['unaided_scale_at_end']:.3f}; L1 on {len(scales)} prunable BatchNorm layers"
        + ("" if sr_cost == "uniform" else f", weighted by the multiply-adds of a channel (now "
                                             f"{', '.join(f'{w:.2f}' for w in plan['weights_at_start'])})"))
    return scales, {"s": plan["s"], "s_rule": s_rule, "sparsity": plan, "sr_cost": sr_cost}


def lr_sum(lr, factor, total_steps, upto=1.0):
    """Sum of the learning rate over the first ``upto`` fraction of the run's optimizer steps."""
    return lr * sum(factor(t) for t in range(int(round(upto * total_steps))))


def unaided_scale(s, lr_total, wd, momentum, gamma0=1.0):
    """Where a BN scale with no gradient from the loss ends after SGD has moved ``lr_total``.

    With momentum m a constant pull acts 1/(1-m) times over, so with K = lr_total / (1-m)
    d(gamma) = -(wd * gamma + s) dK, i.e. gamma = (gamma0 + s/wd) e^(-wd K) - s/wd, floored at 0
    (the sign term stops at zero). It predicts the measured prune threshold of the
    10-epoch s=1e-3 calibration run on the real data: 0.249 predicted, 0.247 measured.
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


# The strongest s that --s auto picks. The L1 term adds s to the gradient of every prunable scale
# at every step, whatever the loss says; once s outweighs the loss's own gradient on the scales
# the network cannot keep any channel and collapses. On the real FER2013 at width 0.25 (10
# epochs, the calibration runs of BENCHMARKS.md) s = 1e-3 left the parent as good as without sparsity and
# s = 5e-3 cost it 9 points; the 8-epoch synthetic demo asked for s = 0.08 and fell to chance.
S_AUTO_MAX = 2e-3


def sparsity_plan(s, zero_at, lr, factor, total_steps, wd, momentum, s_max=None):
    """Resolve ``--s`` (a number or 'auto') for a schedule; returns the numbers config.json records.

    l1_pull = s * sum(lr) is the distance the L1 term alone moves a scale with plain SGD
    (x 1/(1-momentum) with momentum); wd_shrink is the factor weight decay alone leaves.
    'auto' picks s so that a scale the loss does not defend reaches zero ``zero_at`` of the way
    through the schedule, which makes the strength mean the same on any schedule - up to ``s_max``:
    on a schedule too short for that the auto s is capped (``capped_from`` records the uncapped
    value) and the undefended scales end above zero (``unaided_scale_at_end``).
    """
    total = lr_sum(lr, factor, total_steps)
    capped_from = None
    if s == "auto":
        s = auto_sparsity(lr_sum(lr, factor, total_steps, zero_at), wd, momentum)
        if s_max is not None and s > s_max:
            s, capped_from = s_max, s
    s = float(s)
    return {"s": s, "rule": f"auto, zero at {zero_at:g} of the run" if zero_at is not None else "given",
            "capped_from": capped_from,
            "lr_sum": total, "l1_pull": s * total, "l1_pull_with_momentum": s * total / (1 - momentum),
            "wd_shrink": math.exp(-wd * total / (1 - momentum)),
            "unaided_scale_at_end": unaided_scale(s, total, wd, momentum)}


def round_up(keep, gammas, round_to):
    """Grow a keep-mask to a multiple of ``round_to`` channels (or the whole layer) by adding the
    largest dropped |gamma|: oneDNN's fast kernels want channel counts like 8, 16, 24."""
    n, width = int(keep.sum()), len(keep)
    want = min(width, -(-n // round_to) * round_to) if round_to > 1 else n
    if want > n:
        extra = torch.where(keep, torch.full_like(gammas, -1.0), gammas).topk(want - n).indices
        keep = keep.clone()
        keep[extra] = True
    return keep


def check_percent(percent):
    if not 0 <= percent < 1:
        raise ValueError(f"--percent {percent}: must be in [0, 1)")


def check_keep_fraction(keep_fraction):
    if not 0 < keep_fraction <= 1:
        raise ValueError(f"--target-macs {keep_fraction}: must be in (0, 1]")


def channel_masks(model, percent, min_channels=8, round_to=1):
    """Bool keep-mask per prunable BN: one global |gamma| threshold prunes ``percent`` of channels.

    A layer keeps at least ``min(min_channels, its width)`` channels (its largest |gamma|), so a
    high ratio never empties a layer, and a multiple of ``round_to`` (rounded up). Returns
    (masks, threshold).
    """
    check_percent(percent)
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
        masks.append(round_up(keep, g, round_to))
    return masks, threshold


# ----------------------------------------------------------------------------------------
# What a channel costs (MorphNet's FLOP regulariser, Gordon et al., CVPR 2018)

def layer_geometry(model, size=T.CROP):
    """Per conv / linear module: (C, inputs, outputs) with C = H_out * W_out * k_h * k_w / groups (1 for a
    linear), so that the module's multiply-adds are C * inputs * outputs. One forward pass of a
    (1, C_in, size, size) zero image through hooks, in eval mode, on the model's device."""
    geometry = {}

    def hook(m, inp, out):
        if isinstance(m, nn.Conv2d):
            geometry[m] = (out.shape[2] * out.shape[3] * m.kernel_size[0] * m.kernel_size[1] / m.groups,
                           m.in_channels, m.out_channels)
        else:
            geometry[m] = (1.0, m.in_features, m.out_features)
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    handles = [m.register_forward_hook(hook) for m in layers]
    was, first = model.training, layers[0]
    model.eval()
    c_in = first.in_channels if isinstance(first, nn.Conv2d) else first.in_features
    try:
        with torch.no_grad():
            model(torch.zeros(1, c_in, size, size, device=next(model.parameters()).device))
    finally:
        model.train(was)
        for h in handles:
            h.remove()
    return geometry


def cost_model(model, size=T.CROP):
    """Per module name: (C, inputs, outputs) of ``layer_geometry``; plus the slimming units by name."""
    names = {m: n for n, m in model.named_modules()}
    return {names[m]: g for m, g in layer_geometry(model, size).items()}, model.slimming_units()


def macs_with(costs, kept):
    """Multiply-adds of the model with ``kept[i]`` channels in slimming unit i."""
    geometry, units = costs
    out_n = {u["producer"]: k for u, k in zip(units, kept)}
    in_n = {c: k for u, k in zip(units, kept) for c in u["consumers"]}
    return sum(c * in_n.get(name, i) * out_n.get(name, o) for name, (c, i, o) in geometry.items())


def channel_costs(costs, kept):
    """Multiply-adds one more channel of each unit costs, at the given widths: its producer's
    C x (live inputs) plus each consumer's C x (live outputs)."""
    geometry, units = costs
    out_n = {u["producer"]: k for u, k in zip(units, kept)}
    in_n = {c: k for u, k in zip(units, kept) for c in u["consumers"]}
    per = []
    for u in units:
        c, i, _ = geometry[u["producer"]]
        cost = c * in_n.get(u["producer"], i)
        for name in u["consumers"]:
            cc, _, o = geometry[name]
            cost += cc * out_n.get(name, o)
        per.append(cost)
    return per


def macs_target_masks(model, keep_fraction, min_channels=8, round_to=1):
    """Keep-masks that leave about ``keep_fraction`` of the multiply-adds, removing channels in
    order of |gamma| per multiply-add freed (cheapest importance per unit of compute first), with
    the costs updated as layers shrink. Layers keep ``min_channels`` and a multiple of
    ``round_to`` (rounded up at the end, so the achieved fraction can sit a little above the
    target). Returns (masks, achieved fraction)."""
    check_keep_fraction(keep_fraction)
    costs = cost_model(model)
    gammas = [bn.weight.detach().abs().cpu() for bn in prunable_bns(model)]
    order = [g.argsort() for g in gammas]  # each layer's channels, weakest first
    removed = [0] * len(gammas)
    kept = [len(g) for g in gammas]
    full = macs_with(costs, kept)
    while macs_with(costs, kept) > keep_fraction * full:
        per = channel_costs(costs, kept)
        best, score = None, None
        for i, g in enumerate(gammas):
            if kept[i] <= min(min_channels, len(g)):
                continue
            s = g[order[i][removed[i]]].item() / max(per[i], 1e-12)
            if score is None or s < score:
                best, score = i, s
        if best is None:  # every layer at its floor
            break
        removed[best] += 1
        kept[best] -= 1
    masks = []
    for g, o, r in zip(gammas, order, removed):
        keep = torch.ones(len(g), dtype=torch.bool)
        keep[o[:r]] = False
        masks.append(round_up(keep, g, round_to))
    return masks, macs_with(costs, [int(k.sum()) for k in masks]) / full


def sparsity_weights(model, mode="uniform", alive=1e-2):
    """Per prunable BN layer, the factor on its L1 pull: 1 everywhere (``uniform``, Liu et al.) or
    proportional to the multiply-adds one of its channels costs (``macs``), counting a channel
    as alive where |gamma| > ``alive``. Normalised so the mean over all prunable channels is 1:
    the total pull, and so what ``--s auto`` means, stays the same."""
    bns = prunable_bns(model)
    if mode == "uniform":
        return [1.0] * len(bns)
    if mode != "macs":
        raise ValueError(f"--sr-cost {mode}: choose uniform or macs")
    costs = cost_model(model)
    live = [max(1, int((bn.weight.detach().abs() > alive).sum())) for bn in bns]
    per = channel_costs(costs, live)
    n = [bn.num_features for bn in bns]
    mean = sum(c * k for c, k in zip(per, n)) / sum(n)
    return [c / mean for c in per]


# ----------------------------------------------------------------------------------------
# The pruning rules: how the channels to keep are chosen. prune_cli.py makes one flag of each and
# protocol.py one run folder per (rule, value); a new rule is a function above and an entry here.

class Rule:
    """``select(model, value, min_channels, round_to)`` -> (masks, facts for the prune report);
    ``check(value)`` raises ValueError for a value out of range, before any model is loaded;
    ``folder`` formats the protocol's run-folder suffix of a value; ``describe(value)`` is the
    report's one-line name of the rule."""

    def __init__(self, flag, metavar, help, folder, select, check, describe):
        self.flag, self.metavar, self.help, self.folder = flag, metavar, help, folder
        self.select, self.check, self.describe = select, check, describe

    @property
    def dest(self):
        return self.flag.lstrip("-").replace("-", "_")


def _by_threshold(model, percent, min_channels, round_to):
    masks, threshold = channel_masks(model, percent, min_channels, round_to)
    return masks, {"threshold": threshold}


def _by_macs(model, keep_fraction, min_channels, round_to):
    masks, achieved = macs_target_masks(model, keep_fraction, min_channels, round_to)
    return masks, {"target_macs": keep_fraction, "achieved_macs_fraction": achieved}


RULES = {
    "percent": Rule("--percent", "P", "fraction of channels to remove with one global |gamma| threshold "
                    "(Liu et al.)", "pruned{:g}", _by_threshold, check_percent,
                    lambda v: f"global |gamma| threshold removing {v:g} of the channels"),
    "macs": Rule("--target-macs", "F", "keep about F of the multiply-adds (e.g. 0.5), removing channels in "
                 "order of |gamma| per multiply-add they free", "m{:g}", _by_macs, check_keep_fraction,
                 lambda v: f"keep {v:g} of the multiply-adds (|gamma| per MAC freed)"),
}
DEFAULT_RULE = ("percent", 0.5)


def masked_model(model, masks):
    """A copy of ``model`` with the pruned channels' BN scale and shift set to zero."""
    m = copy.deepcopy(model)
    with torch.no_grad():
        for bn, keep in zip(prunable_bns(m), masks):
            drop = ~keep.to(bn.weight.device)
            bn.weight[drop] = 0
            bn.bias[drop] = 0
    return m


def compact_model(model, masks):
    """A new, smaller network holding only the kept channels (same outputs as ``masked_model``).

    The model builds its own smaller twin (``model.pruned``); every tensor is then copied with
    the rows of a unit's producer and BN, and the input columns of its consumers, cut to the mask.
    """
    model = model.cpu()
    masks = [k.cpu().bool() for k in masks]
    units = model.slimming_units()
    new = model.pruned([int(k.sum()) for k in masks])
    rows, cols = {}, {}  # module name -> kept output channels / kept input channels
    for u, keep in zip(units, masks, strict=True):
        rows[u["producer"]] = rows[u["bn"]] = keep
        for c in u["consumers"]:
            cols[c] = keep
    state = {}
    for name, module in model.named_modules():
        tensors = list(module.named_parameters(recurse=False)) + list(module.named_buffers(recurse=False))
        for key, t in tensors:
            if name in rows and t.dim() >= 1:  # conv weight/bias, BN scale/shift/statistics: dim 0
                t = t[rows[name]]
            if name in cols and key == "weight":  # conv (O, I, kh, kw) or linear (O, I): dim 1
                t = t[:, cols[name]]
            state[f"{name}.{key}" if name else key] = t.detach().clone()
    new.load_state_dict(state)
    return new


# ----------------------------------------------------------------------------------------
# Size and cost

def count_macs(model, size=T.CROP, per_module=False):
    """Multiply-accumulates of one forward pass on a (1, C, size, size) input (convs + linear).

    FLOPs in the 2-ops-per-MAC convention are twice this. ``per_module=True`` returns
    {module: MACs} instead of the total.
    """
    macs = {m: int(round(c * i * o)) for m, (c, i, o) in layer_geometry(model, size).items()}
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
    units = slimming_units(model)
    macs = count_macs(model, per_module=True)
    before = [macs[c] for c in producing_convs(model)]
    after = [None] * len(masks)
    if compact is not None:
        macs_c = count_macs(compact, per_module=True)
        after = [macs_c[c] for c in producing_convs(compact)]
    rows = []
    for i, (u, keep) in enumerate(zip(units, masks)):
        rows.append({"layer": u["label"], "kept": int(keep.sum()), "total": len(keep),
                     "median_abs_gamma": float(u["bn"].weight.detach().abs().median()),
                     "macs": before[i], "macs_pruned": after[i]})
    return rows


def max_output_difference(a, b, n=8, seed=0):
    """Largest |a(x) - b(x)| over random inputs, both in eval mode, in float64 on the CPU.

    float64 makes the check independent of the device: on a GPU, fp32 convolutions run in TF32
    by default and a correct full-width VGG19 read 1.3e-3 apart (H200), which failed the 1e-3
    bound that a real bug exceeds by orders of magnitude. In float64 the two differ only by
    summation order (~1e-12). Copies are converted; the models given are left as they were.
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, T.CROP, T.CROP, generator=g, dtype=torch.float64)
    a, b = (copy.deepcopy(m).cpu().double().eval() for m in (a, b))
    with torch.no_grad():
        return (a(x) - b(x)).abs().max().item()


__all__ = ["add_bn_l1_subgradient", "setup_sparsity", "sparsity_plan", "auto_sparsity", "unaided_scale", "prunable_bns",
           "producing_convs", "slimming_units", "channel_masks", "macs_target_masks", "round_up", "sparsity_weights",
           "cost_model", "channel_costs", "macs_with", "masked_model", "compact_model", "count_macs",
           "n_params", "weights_mb", "layer_table", "max_output_difference"]
