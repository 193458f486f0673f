"""Mean +- std over seeds of a protocol's runs, one protocol.py folder per seed.

    python bench/seed_table.py runs/cpu_protocol runs/cpu_protocol_seed1 runs/cpu_protocol_seed2 [--write TITLE]

The folders come from the same protocol run with different seeds, e.g.
`python protocol.py data/data.h5 runs/seed1 --seed 1`.
For each run found in every folder (VGG19, VGG19_sr, VGG19_sr_pruned0.5, ...): PublicTest and
PrivateTest at the epoch PublicTest selected (honest), mean +- std (n-1) over the seeds, and each
seed's PrivateTest; for every run beside its architecture's no-sparsity baseline, the difference
to the baseline of the same seed (paired): mean +- std, the 95% t-interval of the mean (n-1
degrees of freedom) and each seed's difference. An interval that holds 0 means the seeds cannot
tell the run from its baseline.
"""
import json
import os
import statistics
import sys

from common import folder_table_main
from dataset import DEDUP, honest_scores


def read_runs(folder):
    """{run name: (seed, PublicTest, PrivateTest, PrivateTest_dedup or None)} of the finished runs
    directly under ``folder``."""
    if not os.path.isdir(folder):
        sys.exit(f"seed_table: {folder} is not a folder")
    out = {}
    for name in sorted(os.listdir(folder)):
        d = os.path.join(folder, name)
        if not os.path.exists(os.path.join(d, "summary.json")):
            continue  # not a run, or not finished yet
        honest = honest_scores(d)
        with open(os.path.join(d, "config.json")) as f:
            seed = json.load(f)["args"]["seed"]
        out[name] = (seed, honest["PublicTest"], honest["PrivateTest"], honest.get(DEDUP))
    if not out:
        sys.exit(f"seed_table: no finished run (summary.json) in {folder}")
    seeds = {v[0] for v in out.values()}
    if len(seeds) != 1:
        sys.exit(f"seed_table: {folder} mixes seeds {sorted(seeds)}; one folder per seed")
    return seeds.pop(), out


def mean_std(values):
    if any(v is None for v in values):
        return "-"
    return f"{statistics.mean(values):.2f} +- {statistics.stdev(values):.2f}"


def paired(values):
    """Paired differences: mean +- std, the 95% t-interval of the mean, and each seed's value."""
    from scipy.stats import t  # scipy comes with scikit-learn
    m, sd, n = statistics.mean(values), statistics.stdev(values), len(values)
    half = t.ppf(0.975, n - 1) * sd / n ** 0.5
    return (f"{m:+.2f} +- {sd:.2f} | [{m - half:+.2f}, {m + half:+.2f}] | "
            + " / ".join(f"{v:+.2f}" for v in values))


def table(folders):
    per_seed = dict(read_runs(f) for f in folders)
    if len(per_seed) != len(folders):
        sys.exit("seed_table: two folders hold the same seed; each seed must be counted once")
    if len(per_seed) < 2:
        sys.exit("seed_table: give at least two folders (seeds) for a standard deviation")
    seeds = sorted(per_seed)
    names = sorted(set.intersection(*(set(r) for r in per_seed.values())))
    missing = sorted(set.union(*(set(r) for r in per_seed.values())) - set(names))
    lines = [f"Seeds {', '.join(map(str, seeds))}; accuracies at the epoch PublicTest selected (honest), "
             "mean +- std over seeds; the duplicates column leaves out the PrivateTest images that also occur "
             "in Training (identical pixels; 288 rows of the real FER2013).", "",
             "| run | PublicTest | PrivateTest | PrivateTest without Training's duplicates | PrivateTest per seed | "
             "PrivateTest minus baseline (paired) | 95% interval of that mean | per seed |",
             "|---|---|---|---|---|---|---|---|"]
    for name in names:
        pub = [per_seed[s][name][1] for s in seeds]
        priv = [per_seed[s][name][2] for s in seeds]
        dedup = [per_seed[s][name][3] for s in seeds]
        base = name.split("_")[0]  # VGG19_sr_pruned0.5 -> VGG19, its no-sparsity baseline
        diff = "- | - | -"
        if base != name and base in names:
            diff = paired([per_seed[s][name][2] - per_seed[s][base][2] for s in seeds])
        lines.append(f"| {name} | {mean_std(pub)} | {mean_std(priv)} | {mean_std(dedup)} | "
                     f"{' / '.join(f'{p:.2f}' for p in priv)} | "
                     f"{diff} |")
    if missing:
        lines += ["", f"Not in every folder (left out): {', '.join(missing)}."]
    return "\n".join(lines) + "\n"


def main():
    folder_table_main(__doc__, table, "protocol.py / slim_protocol.sh output folders, one per seed", "slimming")


if __name__ == "__main__":
    main()
