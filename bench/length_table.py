"""Accuracy against training length: one row per run folder, and accuracy against CPU minutes.

    python bench/length_table.py RUN_DIR... [--figure docs/accuracy_vs_length_vgg19_w025.png] [--write TITLE]
        [--epoch-seconds TRAIN,CENTRE,TENCROP] [--recorded TITLE]

Each RUN_DIR is a finished mainpro_FER.py run of the same recipe shape at another --epochs (e.g.
`--recipe cpu-lean --epochs 60`). Per run: epochs, PublicTest and PrivateTest at the epoch
PublicTest chose (honest), PrivateTest without the images also in Training, the run's own
minutes (training + evaluation, summed over metrics.csv, resumes included), the device and
threads it ran on, and its minutes relative to the shortest run listed. Runs that shared the
cores with other work have inflated minutes: --epoch-seconds gives the seconds of one training
epoch, one centre-crop curve point and one 10-crop scoring measured with nothing else running,
and the minutes (table and figure) become epochs x train + (epochs - window) x centre + window x
10-crop for each run's own --select-last window.

Run folders stay on the machine that trained them; --recorded TITLE adds the rows already in that
BENCHMARKS.md section (a run folder of the same length replaces its row), so a point trained in a
later session joins the earlier ones. Recorded minutes are kept as written: give the --epoch-seconds
the section names, so the new rows are computed at the same rates.
"""
import argparse
import json
import os

from common import record, recorded_rows

from dataset import DEDUP, honest_scores
from utils import read_metrics, wall_seconds


def read(d):
    if not os.path.exists(os.path.join(d, "summary.json")):
        raise SystemExit(f"length_table: {d} has no summary.json (not a finished run)")
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    honest = honest_scores(d)
    rows = read_metrics(os.path.join(d, "metrics.csv"))
    a = cfg["args"]
    return {"dir": d, "epochs": a["epochs"], "window": a.get("select_last") or a["epochs"], "recipe": a.get("recipe"),
            "seed": a["seed"], "public": honest["PublicTest"], "private": honest["PrivateTest"], "dedup": honest.get(DEDUP),
            "minutes": wall_seconds(rows) / 60, "device": cfg.get("device", "?"),
            "best_epoch": json.load(open(os.path.join(d, "summary.json")))["best_epoch"]}


def from_record(title):
    """The rows of BENCHMARKS.md's section ``title`` that hold a measurement, in read()'s form."""
    out = []
    for row in recorded_rows(title):
        device = row.get("device", "")
        if "recorded" not in device:  # a table this tool wrote before says how its minutes were had
            device = f"recorded in BENCHMARKS.md ({device})" if device else "recorded in BENCHMARKS.md"
        try:
            dedup = row.get("PrivateTest w/o Training's duplicates", "-")
            out.append({"dir": None, "epochs": int(row["epochs"]), "public": float(row["PublicTest"]),
                        "private": float(row["PrivateTest"]), "dedup": None if dedup == "-" else float(dedup),
                        "best_epoch": int(row["selected epoch"]), "minutes": float(row["minutes"]),
                        "device": device})
        except (KeyError, ValueError):
            continue  # a row that says "not measured"
    if not out:
        raise SystemExit(f"length_table: --recorded '{title}': no measured row in that section's table")
    return out


def at_rates(runs, rates):
    """Replace each run's minutes by the ones its epochs cost at the measured ``rates`` (seconds)."""
    train, centre, tencrop = rates
    for r in runs:
        r["minutes"] = (r["epochs"] * train + (r["epochs"] - r["window"]) * centre + r["window"] * tencrop) / 60
        r["device"] = "computed from --epoch-seconds"
    return runs


def table(runs):
    runs = sorted(runs, key=lambda r: r["epochs"])
    base = runs[0]["minutes"]
    lines = ["| epochs | PublicTest | PrivateTest | PrivateTest w/o Training's duplicates | selected epoch | "
             "minutes | x the shortest | device |", "|---|---|---|---|---|---|---|---|"]
    for r in runs:
        dd = f"{r['dedup']:.3f}" if r["dedup"] is not None else "-"
        lines.append(f"| {r['epochs']} | {r['public']:.3f} | {r['private']:.3f} | {dd} | {r['best_epoch']} | "
                     f"{r['minutes']:.1f} | {r['minutes'] / base:.2f}x | {r['device']} |")
    return "\n".join(lines) + "\n"


def figure(runs, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from data_io import atomic_output
    runs = sorted(runs, key=lambda r: r["epochs"])
    fig, ax = plt.subplots(figsize=(6, 4))
    m = [r["minutes"] for r in runs]
    for key, label, style in (("public", "PublicTest (selects)", "o-"), ("private", "PrivateTest", "s-"),
                              ("dedup", "PrivateTest w/o Training's duplicates", "^--")):
        if all(r[key] is not None for r in runs):
            ax.plot(m, [r[key] for r in runs], style, label=label)
    for r in runs:
        ax.annotate(f"{r['epochs']} ep", (r["minutes"], r["private"]), textcoords="offset points", xytext=(-8, 8),
                    fontsize=8)
    # each run doubles the last one's length: a log axis spaces them evenly and shows returns per doubling
    ax.set_xscale("log", base=2)
    ax.set_xticks(m, [f"{v:.0f}" for v in m])
    ax.minorticks_off()
    ax.axhline(73.212, color="grey", ls=":", lw=1)
    ax.text(m[0], 73.0, "published PrivateTest 73.212 (full width, test-selected)", fontsize=7, va="top")
    ax.set_xlabel("CPU minutes per run (training + evaluation, 2 threads; log scale)")
    ax.set_ylabel("accuracy % (10-crop, honest)")
    ax.set_title("VGG19 width 0.25, one-cycle shape of cpu-lean, seed 0", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="*", metavar="RUN_DIR")
    ap.add_argument("--figure", metavar="PNG")
    ap.add_argument("--write", metavar="TITLE", help="record the table in BENCHMARKS.md under this title")
    ap.add_argument("--epoch-seconds", metavar="T,C,K",
                    help="seconds of a training epoch, a centre-crop point and a 10-crop scoring, measured alone")
    ap.add_argument("--recorded", metavar="TITLE",
                    help="also the rows of this BENCHMARKS.md section's table (earlier sessions' runs)")
    args = ap.parse_args()
    if not args.runs and not args.recorded:
        ap.error("give at least one RUN_DIR, or --recorded TITLE")
    runs = [read(d) for d in args.runs]
    if args.epoch_seconds:
        try:
            rates = [float(v) for v in args.epoch_seconds.split(",")]
            assert len(rates) == 3 and all(v >= 0 for v in rates)
        except (ValueError, AssertionError):
            ap.error(f"--epoch-seconds {args.epoch_seconds}: three non-negative numbers, e.g. 24.2,1.0,10")
        runs = at_rates(runs, rates)
    if args.recorded:
        given = {r["epochs"] for r in runs}
        runs += [r for r in from_record(args.recorded) if r["epochs"] not in given]
    text = table(runs)
    print(text)
    if args.figure:
        figure(runs, args.figure)
        print(f"wrote {args.figure}")
    if args.write:
        record(args.write, text, "accuracy")


if __name__ == "__main__":
    main()
