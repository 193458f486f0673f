"""A live demo page: upload a photo or use the browser's camera; every face gets its box, label,
calibrated probabilities and, on request, its Grad-CAM map.

    python demo.py                                   # http://127.0.0.1:7860, the shipped int8 ONNX model
    python demo.py --checkpoint checkpoints/FER2013_VGG19/best.pth    # any checkpoint, in PyTorch
    python demo.py --host 0.0.0.0 --port 8000        # reachable from other machines: only if you mean it

Private by construction: it listens on 127.0.0.1 unless told otherwise, publishes no share link,
has no analytics, and the page (web/index.html, served from this clone) loads nothing from
anywhere else; images are analysed in memory and never written to disk. Uploads are capped in
bytes (--max-upload-mb) and in pixels (--max-side); a non-image, an oversized or a faceless
upload gets a message and the server keeps serving.

Why not Gradio: its page fetches fonts and scripts of its own and its camera stream gives a test
no way to tie a label to the frame it came from; Starlette (an ASGI toolkit, served by uvicorn)
with one static page does exactly what this needs and nothing else.

The server path is predict.py's: OpenCV's Haar cascade with the same settings, the same 48x48
crop, 10-crop averaging, the temperature calibrate.py stored; so the page's labels are
predict.py's labels for the same image (tests/test_demo.py checks it in a real browser).
"""
import argparse
import base64
import io
import os
import sys
import threading
import time

import numpy as np

from data_io import DataError, cli_error

HERE = os.path.dirname(os.path.abspath(__file__))
PAGE = os.path.join(HERE, "web", "index.html")
DEFAULT_ONNX = os.path.join(HERE, "weights", "fer2013_vgg19_slim.int8.onnx")


class Analyser:
    """Image bytes -> faces with boxes, labels, calibrated probabilities (and Grad-CAM maps).

    One request at a time (a lock): OpenCV's cascade is not documented as thread-safe, and on
    a 2-core machine parallel requests would only slow each other.
    """

    def __init__(self, checkpoint=None, onnx=None, min_face=30, margin=0.2, max_side=4096, cam_checkpoint=None,
                 detect_scale=1.0):
        from faces import FaceDetector
        from predict import Classifier
        self.clf = Classifier(checkpoint, None if checkpoint else onnx)
        self.detect = FaceDetector(min_face, detect_scale)
        self.margin, self.max_side = margin, max_side
        self.cam_checkpoint = checkpoint or cam_checkpoint
        self.cam = None  # the PyTorch model for Grad-CAM, loaded on the first request that wants it
        self.lock = threading.Lock()
        self.source = checkpoint or onnx

    def decode(self, data):
        """Bytes -> grey uint8 (H, W); DataError (with the HTTP status to answer) when not usable."""
        from PIL import Image, UnidentifiedImageError

        from faces import load_grey
        try:
            with Image.open(io.BytesIO(data)) as im:  # the header only: refuse huge images before decoding
                w, h = im.size
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            raise HTTPError(415, "that file is not an image this demo can read (try a JPEG or PNG)") from None
        if max(w, h) > self.max_side:
            raise HTTPError(413, f"image is {w}x{h} pixels; the limit is {self.max_side} on either side")
        try:
            return load_grey(io.BytesIO(data))
        except DataError:
            raise HTTPError(415, "that file is not an image this demo can read (try a JPEG or PNG)") from None

    def __call__(self, data, want_cam=False):
        from faces import crop_face
        with self.lock:
            t0 = time.perf_counter()
            grey = self.decode(data)
            t1 = time.perf_counter()
            boxes = self.detect(grey)
            t2 = time.perf_counter()
            faces = [crop_face(grey, b, self.margin) for b in boxes]
            probs = self.clf(np.stack(faces)) if faces else np.zeros((0, 0))
            t3 = time.perf_counter()
            cams = None
            if want_cam and faces:
                if self.cam is None:
                    from predict import CamModel
                    self.cam = CamModel(self.cam_checkpoint)
                cams = self.cam.cams(np.stack(faces), probs.argmax(1))
            t4 = time.perf_counter()
        names = self.clf.names(probs.shape[1]) if faces else []
        out = []
        for i, (b, p) in enumerate(zip(boxes, probs)):
            face = {"box": list(b), "label": names[int(p.argmax())],
                    "probabilities": {n: round(float(v), 4) for n, v in zip(names, p)}}
            if cams is not None:
                face["cam"] = cam_png(cams[i])
            out.append(face)
        ms = lambda a, b: round(1000 * (b - a), 2)  # noqa: E731
        return {"width": int(grey.shape[1]), "height": int(grey.shape[0]), "faces": out,
                "message": "" if out else "no face found",
                "ms": {"decode": ms(t0, t1), "detect": ms(t1, t2), "classify": ms(t2, t3), "cam": ms(t3, t4)}}


class HTTPError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def cam_png(cam):
    """A (48, 48) map in [0, 1] -> data URL of a colour PNG (the 'jet' map OpenCV draws)."""
    import cv2
    rgb = cv2.applyColorMap(np.uint8(np.clip(cam, 0, 1) * 255), cv2.COLORMAP_JET)
    ok, buf = cv2.imencode(".png", rgb)
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode()


def build_app(analyser, max_upload=8 << 20):
    """The Starlette app: GET / (the page), GET /api/info, POST /api/predict[?cam=1] (body: the image)."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import FileResponse, JSONResponse
    from starlette.routing import Route

    async def page(request):
        return FileResponse(PAGE, media_type="text/html")

    async def info(request):
        return JSONResponse({"model": os.path.basename(analyser.source or "default checkpoint"),
                             "classes": analyser.clf.class_names, "temperature": analyser.clf.temperature,
                             "max_upload_bytes": max_upload, "max_side": analyser.max_side})

    async def predict(request):
        try:
            declared = request.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > max_upload:
                raise HTTPError(413, f"upload is {int(declared) / 2**20:.1f} MB; the limit is "
                                     f"{max_upload / 2**20:.0f} MB")
            body = bytearray()
            async for chunk in request.stream():  # counted as it arrives: a missing or false length cannot pass
                body += chunk
                if len(body) > max_upload:
                    raise HTTPError(413, f"upload exceeds the {max_upload / 2**20:.0f} MB limit")
            if not body:
                raise HTTPError(400, "empty upload: send an image")
            want_cam = request.query_params.get("cam") in ("1", "true")
            return JSONResponse(await run_in_threadpool(analyser, bytes(body), want_cam))
        except HTTPError as e:
            return JSONResponse({"error": str(e)}, status_code=e.status)
        except Exception as e:  # anything else: answer, log, keep serving
            print(f"demo: {type(e).__name__}: {e}", file=sys.stderr)
            return JSONResponse({"error": f"internal error ({type(e).__name__}); see the server log"},
                                status_code=500)

    return Starlette(routes=[Route("/", page), Route("/api/info", info),
                             Route("/api/predict", predict, methods=["POST"])])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx", default=DEFAULT_ONNX, metavar="FILE",
                    help="ONNX model (default: the shipped int8 weights/fer2013_vgg19_slim.int8.onnx)")
    ap.add_argument("--checkpoint", metavar="PTH", help="use this PyTorch checkpoint instead of --onnx")
    ap.add_argument("--cam-checkpoint", metavar="PTH",
                    help="PyTorch weights for the saliency maps when classifying in ONNX (default: predict.py's "
                         "default checkpoint, the shipped weights)")
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    ap.add_argument("--port", type=int, default=7860, help="(default: 7860)")
    ap.add_argument("--max-upload-mb", type=float, default=8.0, metavar="MB", help="largest upload (default: 8)")
    ap.add_argument("--max-side", type=int, default=4096, metavar="PX",
                    help="largest image width or height (default: 4096)")
    ap.add_argument("--min-face", type=int, default=30, metavar="PX", help="smallest face in pixels (default: 30)")
    ap.add_argument("--detect-scale", type=float, default=1.0, metavar="F",
                    help="look for faces in the image shrunk by F, as predict.py --detect-scale (0.5: a faster "
                         "camera loop; default: 1)")
    args = ap.parse_args(argv)
    if args.max_upload_mb <= 0 or args.max_side < 48:
        ap.error("--max-upload-mb must be positive and --max-side at least 48")
    try:
        analyser = Analyser(args.checkpoint, args.onnx, args.min_face, max_side=args.max_side,
                            cam_checkpoint=args.cam_checkpoint, detect_scale=args.detect_scale)
    except DataError as e:
        cli_error(str(e))
    import uvicorn
    app = build_app(analyser, int(args.max_upload_mb * 2**20))
    print(f"demo: http://{args.host}:{args.port}/  ({os.path.basename(analyser.source or 'checkpoint')}, "
          f"temperature {analyser.clf.temperature:.3f}); Ctrl-C stops it", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
