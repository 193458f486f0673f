"""Package a trained checkpoint as the repo's released weights, with reference outputs.

    python bench/release_weights.py CKPT --command "how it was made" [--out weights/fer2013_vgg19_slim.pth]
        [--int8 --data data/data.h5]

Keeps only what inference needs (arch, cfg, classes, weights, honest metrics, provenance), and
writes the logits of a fixed, generated input to weights/reference_outputs.json so that
tests/test_released_weights.py notices any code change that alters what the weights compute.
With --int8 it also writes <out>.int8.onnx (export_onnx's static int8 model, calibrated on 200
Training faces of --data) and its ONNX Runtime logits of the same input.
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
    ap.add_argument("--int8", action="store_true", help="also ship the int8 ONNX model (needs --data)")
    ap.add_argument("--data", metavar="H5", help="FER2013 HDF5 whose Training faces calibrate --int8")
    args = ap.parse_args()
    if args.int8 and not args.data:
        raise SystemExit("error: --int8 needs --data (the Training faces it is calibrated on)")
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
    record = {"weights": os.path.basename(args.out), "input": f"data_io.synthetic_faces(8, seed={REFERENCE_SEED})",
              "tta": "tencrop", "logits": logits.tolist()}
    if args.int8:
        import tempfile

        import onnxruntime as ort

        import export_onnx
        from dataset import H5Dataset
        from predict import OrtModule
        out8 = export_onnx.int8_path(args.out[:-4] + ".onnx" if args.out.endswith(".pth") else args.out)
        with tempfile.TemporaryDirectory() as tmp:
            f32 = os.path.join(tmp, "fp32.onnx")
            export_onnx.export(release, f32)
            export_onnx.write_int8(f32, out8, export_onnx.calibration_faces(H5Dataset(args.data), 200))
        sess = ort.InferenceSession(out8, providers=["CPUExecutionProvider"])
        record["int8_onnx"] = {"file": os.path.basename(out8), "calibration": "200 Training faces, seed 0",
                               "logits": inference.predict_logits(OrtModule(sess), reference_input()).tolist()}
        print(f"wrote {out8} ({os.path.getsize(out8) / 2**20:.2f} MB)")
    write_json(record, ref)
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 2**20:.2f} MB) and {ref}")
    print(json.dumps(release["metrics"], indent=1))


if __name__ == "__main__":
    main()
