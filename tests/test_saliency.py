"""saliency.py: the layer it picks, the geometry of mapping 10 crops back, predict.py --cam."""
import numpy as np
import pytest
import torch

import models
import saliency
from conftest import run_script


@pytest.mark.parametrize("arch,width,want", [("VGG19", 1.0, ("features.38", (5, 5))),
                                             ("VGG19", 0.25, ("features.38", (5, 5))),
                                             ("Resnet18", 0.25, ("layers", (6, 6)))])
def test_cam_layer_is_the_deepest_with_a_spatial_map(arch, width, want):
    cfg, margs = models.scaled(arch, width)
    name, module, hw = saliency.cam_layer(models.build_model(arch, cfg=cfg, **margs))
    assert (name, hw) == want and not isinstance(module, (torch.nn.Conv2d, torch.nn.BatchNorm2d))


def test_crop_maps_land_where_their_crops_came_from(monkeypatch):
    """A fake Grad-CAM that lights only each crop's top-left pixel: on the 48x48 grid those are the
    crops' corners, mirrored crops lighting the mirrored corner (top-right of their window)."""
    import pytorch_grad_cam

    class FakeCam:
        def __init__(self, model, target_layers):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

        def __call__(self, input_tensor, targets):
            m = np.zeros((len(input_tensor), 44, 44), np.float32)
            m[:, 0, 0] = 1
            return m
    monkeypatch.setattr(pytorch_grad_cam, "GradCAM", FakeCam)
    net = models.build_model("VGG11", cfg=models.scale_cfg(models.default_cfg("VGG11"), 0.125))
    cam = saliency.face_cams(net, torch.zeros(2, 1, 48, 48, dtype=torch.uint8), [0, 3])
    lit = {tuple(p) for p in np.argwhere(cam[0] > 0)}
    # plain crops light (top, left) of (0,0) (0,4) (4,0) (4,4) (2,2); mirrored ones (top, 47 - left)
    want = {(0, 0), (0, 4), (4, 0), (4, 4), (2, 2), (0, 47), (0, 43), (4, 47), (4, 43), (2, 45)}
    assert lit == want and np.allclose(cam[0], cam[1])


def test_real_gradcam_follows_the_class_evidence():
    """A hand-made net with two channels: channel 0 lives in the top half of the crop, channel 1 in
    the bottom half; class 1 scores channel 0 and class 0 channel 1. Grad-CAM (the real library)
    of class 1 must light the top of the face and leave the bottom dark, and class 0 the reverse
    (vertical halves survive the mirrored crops)."""
    class Halves(torch.nn.Module):
        def __init__(self):
            super().__init__()
            mask = torch.zeros(1, 2, 44, 44)
            mask[:, 0, :22], mask[:, 1, 22:] = 1, 1
            self.register_buffer("mask", mask)
            self.conv = torch.nn.Conv2d(1, 2, 1)
            torch.nn.init.ones_(self.conv.weight)
            torch.nn.init.constant_(self.conv.bias, 10.0)  # positive activations everywhere
            self.act = torch.nn.ReLU()

        def forward(self, x):  # (B, 1, 44, 44)
            f = self.act(self.conv(x) * self.mask)  # (B, 2, 44, 44)
            return f.mean((2, 3)).flip(1)  # class 0 <- channel 1 (bottom), class 1 <- channel 0 (top)

    net = Halves()
    assert saliency.cam_layer(net)[0] == "act"
    x = torch.full((2, 1, 48, 48), 128, dtype=torch.uint8)
    top, bottom = saliency.face_cams(net, x, [1, 0])
    assert top[:20].mean() > 0.8 and top[30:].mean() < 0.1
    assert bottom[30:].mean() > 0.8 and bottom[:20].mean() < 0.1


def test_predict_cam_draws_a_map_per_face(tiny_checkpoint, tmp_path):
    from PIL import Image
    from test_predict_export import photo
    Image.fromarray(photo()).save(tmp_path / "p.png")
    r = run_script("predict.py", str(tmp_path / "p.png"), "--checkpoint", tiny_checkpoint, "--cam",
                   "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "out" / "p_pred.png").exists()
    r = run_script("predict.py", str(tmp_path / "p.png"), "--cam", "--no-figures")
    assert r.returncode == 2 and "--cam" in r.stderr


def test_class_figure_script(tiny_checkpoint, synthetic_h5, tmp_path):
    r = run_script("saliency.py", "--checkpoint", tiny_checkpoint, "--data", synthetic_h5, "--limit", "40",
                   "--figure", str(tmp_path / "cams.png"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "cams.png").exists() and "40 faces of PrivateTest" in r.stdout
    r = run_script("saliency.py", "--checkpoint", str(tmp_path / "none.pth"), "--figure", str(tmp_path / "x.png"))
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and not (tmp_path / "x.png").exists()
