"""Run CK+ 10-fold cross-validation in one process and summarise it.

    python k_fold_train.py                                  # VGG19, subject folds, all 10
    python k_fold_train.py --model Resnet18 --protocol legacy --folds 1,2
    python k_fold_train.py --dry-run                        # write folds.json, train nothing

Finished folds are skipped and interrupted ones resumed from their last.pth. Writes
checkpoints/CK+_<MODEL>/<PROTOCOL>/summary.json and summary.md: per-fold accuracy (last epoch),
mean +- std over folds, accuracy over all pooled test predictions, the test-selected mean (the
published statistic, comparison only) and the wall time per fold.
"""
import argparse
import csv
import importlib
import json
import os

import numpy as np

import ckplus
import config
import engine
from data_io import DataError, cli_error
from utils import read_metrics, wall_seconds, write_json

mainpro_ck = importlib.import_module("mainpro_CK+")


def fold_done(fold_dir, epochs):
    path = os.path.join(fold_dir, "summary.json")
    if not (os.path.exists(path) and os.path.exists(os.path.join(fold_dir, "predictions.csv"))):
        return False
    with open(path) as f:
        return json.load(f).get("epochs") == epochs


def summarise(root, record, arch, folds):
    """Per-fold and pooled accuracy from each fold's predictions.csv (no retraining).

    The honest figures use each fold's last epoch. ``test_selected_mean`` is the mean over folds of
    each fold's best test accuracy over epochs, which is how the published CK+ numbers were chosen;
    it is kept for comparison only.
    """
    per_fold, labels, preds = [], [], []
    for k in folds:
        d = os.path.join(root, f"fold{k}")
        with open(os.path.join(d, "predictions.csv")) as f:
            rows = list(csv.DictReader(f))
        y = np.array([int(r["label"]) for r in rows])
        p = np.array([int(r["pred"]) for r in rows])
        with open(os.path.join(d, "summary.json")) as f:
            s = json.load(f)
        per_fold.append({"fold": k, "n_test": len(y), "acc": float(100 * (y == p).mean()),
                         "test_selected_max": s["test_selected_max"]["test"],
                         "wall_s": wall_seconds(read_metrics(os.path.join(d, "metrics.csv")))})
        labels.append(y)
        preds.append(p)
    accs = np.array([f["acc"] for f in per_fold])
    pooled_y, pooled_p = np.concatenate(labels), np.concatenate(preds)
    with open(os.path.join(root, f"fold{folds[0]}", "config.json")) as f:  # every fold runs the same recipe
        run = json.load(f)
    return {"dataset": "CK+", "arch": arch, "protocol": record["protocol"], "width": run["args"].get("width", 1.0),
            "epochs": run["args"]["epochs"], "device": run.get("device", ""), "folds": per_fold,
            "mean": float(accs.mean()), "std": float(accs.std(ddof=1)) if len(accs) > 1 else 0.0,
            "pooled_acc": float(100 * (pooled_y == pooled_p).mean()), "pooled_n": int(len(pooled_y)),
            "test_selected_mean": float(np.mean([f["test_selected_max"][0] for f in per_fold])),
            "wall_s_per_fold": float(np.mean([f["wall_s"] for f in per_fold])),
            "selection": "last epoch of each fold (no test-set selection)"}


def table(s):
    lines = [f"# CK+ {s['arch']} width {s['width']:g}, {s['protocol']} folds, {s['epochs']} epochs", "",
             "| fold | test images | accuracy (last epoch) | test-selected max (comparison only) | wall min |",
             "|---|---|---|---|---|"]
    lines += [f"| {f['fold']} | {f['n_test']} | {f['acc']:.2f} | {f['test_selected_max'][0]:.2f} "
              f"(epoch {f['test_selected_max'][1]}) | {f['wall_s'] / 60:.1f} |" for f in s["folds"]]
    lines += ["", f"mean +- std over folds (last epoch, honest): **{s['mean']:.2f} +- {s['std']:.2f}**  ",
              f"pooled over all {s['pooled_n']} test predictions (last epoch, honest): **{s['pooled_acc']:.2f}**  ",
              f"mean of each fold's best test epoch (**test-selected**, how the published CK+ figures were "
              f"chosen; comparison only): {s['test_selected_mean']:.2f}  ",
              f"wall time per fold: {s['wall_s_per_fold'] / 60:.1f} min on {s['device']}"]
    return "\n".join(lines) + "\n"


def parse_gpus(text):
    """'0,1' -> ['cuda:0', 'cuda:1']; 'cpu' entries stay CPU workers (for testing without GPUs)."""
    devices = []
    for item in str(text).split(","):
        item = item.strip()
        if item.isdigit():
            devices.append(f"cuda:{item}")
        elif item == "cpu":
            devices.append("cpu")
        elif item:
            raise DataError(f"--gpus {text!r}: expected GPU indices like 0,1,2")
    if not devices:
        raise DataError(f"--gpus {text!r}: no device given")
    import torch
    for d in devices:
        if d.startswith("cuda") and int(d[5:]) >= torch.cuda.device_count():
            raise DataError(f"--gpus {text!r}: {d} does not exist ({torch.cuda.device_count()} GPUs visible)")
    return devices


def _worker(args, device, folds, data=None, record=None):
    """Trains ``folds`` one after the other on ``device`` (one such process per GPU with --gpus)."""
    args = argparse.Namespace(**{**vars(args), "device": device})
    if data is None:  # a spawned process loads its own copy
        data = ckplus.load_data(args.data)
        record = ckplus.folds_record(data, args.protocol, args.fold_seed)
    for k in folds:
        resume = os.path.exists(os.path.join(ckplus.out_root(args), f"fold{k}", "last.pth"))
        fold_args = argparse.Namespace(**{**vars(args), "resume": resume})
        tag = f"[{device} fold {k}]" if args.gpus else f"[fold {k}]"  # the device matters only with several
        ckplus.train_fold(data, record, k, fold_args, log=lambda m, tag=tag: print(f"{tag} {m}", flush=True))


def main(argv=None):
    ap = mainpro_ck.build_parser(__doc__)
    ap.add_argument("--folds", default="1,2,3,4,5,6,7,8,9,10", metavar="LIST",
                    help="comma-separated folds to run (default: all 10)")
    ap.add_argument("--dry-run", action="store_true", help="write folds.json and exit without training")
    ap.add_argument("--gpus", metavar="LIST", help="spread the folds over these GPUs, one process each, e.g. 0,1,2,3 "
                                                    "(default: all folds in this process on --device)")
    args = config.parse_args(ap, argv)
    config.canonical_model(args)
    try:
        folds = ckplus.parse_folds(args.folds)
        data = ckplus.load_data(args.data)
        record = ckplus.folds_record(data, args.protocol, args.fold_seed)
        root = ckplus.out_root(args)
        os.makedirs(root, exist_ok=True)
        write_json(record, os.path.join(root, "folds.json"))
        if args.dry_run:
            print(f"wrote {os.path.join(root, 'folds.json')} ({args.protocol}: "
                  + ", ".join(str(len(f["test"])) for f in record["folds"]) + " test images per fold)")
            return
        epochs = args.epochs or ckplus.RECIPES[args.recipe]["epochs"]
        todo = []
        for k in folds:
            if fold_done(os.path.join(root, f"fold{k}"), epochs):
                print(f"fold {k}: finished earlier, skipped")
            else:
                todo.append(k)
        if args.gpus and todo:
            import torch.multiprocessing as mp
            devices = parse_gpus(args.gpus)
            ctx = mp.get_context("spawn")
            procs = [ctx.Process(target=_worker, args=(args, d, todo[i::len(devices)]))
                     for i, d in enumerate(devices) if todo[i::len(devices)]]
            for p in procs:
                p.start()
            for p in procs:
                p.join()
            failed = [p for p in procs if p.exitcode != 0]
            if failed:
                raise DataError(f"{len(failed)} fold worker(s) failed (see their messages above); "
                                "rerun to resume the unfinished folds")
        elif todo:
            _worker(args, args.device, todo, data, record)
        summary = summarise(root, record, args.model, folds)
        write_json(summary, os.path.join(root, "summary.json"))
        text = table(summary)
        with open(os.path.join(root, "summary.md"), "w") as f:
            f.write(text)
        print(text + f"\nwritten to {root}/summary.json and summary.md")
    except (DataError, engine.TrainingDiverged) as e:
        cli_error(str(e), code=3 if isinstance(e, engine.TrainingDiverged) else 2)


if __name__ == "__main__":
    main()
