"""Run CK+ 10-fold cross-validation in one process and summarise it.

    python k_fold_train.py                                  # VGG19, subject folds, all 10
    python k_fold_train.py --model Resnet18 --protocol legacy --folds 1,2
    python k_fold_train.py --dry-run                        # write folds.json, train nothing

Finished folds are skipped and interrupted ones resumed from their last.pth. Writes
checkpoints/CK+_<MODEL>/<PROTOCOL>/summary.json and summary.md: per-fold accuracy (last epoch),
mean +- std over folds, and accuracy over all pooled test predictions.
"""
import csv
import importlib
import json
import os

import numpy as np

import ckplus
import config
import engine
from data_io import DataError, cli_error
from utils import write_json

mainpro_ck = importlib.import_module("mainpro_CK+")


def fold_done(fold_dir, epochs):
    path = os.path.join(fold_dir, "summary.json")
    if not (os.path.exists(path) and os.path.exists(os.path.join(fold_dir, "predictions.csv"))):
        return False
    with open(path) as f:
        return json.load(f).get("epochs") == epochs


def summarise(root, record, arch, folds):
    """Per-fold and pooled accuracy from each fold's predictions.csv (no retraining)."""
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
                         "test_selected_max": s["test_selected_max"]["test"]})
        labels.append(y)
        preds.append(p)
    accs = np.array([f["acc"] for f in per_fold])
    pooled_y, pooled_p = np.concatenate(labels), np.concatenate(preds)
    return {"dataset": "CK+", "arch": arch, "protocol": record["protocol"], "folds": per_fold,
            "mean": float(accs.mean()), "std": float(accs.std(ddof=1)) if len(accs) > 1 else 0.0,
            "pooled_acc": float(100 * (pooled_y == pooled_p).mean()), "pooled_n": int(len(pooled_y)),
            "selection": "last epoch of each fold (no test-set selection)"}


def table(s):
    lines = [f"# CK+ {s['arch']}, {s['protocol']} folds", "",
             "| fold | test images | accuracy (last epoch) | test-selected max (comparison only) |",
             "|---|---|---|---|"]
    lines += [f"| {f['fold']} | {f['n_test']} | {f['acc']:.2f} | {f['test_selected_max'][0]:.2f} "
              f"(epoch {f['test_selected_max'][1]}) |" for f in s["folds"]]
    lines += ["", f"mean +- std over folds: **{s['mean']:.2f} +- {s['std']:.2f}**  ",
              f"pooled over all {s['pooled_n']} test predictions: **{s['pooled_acc']:.2f}**"]
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
    args.device = device
    if data is None:  # a spawned process loads its own copy
        data = ckplus.load_data(args.data)
        record = ckplus.folds_record(data, args.protocol, args.fold_seed)
    for k in folds:
        fold_args = type(args)(**vars(args))
        fold_args.resume = os.path.exists(os.path.join(ckplus.out_root(args), f"fold{k}", "last.pth"))
        ckplus.train_fold(data, record, k, fold_args, log=lambda m, k=k: print(f"[{device} fold {k}] {m}", flush=True))


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
