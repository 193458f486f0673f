"""The slimming protocol, resumable: rerun the same command to continue a cut-short run.

    python protocol.py DATA OUT                         # the CPU-scale protocol (VGG19 w0.25, cpu-lean)
    python protocol.py DATA OUT --seed 1                # one folder per seed; bench/seed_table.py pairs them
    python protocol.py DATA OUT --prune macs:0.5 --sr-cost macs      # the compute-aware variant
    python protocol.py DATA OUT --dry-run               # the commands, to run by hand in this order

For each architecture, every stage skipped when already done:
  1. the parent trained WITH sparsity (--sr --s auto)               -> OUT/<ARCH>_sr[<cost>]
  2. pruned by each --prune RULE:VALUE (prune.RULES: percent = Liu et al.'s global |gamma| threshold,
     macs = the share of multiply-adds kept); redone when the parent is newer than pruned.pth
  3. each pruned net fine-tuned while distilling from the parent (fer_vgg_prune.py's `slim` recipe)
                                               -> OUT/<ARCH>_sr_pruned0.5r8, OUT/<ARCH>_sr_m0.5r8, ...
  4. the same parent WITHOUT sparsity (unless --no-baseline), the row the slimmed nets must match
                                                                               -> OUT/<ARCH>
then OUT/table.md (params, MACs, CPU latency, PublicTest / PrivateTest at the epoch PublicTest chose)
and the figures (curves, the pruning comparison with the |gamma| histogram, confusion matrices).

Every stage is one of the repo's scripts, run in this process with exactly the arguments the log
shows above it (`$ python mainpro_FER.py ...`), so the commands of `--dry-run`, typed by hand in
order, make the same runs (tests/test_protocol.py checks the PrivateTest figures are equal).
`slim_protocol.sh` is the same with environment knobs; `run.sh` picks the knobs for this machine.
"""
import argparse
import contextlib
import glob
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

import torch

import config
import engine
import fer_vgg_prune
import inference
import mainpro_FER
import models
import preprocess_fer2013
import prune
import prune_resnet
import prune_vgg
import transforms as T
from data_io import DataError, cli_error
from dataset import DEDUP, H5Dataset, honest_scores
from utils import face_latency_fn, interleaved_latency_ms, load_checkpoint, pick_device, read_metrics, wall_seconds

# the scripts a stage runs, by the name a user types
SCRIPTS = {"mainpro_FER.py": mainpro_FER.main, "prune_vgg.py": prune_vgg.main, "prune_resnet.py": prune_resnet.main,
           "fer_vgg_prune.py": fer_vgg_prune.main}


@dataclass
class Settings:
    """The protocol's knobs; the defaults are the CPU-scale protocol of README and BENCHMARKS.md."""
    archs: list = field(default_factory=lambda: ["VGG19"])
    width: float = 0.25
    recipe: str = "cpu-lean"
    epochs: int = None  # None: the recipe's
    seed: int = 0
    baseline: bool = True
    prune: list = field(default_factory=lambda: [("percent", 0.5), ("percent", 0.7)])  # (prune.RULES key, value)
    round_to: int = 8
    sr_cost: str = "uniform"
    s_zero_at: float = None  # None: the recipe's (mainpro_FER.py: 0.5; cpu-120: 0.2)
    ft_epochs: int = None  # None: fer_vgg_prune.py's `slim` recipe (10)
    ft_lr: float = None  # None: the same recipe's (0.02)
    kd: bool = True
    eval_every: int = 2
    eval_bs: str = "auto"
    extra: list = field(default_factory=list)  # more training flags, e.g. --channels-last
    plots: bool = True
    latency_rounds: int = 5


# ----------------------------------------------------------------------------------------
# Run folders and the commands that fill them

def parent_dir(out, arch, s):
    return os.path.join(out, f"{arch}_sr" + ("" if s.sr_cost == "uniform" else s.sr_cost))


def pruned_dir(out, arch, s, rule, value):
    return parent_dir(out, arch, s) + "_" + prune.RULES[rule].folder.format(value) + (
        "" if s.round_to == 1 else f"r{s.round_to}")


def fmt(v):
    return f"{v:g}" if isinstance(v, float) else str(v)


def stages(data, out, s):
    """[(kind, folder, parent folder or None, script, argv)] in the order they run; kind: parent, prune,
    finetune, baseline."""
    # flags the scripts default to alike (seed 0, --eval-bs auto) are left out, so the commands read short
    seed = ["--seed", str(s.seed)] if s.seed else []
    eval_bs = ["--eval-bs", s.eval_bs] if s.eval_bs != "auto" else []
    common = ["--data", data, "--width", fmt(s.width), "--recipe", s.recipe, *seed, "--eval-every", str(s.eval_every),
              *eval_bs, "--resume", *s.extra]
    if s.epochs:
        common += ["--epochs", str(s.epochs)]
    out_stages = []
    for arch in s.archs:
        parent = parent_dir(out, arch, s)
        out_stages.append(("parent", parent, None, "mainpro_FER.py",
                           ["--model", arch, *common, "--sr",  # --s auto is the default
                            *(["--s-zero-at", fmt(s.s_zero_at)] if s.s_zero_at is not None else []),
                            *(["--sr-cost", s.sr_cost] if s.sr_cost != "uniform" else []), "--out", parent]))
        script = "prune_vgg.py" if arch.startswith("VGG") else "prune_resnet.py"
        for rule, value in s.prune:
            d = pruned_dir(out, arch, s, rule, value)
            out_stages.append(("prune", d, parent, script,
                               [prune.RULES[rule].flag, fmt(value), "--round-to", str(s.round_to), "--checkpoint",
                                os.path.join(parent, "best.pth"), "--out", d, "--data", data, *eval_bs]))
            ft = ["--checkpoint", os.path.join(d, "pruned.pth"), "--data", data, *seed, "--eval-every",
                  str(s.eval_every), *eval_bs, "--resume"]
            ft += ["--epochs", str(s.ft_epochs)] if s.ft_epochs else []
            ft += ["--lr", fmt(s.ft_lr)] if s.ft_lr else []
            ft += ["--teacher", os.path.join(parent, "best.pth")] if s.kd else []
            out_stages.append(("finetune", d, parent, "fer_vgg_prune.py", ft + list(s.extra)))
        if s.baseline:
            out_stages.append(("baseline", os.path.join(out, arch), None, "mainpro_FER.py",
                               ["--model", arch, *common, "--out", os.path.join(out, arch)]))
    return out_stages


def command_line(script, argv):
    return "python " + " ".join(shlex.quote(a) for a in [script, *argv])


# ----------------------------------------------------------------------------------------
# Running it

class Tee:
    """Writes to the console and to progress.log, so the log holds every stage's own output."""

    def __init__(self, stream, log):
        self.stream, self.log = stream, log

    def write(self, text):
        self.stream.write(text)
        self.log.write(text)
        return len(text)

    def flush(self):
        self.stream.flush()
        self.log.flush()

    def isatty(self):
        return False


def prepare_data(src, out, python=sys.executable):
    """The HDF5 the runs read: ``src`` itself if it is one, else OUT/data.h5 made from the CSV, its .gz /
    .tar.gz / .zip, or the packed fer2013.med.xz (unpacked with fer2013_pack.py found beside it or in
    ../tools, or at $PACK_TOOL)."""
    if src.endswith(".h5"):
        return src
    data = os.path.join(out, "data.h5")
    if os.path.exists(data):
        return data
    os.makedirs(out, exist_ok=True)
    csv = src
    if src.endswith(".med.xz"):
        tool = os.environ.get("PACK_TOOL") or os.path.join(os.path.dirname(src), "fer2013_pack.py")
        if not os.path.exists(tool):
            tool = os.path.join(os.path.dirname(src), "..", "tools", "fer2013_pack.py")
        csv = os.path.join(out, "fer2013.csv")
        print(f"== unpack {src}", flush=True)
        subprocess.run([python, tool, "unpack", src, csv], check=True)
    print(f"== preprocess {csv}", flush=True)
    preprocess_fer2013.main(["--csv", csv, "--out", data])
    if csv != src:
        os.remove(csv)
    return data


def run(src, out, s, dry_run=False):
    if dry_run:
        data = src if src.endswith(".h5") else os.path.join(out, "data.h5")
        for *_, script, argv in stages(data, out, s):
            print(command_line(script, argv))
        return
    os.makedirs(out, exist_ok=True)
    data = prepare_data(src, out)
    with open(os.path.join(out, "progress.log"), "a") as logf, \
            contextlib.redirect_stdout(Tee(sys.stdout, logf)), contextlib.redirect_stderr(Tee(sys.stderr, logf)):
        for kind, d, parent, script, argv in stages(data, out, s):
            if kind == "prune":
                pruned = os.path.join(d, "pruned.pth")
                if os.path.exists(pruned) and os.path.getmtime(pruned) >= os.path.getmtime(
                        os.path.join(parent, "best.pth")):
                    continue
                # a new parent makes the old pruned net and its fine-tuning stale
                for f in ("pruned.pth", "best.pth", "last.pth", "metrics.csv", "summary.json"):
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(os.path.join(d, f))
            print(f"== {time.strftime('%H:%M:%S')} {kind}: {os.path.basename(d)}\n$ {command_line(script, argv)}",
                  flush=True)
            SCRIPTS[script](argv)
        # the table (with its latency measurement) and the figures are redone only when a run changed
        if stale(out, os.path.join(out, "table.md")):
            text = table(out, s.latency_rounds)
            with open(os.path.join(out, "table.md.tmp"), "w") as f:
                f.write(text + "\n")
            os.replace(os.path.join(out, "table.md.tmp"), os.path.join(out, "table.md"))
        print(open(os.path.join(out, "table.md")).read())
        if s.plots and stale(out, os.path.join(out, ".figures_done")):
            figures(data, out, s)
            open(os.path.join(out, ".figures_done"), "w").close()
        print(f"== {time.strftime('%H:%M:%S')} done: {os.path.join(out, 'table.md')}", flush=True)


def stale(out, path):
    """Whether ``path`` is missing or older than some run's best.pth."""
    if not os.path.exists(path):
        return True
    t = os.path.getmtime(path)
    return any(os.path.getmtime(b) > t for b in glob.glob(os.path.join(out, "**", "best.pth"), recursive=True))


def figures(data, out, s):
    # imported here: matplotlib and scikit-learn double the start-up time of a protocol that draws nothing
    import plot_confusion_matrix
    import plot_curves
    print("== figures: training curves, pruning comparison with the |gamma| histogram, confusion matrices")
    for arch in s.archs:
        parent = parent_dir(out, arch, s)
        pruned = [pruned_dir(out, arch, s, r, v) for r, v in s.prune]
        if not os.path.exists(os.path.join(parent, "best.pth")):
            continue
        plot_curves.main([parent, *pruned])
        if pruned:
            plot_curves.main(["--prune", *pruned])
        for d in [parent, *pruned[:1]]:
            plot_confusion_matrix.main(["--checkpoint", os.path.join(d, "best.pth"), "--split", "PrivateTest",
                                        "--data", data, "--eval-bs", s.eval_bs])


# ----------------------------------------------------------------------------------------
# The table of a protocol folder

def finished_runs(root):
    """Folders below ``root`` with summary.json, metrics.csv and best.pth."""
    for summ in sorted(glob.glob(os.path.join(root, "**", "summary.json"), recursive=True)):
        d = os.path.dirname(summ)
        if os.path.exists(os.path.join(d, "metrics.csv")) and os.path.exists(os.path.join(d, "best.pth")):
            yield d


def describe(d):
    with open(os.path.join(d, "summary.json")) as f:
        s = json.load(f)
    honest = honest_scores(d)
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    rows = read_metrics(os.path.join(d, "metrics.csv"))
    ck = load_checkpoint(os.path.join(d, "best.pth"))
    net = models.model_from_checkpoint(ck).eval()
    args = cfg["args"]
    parent, how = None, "with sparsity" if args.get("sr") else "no sparsity"
    rp = os.path.join(d, "prune_report.json")
    if os.path.exists(rp):
        with open(rp) as f:
            report = json.load(f)
        rule = (f"pruned to {report['achieved_macs_fraction']:.2f} of the MACs" if report.get("target_macs")
                else f"pruned {report['percent']:.1f}")
        parent, how = os.path.dirname(report["source"]), f"{rule} + fine-tune"
    if parent and args.get("teacher"):
        how += " (distilled)"
    dtype, prec, nhwc = inference.run_precision(ck, "cpu")
    return {"dir": d, "net": net, "how": how, "dtype": dtype, "nhwc": nhwc,
            "precision": prec + (" + channels_last" if nhwc else ""), "parent": parent, "arch": ck["arch"],
            "width": args.get("width"),
            "params": prune.n_params(net), "macs": prune.count_macs(net), "mb": prune.weights_mb(net),
            "public": honest.get("PublicTest"), "private": honest.get("PrivateTest"), "dedup": honest.get(DEDUP),
            "epochs": len(rows), "s_epoch": statistics.median(float(r["train_s"]) for r in rows),
            "wall_min": wall_seconds(rows) / 60, "device": cfg.get("device", "?"),
            "ts": s.get("test_selected_max", {}).get("PrivateTest")}


def table(root, rounds=5):
    """Markdown: one row per finished run below ``root``; latency of 1 face x 10 crops on this machine's CPU,
    every model timed in turn, round after round, in the precision and memory format its run used."""
    entries = [describe(d) for d in finished_runs(root)]
    if not entries:
        raise DataError(f"no finished runs (summary.json + best.pth) under {root}")
    ms = interleaved_latency_ms({e["dir"]: face_latency_fn(e["net"], e["dtype"], e["nhwc"]) for e in entries},
                                rounds=rounds)
    by_dir = {os.path.realpath(e["dir"]): e for e in entries}
    lines = ["| run | model | params | MACs / crop | weights MB | precision | CPU ms, 1 face x 10 crops | PublicTest | "
             "PrivateTest | PrivateTest w/o duplicates | epochs | s / train epoch | wall min | device |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in entries:
        p = by_dir.get(os.path.realpath(e["parent"])) if e["parent"] else None
        width = e["width"] or (p or {}).get("width")  # a fine-tuned run has its parent's width

        def ratio(key, val, p=p):
            return f" ({p[key] / val:.1f}x fewer)" if p else ""
        lat = ms[e["dir"]]
        lat_ratio = f" ({ms[p['dir']] / lat:.2f}x faster)" if p else ""
        acc = lambda v: f"{v:.3f}" if v is not None else "-"  # noqa: E731
        lines.append(
            f"| {os.path.relpath(e['dir'], root)} | {e['arch']} w{width or '?'}, {e['how']} | "
            f"{e['params']:,}{ratio('params', e['params'])} | {e['macs'] / 1e6:.1f}M{ratio('macs', e['macs'])} | "
            f"{e['mb']:.2f} | {e['precision']} | {lat:.2f}{lat_ratio} | {acc(e['public'])} | {acc(e['private'])} | "
            f"{acc(e['dedup'])} | {e['epochs']} | {e['s_epoch']:.0f} | {e['wall_min']:.0f} | {e['device']} |")
    note = (f"\nAccuracies: 10-crop, %, at the epoch with the best PublicTest (honest; PrivateTest never chose "
            f"anything); w/o duplicates: PrivateTest without the images that also occur in Training. "
            f"Latency: median of {rounds} interleaved rounds, {torch.get_num_threads()} threads, in the "
            "precision and memory format of each run, measured when this table was made. Ratios: to the parent the "
            "model was pruned from.")
    return "\n".join(lines) + "\n" + note


# ----------------------------------------------------------------------------------------
# How long it will take here (--estimate; estimate_time.py; run.sh prints it before starting)

def measure(arch, width, n_classes, device, train_batches=6, eval_images=128):
    """(training images/s, 10-crop evaluation images/s) of a fresh parent in the auto precision."""
    precision = inference.resolve_precision("auto", False, device)
    args = argparse.Namespace(**config.CPU_FER, sr=False, **precision)
    dtype = inference.amp_dtype(args, device)
    cfg, margs = models.scaled(arch, width)
    model = models.build_model(arch, cfg=cfg, num_classes=n_classes, **margs).to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    g = torch.Generator(device=device).manual_seed(0)
    n = args.bs * train_batches
    x = torch.randint(0, 256, (n, 1, 48, 48), dtype=torch.uint8, device=device, generator=g)
    y = torch.randint(0, n_classes, (n,), device=device, generator=g)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    gens = engine.make_generators(0, device)
    engine.train_one_epoch(model, x[:2 * args.bs], y[:2 * args.bs], opt, sched, args, gens, dtype=dtype)  # warm-up
    t = time.perf_counter()
    engine.train_one_epoch(model, x, y, opt, sched, args, gens, dtype=dtype)
    train_rate = n / (time.perf_counter() - t)
    # a teacher's forward pass on a training batch (distilled fine-tuning pays it on every step)
    model.eval()
    with torch.no_grad(), torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        xb = T.to_float(x[:args.bs, :, 2:46, 2:46]).contiguous(
            memory_format=torch.channels_last if args.channels_last else torch.contiguous_format)
        model(xb)
        t = time.perf_counter()
        for _ in range(train_batches):
            model(xb)
        forward_rate = n / (time.perf_counter() - t)
    bs = config.eval_batch_size("auto", device)
    inference.evaluate(model, x[:2 * bs], y[:2 * bs], bs, "tencrop", dtype, args.channels_last)
    t = time.perf_counter()
    inference.evaluate(model, x[:eval_images], y[:eval_images], bs, "tencrop", dtype, args.channels_last)
    return train_rate, eval_images / (time.perf_counter() - t), args, forward_rate


def stage_seconds(epochs, n_train, n_public, n_private, eval_every, select_last, rates):
    """One training run: epochs of training, 10-crop PublicTest where selection can happen (and
    PrivateTest at about half of those, when PublicTest improves), centre-crop scores before."""
    train_rate, eval_rate = rates
    if select_last:
        full, centre = select_last, len([e for e in range(1, epochs - select_last + 1) if e % eval_every == 0])
    else:
        full, centre = len([e for e in range(1, epochs + 1) if e % eval_every == 0 or e == epochs]), 0
    return (epochs * n_train / train_rate + full * (n_public + 0.5 * n_private) / eval_rate
            + centre * n_public / (10 * eval_rate))


def estimate(data_path, s, device="auto"):
    """Minutes the stages would take on this machine: a few training and 10-crop batches of each parent
    timed in the precision ``--amp auto`` picks here, extrapolated to the parent with sparsity, each
    pruned net's distilled fine-tuning (a step at the parent's cost plus the teacher's forward pass: a
    slimmed net's odd channel counts run on slower kernels, so it is not much cheaper) and the baseline."""
    data = H5Dataset(data_path, kind="FER")
    sizes = {k: len(data.load(k, "cpu")[1]) for k in ("Training", "PublicTest", "PrivateTest") if k in data.splits}
    recipe = mainpro_FER.RECIPES[s.recipe]
    epochs = s.epochs or recipe["epochs"]
    ft_epochs = s.ft_epochs or fer_vgg_prune.RECIPES["slim"]["epochs"]
    select_last = min(recipe.get("select_last", 0), epochs)
    device = pick_device(device)
    n_public, n_private = sizes.get("PublicTest", 0), sizes.get("PrivateTest", 0)
    total, parts = 0.0, []
    for arch in s.archs:
        train_rate, eval_rate, run_args, forward_rate = measure(models.canonical_name(arch), s.width,
                                                                data.num_classes, device)
        one = stage_seconds(epochs, sizes["Training"], n_public, n_private, s.eval_every, select_last,
                            (train_rate, eval_rate))
        ft = stage_seconds(ft_epochs, sizes["Training"], n_public, n_private, s.eval_every, 0,
                           (1 / (1 / train_rate + 1 / forward_rate), eval_rate))
        secs = one * (1 + s.baseline) + len(s.prune) * ft
        total += secs
        parts.append(f"{arch}: {train_rate:.0f} training images/s, {10 * eval_rate:.0f} crops/s in "
                     f"{inference.describe_precision(vars(run_args)).split(': ', 1)[1]}; {1 + s.baseline} x {epochs} "
                     f"epochs + {len(s.prune)} x {ft_epochs} fine-tuning epochs = about {secs / 60:.0f} min")
    return (f"estimate for {engine.describe_device(device)}: about {total / 60:.0f} minutes in all\n  "
            + "\n  ".join(parts) + "\n  (measured just now on a few batches; the real run's time is in each "
                                  "run's metrics.csv and in table.md)")


# ----------------------------------------------------------------------------------------
# Command line

def rule_arg(text):
    if text == "default":  # the default rules, beside others (slim_protocol.sh: MACS_TARGETS without PERCENTS)
        return text
    name, _, value = text.partition(":")
    if name not in prune.RULES or not value:
        raise argparse.ArgumentTypeError(f"{text!r}: RULE:VALUE with RULE one of {', '.join(prune.RULES)}")
    try:
        return name, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: {value!r} is not a number") from None


def build_parser():
    d = Settings()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", metavar="DATA", help="FER2013: an HDF5 from preprocess_fer2013.py, the CSV (.csv, .csv.gz, "
                    ".tar.gz, .zip) or the packed fer2013.med.xz")
    ap.add_argument("out", metavar="OUT", help="the protocol's folder (one run folder per stage, table.md)")
    ap.add_argument("--archs", nargs="+", default=d.archs, metavar="ARCH", help="(default: VGG19)")
    ap.add_argument("--width", type=float, default=d.width, metavar="W", help=f"(default: {d.width})")
    ap.add_argument("--recipe", default=d.recipe, choices=sorted(mainpro_FER.RECIPES), help=f"(default: {d.recipe})")
    ap.add_argument("--epochs", type=int, metavar="N", help="parent epochs (default: the recipe's)")
    ap.add_argument("--seed", type=int, default=d.seed, metavar="S", help=f"(default: {d.seed})")
    ap.add_argument("--no-baseline", dest="baseline", action="store_false", help="skip the parent without sparsity")
    ap.add_argument("--prune", nargs="*", type=rule_arg, default=d.prune, metavar="RULE:VALUE",
                    help=f"pruning rules (prune.RULES: {', '.join(prune.RULES)}), each one run folder; 'default' "
                         "stands for the default ones (default: percent:0.5 percent:0.7; none: no pruning)")
    ap.add_argument("--round-to", type=int, default=d.round_to, metavar="N",
                    help=f"channels kept in multiples of N (default: {d.round_to}; the recorded threshold rows used 1)")
    ap.add_argument("--sr-cost", default=d.sr_cost, choices=("uniform", "macs"), help=f"(default: {d.sr_cost})")
    ap.add_argument("--s-zero-at", type=float, metavar="F", help="(default: the recipe's: 0.5; cpu-120: 0.2)")
    ap.add_argument("--ft-epochs", type=int, metavar="N", help="fine-tuning epochs (default: fer_vgg_prune.py's, 10)")
    ap.add_argument("--ft-lr", type=float, metavar="LR", help="fine-tuning lr (default: fer_vgg_prune.py's, 0.02)")
    ap.add_argument("--no-kd", dest="kd", action="store_false", help="fine-tune without distilling from the parent")
    ap.add_argument("--eval-every", type=int, default=d.eval_every, metavar="K", help=f"(default: {d.eval_every})")
    ap.add_argument("--eval-bs", default=d.eval_bs, metavar="N", help=f"(default: {d.eval_bs})")
    ap.add_argument("--extra", default="", metavar="FLAGS", help="more training flags, one string: --extra='--amp none'")
    ap.add_argument("--no-plots", dest="plots", action="store_false", help="no figures")
    ap.add_argument("--latency-rounds", type=int, default=d.latency_rounds, metavar="N",
                    help=f"interleaved latency rounds of table.md (default: {d.latency_rounds})")
    ap.add_argument("--dry-run", action="store_true", help="print the stages' commands and run nothing")
    ap.add_argument("--estimate", action="store_true", help="print how long the stages take on this machine "
                    "(measured on a few batches, about 15 s) and run nothing")
    ap.add_argument("--data-only", action="store_true", help="only make OUT/data.h5 from DATA")
    return ap


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.prune = [r for p in args.prune for r in (Settings().prune if p == "default" else [p])]
    s = Settings(**{k: v for k, v in vars(args).items() if k in Settings.__dataclass_fields__ and k != "extra"},
                 extra=shlex.split(args.extra))
    try:
        if args.data_only:
            print(prepare_data(args.src, args.out))
            return
        if args.estimate:
            print(estimate(args.src, s))
            return
        run(args.src, args.out, s, dry_run=args.dry_run)
    except DataError as e:
        cli_error(str(e))


if __name__ == "__main__":
    main()
