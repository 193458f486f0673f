"""10-crop evaluation speed against the evaluation batch size, beside training speed, in one run.

    python bench/bench_eval.py [--width 0.25] [--sizes 8,16,32,64,256] [--write]

Times inference.predict_logits (the evaluation every script uses) on random 48x48 faces for each
--eval-bs, and a training step of the same model, interleaved round after round so a busy
machine slows all of them alike. Prints crops/s and the ratio to the best size; this is what
chose EVAL_BS_AUTO in config.py (16 on a CPU).
"""
import argparse

import torch

from common import machine, record

import inference  # noqa: E402
import models  # noqa: E402
import transforms as T  # noqa: E402
from utils import interleaved_latency_ms  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="VGG19", metavar="NAME", help="(default: VGG19)")
    ap.add_argument("--width", type=float, default=0.25, metavar="W", help="(default: 0.25)")
    ap.add_argument("--sizes", default="8,16,32,64,256", metavar="LIST", help="eval batch sizes (default: 8,16,32,64,256)")
    ap.add_argument("--images", type=int, default=256, metavar="N", help="faces scored per timing (default: 256)")
    ap.add_argument("--rounds", type=int, default=3, metavar="N", help="interleaved rounds (default: 3)")
    ap.add_argument("--write", action="store_true", help="record the table in BENCHMARKS.md")
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    cfg, model_args = models.scaled(args.model, args.width)
    model = models.build_model(args.model, cfg=cfg, **model_args).to(device)
    x = torch.randint(0, 256, (args.images, 1, 48, 48), dtype=torch.uint8, device=device)
    y = torch.randint(0, 7, (args.images,), device=device)
    sizes = [int(v) for v in args.sizes.split(",")]
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    g = torch.Generator(device=device).manual_seed(0)

    def evaluation(bs):
        return lambda: inference.predict_logits(model, x, bs)

    def training():  # the same images as 128-image training batches: crop+flip, forward, backward, step
        model.train()
        for i in range(0, args.images, 128):
            xb = T.train_augment(x[i:i + 128], inference.CROP, g, flip=True)
            loss = torch.nn.functional.cross_entropy(model(xb), y[i:i + 128])
            opt.zero_grad()
            loss.backward()
            opt.step()

    fns = {f"eval {bs}": evaluation(bs) for bs in sizes}
    fns["train"] = training
    ms = interleaved_latency_ms(fns, rounds=args.rounds, reps=1)
    crops = {bs: 10 * args.images / (ms[f"eval {bs}"] / 1000) for bs in sizes}
    best = max(crops.values())
    train_ips = args.images / (ms["train"] / 1000)
    rows = [f"| {bs} | {crops[bs]:,.0f} | {crops[bs] / best:.2f} | {10 * train_ips / crops[bs]:.2f} |" for bs in sizes]
    table = ("| --eval-bs (images) | crops/s | vs best | 10-crop eval time / training time, per image |\n"
             "|---|---|---|---|\n" + "\n".join(rows) +
             f"\n\n{args.model} width {args.width}, {args.images} random faces, training {train_ips:,.0f} images/s "
             f"(batch 128, crop+flip, SGD). Median of {args.rounds} interleaved rounds, "
             f"{torch.get_num_threads()} threads. The last column is the cost of scoring one split with 10 crops "
             "relative to one training pass over the same number of images.")
    print(table)
    if args.write:
        record(f"Evaluation batch size, {args.model} width {args.width}", table, "data", where=machine())


if __name__ == "__main__":
    main()
