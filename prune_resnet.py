"""Prune a trained ResNet18 by network slimming (each basic block's inner channels).

    python prune_resnet.py --percent 0.5 --model checkpoints/FER2013_Resnet18/best.pth

Same flags and outputs as prune_vgg.py; the residual widths are kept so every shortcut still
adds tensors of the same shape. Fine-tune the result with fer_vgg_prune.py.
"""
import prune_cli


def main(argv=None):
    return prune_cli.main(argv, family="Resnet", doc=__doc__)


if __name__ == "__main__":
    main()
