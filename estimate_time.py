"""How long will the slimming protocol take on this machine? Measured here, not guessed.

    python estimate_time.py --data data/data.h5 [--archs VGG19] [--width 0.25] [--recipe cpu-lean]

Times a few training batches and 10-crop evaluation batches of the parent network in the
precision ``--amp auto`` picks on this machine (bf16 + channels_last on a CPU with native bf16,
fp32 on other CPUs), then extrapolates the stages of slim_protocol.sh: the parent with sparsity,
each pruned net's fine-tuning (a training step at the parent's cost plus the teacher's forward
pass: a slimmed net's odd channel counts run on slower kernels, so it is not much cheaper than
its parent), and the no-sparsity baseline. run.sh prints it before starting. About 15 seconds.
"""
import argparse
import time

import torch

import config
import engine
import inference
import mainpro_FER
import models
import transforms as T
from data_io import DataError, cli_error
from dataset import H5Dataset
from utils import pick_device


def measure(arch, width, n_classes, device, train_batches=6, eval_images=128):
    """(training images/s, 10-crop evaluation images/s) of a fresh parent in the auto precision."""
    args = argparse.Namespace(**config.CPU_FER, sr=False, amp="auto", channels_last=False)
    inference.resolve_precision(args, device)
    dtype = inference.amp_dtype(args, device)
    cfg, margs = models.scaled(arch, width)
    model = models.build_model(arch, cfg=cfg, num_classes=n_classes, **margs).to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    g = torch.Generator(device=device).manual_seed(0)
    n = args.bs * train_batches
    x = torch.randint(0, 256, (n, 1, 48, 48), dtype=torch.uint8, device=device, generator=g)
    y = torch.randint(0, n_classes, (n,), device=device, generator=g)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    gens = engine.make_generators(0, device)
    engine.train_one_epoch(model, x[:2 * args.bs], y[:2 * args.bs], opt, sched, args, gens, dtype=dtype)  # warm-up
    t = time.perf_counter()
    engine.train_one_epoch(model, x, y, opt, sched, args, gens, dtype=dtype)
    train_rate = n / (time.perf_counter() - t)
    # a teacher's forward pass on a training batch (distilled fine-tuning pays it on every step)
    model.eval()
    with torch.no_grad(), torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        xb = T.to_float(x[:args.bs, :, 2:46, 2:46]).contiguous(
            memory_format=torch.channels_last if args.channels_last else torch.contiguous_format)
        model(xb)
        t = time.perf_counter()
        for _ in range(train_batches):
            model(xb)
        forward_rate = n / (time.perf_counter() - t)
    bs = config.eval_batch_size("auto", device)
    inference.evaluate(model, x[:2 * bs], y[:2 * bs], bs, "tencrop", dtype, args.channels_last)
    t = time.perf_counter()
    inference.evaluate(model, x[:eval_images], y[:eval_images], bs, "tencrop", dtype, args.channels_last)
    return train_rate, eval_images / (time.perf_counter() - t), args, forward_rate


def stage_seconds(epochs, n_train, n_public, n_private, eval_every, select_last, rates):
    """One training run: epochs of training, 10-crop PublicTest where selection can happen (and
    PrivateTest at about half of those, when PublicTest improves), centre-crop scores before."""
    train_rate, eval_rate = rates
    if select_last:
        full, centre = select_last, len([e for e in range(1, epochs - select_last + 1) if e % eval_every == 0])
    else:
        full, centre = len([e for e in range(1, epochs + 1) if e % eval_every == 0 or e == epochs]), 0
    return (epochs * n_train / train_rate + full * (n_public + 0.5 * n_private) / eval_rate
            + centre * n_public / (10 * eval_rate))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data/data.h5", metavar="FILE", help="FER2013 h5 (default: data/data.h5)")
    ap.add_argument("--archs", default="VGG19", metavar="A B", help="space-separated (default: VGG19)")
    ap.add_argument("--width", type=float, default=0.25, metavar="W", help="(default: 0.25)")
    ap.add_argument("--recipe", default="cpu-lean", choices=sorted(mainpro_FER.RECIPES), help="(default: cpu-lean)")
    ap.add_argument("--epochs", type=int, metavar="N", help="(default: the recipe's)")
    ap.add_argument("--eval-every", type=int, default=2, metavar="K", help="(default: 2)")
    ap.add_argument("--percents", default="0.5 0.7", metavar="P Q", help="pruned nets fine-tuned (default: '0.5 0.7')")
    ap.add_argument("--ft-epochs", type=int, default=10, metavar="N", help="(default: 10)")
    ap.add_argument("--baseline", type=int, default=1, choices=(0, 1), help="1: also the no-sparsity parent (default: 1)")
    ap.add_argument("--device", default="auto", metavar="DEV", help="(default: auto)")
    args = ap.parse_args(argv)
    try:
        data = H5Dataset(args.data, kind="FER")
        sizes = {s: len(data.load(s, "cpu")[1]) for s in ("Training", "PublicTest", "PrivateTest") if s in data.splits}
        recipe = mainpro_FER.RECIPES[args.recipe]
        epochs = args.epochs or recipe["epochs"]
        select_last = min(recipe.get("select_last", 0), epochs)
        device = pick_device(args.device)
        total, parts = 0.0, []
        for arch in args.archs.split():
            rates = measure(models.canonical_name(arch), args.width, data.num_classes, device)
            precision = inference.resolve_precision(rates[2], device)
            one = stage_seconds(epochs, sizes["Training"], sizes.get("PublicTest", 0), sizes.get("PrivateTest", 0),
                                args.eval_every, select_last, rates[:2])
            # fine-tuning: a step at the parent's cost plus the teacher's forward pass
            ft_rate = 1 / (1 / rates[0] + 1 / rates[3])
            ft = stage_seconds(args.ft_epochs, sizes["Training"], sizes.get("PublicTest", 0),
                               sizes.get("PrivateTest", 0), args.eval_every, 0, (ft_rate, rates[1]))
            n_ft = len(args.percents.split())
            secs = one * (1 + args.baseline) + n_ft * ft
            total += secs
            parts.append(f"{arch}: {rates[0]:.0f} training images/s, {10 * rates[1]:.0f} crops/s in "
                         f"{precision.split(': ', 1)[1]}; {1 + args.baseline} x {epochs} epochs + {n_ft} x "
                         f"{args.ft_epochs} fine-tuning epochs = about {secs / 60:.0f} min")
        print(f"estimate for {engine.describe_device(device)}: about {total / 60:.0f} minutes in all\n  "
              + "\n  ".join(parts) + "\n  (measured just now on a few batches; the real run's time is in each "
                                    "run's metrics.csv and in table.md)")
    except DataError as e:
        cli_error(str(e))


if __name__ == "__main__":
    main()
