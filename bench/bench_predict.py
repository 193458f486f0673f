"""predict.py over many faces: one figure per image vs --no-figures, one face per batch vs batched.

    python bench/bench_predict.py [--data data/data.h5] [--n 200] [--checkpoint weights/...] [--write]

Writes ``--n`` PrivateTest faces (or synthetic ones without --data) as PNG files into a temporary
folder and runs predict.py on all of them in each mode, one after the other in the same run, so
the ratios share the machine's state. Every mode's time includes starting Python and loading the
model once; each mode's JSON lines are checked to cover every face with the same predictions.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

from PIL import Image

from common import ROOT, machine, now, record

MODES = {  # name -> extra predict.py flags (all get --no-detect --json)
    "one figure per image (the old default)": [],
    "--no-figures, one face per batch": ["--no-figures", "--batch", "1"],
    "--no-figures, batched (--batch 256)": ["--no-figures", "--batch", "256"],
}


def faces(args):
    if args.data:  # the h5 holds flat rows of 2304 pixels: arrays() gives them as 48x48 faces
        from dataset import H5Dataset
        return H5Dataset(args.data).arrays("PrivateTest")[0][: args.n], f"the first {args.n} PrivateTest faces of {args.data}"
    from data_io import synthetic_faces
    return synthetic_faces(args.n, seed=0)[0], f"{args.n} synthetic faces"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", metavar="H5", help="FER2013 HDF5 from preprocess_fer2013.py (default: synthetic faces)")
    ap.add_argument("--n", type=int, default=200, metavar="N", help="faces (default: 200)")
    ap.add_argument("--checkpoint", metavar="PTH", help="model (default: predict.py's default)")
    ap.add_argument("--write", action="store_true", help="record the table in BENCHMARKS.md")
    args = ap.parse_args()
    pixels, source = faces(args)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, img in enumerate(pixels):  # (48, 48) uint8 each
            paths.append(os.path.join(tmp, f"face{i:04d}.png"))
            Image.fromarray(img).save(paths[-1])
        rows, first = [], None
        for name, flags in MODES.items():
            cmd = [sys.executable, os.path.join(ROOT, "predict.py"), *paths, "--no-detect", "--json",
                   "--out", os.path.join(tmp, "figures"), *flags]
            if args.checkpoint:
                cmd += ["--checkpoint", args.checkpoint]
            t0 = now()
            r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            secs = now() - t0
            if r.returncode != 0:
                sys.exit(f"bench_predict: {name}: predict.py failed: {r.stderr.strip().splitlines()[-1]}")
            preds = [json.loads(line)["label"] for line in r.stdout.splitlines() if line.startswith("{")]
            if len(preds) != len(paths) or (first is not None and preds != first):
                sys.exit(f"bench_predict: {name}: {len(preds)} predictions for {len(paths)} faces, or they differ")
            first = preds
            rows.append((name, secs))
            print(f"{name:45s} {secs:7.2f} s  {1000 * secs / len(paths):6.1f} ms/face", flush=True)
    base = rows[0][1]
    body = [f"{source}, `predict.py --no-detect --json`, model: {args.checkpoint or 'predict.py default'}; "
            f"{machine()}, {os.environ.get('OMP_NUM_THREADS', 'all')} threads. Times include starting Python "
            "and loading the model once (same in every mode); the predictions agree in every mode.", "",
            "| mode | seconds | ms per face | speed-up |", "|---|---|---|---|"]
    body += [f"| {n} | {s:.2f} | {1000 * s / len(pixels):.1f} | {base / s:.1f}x |" for n, s in rows]
    print("\n".join(body))
    if args.write:
        record("predict.py over many faces", "\n".join(body), "latency")


if __name__ == "__main__":
    main()
