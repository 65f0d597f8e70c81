import numpy as np
import pytest
import torch
from scipy import ndimage

from byg_cli.data.images import to_tensor
from byg_cli.data.shapes import Attributes, render, sample_attributes, shape_mask, silhouette_mask
from byg_cli.data.shapes_reader import attributes_match, clean_render_iou, mask_iou, read, read_attributes, rerender_masks


def test_reader_is_exact_on_2000_clean_renders():
    rng = np.random.default_rng(2026)
    wrong = []
    for i in range(2000):
        attrs = sample_attributes(rng, empty=i % 10 == 0)
        reading = read(render(attrs))
        if reading.attributes != attrs:  # every attribute, centre and size included, exactly
            wrong.append((attrs, reading.attributes))
        assert np.array_equal(reading.mask, shape_mask(attrs))
        assert np.array_equal(reading.region, silhouette_mask(attrs))
        assert clean_render_iou(reading) == 1.0
    assert not wrong, f"{len(wrong)} of 2000 misread, e.g. {wrong[:3]}"


def test_reader_takes_float_tensors_in_the_model_range():
    attrs = Attributes("triangle", "cyan", "black", "outlined", 15.5, 14.5, 17)
    assert read_attributes(to_tensor(render(attrs))) == attrs
    assert read_attributes(to_tensor(render(attrs)).numpy()) == attrs
    with pytest.raises(ValueError, match="3 dimensions"):
        read(torch.zeros(1, 3, 32, 32))


def _degrade(img, noise, blur, rng):
    x = img.astype(np.float64)
    if blur:
        x = ndimage.gaussian_filter(x, (blur, blur, 0))
    x = x + rng.normal(0.0, noise, x.shape)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _accuracy(noise, blur, n=200):
    rng = np.random.default_rng(int(noise * 10 + blur * 100))
    hits = {k: 0 for k in ("background", "color", "shape", "style", "geometry", "crisp")}
    for _ in range(n):
        attrs = sample_attributes(rng)
        reading = read(_degrade(render(attrs), noise, blur, rng))
        got = reading.attributes
        for k in ("background", "color", "shape", "style"):
            hits[k] += getattr(got, k) == getattr(attrs, k)
        hits["geometry"] += attributes_match(attrs, got, centre_tol=1.0, size_tol=1.0)
        hits["crisp"] += clean_render_iou(reading) >= 0.8
    return {k: v / n for k, v in hits.items()}


# Noise std in 0-255 units, blur as the Gaussian sigma in pixels. Measured (200 images each): every attribute
# 100% up to noise 50 alone or blur 1.0 alone, and with noise 25 + blur 0.7 together.
@pytest.mark.parametrize("noise,blur", [(25.0, 0.0), (50.0, 0.0), (0.0, 0.7), (0.0, 1.0), (25.0, 0.7)])
def test_reader_tolerates_moderate_noise_and_blur(noise, blur):
    acc = _accuracy(noise, blur)
    assert min(acc.values()) >= 0.98, acc


def test_reader_degrades_rather_than_breaks_under_heavy_noise_and_blur():
    acc = _accuracy(40.0, 1.0)
    assert acc["background"] == 1.0 and acc["color"] >= 0.95 and acc["shape"] >= 0.85, acc
    heavy = _accuracy(0.0, 1.4)  # outlines wash out: the limit of the reader
    assert heavy["background"] == 1.0 and heavy["geometry"] < 0.9, heavy


def test_a_ragged_blob_is_not_crisp_and_a_small_speck_is_no_shape():
    attrs = Attributes("circle", "red", "blue", "filled", 16.0, 16.0, 20)
    img = render(attrs)
    # bite a quarter out of the circle: still mostly red, but no longer any clean shape
    yy, xx = np.mgrid[0:32, 0:32]
    img[(xx >= 14) & (yy >= 14)] = (20, 40, 220)
    reading = read(img)
    assert reading.attributes.color == "red" and clean_render_iou(reading) < 0.8
    speck = render(Attributes(None, None, "blue", None))
    speck[10:13, 10:13] = (220, 20, 20)
    assert not read_attributes(speck).has_shape


def test_mask_iou_and_rerender():
    a = np.zeros((4, 4), bool)
    b = a.copy()
    assert mask_iou(a, b) == 1.0
    a[:2], b[1:3] = True, True
    assert mask_iou(a, b) == pytest.approx(1 / 3)
    attrs = Attributes("square", "green", "white", "outlined", 16.0, 16.0, 14)
    mask, sil = rerender_masks(attrs)
    assert mask_iou(mask, read(render(attrs)).mask) == 1.0 and sil.sum() == 14 * 14
