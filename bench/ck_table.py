"""One markdown table comparing CK+ 10-fold runs (k_fold_train.py summaries), e.g. both protocols.

    python bench/ck_table.py checkpoints/CK+_VGG19/subject checkpoints/CK+_VGG19/legacy [--write TITLE]

Per protocol folder: model, width, epochs, mean +- std over folds and pooled accuracy (last epoch,
honest), the mean of each fold's best test epoch (test-selected, the published statistic, for
comparison only), wall time per fold and the device. When a subject and a legacy run of the same
model, width and epochs are both given, the table ends with their difference: what the legacy
folds' subject leak is worth, measured.
"""
import json
import os
import sys

from common import folder_table_main


def load(folder):
    path = os.path.join(folder, "summary.json")
    if not os.path.exists(path):
        sys.exit(f"ck_table: {path} not found (run k_fold_train.py for that folder first)")
    with open(path) as f:
        s = json.load(f)
    if len(s["folds"]) != 10:
        sys.exit(f"ck_table: {path} summarises {len(s['folds'])} folds, not 10")
    return s


def table(summaries):
    lines = ["| protocol | model | width | epochs | mean +- std over folds | pooled (test predictions) | "
             "test-selected (comparison only) | min per fold | device |", "|---|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        lines.append(f"| {s['protocol']} | {s['arch']} | {s.get('width', 1.0):g} | {s.get('epochs', '')} | "
                     f"{s['mean']:.2f} +- {s['std']:.2f} | {s['pooled_acc']:.2f} ({s['pooled_n']}) | "
                     f"{s['test_selected_mean']:.2f} | {s['wall_s_per_fold'] / 60:.1f} | {s['device']} |")
    by = {(s["arch"], s.get("width"), s.get("epochs"), s["protocol"]): s for s in summaries}
    for (arch, width, epochs, protocol), legacy in by.items():
        subject = by.get((arch, width, epochs, "subject"))
        if protocol == "legacy" and subject:
            lines += ["", f"Legacy minus subject folds, {arch} width {width:g}, same recipe: "
                          f"{legacy['mean'] - subject['mean']:+.2f} points (mean over folds), "
                          f"{legacy['pooled_acc'] - subject['pooled_acc']:+.2f} (pooled), "
                          f"{legacy['test_selected_mean'] - subject['test_selected_mean']:+.2f} (test-selected)."]
    return "\n".join(lines) + "\n"


def main():
    folder_table_main(__doc__, lambda folders: table([load(f) for f in folders]),
                      "k_fold_train.py output folders (one per protocol)", "ckplus")


if __name__ == "__main__":
    main()
