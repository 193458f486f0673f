import numpy as np
import torch
from PIL import Image
from torchvision import transforms as tv

import transforms as T


def batch(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 1, 48, 48), dtype=torch.uint8, generator=g)


def test_random_crop_is_a_window_inside_the_image_with_per_sample_offsets():
    x = batch(64)
    out = T.random_crop(x, 44, torch.Generator().manual_seed(1))
    assert out.shape == (64, 1, 44, 44) and out.dtype == torch.uint8
    offsets = []
    for i in range(64):
        hits = [(t, l) for t in range(5) for l in range(5) if torch.equal(out[i], x[i, :, t:t + 44, l:l + 44])]
        assert hits, f"sample {i} is not a 44x44 window of its own image"
        offsets.append(hits[0])
    assert len(set(offsets)) > 10  # each sample draws its own offset
    assert {t for t, _ in offsets} >= {0, 4} and {l for _, l in offsets} >= {0, 4}  # both borders reachable


def test_random_flip_is_a_mirror_per_sample():
    x = batch(64)
    out = T.random_flip(x, torch.Generator().manual_seed(2))
    flipped = [torch.equal(out[i], x[i].flip(-1)) for i in range(64)]
    kept = [torch.equal(out[i], x[i]) for i in range(64)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 15 < sum(flipped) < 49


def test_same_generator_state_same_augmentation():
    x = batch(8)
    a = T.train_augment(x, 44, torch.Generator().manual_seed(5), erase=0.5)
    b = T.train_augment(x, 44, torch.Generator().manual_seed(5), erase=0.5)
    c = T.train_augment(x, 44, torch.Generator().manual_seed(6), erase=0.5)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_ten_crop_equals_torchvision_reference():
    x = batch(4)
    ours = T.ten_crop(x, 44)  # (B, 10, 1, 44, 44)
    assert ours.shape == (4, 10, 1, 44, 44)
    for i in range(4):
        img = Image.fromarray(x[i, 0].numpy())
        ref = tv.TenCrop(44)(img)
        for k in range(10):
            np.testing.assert_array_equal(ours[i, k, 0].numpy(), np.asarray(ref[k]))
    assert torch.equal(T.center_crop(x, 44), ours[:, 4])


def test_random_erasing_zeroes_one_rectangle():
    x = torch.ones(32, 1, 44, 44)
    out = T.random_erasing(x, torch.Generator().manual_seed(0), p=1.0)
    for i in range(32):
        zero = (out[i, 0] == 0).nonzero()
        assert len(zero) > 0
        (t, l), (b, r) = zero.min(0).values.tolist(), zero.max(0).values.tolist()
        assert (out[i, 0, t:b + 1, l:r + 1] == 0).all()  # the zeros form one filled rectangle


def test_train_augment_is_a_window_or_its_mirror():
    x = batch(64)
    out = T.train_augment(x, 44, torch.Generator().manual_seed(3))
    mirrored = 0
    for i in range(64):
        wins = [x[i, :, t:t + 44, l:l + 44] for t in range(5) for l in range(5)]
        plain = any(torch.equal(out[i], T.to_float(w)) for w in wins)
        flip = any(torch.equal(out[i], T.to_float(w.flip(-1))) for w in wins)
        assert plain or flip
        mirrored += flip and not plain
    assert 15 < mirrored < 49


def test_random_affine_identity_at_zero_strength():
    x = T.to_float(batch(8))
    out = T.random_affine(x, torch.Generator().manual_seed(0), degrees=0.0, scale=0.0)
    assert torch.allclose(out, x, atol=1e-5)


def test_random_affine_rotates_each_image_by_its_own_drawn_angle():
    # a bright horizontal bar through the centre; after rotation its principal axis has the drawn angle
    B, S = 32, 44
    x = torch.zeros(B, 1, S, S)
    x[:, :, S // 2 - 1:S // 2 + 1, 4:S - 4] = 1.0
    out = T.random_affine(x, torch.Generator().manual_seed(5), degrees=30.0, scale=0.0)
    u = torch.rand(B, 2, generator=torch.Generator().manual_seed(5)) * 2 - 1
    drawn = u[:, 0] * 30.0
    yy, xx = torch.meshgrid(torch.arange(S, dtype=torch.float), torch.arange(S, dtype=torch.float), indexing="ij")
    measured = []
    for img in out[:, 0]:
        w = img.clamp(min=0) / img.clamp(min=0).sum()
        my, mx = (w * yy).sum(), (w * xx).sum()
        cyy, cxx, cxy = (w * (yy - my) ** 2).sum(), (w * (xx - mx) ** 2).sum(), (w * (yy - my) * (xx - mx)).sum()
        measured.append(float(torch.rad2deg(0.5 * torch.atan2(2 * cxy, cxx - cyy))))
    measured = torch.tensor(measured)
    sign = 1.0 if (measured * drawn).sum() > 0 else -1.0  # the direction convention does not matter
    assert (measured - sign * drawn).abs().max() < 2.0
    assert drawn.abs().max() > 20 and drawn.min() < 0 < drawn.max()  # a spread of angles was tested


def test_train_augment_affine_off_replays_old_draws():
    x = batch(16)
    a = T.train_augment(x, 44, torch.Generator().manual_seed(1))
    b = T.train_augment(x, 44, torch.Generator().manual_seed(1), affine=0.0)
    c = T.train_augment(x, 44, torch.Generator().manual_seed(1), affine=10.0)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_random_affine_translation_shifts_within_its_bound():
    """translate only: each image moves by its own whole-pixel-ish shift, never more than F of the side."""
    x = torch.zeros(64, 1, 44, 44)
    x[:, :, 20:24, 20:24] = 1.0  # a bright square in the middle
    g = torch.Generator().manual_seed(0)
    out = T.random_affine(x, g, degrees=0.0, scale=0.0, translate=0.1)
    ys, xs = torch.meshgrid(torch.arange(44.0), torch.arange(44.0), indexing="ij")
    mass = out[:, 0].sum((1, 2))
    cy, cx = (out[:, 0] * ys).sum((1, 2)) / mass - 21.5, (out[:, 0] * xs).sum((1, 2)) / mass - 21.5
    assert cy.abs().max() <= 0.1 * 44 + 0.5 and cx.abs().max() <= 0.1 * 44 + 0.5
    assert cx.std() > 1.0 and cy.std() > 1.0  # shifts differ per image
    same = T.random_affine(x, torch.Generator().manual_seed(0), degrees=0.0, scale=0.0, translate=0.0)
    assert torch.allclose(same, x, atol=1e-5)


def test_mixup_and_cutmix_mix_images_and_report_the_weights():
    g = torch.Generator().manual_seed(1)
    x = torch.arange(8, dtype=torch.float32).view(8, 1, 1, 1).expand(8, 1, 44, 44).contiguous()  # image i == i
    y = torch.arange(8)
    xm, y2, lam = T.mix(x, y, g, "mixup", 0.4)
    assert ((lam >= 0) & (lam <= 1)).all() and lam.std() > 0  # one weight per image
    want = lam.view(8, 1, 1, 1) * x + (1 - lam.view(8, 1, 1, 1)) * y2.float().view(8, 1, 1, 1)
    assert torch.allclose(xm, want)  # the partner of image i carries label y2[i] and value y2[i]
    xc, y2c, lamc = T.mix(x, y, g, "cutmix", 1.0)
    for i in range(8):  # each pixel is the image's own or its partner's; lam = the share that is its own
        own = (xc[i] == x[i]).float().mean()
        if y2c[i] != y[i]:
            assert torch.isclose(own, lamc[i]) and set(xc[i].unique().tolist()) <= {float(i), float(y2c[i])}
    # the same generator state gives the same mix (resume replays it)
    a = T.mix(x, y, torch.Generator().manual_seed(5), "cutmix", 1.0)
    b = T.mix(x, y, torch.Generator().manual_seed(5), "cutmix", 1.0)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
