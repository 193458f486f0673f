"""Temperature-scale a trained checkpoint on PublicTest; report calibration on PrivateTest.

    python calibrate.py --checkpoint weights/fer2013_vgg19_slim.pth \
        --onnx weights/fer2013_vgg19_slim.int8.onnx --figure docs/reliability_fer2013_vgg19_slim.png
    python calibrate.py --checkpoint checkpoints/FER2013_VGG19/best.pth --dry-run   # measure only

One temperature T (logits / T before the softmax; Guo et al. 2017) is fitted on the 10-crop
logits of PublicTest, the split that already selects epochs, so PrivateTest still chooses
nothing; the predicted classes do not change. Before and after, on PrivateTest: expected
calibration error (15 equal-width bins, top label) with a bootstrap 95% interval, negative
log-likelihood and Brier score. T is stored in the checkpoint under its own key
``calibration`` (the weights and logits stay as they were) and, with --onnx, in each ONNX file's
metadata (``temperature``); predict.py, torch.hub and demo.py apply it.
"""
import argparse
import os

import calibration as C
from data_io import DataError, cli_error


def split_logits(model, data, split, dtype, channels_last, device):
    """10-crop logits (N, C) and labels (N,) of one split, in the precision the run used."""
    import config
    import inference
    x, y = data.load(split, device)
    logits = inference.predict_logits(model, x, config.eval_batch_size("auto", device), "tencrop", dtype,
                                      channels_last)
    return logits.float().cpu(), y.cpu()


def measure(logits_fit, y_fit, logits_eval, y_eval, boot=1000):
    """T fitted on the first pair; scores of the second before and after, ECE with its interval."""
    t = C.fit_temperature(logits_fit, y_fit)
    y = y_eval.numpy()
    rows = {}
    for name, temp in (("before", 1.0), ("after", t)):
        p = C.probabilities(logits_eval, temp)
        rows[name] = dict(C.scores(p, y), ece_ci=C.bootstrap_interval(C.ece, p, y, n=boot))
    fit_nll = [C.nll(C.probabilities(logits_fit, temp), y_fit.numpy()) for temp in (1.0, t)]
    return t, rows, fit_nll


def table(label, t, rows):
    lines = [f"| {label} | T | ECE (95% interval) | NLL | Brier | accuracy |", "|---|---|---|---|---|---|"]
    for name, temp in (("before", 1.0), ("after", t)):
        r = rows[name]
        lines.append(f"| {name} | {temp:.3f} | {r['ece']:.4f} [{r['ece_ci'][0]:.4f}, {r['ece_ci'][1]:.4f}] | "
                     f"{r['nll']:.4f} | {r['brier']:.4f} | {r['acc']:.2f} |")
    return "\n".join(lines)


def load_onnx(path):
    import onnx
    if not os.path.isfile(path):
        raise DataError(f"--onnx {path}: not found")
    try:
        return onnx.load(path)
    except Exception as e:  # onnx raises DecodeError and friends, no common base
        raise DataError(f"--onnx {path}: not an ONNX model ({type(e).__name__})") from None


def write_onnx_temperature(m, path, t):
    """Set the ``temperature`` metadata of the loaded ONNX model ``m`` (graph untouched) and save
    it to ``path`` atomically."""
    import onnx

    from data_io import atomic_output
    kept = [p for p in m.metadata_props if p.key != "temperature"]
    del m.metadata_props[:]
    m.metadata_props.extend(kept)
    m.metadata_props.add(key="temperature", value=repr(float(t)))
    with atomic_output(path) as tmp:
        onnx.save(m, tmp)


def figure(path, label, logits, y, t):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from data_io import atomic_output
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.4))
    for ax, (name, temp) in zip(axes, (("uncalibrated", 1.0), (f"temperature {t:.3f} (fitted on PublicTest)", t))):
        C.reliability_diagram(ax, C.probabilities(logits, temp), y.numpy(), f"{label}, PrivateTest\n{name}")
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, metavar="PTH", help="any trained checkpoint of this repo")
    ap.add_argument("--data", metavar="FILE", help="HDF5 with PublicTest and PrivateTest (default: the run's own, "
                                                   "else data/data.h5)")
    ap.add_argument("--onnx", nargs="*", default=[], metavar="FILE",
                    help="ONNX exports of the same weights that get the temperature in their metadata")
    ap.add_argument("--figure", metavar="PNG", help="reliability diagram before/after (PrivateTest)")
    ap.add_argument("--label", default=None, metavar="TEXT", help="the model's name in the table and figure")
    ap.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="resamples for the ECE interval "
                                                                             "(default: 1000)")
    ap.add_argument("--device", default="cpu", metavar="DEV", help="(default: cpu)")
    ap.add_argument("--dry-run", action="store_true", help="measure and print; write nothing")
    args = ap.parse_args(argv)
    try:
        import inference
        from dataset import data_of
        from utils import check_classes, load_checkpoint, pick_device, save_checkpoint
        ck = load_checkpoint(args.checkpoint)
        data = data_of(ck, args.data)
        check_classes(ck["class_names"], args.checkpoint, data.class_names, data.path)
        for s in ("PublicTest", "PrivateTest"):
            if s not in data.splits:
                raise DataError(f"{data.path}: no {s} split (the temperature is fitted on PublicTest and judged "
                                "on PrivateTest)")
        device = pick_device(args.device)
        model, dtype, prec, nhwc = inference.scoring_model(ck, args.checkpoint, device)
        pub, y_pub = split_logits(model, data, "PublicTest", dtype, nhwc, device)
        priv, y_priv = split_logits(model, data, "PrivateTest", dtype, nhwc, device)
        t, rows, fit_nll = measure(pub, y_pub, priv, y_priv, args.bootstrap)
        label = args.label or os.path.basename(os.path.dirname(os.path.abspath(args.checkpoint)))
        print(f"{label}: T = {t:.4f} fitted on PublicTest ({len(y_pub)} faces; NLL {fit_nll[0]:.4f} -> "
              f"{fit_nll[1]:.4f}), scored in {prec} on {data.path}")
        print(f"PrivateTest ({len(y_priv)} faces), ECE: {C.BINS} equal-width bins, top label; interval: "
              f"{args.bootstrap} bootstrap resamples")
        print(table(label, t, rows))
        onnx_models = [load_onnx(path) for path in args.onnx]  # checked before anything is written
        x_priv = data.load("PrivateTest")[0] if args.onnx else None
        for path in args.onnx:  # the same T on the exported model's own logits (int8 rounds them)
            from predict import OrtModule, ort_session
            lo = inference.predict_logits(OrtModule(ort_session(path)), x_priv, 16).float()
            y = y_priv.numpy()
            ort_rows = {}
            for name, temp in (("before", 1.0), ("after", t)):
                p = C.probabilities(lo, temp)
                ort_rows[name] = dict(C.scores(p, y), ece_ci=C.bootstrap_interval(C.ece, p, y, n=args.bootstrap))
            print(table(f"{os.path.basename(path)} (ONNX Runtime), same T", t, ort_rows))
        if args.dry_run:
            return t, rows
        if args.figure:
            figure(args.figure, label, priv, y_priv, t)
            print(f"wrote {args.figure}")
        ck["calibration"] = {"temperature": t, "fitted_on": "PublicTest", "dataset": data.name,
                             "faces": len(y_pub), "nll_before": fit_nll[0], "nll_after": fit_nll[1],
                             "privatetest": {k: {m: (list(v) if isinstance(v, tuple) else v) for m, v in r.items()}
                                             for k, r in rows.items()}}
        save_checkpoint(ck, args.checkpoint)
        print(f"stored T in {args.checkpoint} (key 'calibration')")
        for m, path in zip(onnx_models, args.onnx):
            write_onnx_temperature(m, path, t)
            print(f"stored T in {path} (metadata 'temperature')")
        return t, rows
    except DataError as e:
        cli_error(str(e))


if __name__ == "__main__":
    main()
