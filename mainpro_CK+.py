"""Train one CK+ fold (10-fold cross-validation), 10-crop test, no test-set selection.

    python mainpro_CK+.py --model VGG19 --bs 128 --lr 0.01 --fold 1
    python mainpro_CK+.py --model Resnet18 --fold 3 --protocol legacy

The fold's accuracy is its last epoch's (see ckplus.py for the protocols). Outputs go to
checkpoints/CK+_<MODEL>/<PROTOCOL>/fold<K>/; k_fold_train.py runs all folds and summarises.
"""
import argparse

import ckplus
import config
import engine
from data_io import DataError, cli_error


def build_parser(doc=__doc__):
    ap = argparse.ArgumentParser(description=doc.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    config.add_model_args(ap)
    ap.add_argument("--protocol", default="subject", choices=ckplus.PROTOCOLS,
                    help="subject: folds split by person; legacy: the original repo's folds (default: subject)")
    ap.add_argument("--fold-seed", type=int, default=0, metavar="S", help="seed of the subject folds (default: 0)")
    config.add_train_args(ap, ckplus.RECIPES, "published",
                          out_default="checkpoints/CK+_<MODEL>/<PROTOCOL>, one fold<K> folder per fold")
    ap.set_defaults(data="data/CK_data.h5")
    return ap


def main(argv=None):
    ap = build_parser()
    ap.add_argument("--fold", type=int, default=1, metavar="K", help="fold to train, 1-10 (default: 1)")
    args = config.parse_args(ap, argv)
    config.canonical_model(args)
    try:
        fold = ckplus.parse_folds(args.fold)[0]
        data = ckplus.load_data(args.data)
        record = ckplus.folds_record(data, args.protocol, args.fold_seed)
        summary = ckplus.train_fold(data, record, fold, args)
        print(engine.format_summary(summary))
    except (DataError, engine.TrainingDiverged) as e:
        cli_error(str(e), code=3 if isinstance(e, engine.TrainingDiverged) else 2)


if __name__ == "__main__":
    main()
