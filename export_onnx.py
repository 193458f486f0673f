"""Export a checkpoint to ONNX (dynamic batch) and check ONNX Runtime against PyTorch.

    python export_onnx.py --checkpoint checkpoints/FER2013_VGG19/best.pth --out model.onnx
    python export_onnx.py --checkpoint weights/fer2013_vgg19_slim.pth --out slim.onnx --int8 --data data/data.h5

--int8 also writes <out>.int8.onnx: ONNX Runtime's static QDQ quantisation (int8 activations and
per-channel int8 weights), its activation ranges calibrated on --calib Training faces (10 crops
each, as predicted); with --eval-split it scores the fp32 and int8 models on that split (10-crop)
and prints both accuracies and latencies side by side. predict.py --onnx runs either file.

The graph takes normalised 44x44 crops (N, 1, 44, 44) and returns logits; predict.py --onnx does
the 10-crop averaging around it. Fails (exit 1, no file left) if ONNX Runtime's output differs
from PyTorch's by more than --tol on random input; prints both CPU latencies (1 face x 10 crops).
"""
import argparse
import json
import logging
import os
import warnings

import numpy as np
import torch

import models
import transforms as T
from data_io import DataError, atomic_output, cli_error
from utils import latency_ms, load_checkpoint


def export(ck, path, opset=17, source="checkpoint"):
    import onnx
    model = models.model_from_checkpoint(ck, source).eval()
    with atomic_output(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its own deprecation
        torch.onnx.export(model, (torch.zeros(2, ck.get("in_channels", 1), T.CROP, T.CROP),), tmp, dynamo=False,
                          input_names=["input"], output_names=["logits"], opset_version=opset,
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
        m = onnx.load(tmp)
        meta = {"class_names": json.dumps(ck["class_names"]), "arch": ck["arch"],
                "cfg": json.dumps(ck.get("cfg")), "model_args": json.dumps(ck.get("model_args", {}))}
        if "calibration" in ck:  # calibrate.py's temperature: probabilities = softmax(logits / T)
            meta["temperature"] = repr(float(ck["calibration"]["temperature"]))
        for k, v in meta.items():
            m.metadata_props.add(key=k, value=v)
        onnx.save(m, tmp)
    return model


def int8_path(out):
    return (out[:-5] if out.endswith(".onnx") else out) + ".int8.onnx"


def calibration_faces(data, n, seed=0):
    """``n`` Training faces (N, 1, 48, 48) uint8 drawn with a fixed seed: what int8 calibrates on."""
    x, _ = data.load("Training")
    return x[torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]]


def write_int8(src, out8, faces):
    """Quantise the fp32 ONNX ``src`` into ``out8``: ONNX Runtime's static QDQ (int8 activations,
    per-channel int8 weights), activation ranges from the ten crops of each calibration face."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Faces(CalibrationDataReader):  # ten crops of each face, one face per call
        def __init__(self):
            self.items = iter([T.ten_crop(T.to_float(faces[i:i + 1]), T.CROP).flatten(0, 1).numpy()
                               for i in range(len(faces))])

        def get_next(self):
            batch = next(self.items, None)
            return None if batch is None else {"input": batch}

    root = logging.getLogger()
    level = root.level
    with atomic_output(out8) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root.setLevel(logging.ERROR)  # the quantiser logs a pre-processing hint; the exported graph is already plain
        try:
            quantize_static(src, tmp, Faces(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
        finally:
            root.setLevel(level)
    return out8


def quantise(ck, args, sess):
    """Write <out>.int8.onnx calibrated on --calib Training faces; latency and (--eval-split) accuracy of both."""
    import onnxruntime as ort

    import inference
    from dataset import data_of
    data = data_of(ck, args.data)
    faces = calibration_faces(data, args.calib)
    out8 = write_int8(args.out, int8_path(args.out), faces)
    sess8 = ort.InferenceSession(out8, providers=["CPUExecutionProvider"])
    x10 = torch.randn(10, 1, T.CROP, T.CROP).numpy()
    t32 = latency_ms(lambda: sess.run(None, {"input": x10}), reps=50)
    t8 = latency_ms(lambda: sess8.run(None, {"input": x10}), reps=50)
    print(f"wrote {out8} ({os.path.getsize(out8) / 2**20:.2f} MB; calibrated on {len(faces)} Training faces)")
    print(f"ONNX Runtime latency, 1 face x 10 crops: fp32 {t32:.2f} ms, int8 {t8:.2f} ms ({t32 / t8:.2f}x)")
    if args.eval_split:
        from predict import OrtModule
        xe, ye = data.load(args.eval_split)
        for name, s in (("fp32", sess), ("int8", sess8)):
            acc = inference.evaluate(OrtModule(s), xe, ye, 16)["acc"]
            print(f"{args.eval_split} 10-crop accuracy, ONNX Runtime {name}: {acc:.3f}%")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, metavar="PTH", help="any checkpoint of this repo (pruned too)")
    ap.add_argument("--out", default="model.onnx", metavar="FILE", help="(default: model.onnx)")
    ap.add_argument("--tol", type=float, default=1e-4, metavar="T", help="max |ORT - PyTorch| allowed (default: 1e-4)")
    q = ap.add_argument_group("int8")
    q.add_argument("--int8", action="store_true", help="also write <out>.int8.onnx, statically quantised")
    q.add_argument("--data", metavar="FILE", help="HDF5 with the Training faces to calibrate on (default: the "
                                                   "checkpoint's own)")
    q.add_argument("--calib", type=int, default=200, metavar="N", help="Training faces to calibrate on (default: 200)")
    q.add_argument("--eval-split", metavar="SPLIT", help="score fp32 and int8 on this split, e.g. PrivateTest")
    args = ap.parse_args(argv)
    try:
        import onnxruntime as ort
        ck = load_checkpoint(args.checkpoint)
        model = export(ck, args.out, source=args.checkpoint)
        sess = ort.InferenceSession(args.out, providers=["CPUExecutionProvider"])
        x = torch.randn(37, 1, T.CROP, T.CROP, generator=torch.Generator().manual_seed(0))  # a batch size never exported
        with torch.no_grad():
            ref = model(x).numpy()
        got = sess.run(None, {"input": x.numpy()})[0]
        diff = float(np.abs(ref - got).max())
        if not diff <= args.tol:
            os.remove(args.out)
            cli_error(f"{args.out}: ONNX Runtime differs from PyTorch by {diff:.3g} > --tol {args.tol}; removed", code=1)
        x10 = torch.randn(10, 1, T.CROP, T.CROP)
        with torch.no_grad():
            t_torch = latency_ms(lambda: model(x10))
        t_ort = latency_ms(lambda: sess.run(None, {"input": x10.numpy()}))
        print(f"wrote {args.out} ({os.path.getsize(args.out) / 2**20:.2f} MB, {ck['arch']}, dynamic batch)")
        print(f"max |ONNX Runtime - PyTorch| = {diff:.2e} on random input (tolerance {args.tol:g})")
        print(f"CPU latency, 1 face x 10 crops: PyTorch {t_torch:.2f} ms, ONNX Runtime {t_ort:.2f} ms")
        if args.int8:
            quantise(ck, args, sess)
        return diff
    except DataError as e:
        cli_error(str(e))


if __name__ == "__main__":
    main()
