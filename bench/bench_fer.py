"""FER2013 pipeline benchmark: parsing, augmentation, 10-crop, model throughput (CPU or GPU).

    python bench/bench_fer.py [--csv data/fer2013.csv] [--write]

Everything compared is measured side by side in this one run, and reported as ratios:
  1. CSV -> HDF5: preprocess_fer2013.convert vs a csv-module loop with per-pixel int() (time, peak RSS)
  2. training augmentation and 10-crop: batched tensor ops vs torchvision per-sample PIL + DataLoader
  3. VGG19 / Resnet18 train and 10-crop eval images/s (CPU: a few batches; CUDA: a full epoch)
--write records the tables in BENCHMARKS.md under this machine's name.
"""
import argparse
import os
import tempfile

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from common import DATA, ROOT, machine, now, record, run_measured

import config  # noqa: E402  (path set up by common)
import engine
import inference
import models
import prune
import transforms as T

NAIVE = '''
import csv, time, numpy as np
t = time.perf_counter()
with open({csv!r}) as f:
    r = csv.reader(f); next(r)
    data = {{"Training": ([], []), "PublicTest": ([], []), "PrivateTest": ([], [])}}
    for label, pixels, usage in r:
        data[usage][0].append([int(p) for p in pixels.split()]); data[usage][1].append(int(label))
arrays = {{k: (np.asarray(v[0], np.uint8), np.asarray(v[1], np.int64)) for k, v in data.items()}}
secs = time.perf_counter() - t
'''
OURS = '''
import time, preprocess_fer2013
t = time.perf_counter()
preprocess_fer2013.convert({csv!r}, {out!r})
secs = time.perf_counter() - t
'''


def bench_parse(csv_path):
    with tempfile.TemporaryDirectory() as tmp:
        ours_s, ours_mb = min(run_measured(OURS.format(csv=csv_path, out=os.path.join(tmp, "d.h5"))) for _ in range(3))
    naive_s, naive_mb = run_measured(NAIVE.format(csv=csv_path))
    size = os.path.getsize(csv_path) / 1e6
    return ("| CSV -> arrays | seconds | peak RSS MB |\n|---|---|---|\n"
            f"| csv module + per-pixel int() | {naive_s:.2f} | {naive_mb:.0f} |\n"
            f"| preprocess_fer2013.convert (to HDF5, best of 3) | {ours_s:.2f} | {ours_mb:.0f} |\n"
            f"| ratio | **{naive_s / ours_s:.1f}x faster** | **{naive_mb / ours_mb:.1f}x less** |\n\n"
            f"Input: {os.path.basename(csv_path)}, {size:.0f} MB.")


class PILSet(Dataset):
    def __init__(self, x, tf):
        from PIL import Image
        self.imgs, self.tf = [Image.fromarray(a) for a in x], tf

    def __len__(self):
        return len(self.imgs)

    def __getitem__(self, i):
        return self.tf(self.imgs[i])


def throughput(fn, n_images, reps=3):
    best = float("inf")
    for _ in range(reps):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = now()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, now() - t)
    return n_images / best


def bench_augment(x_np, device, bs=128):
    from torchvision import transforms as tv
    n = len(x_np)
    x = torch.from_numpy(x_np).unsqueeze(1).to(device)
    g = torch.Generator(device=device).manual_seed(0)

    def ours_train():
        for i in range(0, n, bs):
            T.train_augment(x[i:i + bs], 44, g)

    def ours_tencrop():
        for i in range(0, n, bs):
            T.ten_crop(T.to_float(x[i:i + bs]), 44).flatten(0, 1)  # as inference.predict_logits

    train_tf = tv.Compose([tv.RandomCrop(44), tv.RandomHorizontalFlip(), tv.ToTensor()])
    ten_tf = tv.Compose([tv.TenCrop(44), tv.Lambda(lambda cs: torch.stack([tv.ToTensor()(c) for c in cs]))])
    rows = []
    for name, ours, tf in (("train crop+flip", ours_train, train_tf), ("10-crop test", ours_tencrop, ten_tf)):
        ds = PILSet(x_np, tf)
        loader = DataLoader(ds, batch_size=bs, shuffle=True, num_workers=0)
        pil = throughput(lambda loader=loader: [None for _ in loader], n, reps=1)
        fast = throughput(ours, n)
        rows.append(f"| {name} | {pil:,.0f} | {fast:,.0f} | **{fast / pil:.0f}x** |")
    return ("| augmentation (images/s) | torchvision PIL per sample, DataLoader | batched tensors (ours) | ratio |\n"
            "|---|---|---|---|\n" + "\n".join(rows) + f"\n\nBatched path on {device}; PIL path on the CPU, 0 workers.")


def bench_models(device, n_train, n_eval, bs=128, full=None, width=1.0):
    rows = []
    dtype = torch.bfloat16 if device.type == "cuda" else None
    for arch in ("VGG19", "Resnet18"):
        cfg, model_args = models.scaled(arch, width)
        model = models.build_model(arch, cfg=cfg, **model_args).to(device)
        if full is not None:  # CUDA: a real epoch on FER2013-sized data
            (xt, yt), evals = full
        else:
            xt = torch.randint(0, 256, (n_train, 1, 48, 48), dtype=torch.uint8, device=device)
            yt = torch.randint(0, 7, (n_train,), device=device)
            evals = {"test": (xt[:n_eval], yt[:n_eval])}
        args = argparse.Namespace(**config.PUBLISHED_FER)
        args.sr = False
        args.channels_last = device.type == "cuda"
        if args.channels_last:
            model = model.to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
        g = engine.make_generators(0, device)
        engine.train_one_epoch(model, xt[:2 * bs], yt[:2 * bs], opt, sched, args, g, dtype=dtype)  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t = now()
        engine.train_one_epoch(model, xt, yt, opt, sched, args, g, dtype=dtype)
        if device.type == "cuda":
            torch.cuda.synchronize()
        train_s = now() - t
        t = now()
        n_ev = 0
        for xe, ye in evals.values():
            inference.evaluate(model, xe, ye, 512, "tencrop", dtype, args.channels_last)
            n_ev += len(xe)
        if device.type == "cuda":
            torch.cuda.synchronize()
        eval_s = now() - t
        mem = f"{torch.cuda.max_memory_allocated() / 2**30:.1f}" if device.type == "cuda" else "-"
        rows.append(f"| {arch} | {width:g} | {prune.n_params(model):,} | {len(xt) / train_s:,.0f} | {n_ev / eval_s:,.0f} | "
                    f"{train_s:.2f} | {eval_s:.2f} | {mem} |")
    what = "full FER2013 epoch (28,709 images) and both test splits (7,178)" if full is not None else \
        f"{n_train} training images, {n_eval} evaluated with 10 crops, synthetic pixels"
    return ("| model | width | params | train images/s | 10-crop eval images/s | train s | eval s | peak GPU GiB |\n"
            "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + f"\n\n{what}; batch 128, "
            f"{'bf16 autocast, channels_last' if device.type == 'cuda' else 'fp32'}.")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--csv", default=os.path.join(ROOT, "data", "fer2013.csv"), metavar="PATH",
                    help="Kaggle fer2013.csv for the parsing benchmark (default: data/fer2013.csv)")
    ap.add_argument("--data", default=DATA, metavar="FILE",
                    help="FER2013 HDF5 for the GPU epoch timing (default: data/data.h5)")
    ap.add_argument("--width", type=float, default=1.0, metavar="W",
                    help="channel width of the models in the throughput table (default: 1.0)")
    ap.add_argument("--models-only", action="store_true", help="only the model throughput table")
    ap.add_argument("--write", action="store_true", help="record the results in BENCHMARKS.md")
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    parts = []
    if args.models_only:
        table = bench_models(device, 1024, 256, width=args.width)
        print(table)
        if args.write:
            record(f"Model throughput at width {args.width:g}", table, "latency", where=machine())
        return
    if os.path.exists(args.csv):
        parts.append("#### CSV parsing\n\n" + bench_parse(args.csv))
        print(parts[-1])
    else:
        print(f"skipping the parsing benchmark: {args.csv} not found")
    rng = np.random.default_rng(0)
    x_np = rng.integers(0, 256, (4096, 48, 48), dtype=np.uint8)
    parts.append("#### Augmentation\n\n" + bench_augment(x_np, device))
    print(parts[-1])
    full = None
    if device.type == "cuda" and os.path.exists(args.data):
        from dataset import H5Dataset
        ds = H5Dataset(args.data)
        full = (ds.load("Training", device), {s: ds.load(s, device) for s in ("PublicTest", "PrivateTest")})
    parts.append("#### Model throughput\n\n" + bench_models(device, 1024, 256, full=full))
    print(parts[-1])
    if args.write:
        record("FER2013 pipeline" + (" on a GPU" if device.type == "cuda" else ""), "\n\n".join(parts), "data",
               where=machine())


if __name__ == "__main__":
    main()
