"""Train VGG/ResNet on FER2013 (data/data.h5) with 10-crop evaluation and honest selection.

    python mainpro_FER.py --model VGG19 --bs 128 --lr 0.01      # the published recipe
    python mainpro_FER.py --model Resnet18 --recipe fast        # 40% of the epochs
    python mainpro_FER.py --model VGG19 --resume                # continue from last.pth
    python mainpro_FER.py --model VGG19 --sr --s 1e-4           # sparsity training for pruning

best.pth is the epoch with the best PublicTest accuracy; PrivateTest is reported at that
epoch. Outputs go to checkpoints/<DATASET>_<MODEL>/ (best.pth, last.pth, metrics.csv,
config.json, summary.json).
"""
import argparse

import config
import engine
from data_io import DataError, cli_error
from dataset import DEFAULT_FER, H5Dataset
from utils import finish_distributed, init_distributed, is_main_process, pick_device, seed_everything

RECIPES = {"published": config.PUBLISHED_FER, "fast": config.FAST_FER, "cpu": config.CPU_FER,
           "cpu-lean": config.CPU_LEAN_FER, "cpu-120": config.CPU_120_FER, "cpu-120-erase": config.CPU_120_ERASE_FER}


def build_parser():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    config.add_model_args(ap)
    config.add_train_args(ap, RECIPES, "published")
    ap.add_argument("--tune", action="store_true",
                    help="evaluate PublicTest only, so choosing a recipe never reads PrivateTest")
    config.add_distill_args(ap)
    return ap


def main(argv=None):
    args = config.parse_args(build_parser(), argv)
    arch = config.canonical_model(args)
    try:
        data = H5Dataset(args.data or DEFAULT_FER, kind="FER")
        out = args.out or config.default_out(data.name, arch)
        args = config.resolve_args(args, RECIPES, out, data=data.path)  # on --resume the run's own file wins
        if not config.same_file(args.data, data.path):
            data = H5Dataset(args.data, kind="FER")
        arch = args.model  # a resumed run's own architecture
        init_distributed(args.device)  # torchrun --nproc_per_node=N: one process per GPU
        device = pick_device(args.device)
        seed_everything(args.seed)
        if data.synthetic and is_main_process():
            print(f"NOTE: {data.path} is SYNTHETIC data (drawn faces), not FER2013; its accuracies say "
                  "only that the pipeline learns.")
        if data.split_roles and is_main_process():
            print(f"NOTE: {data.path} is the image-folder FER2013: " + "; ".join(
                f"{k} = {v}" for k, v in data.split_roles.items()) + ". Not comparable with FER2013 figures.")
        train = data.load("Training", device)
        evals, subsets = data.eval_sets(device, tune=args.tune)
        model = config.build_model_from_args(args, data.num_classes).to(device)
        info = config.model_info(model, arch, data)
        log = print if is_main_process() else (lambda *a, **k: None)
        log(f"{data.name}: train {len(train[0])}, " + ", ".join(f"{k} {len(v[0])}" for k, v in evals.items())
              + f" | {arch} on {engine.describe_device(device)} | out {out}")
        teacher = config.load_teacher(args, data.class_names, device, log)
        summary = engine.fit(model, train, evals, args, info, select="PublicTest" if "PublicTest" in evals else None,
                             teacher=teacher,
                             subsets=subsets)
        log(engine.format_summary(summary))
        finish_distributed()
        return summary
    except (DataError, engine.TrainingDiverged) as e:
        cli_error(str(e), code=3 if isinstance(e, engine.TrainingDiverged) else 2)


if __name__ == "__main__":
    main()
