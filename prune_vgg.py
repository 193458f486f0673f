"""Prune a trained VGG by network slimming into a smaller VGG (then fine-tune with fer_vgg_prune.py).

    python prune_vgg.py --percent 0.5 --model checkpoints/FER2013_VGG19/best.pth \
                        --save checkpoints/FER2013_VGG19_pruned

One global threshold over all BatchNorm |gamma| removes --percent of the channels (never below
--min-channels per layer); the kept conv/BN/classifier slices go into a VGG rebuilt from the
new cfg, checked to match the masked original. Writes pruned.pth, prune_report.json/.txt with
per-layer widths, parameters, multiply-adds, file size and the 10-crop accuracy before
fine-tuning. An already pruned checkpoint can be pruned again.
"""
import prune_cli


def main(argv=None):
    return prune_cli.main(argv, family="VGG", doc=__doc__)


if __name__ == "__main__":
    main()
