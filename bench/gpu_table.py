"""Summarise the run folders of bench/gpu_run.sh (or any training outputs) as one markdown table.

    python bench/gpu_table.py OUT_DIR [--write]

Per run: epochs, median seconds per training epoch, images/s, median 10-crop evaluation seconds
(both test splits), peak GPU memory, PublicTest / PrivateTest at the epoch chosen on PublicTest
(honest), and the test-selected PrivateTest maximum for comparison only.
"""
import argparse
import glob
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from utils import read_metrics  # noqa: E402


def median(rows, key):
    vals = [float(r[key]) for r in rows if r.get(key) not in (None, "", "0", "0.0")]
    return statistics.median(vals) if vals else float("nan")


def table(root):
    lines = ["| run | epochs | s/epoch | images/s | eval s | peak GiB | PublicTest | PrivateTest (honest) | "
             "PrivateTest test-selected | params | device |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for summ in sorted(glob.glob(os.path.join(root, "**", "summary.json"), recursive=True)):
        d = os.path.dirname(summ)
        if not os.path.exists(os.path.join(d, "metrics.csv")):
            continue
        with open(summ) as f:
            s = json.load(f)
        rows = read_metrics(os.path.join(d, "metrics.csv"))
        with open(os.path.join(d, "config.json")) as f:
            device = json.load(f).get("device", "?")
        ts = s.get("test_selected_max", {}).get("PrivateTest", [float("nan"), 0])
        params = ""
        rp = os.path.join(d, "prune_report.json")
        if os.path.exists(rp):
            params = f"{json.load(open(rp))['pruned']['params']:,}"
        lines.append(f"| {os.path.relpath(d, root)} | {len(rows)} | {median(rows, 'train_s'):.2f} | "
                     f"{median(rows, 'images_per_s'):,.0f} | {median(rows, 'eval_s'):.2f} | "
                     f"{max((float(r.get('peak_mem_gib') or 0) for r in rows), default=0):.1f} | "
                     f"{s['honest'].get('PublicTest', float('nan')):.3f} | {s['honest'].get('PrivateTest', float('nan')):.3f} | "
                     f"{ts[0]:.3f} (epoch {ts[1]}) | {params} | {device} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("root", metavar="OUT_DIR")
    ap.add_argument("--write", action="store_true", help="record in BENCHMARKS.md under this machine's name")
    args = ap.parse_args()
    text = table(args.root)
    print(text)
    if args.write:
        from common import machine, record
        record(f"GPU run (bench/gpu_run.sh) on {machine()}", text)


if __name__ == "__main__":
    main()
