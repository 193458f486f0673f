"""Export a checkpoint to ONNX (dynamic batch) and check ONNX Runtime against PyTorch.

    python export_onnx.py --checkpoint checkpoints/FER2013_VGG19/best.pth --out model.onnx

The graph takes normalised 44x44 crops (N, 1, 44, 44) and returns logits; predict.py --onnx does
the 10-crop averaging around it. Fails (exit 1, no file left) if ONNX Runtime's output differs
from PyTorch's by more than --tol on random input; prints both CPU latencies (1 face x 10 crops).
"""
import argparse
import json
import os
import warnings

import numpy as np
import torch

import models
from data_io import DataError, atomic_output, cli_error
from utils import latency_ms, load_checkpoint


def export(ck, path, opset=17):
    import onnx
    model = models.model_from_checkpoint(ck).eval()
    with atomic_output(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its own deprecation
        torch.onnx.export(model, (torch.zeros(2, ck.get("in_channels", 1), 44, 44),), tmp, dynamo=False,
                          input_names=["input"], output_names=["logits"], opset_version=opset,
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
        m = onnx.load(tmp)
        for k, v in {"class_names": json.dumps(ck["class_names"]), "arch": ck["arch"],
                     "cfg": json.dumps(ck.get("cfg")), "model_args": json.dumps(ck.get("model_args", {}))}.items():
            m.metadata_props.add(key=k, value=v)
        onnx.save(m, tmp)
    return model


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, metavar="PTH", help="any checkpoint of this repo (pruned too)")
    ap.add_argument("--out", default="model.onnx", metavar="FILE", help="(default: model.onnx)")
    ap.add_argument("--tol", type=float, default=1e-4, metavar="T", help="max |ORT - PyTorch| allowed (default: 1e-4)")
    args = ap.parse_args(argv)
    try:
        import onnxruntime as ort
        ck = load_checkpoint(args.checkpoint)
        model = export(ck, args.out)
        sess = ort.InferenceSession(args.out, providers=["CPUExecutionProvider"])
        x = torch.randn(37, 1, 44, 44, generator=torch.Generator().manual_seed(0))  # a batch size never exported
        with torch.no_grad():
            ref = model(x).numpy()
        got = sess.run(None, {"input": x.numpy()})[0]
        diff = float(np.abs(ref - got).max())
        if not diff <= args.tol:
            os.remove(args.out)
            cli_error(f"{args.out}: ONNX Runtime differs from PyTorch by {diff:.3g} > --tol {args.tol}; removed", code=1)
        x10 = torch.randn(10, 1, 44, 44)
        with torch.no_grad():
            t_torch = latency_ms(lambda: model(x10))
        t_ort = latency_ms(lambda: sess.run(None, {"input": x10.numpy()}))
        print(f"wrote {args.out} ({os.path.getsize(args.out) / 2**20:.2f} MB, {ck['arch']}, dynamic batch)")
        print(f"max |ONNX Runtime - PyTorch| = {diff:.2e} on random input (tolerance {args.tol:g})")
        print(f"CPU latency, 1 face x 10 crops: PyTorch {t_torch:.2f} ms, ONNX Runtime {t_ort:.2f} ms")
        return diff
    except DataError as e:
        cli_error(str(e))


if __name__ == "__main__":
    main()
