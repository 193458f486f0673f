"""The live path at 640x480 with one face: frames per second, detection on every frame.

    python bench/bench_live.py [--data data/data.h5] [--frames 300] [--browser] [--write]

Per frame, as a camera loop does it: BGR frame -> grey -> predict.py's Haar cascade (its own
settings: scale 1.1, 5 neighbours, faces >= 30 px) -> 48x48 crop -> classification with calibrated
probabilities. Classifiers, timed in turn on the same frames: the shipped checkpoint in PyTorch
(the precision predict.py picks on this CPU) and the shipped int8 ONNX model in ONNX Runtime,
each with one centre crop and with the 10 test crops. Medians over ``--frames`` frames of the
detection, the classification and the whole frame; frames/s = 1000 / median frame ms.

--browser adds the demo page's own loop (demo.py, headless Chromium fed the same frames as its
fake camera, int8 10-crop): the page's frames/s and its median round trip against the server's
time for the same frames, i.e. what JPEG encoding, HTTP and drawing add.
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch

from common import ROOT, cpu_flags, machine, record

WEIGHTS = os.path.join(ROOT, "weights", "fer2013_vgg19_slim.pth")
INT8 = os.path.join(ROOT, "weights", "fer2013_vgg19_slim.int8.onnx")


def face_frames(n, data=None):
    """n BGR 640x480 frames with one face (a real PrivateTest face the cascade finds, or a drawn one),
    moving a few pixels from frame to frame."""
    import cv2

    from faces import FaceDetector
    if data:
        from dataset import H5Dataset
        pool, detect = H5Dataset(data).arrays("PrivateTest")[0][:300], FaceDetector()
        face = next(f for f in pool if len(detect(frame_with(f, 0))) == 1)
    else:
        from data_io import synthetic_faces
        face = synthetic_faces(1, seed=3)[0][0]
    return [cv2.cvtColor(frame_with(face, i), cv2.COLOR_GRAY2BGR) for i in range(n)]


def frame_with(face, i):
    import cv2
    frame = np.full((480, 640), 90, np.uint8)
    frame[120 + i % 5:320 + i % 5, 220 + i % 7:420 + i % 7] = cv2.resize(face, (200, 200),
                                                                           interpolation=cv2.INTER_CUBIC)
    return frame


class OneCrop:
    """predict.Classifier's probabilities from the centre crop only (a tenth of the network work)."""

    def __init__(self, clf):
        self.clf = clf

    def __call__(self, faces):
        import inference
        from predict import OrtModule
        x = torch.from_numpy(np.ascontiguousarray(faces)).unsqueeze(1)
        model = self.clf.model if self.clf.model is not None else OrtModule(self.clf.session)
        logits = inference.predict_logits(model, x, 16, "center", getattr(self.clf, "dtype", None),
                                          getattr(self.clf, "channels_last", False))
        return torch.softmax(logits.float() / self.clf.temperature, 1).numpy()


def time_loop(frames, classify, detect):
    import cv2

    from faces import crop_face
    det, cls, total, found = [], [], [], 0
    for f in frames:
        t0 = time.perf_counter()
        grey = cv2.cvtColor(f, cv2.COLOR_BGR2GRAY)
        boxes = detect(grey)
        t1 = time.perf_counter()
        if boxes:
            classify(np.stack([crop_face(grey, boxes[0])]))
            found += 1
        t2 = time.perf_counter()
        det.append(t1 - t0)
        cls.append(t2 - t1)
        total.append(t2 - t0)
    med = lambda v: 1000 * statistics.median(v)  # noqa: E731
    return {"detect": med(det), "classify": med(cls), "total": med(total), "found": found}


def browser_loop(frames, scale=1.0, seconds=30):
    """The demo page's camera loop in headless Chromium: (page frames/s, median round trip ms, median
    server ms) over what it analysed in ``seconds``."""
    import json
    import shutil
    import socket
    import subprocess
    import tempfile
    import urllib.request

    from playwright.sync_api import sync_playwright
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if not chromium:
        raise SystemExit("bench_live: --browser needs Chromium (apt-get install chromium)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "demo.py", "--port", str(port), "--detect-scale", str(scale)], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(120):
            try:
                json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/info", timeout=1).read())
                break
            except OSError:
                time.sleep(0.5)
        with tempfile.TemporaryDirectory() as tmp:
            clip = os.path.join(tmp, "clip.y4m")
            import cv2
            with open(clip, "wb") as f:  # YUV4MPEG2 4:2:0, grey
                f.write(b"YUV4MPEG2 W640 H480 F30:1 Ip A1:1 C420jpeg\n")
                chroma = np.full(320 * 240, 128, np.uint8).tobytes()
                for fr in frames[:60]:
                    f.write(b"FRAME\n" + cv2.cvtColor(fr, cv2.COLOR_BGR2GRAY).tobytes() + chroma + chroma)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=chromium, headless=True, args=[
                    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
                    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                    f"--use-file-for-fake-video-capture={clip}"])
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{port}/")
                page.wait_for_function("window.demoInfo !== undefined")
                page.click("#start-camera")
                time.sleep(seconds)
                page.click("#stop-camera")
                log = [e for e in page.evaluate("window.demoLog") if e.get("serverMs")][5:]  # warm-up left out
                browser.close()
    finally:
        server.terminate()
        server.wait(timeout=20)
    rt = statistics.median(e["roundTripMs"] for e in log)
    srv = statistics.median(sum(e["serverMs"].values()) for e in log)
    return 1000.0 / rt, rt, srv, len(log)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", metavar="H5", help="take a real PrivateTest face (default: a drawn face)")
    ap.add_argument("--frames", type=int, default=300, metavar="N", help="(default: 300)")
    ap.add_argument("--browser", action="store_true", help="also time the demo page's loop in headless Chromium")
    ap.add_argument("--write", action="store_true", help="record the table in BENCHMARKS.md")
    args = ap.parse_args()
    from faces import FaceDetector
    from predict import Classifier
    frames = face_frames(args.frames, args.data)
    detect, half = FaceDetector(30), FaceDetector(30, 0.5)
    torch_clf, onnx_clf = Classifier(WEIGHTS), Classifier(onnx=INT8)
    prec = "bf16" if torch_clf.dtype == torch.bfloat16 else "fp32"
    setups = {f"PyTorch ({prec}{' + channels_last' if torch_clf.channels_last else ''}), 1 crop": OneCrop(torch_clf),
              f"PyTorch ({prec}), 10 crops": torch_clf,
              "ONNX Runtime int8, 1 crop": OneCrop(onnx_clf),
              "ONNX Runtime int8, 10 crops": onnx_clf}
    setups = {name: (c, detect) for name, c in setups.items()}
    # predict.py --detect-scale 0.5 / demo.py --detect-scale 0.5: the cascade on a 320x240 copy
    setups["ONNX Runtime int8, 10 crops, detection at half size (--detect-scale 0.5)"] = (onnx_clf, half)
    setups["ONNX Runtime int8, 1 crop, detection at half size"] = (OneCrop(onnx_clf), half)
    for c, d in setups.values():  # warm-up: kernel choice and first-call allocation are not timed
        time_loop(frames[:10], c, d)
    rows = {name: time_loop(frames, c, d) for name, (c, d) in setups.items()}
    lines = ["| classifier | detection ms | classification ms | frame ms | frames/s | face found |",
             "|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['detect']:.2f} | {r['classify']:.2f} | {r['total']:.2f} | "
                     f"**{1000 / r['total']:.1f}** | {r['found']}/{len(frames)} |")
    src = "a real PrivateTest face" if args.data else "a drawn face"
    note = (f"\n{len(frames)} frames of 640x480 with one face ({src} enlarged to 200 px, moving), medians; "
            "detection = BGR -> grey + predict.py's Haar cascade (scale 1.1, 5 neighbours, >= 30 px) on every "
            "frame, on the whole frame unless the row says half size; "
            f"classification = 48x48 crop + network + calibrated softmax; {torch.get_num_threads()} torch threads, "
            f"ONNX Runtime's default threads. {cpu_flags()}.")
    if args.browser:
        for scale in (1.0, 0.5):
            fps, rt, srv, n = browser_loop(frames, scale)
            note += (f"\n\nThe demo page's camera loop (`demo.py --detect-scale {scale:g}`, headless Chromium, int8 10 "
                     f"crops, one frame in flight): **{fps:.1f} frames/s**; median round trip {rt:.1f} ms, of which "
                     f"the server's JPEG decoding, detection and classification take {srv:.1f} ms: the browser's JPEG "
                     f"encoding, HTTP and drawing add {rt - srv:.1f} ms ({n} frames).")
    text = "\n".join(lines) + "\n" + note
    print(text)
    if args.write:
        command = (f"python bench/bench_live.py --frames {args.frames}{' --data ' + args.data if args.data else ''}"
                   f"{' --browser' if args.browser else ''} --write")
        record("Live path at 640x480, one face", f"{text}\n\nCommand: `{command}`", "latency", where=machine())


if __name__ == "__main__":
    main()
