"""Where the network looks: Grad-CAM (Selvaraju et al., ICCV 2017) through the `grad-cam` library,
averaged over the 10 test crops and mapped back onto the 48x48 face.

    cam_layer(model)            the layer the maps are taken from, and why (its resolution)
    face_cams(model, faces, c)  uint8 faces (N, 1, 48, 48), classes (N,) -> maps (N, 48, 48) in [0, 1]
    overlay(ax, face, cam)      a face with its map on top, for figures

    python saliency.py --checkpoint weights/fer2013_vgg19_slim.pth --split PrivateTest \
        --figure docs/gradcam_fer2013_vgg19_slim_privatetest.png   # mean map per class, right/wrong apart

Which layer: Grad-CAM weighs a layer's activation maps by the gradient of the class score, so its
map has that layer's resolution. VGG19 at a 44-pixel crop halves five times: the fifth block
computes at 2x2 (useless as a map), the fourth at 5x5. ``cam_layer`` takes the deepest
activation whose output is still at least 4x4 (VGG: the ReLU closing block 4, ``features.38`` in
the full cfg or a slimmed one; ResNet18: its last stage, 6x6), so the map is as semantic as the
net allows while keeping a spatial layout. The library upsamples each crop's 5x5 map to 44x44.
"""
import os

import numpy as np
import torch

import transforms as T
from inference import CROP

MIN_SIDE = 4  # a map coarser than 4x4 says little about where


def cam_layer(model, size=CROP):
    """(name, module, (H, W)): the last module in forward order, not a conv or BatchNorm (their
    outputs precede the activation), whose output is 4-D with both sides >= MIN_SIDE."""
    fired = []
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: fired.append((n, mod, tuple(o.shape))))
             for n, m in model.named_modules() if n]
    try:
        was = model.training
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 1, size, size, device=next(model.parameters()).device))
        model.train(was)
    finally:
        for h in hooks:
            h.remove()
    ok = [(n, m, s[2:]) for n, m, s in fired if len(s) == 4 and min(s[2:]) >= MIN_SIDE
          and not isinstance(m, (torch.nn.Conv2d, torch.nn.BatchNorm2d))]
    if not ok:
        raise ValueError(f"no layer of {type(model).__name__} keeps a {MIN_SIDE}x{MIN_SIDE} map at {size} pixels")
    return ok[-1]


def _crop_offsets(side=48, size=CROP):
    """(top, left, mirrored) of each of T.ten_crop's crops, in its order."""
    c = (side - size) // 2
    five = [(0, 0), (0, side - size), (side - size, 0), (side - size, side - size), (c, c)]
    return [(t, l, m) for m in (False, True) for t, l in five]


def face_cams(model, faces, classes, batch=32):
    """Grad-CAM of class ``classes[i]`` for each face, averaged over its 10 crops on the 48x48 grid.

    faces: uint8 (N, 1, 48, 48); classes: (N,) ints. Each crop's map (normalised to [0, 1] by the
    library) is pasted where the crop came from (mirrored crops mirrored back); every pixel is
    the mean over the crops that cover it; the result is rescaled to [0, 1] per face. Runs in
    fp32 with gradients (a few ms per crop on a CPU).
    """
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    _, layer, _ = cam_layer(model)
    model.eval()
    faces = torch.as_tensor(faces)
    side = faces.shape[-1]
    offsets = _crop_offsets(side)
    out = np.zeros((len(faces), side, side), np.float32)
    with GradCAM(model=model, target_layers=[layer]) as cam:
        for i in range(0, len(faces), batch):
            fb = faces[i:i + batch]
            crops = T.ten_crop(T.to_float(fb), CROP).flatten(0, 1)  # (B*10, 1, 44, 44)
            targets = [ClassifierOutputTarget(int(c)) for c in classes[i:i + batch] for _ in range(10)]
            maps = cam(input_tensor=crops, targets=targets).reshape(len(fb), 10, CROP, CROP)  # numpy, [0, 1]
            for j in range(len(fb)):
                total, count = np.zeros((side, side), np.float32), np.zeros((side, side), np.float32)
                for k, (t, l, mirrored) in enumerate(offsets):
                    canvas, cover = np.zeros_like(total), np.zeros_like(count)
                    canvas[t:t + CROP, l:l + CROP], cover[t:t + CROP, l:l + CROP] = maps[j, k], 1
                    if mirrored:  # that crop came from the mirrored face: mirror its map back
                        canvas, cover = canvas[:, ::-1], cover[:, ::-1]
                    total += canvas
                    count += cover
                m = total / np.maximum(count, 1)
                out[i + j] = (m - m.min()) / (m.max() - m.min()) if m.max() > m.min() else 0
    return out


def overlay(ax, face, cam, alpha=0.45):
    """Draw a grey face with its map in 'jet' on top (matplotlib axes)."""
    ax.imshow(face, cmap="gray", vmin=0, vmax=255)
    ax.imshow(cam, cmap="jet", alpha=alpha, vmin=0, vmax=1, extent=(-0.5, face.shape[1] - 0.5,
                                                                    face.shape[0] - 0.5, -0.5))
    ax.axis("off")


def class_figure(path, faces, cams, labels, preds, names, title):
    """Mean map per true class (columns), correct and wrong predictions apart (rows), each over the
    mean face of its group; n per cell in its title."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from data_io import atomic_output
    fig, axes = plt.subplots(2, len(names), figsize=(1.9 * len(names), 4.6))
    for c, name in enumerate(names):
        for row, (ok, what) in enumerate(((True, "right"), (False, "wrong"))):
            ax = axes[row, c]
            sel = (labels == c) & ((preds == labels) == ok)
            if sel.any():
                overlay(ax, faces[sel].mean(0), cams[sel].mean(0))
            else:
                ax.axis("off")
            ax.set_title(f"{name}, {what}\nn = {int(sel.sum())}", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def main(argv=None):
    """python saliency.py --checkpoint PTH [--split PrivateTest] --figure PNG: the mean Grad-CAM map
    per true class, correct and wrong apart, of the predicted class of each face."""
    import argparse

    import config
    import inference
    import models
    from data_io import DataError, cli_error
    from dataset import data_of
    from utils import check_classes, load_checkpoint
    ap = argparse.ArgumentParser(description="Mean Grad-CAM map per class, correct and wrong predictions apart")
    ap.add_argument("--checkpoint", required=True, metavar="PTH")
    ap.add_argument("--data", metavar="FILE", help="HDF5 (default: the run's own, else data/data.h5)")
    ap.add_argument("--split", default="PrivateTest", metavar="NAME", help="(default: PrivateTest)")
    ap.add_argument("--limit", type=int, default=0, metavar="N", help="only the first N faces (default: all)")
    ap.add_argument("--figure", required=True, metavar="PNG")
    args = ap.parse_args(argv)
    try:
        ck = load_checkpoint(args.checkpoint)
        data = data_of(ck, args.data)
        check_classes(ck["class_names"], args.checkpoint, data.class_names, data.path)
        x, y = data.load(args.split)
        if args.limit > 0:
            x, y = x[:args.limit], y[:args.limit]
        model = models.model_from_checkpoint(ck, args.checkpoint).float().eval()
        layer, _, hw = cam_layer(model)
        preds = inference.predict_logits(model, x, config.eval_batch_size("auto", "cpu")).argmax(1)
        cams = face_cams(model, x, preds.tolist())
        y, preds = y.numpy(), preds.numpy()
        acc = 100.0 * float((preds == y).mean())
        class_figure(args.figure, x[:, 0].float().numpy(), cams, y, preds, ck["class_names"],
                     f"{os.path.basename(args.checkpoint)} on {args.split} ({len(y)} faces, {acc:.1f}% right, "
                     f"fp32 10-crop): mean Grad-CAM of the predicted class at {layer} ({hw[0]}x{hw[1]})")
        print(f"wrote {args.figure}: {len(y)} faces of {args.split}, Grad-CAM at {layer} ({hw[0]}x{hw[1]})")
    except DataError as e:
        cli_error(str(e))


if __name__ == "__main__":
    main()
