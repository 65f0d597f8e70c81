import numpy as np
import pytest

from byg_cli.data.shapes import (
    COLORS,
    PALETTE,
    SHAPES,
    Attributes,
    caption,
    caption_for_index,
    render,
    sample_attributes,
    shape_mask,
    silhouette_mask,
    size_range,
)


def test_same_seed_same_image_other_seed_other_image():
    a = render(sample_attributes(np.random.default_rng(5)))
    b = render(sample_attributes(np.random.default_rng(5)))
    c = render(sample_attributes(np.random.default_rng(6)))
    assert a.dtype == np.uint8 and a.shape == (32, 32, 3)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize("image_size", [32, 48])
def test_sampled_shapes_fit_inside_a_plain_border_with_the_stated_box(image_size):
    rng = np.random.default_rng(0)
    lo, hi = size_range(image_size)
    for _ in range(300):
        attrs = sample_attributes(rng, image_size)
        assert attrs.color != attrs.background and lo <= attrs.size <= hi
        img = render(attrs, image_size)
        border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
        assert (border == PALETTE[attrs.background]).all()
        sil = silhouette_mask(attrs, image_size)
        ys, xs = np.nonzero(sil)
        assert xs.max() + 1 - xs.min() == attrs.size and ys.max() + 1 - ys.min() == attrs.size
        assert (xs.min() + xs.max() + 1) / 2 == attrs.cx and (ys.min() + ys.max() + 1) / 2 == attrs.cy
        # Only two colours appear: the shape's and the background's.
        colours = {tuple(p) for p in img.reshape(-1, 3)}
        assert colours == {PALETTE[attrs.color], PALETTE[attrs.background]}


def test_outlines_are_hollow_and_filled_shapes_are_not():
    smallest = size_range(32)[0]  # the thinnest-walled case: a triangle's hole shrinks fastest
    for shape in SHAPES:
        filled = Attributes(shape, "red", "blue", "filled", 16.0, 16.0, smallest)
        outlined = filled.replace(style="outlined")
        full, ring = shape_mask(filled), shape_mask(outlined)
        assert np.array_equal(full, silhouette_mask(filled))
        assert (ring <= full).all() and ring.sum() < 0.85 * full.sum()


def test_shape_types_have_distinct_silhouettes():
    masks = {s: silhouette_mask(Attributes(s, "red", "blue", "filled", 16.0, 16.0, 18)) for s in SHAPES}
    assert masks["square"].sum() > masks["circle"].sum() > masks["triangle"].sum()


def test_invalid_attributes_are_refused():
    with pytest.raises(ValueError, match="both 'red'"):
        Attributes("circle", "red", "red", "filled", 16.0, 16.0, 14)
    with pytest.raises(ValueError, match="not a palette colour"):
        Attributes("circle", "mauve", "red", "filled", 16.0, 16.0, 14)
    with pytest.raises(ValueError, match="hexagon"):
        Attributes("hexagon", "blue", "red", "filled", 16.0, 16.0, 14)


def test_captions_name_every_attribute_in_several_phrasings():
    attrs = Attributes("circle", "red", "blue", "outlined", 16.0, 16.0, 14)
    assert caption(attrs.replace(style="filled")) == "a red circle on a blue background"
    assert caption(attrs) == "a red outlined circle on a blue background"
    texts = {caption(attrs, np.random.default_rng(i)) for i in range(60)}
    assert len(texts) >= 4
    for text in texts:
        assert all(word in text for word in ("red", "blue", "outlined", "circle")), text
        assert " a outlined" not in text and not text.startswith("a outlined")
    assert caption(Attributes(None, None, "green", None)) == "a plain green background"


def test_caption_stream_items_are_a_function_of_seed_and_index():
    a, ta = caption_for_index(3, 17)
    b, tb = caption_for_index(3, 17)
    assert a == b and ta == tb
    empties = sum(not caption_for_index(3, i, empty_fraction=0.25)[0].has_shape for i in range(400))
    assert 60 < empties < 140
    assert set(COLORS) == set(PALETTE)
