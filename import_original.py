"""Import a checkpoint of the original Facial-Expression-Recognition.Pytorch code into this repo's format.

    python import_original.py PrivateTest_model.t7 --arch VGG19 --out checkpoints/original_vgg19.pth
    python import_original.py CK+_VGG19/1/Test_model.t7 --arch VGG19 --dataset CK+ --out ck_fold1.pth

The original files are ``torch.save`` dicts whose 'net' is the state_dict of its VGG (convs with
biases, 3 input channels, Linear(512, 7)) or ResNet18 (3 input channels, Linear(512, 7) named
'linear', a fixed 4x4 average pool at the end), keys with or without DataParallel's 'module.'.
Their input is the grey face repeated into 3 channels, scaled to [0, 1], no normalisation.

What changes, exactly (the imported model's logits equal the original's, tested to 1e-4):
  * 3 identical input channels -> 1: conv1's weights are summed over its input channels;
  * a conv bias before BatchNorm folds into the BatchNorm's running mean (eval-mode identical);
  * the input scaling travels with the model (``input_affine``: this repo normalises (x/255-0.5)/0.25,
    the model first maps that back to x/255), because folding it into conv1 would be wrong at the
    zero-padded borders; every consumer (predict, prune, fine-tune, export_onnx, plot) applies it;
  * ResNet18's 4x4 average pool is kept as it was (``pool_window=4``).
The result works with predict.py, plot_confusion_matrix.py, the prune scripts, fer_vgg_prune.py
and export_onnx.py. A 'net' saved as a pickled module is refused (re-save its state_dict).
"""
import argparse
import os

import torch

import models
import transforms as T
from data_io import FER_CLASSES, DataError, cli_error
from preprocess_ckplus import CK_CLASSES
from utils import CHECKPOINT_FORMAT, clean_state_dict, save_checkpoint

CLASSES = {"FER2013": FER_CLASSES, "CK+": CK_CLASSES}
# this repo feeds (x/255 - MEAN) / STD; the original network wants x/255
INPUT_AFFINE = [T.STD, T.MEAN]


def read_original(path):
    """The original checkpoint's state_dict (prefix-free) and its other entries."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: not found")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any unpickling failure means the same thing here
        why = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise DataError(f"{path}: cannot be read as plain tensors ({why}); "
                        "if its 'net' is a pickled model (the original code saved one when run without CUDA), "
                        "re-save it in the original code with torch.save({'net': net.state_dict()}, 'model_sd.t7') "
                        "and import that") from None
    if not isinstance(ck, dict) or not isinstance(ck.get("net"), dict):
        raise DataError(f"{path}: no 'net' state_dict in it (an original checkpoint is a dict with 'net')")
    return clean_state_dict(ck["net"]), {k: v for k, v in ck.items() if k != "net"}


def to_one_channel(w):
    """A conv over 3 identical grey channels is the same conv, weights summed, over one."""
    return w.sum(1, keepdim=True) if w.shape[1] == 3 else w


def vgg_state(sd, model):
    """Original VGG keys are this repo's keys (features.i, classifier); fold biases and channels."""
    out, first = {}, True
    for i, m in enumerate(model.features):
        if not isinstance(m, torch.nn.Conv2d):
            continue
        w = sd[f"features.{i}.weight"]
        out[f"features.{i}.weight"] = to_one_channel(w) if first else w
        first = False
        bias = sd.get(f"features.{i}.bias", torch.zeros(w.shape[0]))
        for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            out[f"features.{i + 1}.{k}"] = sd[f"features.{i + 1}.{k}"]
        # BN(conv(x) + b) uses (conv(x) + b - mean): the same as a bias-free conv with mean - b
        out[f"features.{i + 1}.running_mean"] = sd[f"features.{i + 1}.running_mean"] - bias
    out["classifier.weight"], out["classifier.bias"] = sd["classifier.weight"], sd["classifier.bias"]
    return out


def resnet_state(sd, model):
    """layer<S>.<j>.* -> layers.<k>.*, linear -> classifier, conv1 over one channel."""
    out, k = {}, 0
    per_stage = models.resnet.BLOCKS_PER_STAGE[model.name]
    index = {}
    for s, n in enumerate(per_stage, start=1):
        for j in range(n):
            index[f"layer{s}.{j}."] = f"layers.{k}."
            k += 1
    for key, v in sd.items():
        if key.startswith("linear."):
            key = "classifier." + key[len("linear."):]
        else:
            for old, new in index.items():
                if key.startswith(old):
                    key = new + key[len(old):]
                    break
        out[key] = to_one_channel(v) if key == "conv1.weight" else v
    return out


def convert(path, arch, dataset="FER2013"):
    """Our checkpoint dict (format, arch, cfg, model_args, net, ...) from an original file."""
    sd, extra = read_original(path)
    arch = models.canonical_name(arch)
    head = "classifier.weight" if arch.startswith("VGG") else "linear.weight"
    if head not in sd:
        raise DataError(f"{path}: no '{head}' in its 'net': not the original code's {arch}")
    n_classes = sd[head].shape[0]
    names = CLASSES[dataset]
    if n_classes != len(names):
        raise DataError(f"{path}: {n_classes} outputs, but {dataset} has {len(names)} classes")
    try:
        if arch.startswith("VGG"):
            model = models.build_model(arch, num_classes=n_classes, input_affine=INPUT_AFFINE)
            state = vgg_state(sd, model)
        else:
            model = models.build_model(arch, num_classes=n_classes, input_affine=INPUT_AFFINE, pool_window=4)
            state = resnet_state(sd, model)
        model.load_state_dict(state)
    except (RuntimeError, KeyError) as e:
        raise DataError(f"{path}: does not fit the original {arch} ({str(e).splitlines()[0][:160]})") from None
    except Exception as e:  # a shape that cannot even be compared
        raise DataError(f"{path}: does not fit the original {arch} ({type(e).__name__})") from None
    accuracy = {k: float(v) if torch.is_tensor(v) or isinstance(v, (int, float)) else v for k, v in extra.items()
                if k in ("best_PublicTest_acc", "best_PrivateTest_acc", "best_PrivateTest_acc_epoch",
                         "best_PublicTest_acc_epoch", "acc", "epoch", "best_Test_acc", "best_Test_acc_epoch")}
    return {"format": CHECKPOINT_FORMAT, "arch": arch, "cfg": model.cfg, "model_args": model.model_args,
            "num_classes": n_classes, "in_channels": 1, "class_names": names, "dataset": dataset,
            "synthetic": False, "net": clean_state_dict(model.state_dict()), "epoch": int(accuracy.get(
                "best_PrivateTest_acc_epoch", accuracy.get("epoch", 0)) or 0),
            "imported_from": os.path.abspath(path), "original_metrics": accuracy,
            "metrics": {}, "args": {"amp": "none", "channels_last": False}}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", metavar="IN", help="the original .t7 file (a torch.save dict with 'net')")
    ap.add_argument("--arch", required=True, metavar="NAME", help="VGG11/13/16/19 or Resnet18")
    ap.add_argument("--dataset", default="FER2013", choices=sorted(CLASSES),
                    help="what it was trained on, for the class names (default: FER2013)")
    ap.add_argument("--out", required=True, metavar="OUT.pth", help="this repo's checkpoint to write")
    args = ap.parse_args(argv)
    try:
        try:
            models.canonical_name(args.arch)
        except ValueError as e:
            raise DataError(f"--arch: {e}") from None
        ck = convert(args.checkpoint, args.arch, args.dataset)
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        save_checkpoint(ck, args.out)
        acc = ", ".join(f"{k} {v:g}" for k, v in ck["original_metrics"].items() if isinstance(v, float))
        print(f"wrote {args.out}: {ck['arch']} ({args.dataset}, {sum(v.numel() for v in ck['net'].values()):,} "
              f"tensor values){'; the original recorded ' + acc if acc else ''}")
    except DataError as e:
        cli_error(str(e))


if __name__ == "__main__":
    main()
