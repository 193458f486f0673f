"""Package a trained checkpoint as the repo's released weights, with reference outputs.

    python bench/release_weights.py CKPT --command "how it was made" [--out weights/fer2013_vgg19_slim.pth]

Keeps only what inference needs (arch, cfg, classes, weights, honest metrics, provenance), and
writes the logits of a fixed, generated input to weights/reference_outputs.json so that
tests/test_released_weights.py notices any code change that alters what the weights compute.
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import inference  # noqa: E402
import models  # noqa: E402
from data_io import synthetic_faces  # noqa: E402
from utils import CHECKPOINT_FORMAT, load_checkpoint, save_checkpoint, write_json  # noqa: E402

REFERENCE_SEED = 1234


def reference_input():
    """Eight fixed 48x48 uint8 faces, generated (no data set needed): (8, 1, 48, 48)."""
    x, _ = synthetic_faces(8, seed=REFERENCE_SEED)
    return torch.from_numpy(x).unsqueeze(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint", metavar="CKPT")
    ap.add_argument("--command", required=True, metavar="TEXT", help="the exact commands that produced it")
    ap.add_argument("--out", default="weights/fer2013_vgg19_slim.pth", metavar="FILE")
    args = ap.parse_args()
    ck = load_checkpoint(args.checkpoint)
    model = models.model_from_checkpoint(ck).eval()
    keep = {k: ck[k] for k in ("arch", "cfg", "num_classes", "in_channels", "class_names", "dataset", "epoch")}
    keep["model_args"] = ck.get("model_args", {})
    m = ck["metrics"]
    release = {"format": CHECKPOINT_FORMAT, **keep, "net": model.state_dict(),
               "metrics": {"selected_by": "PublicTest", "at_best": m["at_best"], "test_selected": m["test_selected"]},
               "command": args.command}
    save_checkpoint(release, args.out)
    logits = inference.predict_logits(model, reference_input())
    ref = os.path.join(os.path.dirname(args.out), "reference_outputs.json")
    write_json({"weights": os.path.basename(args.out), "input": f"data_io.synthetic_faces(8, seed={REFERENCE_SEED})",
                "tta": "tencrop", "logits": logits.tolist()}, ref)
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 2**20:.2f} MB) and {ref}")
    print(json.dumps(release["metrics"], indent=1))


if __name__ == "__main__":
    main()
