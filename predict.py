"""Predict facial expressions on your own photos (or a video) with a trained checkpoint.

    python predict.py photo.jpg [more.jpg ...] --checkpoint checkpoints/FER2013_VGG19/best.pth
    python predict.py photo.jpg --json                 # one JSON line per face
    python predict.py face.png --no-detect             # the whole image is one pre-cropped face
    python predict.py photo.jpg --onnx model.onnx      # ONNX Runtime instead of PyTorch
    python predict.py --video clip.mp4                 # annotated copy + per-frame JSON lines
    python predict.py faces/*.png --no-detect --json --no-figures   # thousands of faces, batched
    python predict.py photo.jpg --cam                  # + where the network looks (Grad-CAM, saliency.py)

Faces are found with OpenCV's frontal-face Haar cascade (shipped inside the opencv-python-headless
4.x wheel), cropped with a margin, turned into 48x48 grey, and classified with the same 10-crop
averaging as evaluation; the faces of many images go through the network together (--batch).
Without --checkpoint the newest of checkpoints/FER2013_VGG19/best.pth
and the released weights in weights/ is used. A photo without a face says so (exit 0); an
unreadable file is reported and the other files are still processed (exit 1 at the end).
"""
import argparse
import collections
import json
import os
import sys
import time

import numpy as np
import torch

from data_io import DataError, cli_error
from faces import FaceDetector, crop_face, load_grey, whole_face

DEFAULT_CHECKPOINTS = ("checkpoints/FER2013_VGG19/best.pth", "weights/fer2013_vgg19_slim.pth")


def ort_session(path):
    """An ONNX Runtime CPU session whose worker threads sleep between calls. With ONNX Runtime's
    default spinning, the threads keep the cores busy after each call and slow whatever runs next:
    in a camera loop, OpenCV's face detection ran 1.45x slower beside a spinning session
    (bench/bench_live.py), and sessions timed in turn would hold the cores for each other."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


class Classifier:
    """48x48 grey faces -> class probabilities, 10-crop averaged; PyTorch or ONNX Runtime."""

    def __init__(self, checkpoint=None, onnx=None, device="cpu"):
        import inference
        import models
        from utils import load_checkpoint, pick_device
        if onnx:
            if not os.path.isfile(onnx):
                raise DataError(f"{onnx}: ONNX model not found (make one with export_onnx.py)")
            try:
                self.session = ort_session(onnx)
            except Exception as e:  # onnxruntime's InvalidProtobuf, Fail, ... (no common base class)
                first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
                raise DataError(f"{onnx}: not an ONNX model that ONNX Runtime can load ({first})") from None
            meta = self.session.get_modelmeta().custom_metadata_map
            self.class_names = json.loads(meta.get("class_names", "[]")) or None
            self.temperature = float(meta.get("temperature", 1.0))  # calibrate.py writes it
            self.model = None
        else:
            path = checkpoint or next((p for p in DEFAULT_CHECKPOINTS if os.path.exists(p)), None)
            if path is None or not os.path.exists(path):
                raise DataError(f"no trained checkpoint at {checkpoint or ' or '.join(DEFAULT_CHECKPOINTS)}: train "
                                "one with `python preprocess_fer2013.py && python mainpro_FER.py` (see README), "
                                "or pass --checkpoint PATH")
            ck = load_checkpoint(path)
            self.device = pick_device(device)
            # the precision and memory format the run was trained and scored in (inference.run_precision)
            self.dtype, _, self.channels_last = inference.run_precision(ck, self.device)
            fmt = torch.channels_last if self.channels_last else torch.preserve_format
            self.model = models.model_from_checkpoint(ck, path).to(self.device, memory_format=fmt).eval()
            self.class_names = ck["class_names"]
            self.temperature = float(ck.get("calibration", {}).get("temperature", 1.0))  # calibrate.py
            self.source = path

    def __call__(self, faces):
        """faces: uint8 (N, 48, 48) -> probabilities (N, C) as numpy (10-crop, as in evaluation)."""
        import config
        import inference
        x = torch.from_numpy(np.ascontiguousarray(faces)).unsqueeze(1)  # (N, 1, 48, 48)
        if self.model is not None:
            x = x.to(self.device)
            logits = inference.predict_logits(self.model, x, config.eval_batch_size("auto", x.device), "tencrop",
                                           self.dtype, self.channels_last)
        else:
            logits = inference.predict_logits(OrtModule(self.session), x, config.eval_batch_size("auto", "cpu"))
        # calibrated probabilities: the temperature fitted on PublicTest (1 = not calibrated)
        return torch.softmax(logits.float() / self.temperature, 1).cpu().numpy()

    def names(self, n):
        """Class names for n outputs; numbered when the model carries none (an ONNX file without metadata)."""
        return self.class_names if self.class_names else [f"class {i}" for i in range(n)]


class OrtModule(torch.nn.Module):
    """An ONNX Runtime session behind the nn.Module call, so evaluation's 10-crop code serves."""

    def __init__(self, session):
        super().__init__()
        self.session = session
        self.input_name = session.get_inputs()[0].name

    def forward(self, x):  # (B, 1, 44, 44) float -> (B, C) logits
        return torch.from_numpy(self.session.run(None, {self.input_name: x.contiguous().numpy()})[0])


class CamModel:
    """The PyTorch network behind --cam: saliency needs gradients, so it is the checkpoint even when
    classification runs in ONNX Runtime (--checkpoint, else the default checkpoint)."""

    def __init__(self, checkpoint=None):
        import models
        from utils import load_checkpoint
        path = checkpoint or next((p for p in DEFAULT_CHECKPOINTS if os.path.exists(p)), None)
        if path is None:
            raise DataError(f"--cam needs a PyTorch checkpoint (Grad-CAM takes gradients): none at "
                            f"{' or '.join(DEFAULT_CHECKPOINTS)}; pass --checkpoint PATH")
        self.model = models.model_from_checkpoint(load_checkpoint(path), path).float().eval()

    def cams(self, faces, classes):
        import saliency
        x = torch.from_numpy(np.ascontiguousarray(faces)).unsqueeze(1)  # (N, 1, 48, 48) uint8
        return saliency.face_cams(self.model, x, classes)


def draw_figure(grey, boxes, probs, names, path, title, faces=None, cams=None):
    """The photo with a box and label per face, and each face's probabilities; with ``cams``
    (Grad-CAM maps of the predicted class, saliency.face_cams) each face's 48x48 crop with its map."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    n = max(1, len(boxes))
    cols = 2 if cams is None else 3
    fig = plt.figure(figsize=(10 if cams is None else 12, max(4, 2.2 * n)))
    ax = fig.add_subplot(1, cols, 1)
    ax.imshow(grey, cmap="gray", vmin=0, vmax=255)
    for i, (b, p) in enumerate(zip(boxes, probs)):
        ax.add_patch(Rectangle((b[0], b[1]), b[2], b[3], fill=False, color="lime", lw=2))
        ax.text(b[0], b[1] - 3, f"{i + 1}: {names[int(p.argmax())]} {p.max():.0%}", color="lime", fontsize=10,
                va="bottom", bbox=dict(facecolor="black", alpha=0.5, pad=1))
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    for i, p in enumerate(probs):
        if cams is not None:
            import saliency
            cx = fig.add_subplot(n, cols, cols * i + 2)
            saliency.overlay(cx, faces[i], cams[i])
            cx.set_title(f"face {i + 1}: Grad-CAM of {names[int(p.argmax())]}", fontsize=8)
        bx = fig.add_subplot(n, cols, cols * i + cols)
        bx.barh(range(len(names)), p, color=["tab:green" if j == p.argmax() else "tab:blue" for j in range(len(p))])
        bx.set_yticks(range(len(names)), names, fontsize=8)
        bx.set_xlim(0, 1)
        bx.invert_yaxis()
        bx.set_title(f"face {i + 1}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def records(file, boxes, probs, names):
    return [{"file": file, "face": i + 1, "box": list(b), "label": names[int(p.argmax())],
             "probabilities": {n: round(float(v), 6) for n, v in zip(names, p)}} for i, (b, p) in enumerate(zip(boxes, probs))]


def predict_images(args, clf):
    """Detect faces image by image; classify the faces of many images in one batch (--batch), then
    report each image in the order given."""
    detect = None if args.no_detect else FaceDetector(args.min_face, args.detect_scale)
    cam_model = CamModel(args.checkpoint) if args.cam else None
    failed = 0
    if not args.no_figures:
        os.makedirs(args.out, exist_ok=True)
    pending = []  # (path, grey, boxes, faces) waiting for the network

    def flush():
        if not pending:
            return
        probs = clf(np.concatenate([np.stack(faces) for *_, faces in pending]))  # (all faces, C)
        names = clf.names(probs.shape[1])
        i = 0
        for path, grey, boxes, faces in pending:
            p, i = probs[i:i + len(faces)], i + len(faces)
            for r in records(path, boxes, p, names):
                print(json.dumps(r) if args.json else
                      f"{path} face {r['face']} {r['box']}: {r['label']} ({max(r['probabilities'].values()):.1%})")
            if not args.no_figures:
                fig = os.path.join(args.out, os.path.splitext(os.path.basename(path))[0] + "_pred.png")
                cams = cam_model.cams(np.stack(faces), p.argmax(1)) if cam_model else None
                draw_figure(grey, boxes, p, names, fig, os.path.basename(path), faces, cams)
                if not args.json:
                    print(f"  figure: {fig}")
        pending.clear()

    for path in args.images:
        try:
            grey = load_grey(path)
        except DataError as e:
            print(f"error: {e}", file=sys.stderr)
            failed += 1
            continue
        if detect is None:
            boxes = [(0, 0, grey.shape[1], grey.shape[0])]
            faces = [whole_face(grey)]
        else:
            boxes = detect(grey)
            faces = [crop_face(grey, b, args.margin) for b in boxes]
        if not faces:
            flush()  # keep the output in the order of the files
            print(f"{path}: no face found")
            continue
        pending.append((path, grey if not args.no_figures else None, boxes, faces))
        if sum(len(f) for *_, f in pending) >= args.batch:
            flush()
    flush()
    return 1 if failed else 0


def predict_video(args, clf):
    import cv2
    cap = cv2.VideoCapture(args.video)
    if not cap.isOpened():
        raise DataError(f"{args.video}: cannot open video")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, os.path.splitext(os.path.basename(args.video))[0])
    writer, history, frame_no = None, collections.deque(maxlen=args.smooth), 0
    detect = FaceDetector(args.min_face, args.detect_scale)
    spent = []  # seconds of detection + classification per frame (decoding and writing the video apart)
    started = time.perf_counter()
    with open(stem + "_frames.jsonl", "w") as log:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if writer is None:
                h, w = frame.shape[:2]
                writer = cv2.VideoWriter(stem + "_pred.mp4", cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
            t0 = time.perf_counter()
            grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
            boxes = detect(grey)[:1]  # the largest face, smoothed over the last frames
            rec = {"frame": frame_no, "faces": []}
            if boxes:
                history.append(clf(np.stack([crop_face(grey, boxes[0], args.margin)]))[0])
                p = np.mean(history, 0)
                names = clf.names(len(p))
                x, y, bw, bh = boxes[0]
                cv2.rectangle(frame, (x, y), (x + bw, y + bh), (0, 255, 0), 2)
                cv2.putText(frame, f"{names[int(p.argmax())]} {p.max():.0%}", (x, max(12, y - 6)),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 255, 0), 2)
                rec["faces"] = records(args.video, boxes, [p], names)
            else:
                history.clear()
            spent.append(time.perf_counter() - t0)
            writer.write(frame)
            log.write(json.dumps(rec) + "\n")
            frame_no += 1
    cap.release()
    if writer is not None:
        writer.release()
    print(f"{frame_no} frames -> {stem}_pred.mp4, {stem}_frames.jsonl")
    if spent:
        wall = time.perf_counter() - started
        per = sorted(spent)[len(spent) // 2]
        print(f"frame rate: {1 / per:.1f} frames/s analysed (median {1000 * per:.1f} ms per frame for detection + "
              f"classification); {frame_no / wall:.1f} frames/s overall with video decoding and writing")
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", nargs="*", metavar="IMAGE", help="photos (any format PIL reads)")
    ap.add_argument("--checkpoint", metavar="PTH", help=f"trained model (default: {DEFAULT_CHECKPOINTS[0]}, "
                                                        f"else {DEFAULT_CHECKPOINTS[1]})")
    ap.add_argument("--onnx", metavar="FILE", help="use this ONNX model with ONNX Runtime instead")
    ap.add_argument("--no-detect", action="store_true", help="treat each image as one pre-cropped face")
    ap.add_argument("--json", action="store_true", help="print one JSON line per face")
    ap.add_argument("--no-figures", action="store_true", help="skip the per-image figure (fast on many images)")
    ap.add_argument("--cam", action="store_true",
                    help="add each face's Grad-CAM map of its predicted class to its figure (the PyTorch "
                         "checkpoint's gradients: --checkpoint or the default, also beside --onnx)")
    ap.add_argument("--batch", type=int, default=256, metavar="N",
                    help="classify the faces of several images together, about N faces at a time (default: 256)")
    ap.add_argument("--video", metavar="FILE", help="annotate a video instead of photos")
    ap.add_argument("--out", default="predictions", metavar="DIR", help="where figures go (default: predictions)")
    ap.add_argument("--margin", type=float, default=0.2, metavar="M", help="crop margin around a face (default: 0.2)")
    ap.add_argument("--min-face", type=int, default=30, metavar="PX", help="smallest face in pixels (default: 30)")
    ap.add_argument("--detect-scale", type=float, default=1.0, metavar="F",
                    help="look for faces in the image shrunk by F (e.g. 0.5: about 3x faster at 640x480, faces "
                         "under 48 px missed) (default: 1, the full image)")
    ap.add_argument("--smooth", type=int, default=5, metavar="K", help="video: average over K frames (default: 5)")
    ap.add_argument("--device", default="cpu", metavar="DEV", help="(default: cpu)")
    args = ap.parse_args(argv)
    if not args.images and not args.video:
        ap.error("give at least one IMAGE or --video FILE")
    if args.cam and (args.no_figures or args.video):
        ap.error("--cam draws into the per-image figures: not with --no-figures or --video")
    if args.batch < 1:
        ap.error(f"--batch {args.batch}: must be at least 1")
    try:
        clf = Classifier(args.checkpoint, args.onnx, args.device)
        code = predict_video(args, clf) if args.video else predict_images(args, clf)
    except DataError as e:
        cli_error(str(e))
    raise SystemExit(code)


if __name__ == "__main__":
    main()
