"""How long will the slimming protocol take on this machine? Measured here, not guessed.

    python estimate_time.py [--data data/data.h5] [--archs VGG19] [--width 0.25] [--recipe cpu-lean]

The same as `python protocol.py DATA OUT --estimate` (protocol.estimate): times a few training and
10-crop batches of each parent in the precision ``--amp auto`` picks here and extrapolates the
protocol's stages; flags not given take the protocol's defaults. About 15 seconds.
"""
import argparse

import protocol
from data_io import DataError, cli_error
from dataset import DEFAULT_FER


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=DEFAULT_FER, metavar="FILE", help=f"FER2013 h5 (default: {DEFAULT_FER})")
    ap.add_argument("--archs", metavar="A B", help="space-separated (default: the protocol's)")
    ap.add_argument("--width", type=float, metavar="W", help="(default: the protocol's)")
    ap.add_argument("--recipe", choices=sorted(protocol.mainpro_FER.RECIPES), help="(default: the protocol's)")
    ap.add_argument("--epochs", type=int, metavar="N", help="(default: the recipe's)")
    ap.add_argument("--eval-every", type=int, metavar="K", help="(default: the protocol's)")
    ap.add_argument("--percents", metavar="P Q", help="threshold-pruned nets fine-tuned (default: the protocol's rules)")
    ap.add_argument("--ft-epochs", type=int, metavar="N", help="(default: fer_vgg_prune.py's)")
    ap.add_argument("--baseline", type=int, choices=(0, 1), help="1: also the no-sparsity parent (default: 1)")
    ap.add_argument("--device", default="auto", metavar="DEV", help="(default: auto)")
    args = ap.parse_args(argv)
    given = {k: v for k, v in vars(args).items() if v is not None and k not in ("data", "device", "archs", "percents")}
    if args.archs:
        given["archs"] = args.archs.split()
    if args.percents is not None:
        given["prune"] = [("percent", float(p)) for p in args.percents.split()]
    if "baseline" in given:
        given["baseline"] = bool(given["baseline"])
    try:
        print(protocol.estimate(args.data, protocol.Settings(**given), args.device))
    except (DataError, ValueError) as e:
        cli_error(str(e))


if __name__ == "__main__":
    main()
