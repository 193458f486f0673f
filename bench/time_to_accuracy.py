"""Time to accuracy: PublicTest against wall seconds, today's `--recipe cpu` in fp32 against the new default.

    python bench/time_to_accuracy.py --data data/data.h5 [--out bench/out/tta] [--write]

Trains the two settings one after the other on this machine (resumable: rerun to continue; a
finished run is read, not retrained), then reads their metrics.csv: the wall clock is the sum of
training and evaluation seconds per epoch, and PublicTest (10-crop) is what best.pth held at that
time, i.e. the best selectable score so far. The target is the lower of the two runs' final
PublicTest, so both reach it; the ratio is the fp32 run's seconds to the target over the new
default's. PrivateTest is reported at each run's selected epoch (honest; it chose nothing).
Time nothing else on the machine meanwhile: the ratio is only as good as the quiet. A setting's
folder may be a link to a run made with the same flags elsewhere (the protocol's seed-0 baseline is
the new default's run); its config.json is checked.
"""
import argparse
import json
import os

from common import DATA, ROOT, cpu_flags, machine, record

import mainpro_FER  # noqa: E402
from utils import read_metrics  # noqa: E402

SETTINGS = {  # name -> (run folder, flags); both at --width from the command line and the same seed
    "`--recipe cpu`, fp32 (before)": ("cpu_fp32", ["--recipe", "cpu", "--amp", "none", "--eval-every", "2"]),
    "`--recipe cpu-lean`, `--amp auto` (new default)": ("cpu-lean_auto", ["--recipe", "cpu-lean", "--eval-every", "2"]),
}


def folder(out, name):
    return os.path.join(out, SETTINGS[name][0])


def curve(run_dir):
    """[(wall seconds so far, best selectable PublicTest so far)] at every 10-crop evaluation."""
    points, wall, best = [], 0.0, None
    for r in read_metrics(os.path.join(run_dir, "metrics.csv")):
        wall += float(r["train_s"] or 0) + float(r["eval_s"] or 0)
        if r.get("PublicTest_acc"):
            best = max(best or 0.0, float(r["PublicTest_acc"]))
            points.append((wall, best))
    return points


def seconds_to(points, target):
    return next((t for t, acc in points if acc >= target), None)


def check_same_run(name, cfg, seed, width):
    """A folder may be one made elsewhere (a protocol's baseline, linked here): it must be this setting."""
    flags = SETTINGS[name][1]
    want = {"recipe": flags[flags.index("--recipe") + 1], "seed": seed, "width": width}
    got = {k: cfg.get(k) for k in want}
    auto = "--amp" not in flags
    if got != want or auto != str(cfg.get("precision_why", "")).startswith("auto"):
        raise SystemExit(f"error: the run folder of {name!r} was made with {got}, precision "
                         f"{cfg.get('precision_why')!r}, not {want} ({'auto' if auto else 'fp32'})")


def table(out, seed, width):
    runs = {}
    for name in SETTINGS:
        d = folder(out, name)
        with open(os.path.join(d, "summary.json")) as f:
            s = json.load(f)
        with open(os.path.join(d, "config.json")) as f:
            cfg = json.load(f)["args"]
        check_same_run(name, cfg, seed, width)
        runs[name] = (curve(d), s, cfg)
    target = min(s["honest"]["PublicTest"] for _, s, _ in runs.values())
    before = seconds_to(runs[next(iter(SETTINGS))][0], target)
    lines = [f"| setting | precision | epochs | wall min (whole run) | min to PublicTest {target:.2f} | speed-up | "
             "PublicTest (selected) | PrivateTest (at that epoch) |", "|---|---|---|---|---|---|---|---|"]
    for name, (pts, s, cfg) in runs.items():
        t = seconds_to(pts, target)
        prec = ("bf16 autocast" if cfg["amp"] == "bf16" else "fp32") + (" + channels_last" if cfg["channels_last"] else "")
        lines.append(f"| {name} | {prec} | {cfg['epochs']} | {pts[-1][0] / 60:.1f} | {t / 60:.1f} | "
                     f"**{before / t:.2f}x** | {s['honest']['PublicTest']:.3f} | {s['honest']['PrivateTest']:.3f} |")
    curves = "\n".join(f"* {name}: " + ", ".join(f"{t / 60:.1f} min {a:.2f}" for t, a in pts) for name, (pts, _, _)
                       in runs.items())
    return ("\n".join(lines) + f"\n\nMachine: {machine()}; {cpu_flags()}. Both runs: VGG19 at the same width and "
            "seed, trained one after the other with nothing else running; PublicTest = best selectable 10-crop "
            "score so far (what best.pth held), target = the lower final PublicTest of the two.\n\n"
            "Curves (wall minutes, best PublicTest so far):\n\n" + curves)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=DATA, metavar="FILE",
                    help="FER2013 h5 (default: data/data.h5)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "out", "tta"), metavar="DIR",
                    help="run folders (default: bench/out/tta)")
    ap.add_argument("--model", default="VGG19", metavar="NAME", help="(default: VGG19)")
    ap.add_argument("--width", type=float, default=0.25, metavar="W", help="(default: 0.25)")
    ap.add_argument("--seed", type=int, default=0, metavar="S", help="(default: 0)")
    ap.add_argument("--epochs", type=int, metavar="N", help="override both recipes' epochs (for a quick check)")
    ap.add_argument("--write", action="store_true", help="record the table in BENCHMARKS.md")
    args = ap.parse_args()
    for name, (_, flags) in SETTINGS.items():
        d = folder(args.out, name)
        if os.path.exists(os.path.join(d, "summary.json")):
            continue
        print(f"== {name}: {' '.join(flags)}", flush=True)
        more = ["--epochs", str(args.epochs), "--select-last", "0"] if args.epochs else []
        mainpro_FER.main(["--data", args.data, "--out", d, "--model", args.model, "--width", str(args.width),
                          "--seed", str(args.seed), "--resume", *flags, *more])
    text = table(args.out, args.seed, args.width)
    print(text)
    if args.write:
        record(f"Time to accuracy, {args.model} w{args.width:g}", text, "accuracy", where=machine())


if __name__ == "__main__":
    main()
