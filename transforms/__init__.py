"""Batched image transforms on uint8 tensors, with per-sample randomness.

Every op takes a whole batch ``(B, C, H, W)`` on any device and draws its random numbers
from the ``generator`` it is given, so CPU and GPU runs use the same code, training needs no
DataLoader workers, and a run resumed from a saved generator state replays exactly.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F

# grey-level normalisation after /255; FER2013's mean/std are about 0.51/0.25
MEAN, STD = 0.5, 0.25
# the side of the training crop and of the test crops of a 48x48 face: what every network sees
CROP = 44


def to_float(x):
    """uint8 (B, C, H, W) -> normalised float32 of the same shape."""
    return x.float().mul_(1.0 / (255.0 * STD)).sub_(MEAN / STD)  # (x/255 - MEAN)/STD, in place


def crop(x, top, left, size, flip=None):
    """Crop every image at its own (top, left), mirrored where ``flip`` is True; one gather.

    top, left: (B,) long tensors; flip: (B,) bool tensor or None.
    """
    B, C, H, W = x.shape
    ar = torch.arange(size, device=x.device)
    cols = ar.expand(B, size) if flip is None else torch.where(flip[:, None], size - 1 - ar, ar)  # (B, s)
    idx = (top[:, None, None] + ar[None, :, None]) * W + (left[:, None] + cols)[:, None, :]  # (B, s, s)
    flat = x.reshape(B, C, H * W)
    return flat.gather(2, idx.view(B, 1, size * size).expand(B, C, size * size)).view(B, C, size, size)


def random_crop(x, size, generator=None):
    """Per-sample random crop of ``size`` x ``size`` fully inside the image (no padding)."""
    B, _, H, W = x.shape
    top = torch.randint(0, H - size + 1, (B,), device=x.device, generator=generator)
    left = torch.randint(0, W - size + 1, (B,), device=x.device, generator=generator)
    return crop(x, top, left, size)


def random_flip(x, generator=None, p=0.5):
    """Mirror each image left-right with probability ``p``."""
    flip = torch.rand(x.shape[0], device=x.device, generator=generator) < p
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def random_erasing(x, generator=None, p=0.5, area=(0.02, 0.2), aspect=(0.3, 3.3)):
    """Zero one random rectangle per image (float input, after normalisation) with prob. ``p``."""
    B, _, H, W = x.shape
    dev = x.device
    u = torch.rand(B, 5, device=dev, generator=generator)
    a = (area[0] + (area[1] - area[0]) * u[:, 0]) * H * W
    logr = torch.log(torch.tensor(aspect, device=dev))
    r = torch.exp(logr[0] + (logr[1] - logr[0]) * u[:, 1])
    h = torch.sqrt(a * r).clamp(1, H).long()
    w = torch.sqrt(a / r).clamp(1, W).long()
    top = ((H - h + 1) * u[:, 2]).long()
    left = ((W - w + 1) * u[:, 3]).long()
    on = u[:, 4] < p
    yy = torch.arange(H, device=dev)[None, :, None]
    xx = torch.arange(W, device=dev)[None, None, :]
    mask = ((yy >= top[:, None, None]) & (yy < (top + h)[:, None, None]) &
            (xx >= left[:, None, None]) & (xx < (left + w)[:, None, None]) & on[:, None, None])
    return x.masked_fill(mask[:, None], 0.0)


def random_affine(x, generator=None, degrees=10.0, scale=0.1, translate=0.0):
    """Rotate each image by its own angle in [-degrees, degrees], zoom by [1-scale, 1+scale] and
    shift by up to ``translate`` of its side in each direction.

    float (B, C, H, W) -> same shape; one batched grid_sample, edges extended (border padding)
    so no black corners appear. The shift draws its random numbers only when on, so runs
    without it replay as before.
    """
    B = x.shape[0]
    u = torch.rand(B, 2, device=x.device, generator=generator) * 2 - 1  # (B, 2) in [-1, 1)
    angle = u[:, 0] * math.radians(degrees)
    zoom = 1 + u[:, 1] * scale  # > 1 shows more of the face, i.e. zooms out
    cos, sin = torch.cos(angle) * zoom, torch.sin(angle) * zoom
    if translate > 0:  # grid units: the image spans [-1, 1], so a shift of f of the side is 2f
        shift = (torch.rand(B, 2, device=x.device, generator=generator) * 2 - 1) * (2 * translate)
        tx, ty = shift[:, 0], shift[:, 1]
    else:
        tx = ty = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def train_augment(x, size=CROP, generator=None, flip=True, erase=0.0, affine=0.0, translate=0.0, zoom=0.1):
    """uint8 (B, C, 48, 48) -> float (B, C, size, size): random crop, mirror, optional affine
    (rotation up to ``affine`` degrees, zoom +-``zoom``, shift up to ``translate`` of the side;
    on when ``affine`` or ``translate`` is) and erasing.

    Crop and mirror are one gather of the uint8 batch; only the small result becomes float.
    Each option draws random numbers only when on, so runs without it replay as before.
    """
    B, _, H, W = x.shape
    top = torch.randint(0, H - size + 1, (B,), device=x.device, generator=generator)
    left = torch.randint(0, W - size + 1, (B,), device=x.device, generator=generator)
    mirror = torch.rand(B, device=x.device, generator=generator) < 0.5 if flip else None
    x = to_float(crop(x, top, left, size, mirror))
    if affine > 0 or translate > 0:
        x = random_affine(x, generator, degrees=affine, scale=zoom, translate=translate)
    if erase > 0:
        x = random_erasing(x, generator, p=erase)
    return x


def mix(x, y, generator=None, mode="mixup", alpha=1.0):
    """Mixup (Zhang et al. 2018) or CutMix (Yun et al. 2019) of a float batch with a shuffled copy
    of itself, each image with its own weight: returns (mixed x, partner labels y2, lam (B,)).

    The loss is lam * CE(out, y) + (1 - lam) * CE(out, y2). lam ~ Beta(alpha, alpha) per image
    (drawn by numpy from a seed the torch ``generator`` gives, so a resumed run replays it);
    CutMix pastes a box of about (1 - lam) of the area from the partner and sets lam to the area
    that is really left, per image, as one batched mask.
    """
    B, _, H, W = x.shape
    dev = x.device
    perm = torch.randperm(B, device=dev, generator=generator)
    seed = int(torch.randint(0, 2**31 - 1, (1,), device=dev, generator=generator).item())
    lam = torch.from_numpy(np.random.default_rng(seed).beta(alpha, alpha, B)).float().to(dev)  # (B,)
    if mode == "mixup":
        m = lam.view(B, 1, 1, 1)
        return m * x + (1 - m) * x[perm], y[perm], lam
    if mode != "cutmix":
        raise ValueError(f"mix mode {mode!r}: mixup or cutmix")
    side = torch.sqrt(1 - lam)  # box sides as fractions, area 1 - lam before clipping
    centre = torch.rand(B, 2, device=dev, generator=generator)
    cy, cx, h, w = centre[:, 0] * H, centre[:, 1] * W, side * H, side * W
    yy = torch.arange(H, device=dev)[None, :, None] + 0.5
    xx = torch.arange(W, device=dev)[None, None, :] + 0.5
    box = ((yy - cy[:, None, None]).abs() < h[:, None, None] / 2) & \
          ((xx - cx[:, None, None]).abs() < w[:, None, None] / 2)  # (B, H, W)
    lam = 1 - box.float().mean((1, 2))  # the area each image really keeps
    return torch.where(box[:, None], x[perm], x), y[perm], lam


def ten_crop(x, size=CROP):
    """(B, C, H, W) -> (B, 10, C, size, size): four corners + centre of the image and of its mirror.

    Same order as torchvision's TenCrop: tl, tr, bl, br, centre, then those five of the mirror.
    """
    _, _, H, W = x.shape
    cy, cx = (H - size) // 2, (W - size) // 2
    offsets = [(0, 0), (0, W - size), (H - size, 0), (H - size, W - size), (cy, cx)]
    crops = [img[:, :, t:t + size, l:l + size] for img in (x, x.flip(-1)) for t, l in offsets]
    return torch.stack(crops, 1)


def center_crop(x, size=CROP):
    _, _, H, W = x.shape
    t, l = (H - size) // 2, (W - size) // 2
    return x[:, :, t:t + size, l:l + size]
