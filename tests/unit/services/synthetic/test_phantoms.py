import numpy as np

from radstream.services.synthetic.phantoms import make_phantom


def test_phantom_fields_and_ranges() -> None:
    phantom = make_phantom(np.random.default_rng(1), size=(384, 320), n_lesions=3)
    assert phantom.image.shape == (384, 320) and phantom.image.dtype == np.float32
    assert 0 <= phantom.image.min() and phantom.image.max() <= 4095
    assert phantom.boxes.shape == (3, 4) and phantom.boxes.dtype == np.float32
    assert phantom.labels == ["nodule"] * 3
    x1, y1, x2, y2 = phantom.boxes.T
    assert np.all((0 <= x1) & (x1 < x2) & (x2 <= 320) & (0 <= y1) & (y1 < y2) & (y2 <= 384))


def test_about_half_are_normal_and_sizes_vary() -> None:
    rng = np.random.default_rng(2)
    phantoms = [make_phantom(rng, size=256) for _ in range(60)]
    normal = sum(len(p.boxes) == 0 for p in phantoms)
    assert 18 <= normal <= 42
    sides = np.concatenate([p.boxes[:, 2] - p.boxes[:, 0] for p in phantoms]) * 2  # 256 -> 512 scale
    assert sides.min() < 16 and sides.max() > 30


def test_nodules_are_brighter_than_their_surroundings() -> None:
    phantom = make_phantom(np.random.default_rng(3), size=512, n_lesions=1)
    x1, y1, x2, y2 = phantom.boxes[0].astype(int)
    inside = phantom.image[y1:y2, x1:x2].mean()
    pad = 12
    ring = phantom.image[max(0, y1 - pad) : y2 + pad, max(0, x1 - pad) : x2 + pad]
    assert inside > ring.mean()


def test_same_seed_same_phantom() -> None:
    a = make_phantom(np.random.default_rng(4))
    b = make_phantom(np.random.default_rng(4))
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.boxes, b.boxes)
