"""demo.py in a real browser: headless Chromium (Debian's `chromium`) driven by Playwright.

Uploads a photo and reads the label from the page; feeds Chromium's fake camera a generated clip
and checks that each frame's labels on the page equal predict.py's labels for the very JPEG the
page sent; bad uploads get a message while the server keeps serving; and the page never makes a
request outside 127.0.0.1. Without a Chromium (or Playwright) these tests skip, saying so.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from conftest import REAL_DATA, ROOT, run_script

ONNX = os.path.join(ROOT, "weights", "fer2013_vgg19_slim.int8.onnx")
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
# the flags a closed network needs (no background fetches, no first-run pings) and the fake camera
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-extensions",
                 "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]

if CHROMIUM is None:
    pytest.skip("no Chromium found (apt-get install chromium, or set CHROMIUM=/path): the browser tests of "
                "demo.py are skipped", allow_module_level=True)
playwright_api = pytest.importorskip("playwright.sync_api", reason="Playwright not installed (requirements-dev.txt)")
if not os.path.exists(ONNX):
    pytest.skip("no shipped int8 ONNX model in weights/", allow_module_level=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "demo.py", "--port", str(port), "--max-upload-mb", "2"], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(base + "/api/info", timeout=1).read()
            break
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if proc.poll() is not None:
                pytest.fail(f"demo.py exited: {proc.stdout.read()[-2000:]}")
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("demo.py did not answer within 60 s")
    yield base
    proc.terminate()
    proc.wait(timeout=20)


def frames_with_faces(n, faces):
    """n 640x480 grey frames, one face each, the two ``faces`` (48x48) alternating every 8 frames
    so the labels can change along the clip."""
    import cv2
    out = []
    for i in range(n):
        frame = np.full((480, 640), 90, np.uint8)
        face = cv2.resize(faces[(i // 8) % 2], (200, 200), interpolation=cv2.INTER_CUBIC)
        frame[120 + (i % 3):320 + (i % 3), 220:420] = face  # a little motion
        out.append(frame)
    return out


def write_y4m(path, frames, fps=15):
    """The YUV4MPEG2 file Chromium's fake camera plays: 4:2:0, grey (U = V = 128)."""
    h, w = frames[0].shape
    chroma = np.full((h // 2) * (w // 2), 128, np.uint8).tobytes()
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for y in frames:
            f.write(b"FRAME\n" + y.tobytes() + chroma + chroma)


def predict_labels(paths):
    """predict.py's labels per file (faces in its order), with the demo's default model."""
    r = run_script("predict.py", *map(str, paths), "--onnx", ONNX, "--json", "--no-figures")
    assert r.returncode == 0, r.stderr[-2000:]
    labels = {str(p): [] for p in paths}
    for line in r.stdout.splitlines():
        if line.startswith("{"):
            rec = json.loads(line)
            labels[rec["file"]].append(rec["label"])
    return labels


def open_page(pw, base, clip=None):
    args = CHROMIUM_ARGS + ([f"--use-file-for-fake-video-capture={clip}"] if clip else [])
    browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
    page = browser.new_page()
    # waits end as soon as the page answers; the long limit only keeps a loaded CI machine (the
    # server's Grad-CAM on 2 busy cores) from failing a page that works
    page.set_default_timeout(90_000)
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(base + "/")
    page.wait_for_function("window.demoInfo !== undefined")
    return browser, page, requests


def test_upload_shows_predict_pys_label_and_bad_uploads_keep_it_serving(server, tmp_path):
    from test_predict_export import photo
    face = tmp_path / "face.png"
    Image.fromarray(photo()).save(face)
    (tmp_path / "notes.txt").write_text("not an image")
    Image.fromarray(np.tile(np.linspace(0, 255, 400, dtype=np.uint8), (300, 1))).save(tmp_path / "plain.png")
    want = predict_labels([face])[str(face)]
    assert len(want) == 1
    with playwright_api.sync_playwright() as pw:
        browser, page, requests = open_page(pw, server)
        try:
            page.set_input_files("#file", str(face))
            page.wait_for_selector(".face-label")
            assert page.inner_text(".face-label") == want[0]
            page.set_input_files("#file", str(tmp_path / "notes.txt"))
            page.wait_for_function("document.getElementById('message').textContent.includes('not an image')")
            page.set_input_files("#file", str(tmp_path / "plain.png"))
            page.wait_for_function("document.getElementById('message').textContent.includes('no face found')")
            page.check("#want-cam")  # saliency on request: a map per face
            page.set_input_files("#file", str(face))
            page.wait_for_selector("img.cam")
            assert page.inner_text(".face-label") == want[0]
            log = page.evaluate("window.demoLog")
            assert [e.get("labels") for e in log] == [want, None, [], want]
        finally:
            browser.close()
    assert requests and all(u.startswith(server + "/") for u in requests), requests


def test_oversized_uploads_are_refused_and_the_server_goes_on(server, tmp_path):
    import http.client
    import io
    host, port = server.split("//")[1].split(":")

    def post(data=b"", headers=None, chunks=()):
        """POST raw; ``chunks``: a chunked body with no length, sent until the server answers."""
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        conn.putrequest("POST", "/api/predict")
        for k, v in (headers or {"Content-Length": str(len(data))}).items():
            conn.putheader(k, v)
        conn.endheaders()
        try:
            conn.send(data)
            for c in chunks:
                conn.send(b"%x\r\n" % len(c) + c + b"\r\n")
            if chunks:
                conn.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered before the body ended: read that answer
        r = conn.getresponse()
        out = r.status, json.loads(r.read())
        conn.close()
        return out
    # --max-upload-mb 2: a declared length over it is refused before any byte of the body...
    status, body = post(headers={"Content-Length": str(3 << 20)})
    assert status == 413 and "limit" in body["error"]
    # ...and a body without a length is counted as it arrives
    status, body = post(headers={"Transfer-Encoding": "chunked"}, chunks=[b"\0" * (1 << 20)] * 3)
    assert status == 413 and "limit" in body["error"]
    buf = io.BytesIO()
    Image.new("L", (5000, 8)).save(buf, "PNG")  # a tiny file, too many pixels wide
    status, body = post(buf.getvalue())
    assert status == 413 and "5000x8" in body["error"]
    status, body = post(b"GIF89a garbage")
    assert status == 415
    with urllib.request.urlopen(server + "/api/info", timeout=10) as r:
        assert r.status == 200


@pytest.mark.parametrize("real", [False, True], ids=["drawn", "real"])
def test_camera_frames_get_predict_pys_labels(server, tmp_path, real, request):
    """Drawn faces, or (FER_REAL_DATA) two real PrivateTest faces, enlarged into 640x480 frames."""
    if real:
        if not os.path.exists(os.path.join(REAL_DATA, "fer2013.med.xz")):
            pytest.skip("real FER2013 not available (FER_REAL_DATA)")
        from dataset import H5Dataset
        from faces import FaceDetector
        pool, detect = H5Dataset(request.getfixturevalue("real_fer_h5")).arrays("PrivateTest")[0][:200], FaceDetector()
        # tight 48x48 crops often lose the context Haar needs: take the first two it finds in every framing
        faces = [f for f in pool if all(len(detect(fr)) == 1 for fr in frames_with_faces(3, [f, f]))][:2]
        assert len(faces) == 2
    else:
        from data_io import synthetic_faces
        faces = synthetic_faces(2, seed=3)[0]
    clip = tmp_path / "clip.y4m"
    write_y4m(clip, frames_with_faces(32, faces))
    with playwright_api.sync_playwright() as pw:
        browser, page, requests = open_page(pw, server, clip)
        try:
            page.click("#start-camera")
            page.wait_for_function("window.demoLog.filter(e => e.kind === 'camera').length >= 12", timeout=120000)
            page.click("#stop-camera")
            log = [e for e in page.evaluate("window.demoLog") if e["kind"] == "camera" and "jpeg" in e]
            stats = page.inner_text("#stats")
        finally:
            browser.close()
    assert requests and all(u.startswith(server + "/") for u in requests), requests
    import base64
    paths = []
    for e in log:
        p = tmp_path / f"frame{e['frame']:03d}.jpg"
        p.write_bytes(base64.b64decode(e["jpeg"].split(",", 1)[1]))
        paths.append(p)
    want = predict_labels(paths)
    assert [e["labels"] for e in log] == [want[str(p)] for p in paths]
    assert sum(len(e["labels"]) == 1 for e in log) >= len(log) // 2  # the face is found in most frames
    assert "frames/s" in stats
