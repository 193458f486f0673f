import json
import os

import numpy as np
import pytest
from PIL import Image

import export_onnx
import plot_curves
import predict
from conftest import run_script
from data_io import synthetic_faces

KEYS = {"file", "face", "box", "label", "probabilities"}


def photo(seed=0, size=(400, 300)):
    """A 'photo': one drawn face, enlarged, on a plain background (OpenCV's cascade finds it)."""
    import cv2
    x, _ = synthetic_faces(1, seed=seed)
    canvas = np.full((size[1], size[0]), 90, np.uint8)
    canvas[50:242, 100:292] = cv2.resize(x[0], (192, 192), interpolation=cv2.INTER_CUBIC)
    return canvas


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("photos")
    g = photo()
    Image.fromarray(g).convert("RGB").save(d / "rgb.jpg")
    rgba = Image.fromarray(g).convert("RGBA")
    rgba.putalpha(255)
    rgba.save(d / "rgba.png")
    Image.fromarray(g).convert("P").save(d / "palette.png")
    Image.fromarray(g.astype(np.uint16) * 257).save(d / "grey16.png")
    rotated = Image.fromarray(np.ascontiguousarray(np.rot90(g))).convert("RGB")  # stored sideways...
    exif = Image.Exif()
    exif[0x0112] = 8  # ...with the EXIF tag that rotates it upright
    rotated.save(d / "exif.jpg", exif=exif)
    Image.fromarray(np.tile(np.linspace(0, 255, 400, dtype=np.uint8), (300, 1))).save(d / "noface.png")
    (d / "broken.jpg").write_bytes(b"this is not a jpeg")
    return d


def test_every_image_mode_gives_a_face_with_json(tiny_checkpoint, images, tmp_path, capsys):
    files = [str(images / f) for f in ("rgb.jpg", "rgba.png", "palette.png", "grey16.png", "exif.jpg")]
    with pytest.raises(SystemExit) as e:
        predict.main([*files, "--checkpoint", tiny_checkpoint, "--json", "--out", str(tmp_path)])
    assert e.value.code == 0
    lines = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert [l["file"] for l in lines] == files  # exactly one face per photo, in order
    for l in lines:
        assert set(l) == KEYS and len(l["box"]) == 4 and l["box"][2] > 60
        assert l["label"] in l["probabilities"] and abs(sum(l["probabilities"].values()) - 1) < 1e-4
        assert l["label"] == max(l["probabilities"], key=l["probabilities"].get)
    assert len([f for f in os.listdir(tmp_path) if f.endswith("_pred.png")]) == 5
    assert (tmp_path / "rgb_pred.png").stat().st_size > 10_000


def test_no_face_and_unreadable(tiny_checkpoint, images, tmp_path):
    r = run_script("predict.py", str(images / "noface.png"), str(images / "broken.jpg"), str(images / "rgb.jpg"),
                   "--checkpoint", tiny_checkpoint, "--out", str(tmp_path))
    assert "noface.png: no face found" in r.stdout
    assert "broken.jpg: unreadable image" in r.stderr and "Traceback" not in r.stderr
    assert "rgb.jpg face 1" in r.stdout  # the file after the broken one is still processed
    assert r.returncode == 1
    r = run_script("predict.py", str(images / "noface.png"), "--checkpoint", tiny_checkpoint, "--out", str(tmp_path))
    assert r.returncode == 0 and "no face found" in r.stdout


def test_no_detect_treats_image_as_face(tiny_checkpoint, images, tmp_path, capsys):
    Image.fromarray(synthetic_faces(1, seed=2)[0][0]).save(tmp_path / "crop.png")
    with pytest.raises(SystemExit):
        predict.main([str(tmp_path / "crop.png"), "--no-detect", "--json", "--checkpoint", tiny_checkpoint,
                      "--out", str(tmp_path)])
    rec = json.loads(capsys.readouterr().out)
    assert rec["box"] == [0, 0, 48, 48]


def test_missing_checkpoint_says_how_to_get_one(images, tmp_path):
    r = run_script("predict.py", str(images / "rgb.jpg"), "--checkpoint", str(tmp_path / "none.pth"))
    assert r.returncode == 2 and "mainpro_FER.py" in r.stderr and r.stderr.strip().count("\n") == 0


def test_weights_that_do_not_fit_their_cfg_and_a_file_that_is_not_onnx(tiny_checkpoint, synthetic_h5, images, tmp_path):
    """One error line naming the file and the tensor (or format), exit 2, nothing written."""
    import torch

    from utils import load_checkpoint, save_checkpoint
    ck = load_checkpoint(tiny_checkpoint)
    ck["cfg"] = [2 * v if v != "M" else v for v in ck["cfg"]]  # a cfg edited by hand: twice the widths
    bad = tmp_path / "bad_cfg.pth"
    save_checkpoint(ck, bad)
    out = tmp_path / "out"
    for script, *args in (("predict.py", str(images / "rgb.jpg"), "--checkpoint", str(bad), "--out", str(out)),
                          ("export_onnx.py", "--checkpoint", str(bad), "--out", str(out / "m.onnx")),
                          ("plot_confusion_matrix.py", "--checkpoint", str(bad), "--data", synthetic_h5),
                          ("prune_vgg.py", "--checkpoint", str(bad), "--percent", "0.5", "--out", str(out / "p"))):
        r = run_script(script, *args)
        assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, (script, r.stderr[-800:])
        assert "bad_cfg.pth" in r.stderr and "features.0.weight" in r.stderr and "Traceback" not in r.stderr, script
        assert not out.exists(), script
    assert sorted(os.listdir(tmp_path)) == ["bad_cfg.pth"]  # plot_confusion_matrix.py writes beside it
    notonnx = tmp_path / "model.onnx"
    torch.save({"not": "onnx"}, notonnx)
    r = run_script("predict.py", str(images / "rgb.jpg"), "--onnx", str(notonnx), "--out", str(out))
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr[-800:]
    assert "model.onnx" in r.stderr and "ONNX" in r.stderr and not out.exists()


def test_onnx_parity_and_predict_with_onnx(tiny_checkpoint, images, tmp_path, capsys):
    diff = export_onnx.main(["--checkpoint", tiny_checkpoint, "--out", str(tmp_path / "m.onnx")])
    assert diff < 1e-4 and (tmp_path / "m.onnx").exists()
    out = capsys.readouterr().out
    assert "ONNX Runtime" in out and "PyTorch" in out
    runs = []
    for extra in (["--onnx", str(tmp_path / "m.onnx")], ["--checkpoint", tiny_checkpoint]):
        with pytest.raises(SystemExit):
            predict.main([str(images / "rgb.jpg"), "--json", "--out", str(tmp_path), *extra])
        runs.append(json.loads(capsys.readouterr().out))
    assert runs[0]["label"] == runs[1]["label"] and runs[0]["box"] == runs[1]["box"]
    for k, v in runs[0]["probabilities"].items():
        assert abs(v - runs[1]["probabilities"][k]) < 1e-4


def test_video_annotated_copy(tiny_checkpoint, tmp_path):
    import cv2
    path = str(tmp_path / "clip.avi")
    w = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10, (400, 300))
    for i in range(6):
        w.write(cv2.cvtColor(photo(seed=i % 2), cv2.COLOR_GRAY2BGR))
    w.release()
    r = run_script("predict.py", "--video", path, "--checkpoint", tiny_checkpoint, "--out", str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr
    frames = [json.loads(l) for l in open(tmp_path / "o" / "clip_frames.jsonl")]
    assert len(frames) == 6 and all(len(f["faces"]) == 1 for f in frames)
    assert os.path.getsize(tmp_path / "o" / "clip_pred.mp4") > 1000
    assert "frame rate:" in r.stdout and "frames/s analysed" in r.stdout


def test_half_size_detection_finds_the_same_face(images):
    """--detect-scale 0.5 searches a 4x smaller image; the box it maps back is the same face."""
    from faces import FaceDetector, load_grey
    grey = load_grey(str(images / "rgb.jpg"))
    (x, y, w, h), = FaceDetector(30)(grey)
    (x2, y2, w2, h2), = FaceDetector(30, 0.5)(grey)
    assert abs(x - x2) <= 0.15 * w and abs(y - y2) <= 0.15 * h and 0.8 < w2 / w < 1.25
    with pytest.raises(Exception, match="scale"):
        FaceDetector(30, 1.5)


def test_curves_figure(tiny_checkpoint):
    out = plot_curves.plot_run(os.path.dirname(tiny_checkpoint))
    assert os.path.getsize(out) > 20_000


def test_many_faces_batched_without_figures(tiny_checkpoint, tmp_path, capsys, monkeypatch):
    """--no-figures draws nothing; the faces of many images go through the network in a few
    batches; the output keeps the order of the files and equals one-image-at-a-time."""
    x, _ = synthetic_faces(9, seed=5)
    files = []
    for i, face in enumerate(x):
        files.append(str(tmp_path / f"f{i}.png"))
        Image.fromarray(face).save(files[-1])
    files.insert(4, str(tmp_path / "missing.png"))
    calls = []
    real = predict.Classifier.__call__
    monkeypatch.setattr(predict.Classifier, "__call__", lambda self, faces: calls.append(len(faces)) or real(self, faces))
    monkeypatch.setattr(predict, "draw_figure", lambda *a, **k: pytest.fail("a figure was drawn"))
    out = tmp_path / "figs"
    with pytest.raises(SystemExit) as e:
        predict.main([*files, "--no-detect", "--json", "--no-figures", "--batch", "4", "--checkpoint", tiny_checkpoint,
                      "--out", str(out)])
    assert e.value.code == 1  # the missing file is reported, the others are still classified
    batched = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert [r["file"] for r in batched] == [f for f in files if "missing" not in f]
    assert calls == [4, 4, 1] and not out.exists()
    calls.clear()
    monkeypatch.undo()
    with pytest.raises(SystemExit):
        predict.main([*files, "--no-detect", "--json", "--no-figures", "--batch", "1", "--checkpoint", tiny_checkpoint])
    single = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    for a, b in zip(batched, single, strict=True):
        assert a["label"] == b["label"]
        assert max(abs(a["probabilities"][k] - b["probabilities"][k]) for k in a["probabilities"]) < 1e-5


def test_video_with_an_onnx_file_without_class_names(tiny_checkpoint, tmp_path):
    import cv2
    import onnx
    export_onnx.main(["--checkpoint", tiny_checkpoint, "--out", str(tmp_path / "m.onnx")])
    m = onnx.load(tmp_path / "m.onnx")
    kept = [p for p in m.metadata_props if p.key != "class_names"]
    del m.metadata_props[:]
    m.metadata_props.extend(kept)
    onnx.save(m, tmp_path / "bare.onnx")
    path = str(tmp_path / "clip.avi")
    w = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10, (400, 300))
    for _ in range(2):
        w.write(cv2.cvtColor(photo(), cv2.COLOR_GRAY2BGR))
    w.release()
    r = run_script("predict.py", "--video", path, "--onnx", str(tmp_path / "bare.onnx"), "--out", str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr
    frames = [json.loads(l) for l in open(tmp_path / "o" / "clip_frames.jsonl")]
    assert frames[0]["faces"][0]["label"].startswith("class ")


def test_int8_export_scores_like_fp32_and_predicts(tiny_checkpoint, synthetic_h5, images, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    export_onnx.main(["--checkpoint", tiny_checkpoint, "--out", str(out), "--int8", "--data", synthetic_h5,
                      "--calib", "40", "--eval-split", "PublicTest"])
    text = capsys.readouterr().out
    acc = {name: float(text.split(f"ONNX Runtime {name}: ")[1].split("%")[0]) for name in ("fp32", "int8")}
    assert (tmp_path / "m.int8.onnx").exists() and "int8" in text and "calibrated on 40 Training faces" in text
    import onnx
    ops = {n.op_type for n in onnx.load(str(tmp_path / "m.int8.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # really quantised
    assert acc["fp32"] > 60 and abs(acc["int8"] - acc["fp32"]) < 5, acc
    with pytest.raises(SystemExit):
        predict.main([str(images / "rgb.jpg"), "--json", "--out", str(tmp_path), "--onnx", str(tmp_path / "m.int8.onnx")])
    assert json.loads(capsys.readouterr().out)["label"]


def test_pareto_bench_scores_and_times_every_runtime(tiny_checkpoint, synthetic_h5, tmp_path):
    """bench/pareto.py end to end on a tiny run: fp32 and int8 ONNX scored, four latencies per run,
    the table (ratios to the first run) and the figure written."""
    run = os.path.dirname(tiny_checkpoint)
    r = run_script("bench/pareto.py", "--data", synthetic_h5, "--runs", f"base={run}", f"again={run}",
                   "--rounds", "1", "--calib", "4", "--onnx-dir", str(tmp_path / "onnx"),
                   "--figure", str(tmp_path / "pareto.png"))
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [line for line in r.stdout.splitlines() if line.startswith(("| base |", "| again |"))]
    assert len(rows) == 2 and "(1.00x)" in rows[0] and rows[0].count("ms") == 0
    cells = rows[0].split("|")[1:-1]
    assert len(cells) == 10 and all(float(c.split()[0]) >= 0 for c in cells[4:])
    assert os.path.getsize(tmp_path / "pareto.png") > 1000
    assert (tmp_path / "onnx" / "base.int8.onnx").exists()


def test_random_weight_int8_export_quantises_every_conv(tmp_path):
    """bench_prune.py --onnx times untrained nets: with all-zero folded biases two layers of one width
    share a bias, the quantiser routes it through an Identity node and ONNX Runtime runs that conv in
    fp32. distinct_biases must give every conv a bias of its own (plain DQ -> Conv)."""
    import sys

    import onnx
    import torch

    import models
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "bench"))
    from bench_prune import distinct_biases

    def identity_fed_convs(net, name):
        f32 = str(tmp_path / f"{name}.onnx")
        export_onnx.export({"arch": "VGG19", "cfg": net.cfg, "model_args": net.model_args, "net": net.state_dict(),
                            "num_classes": 7, "class_names": [str(i) for i in range(7)]}, f32)
        faces = torch.randint(0, 256, (8, 1, 48, 48), dtype=torch.uint8)
        g = onnx.load(export_onnx.write_int8(f32, export_onnx.int8_path(f32), faces)).graph
        prod = {o: n.op_type for n in g.node for o in n.output}
        return sum(prod.get(i) == "Identity" for n in g.node if n.op_type == "Conv" for i in n.input)

    net = models.build_model("VGG19", cfg=[8, 8, "M", 16, 16, "M", 16, 16, 16, 16, "M", 16, 16, 16, 16, "M",
                                           16, 16, 16, 16, "M"]).eval()
    assert identity_fed_convs(net, "plain") > 0  # the trap is real for an untrained net
    assert identity_fed_convs(distinct_biases(net), "distinct") == 0
