"""Accuracy against CPU latency for trained runs: PyTorch (fp32 and the run's precision) and ONNX
Runtime (fp32 and static int8), one table and one Pareto figure.

    python bench/pareto.py --data data/data.h5 --runs baseline=runs/VGG19 p0.5=runs/VGG19_sr_pruned0.5 \
        m0.5r8=runs/VGG19_sr_m0.5r8 [--rounds 5] [--onnx-dir /tmp/pareto] [--figure docs/pareto.png] [--write TITLE]

Per run (a folder with best.pth and summary.json): the honest PrivateTest of the run (PyTorch, in
the precision it trained and was scored in), then its fp32 ONNX export and the int8 model
quantised from it (export_onnx.write_int8: static QDQ, per-channel weights, --calib Training faces)
both scored on the whole PrivateTest with 10 crops, and the latency of 1 face x 10 crops of all four
(model, runtime) pairs, timed in turn round after round so the ratios hold on a shared machine.
Ratios are to the first run (the baseline) in the same runtime.
"""
import argparse
import json
import os

import torch

from common import cpu_flags, machine, record

import export_onnx  # noqa: E402  (path set up by common)
import inference
import models
import prune
from dataset import H5Dataset
from predict import OrtModule, ort_session
from utils import face_latency_fn, interleaved_latency_ms, load_checkpoint


def ort_latency_fn(sess, crops=10):
    x = torch.randn(crops, 1, 44, 44).numpy()
    return lambda: sess.run(None, {"input": x})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, metavar="H5", help="FER2013 HDF5 (PrivateTest scored, Training calibrates)")
    ap.add_argument("--runs", nargs="+", required=True, metavar="LABEL=DIR", help="the first is the baseline")
    ap.add_argument("--rounds", type=int, default=5, metavar="N", help="interleaved latency rounds (default: 5)")
    ap.add_argument("--calib", type=int, default=200, metavar="N", help="int8 calibration faces (default: 200)")
    ap.add_argument("--onnx-dir", default="/tmp/pareto_onnx", metavar="DIR", help="(default: /tmp/pareto_onnx)")
    ap.add_argument("--figure", default=None, metavar="PNG", help="write the Pareto figure here (default: none)")
    ap.add_argument("--write", metavar="TITLE", help="record the table in BENCHMARKS.md under this title")
    args = ap.parse_args()
    data = H5Dataset(args.data)
    xe, ye = data.load("PrivateTest")
    faces = export_onnx.calibration_faces(data, args.calib)
    os.makedirs(args.onnx_dir, exist_ok=True)
    rows, fns = [], {}
    for spec in args.runs:
        label, _, d = spec.partition("=")
        ck = load_checkpoint(os.path.join(d, "best.pth"))
        with open(os.path.join(d, "summary.json")) as f:
            honest = json.load(f)["honest"]
        dtype, prec, nhwc = inference.run_precision(ck, "cpu")
        f32 = os.path.join(args.onnx_dir, f"{label}.onnx")
        net = export_onnx.export(ck, f32)
        i8 = export_onnx.write_int8(f32, export_onnx.int8_path(f32), faces)
        s32, s8 = ort_session(f32), ort_session(i8)
        acc32 = inference.evaluate(OrtModule(s32), xe, ye, 16)["acc"]
        acc8 = inference.evaluate(OrtModule(s8), xe, ye, 16)["acc"]
        print(f"{label}: PrivateTest {honest['PrivateTest']:.3f} ({prec}), ONNX fp32 {acc32:.3f}, int8 {acc8:.3f}")
        rows.append({"label": label, "dir": d, "cfg": ck["cfg"], "params": prune.n_params(net),
                     "macs": prune.count_macs(net), "acc": honest["PrivateTest"], "acc32": acc32, "acc8": acc8,
                     "prec": prec + (" + CL" if nhwc else "")})
        fresh = models.model_from_checkpoint(ck)
        fns[(label, "torch fp32")] = face_latency_fn(models.model_from_checkpoint(ck), None, False)
        fns[(label, "torch run")] = face_latency_fn(fresh, dtype, nhwc)
        fns[(label, "ort fp32")] = ort_latency_fn(s32)
        fns[(label, "ort int8")] = ort_latency_fn(s8)
    # each runtime timed on its own: ONNX Runtime's worker threads spin after a call and would take
    # the cores from a PyTorch call interleaved right after it (PyTorch fp32 read 2.4x slower that way)
    ms = {}
    for runtime in ("torch", "ort"):
        ms.update(interleaved_latency_ms({k: f for k, f in fns.items() if k[1].startswith(runtime)}, rounds=args.rounds))
    base = rows[0]["label"]

    def cell(label, kind):
        v = ms[(label, kind)]
        ref = ms[(base, "ort fp32" if kind.startswith("ort") else "torch fp32")]
        return f"{v:.2f} ({ref / v:.2f}x)"
    lines = ["| run | params | MACs / crop | PrivateTest (run precision) | ONNX fp32 | ONNX int8 | "
             "PyTorch fp32 ms | PyTorch run precision ms | ONNX fp32 ms | ONNX int8 ms |", "|---|" + "---|" * 9]
    for r in rows:
        lines.append(f"| {r['label']} | {r['params']:,} | {r['macs'] / 1e6:.1f}M | {r['acc']:.3f} ({r['prec']}) | "
                     f"{r['acc32']:.3f} | {r['acc8']:.3f} | {cell(r['label'], 'torch fp32')} | "
                     f"{cell(r['label'], 'torch run')} | {cell(r['label'], 'ort fp32')} | {cell(r['label'], 'ort int8')} |")
    note = (f"\n\n{machine()}; {cpu_flags()}. Accuracies: 10-crop %, whole PrivateTest ({len(ye)} faces), at the "
            "epoch each run selected on PublicTest. Latency: 1 face x 10 crops, median of "
            f"{args.rounds} interleaved rounds per runtime (the models of one runtime in turn; the two runtimes "
            f"one after the other), {torch.get_num_threads()} threads (ONNX Runtime: its default threads, spinning off); "
            f"ratios to {base} in the same runtime (PyTorch columns to {base} in fp32). int8: ONNX "
            f"Runtime static QDQ, per-channel weights, calibrated on {args.calib} Training faces. Runs: "
            + ", ".join(f"{r['label']} = {r['dir']}" for r in rows) + ".")
    table = "\n".join(lines) + note
    print(table)
    if args.figure:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for kind, key, marker in (("PyTorch, run precision", "torch run", "o"), ("ONNX Runtime fp32", "ort fp32", "s"),
                                  ("ONNX Runtime int8", "ort int8", "^")):
            acc = "acc8" if key == "ort int8" else ("acc32" if key == "ort fp32" else "acc")
            xs, ys = [ms[(r["label"], key)] for r in rows], [r[acc] for r in rows]
            ax.scatter(xs, ys, marker=marker, label=kind)
            for r, x_, y_ in zip(rows, xs, ys):
                ax.annotate(r["label"], (x_, y_), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel("CPU ms, 1 face x 10 crops")
        ax.set_ylabel("PrivateTest % (10-crop, honest)")
        ax.set_title(f"Accuracy against latency ({machine()})", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.figure, dpi=120)
        print(f"figure: {args.figure}")
    if args.write:
        record(args.write, table, "latency", where=machine())


if __name__ == "__main__":
    main()
