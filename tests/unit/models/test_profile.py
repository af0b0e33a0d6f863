import hashlib
import json

import numpy as np
import pytest

from radstream.models.profile import (
    ClaheSettings,
    InputProfile,
    apply_profile,
    prepare_unit_image,
    robust_scale,
)


def _image(h: int = 300, w: int = 200, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(100, 3000, size=(h, w)).astype(np.float32)


def test_hash_is_16_hex_and_stable_across_round_trip() -> None:
    profile = InputProfile(size=256, clahe=ClaheSettings(enabled=True, clip_limit=3.0, tile_grid=4), mean=0.3, std=0.2)
    restored = InputProfile.from_dict(json.loads(json.dumps(profile.to_dict())))
    assert restored == profile
    assert restored.hash() == profile.hash()
    assert len(profile.hash()) == 16 and int(profile.hash(), 16) >= 0


def test_hash_is_sha256_of_sorted_compact_json() -> None:
    # The encoding is part of the contract: other languages must be able to recompute it.
    canonical = (
        '{"channels":1,"clahe":{"clip_limit":2.0,"enabled":false,"tile_grid":8},'
        '"interpolation":"lanczos","letterbox":true,"mean":0.0,"size":256,"std":1.0}'
    )
    assert InputProfile().hash() == hashlib.sha256(canonical.encode()).hexdigest()[:16]


def test_hash_changes_with_any_field() -> None:
    base = InputProfile()
    variants = [
        InputProfile(size=320),
        InputProfile(letterbox=False),
        InputProfile(interpolation="bilinear"),
        InputProfile(clahe=ClaheSettings(enabled=True)),
        InputProfile(mean=0.1),
        InputProfile(std=0.5),
        InputProfile(channels=3),
    ]
    assert len({base.hash(), *(v.hash() for v in variants)}) == len(variants) + 1


def test_invalid_profiles_are_rejected() -> None:
    with pytest.raises(ValueError):
        InputProfile(interpolation="cubic")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        InputProfile(channels=2)
    with pytest.raises(ValueError):
        InputProfile(std=0.0)


@pytest.mark.parametrize("channels", [1, 3])
def test_apply_profile_shape_dtype_and_normalisation(channels: int) -> None:
    profile = InputProfile(size=128, mean=0.4, std=0.25, channels=channels)
    tensor, _ = apply_profile(_image(), profile)
    assert tensor.shape == (channels, 128, 128) and tensor.dtype == np.float32
    unit, _ = prepare_unit_image(_image(), profile)
    np.testing.assert_allclose(tensor[0], (unit - 0.4) / 0.25, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(tensor[0], tensor[-1])


def test_robust_scale_clips_outliers_and_keeps_bright_bright() -> None:
    image = _image()
    image[0, 0] = 1e6  # a burned-in marker must not compress the range
    unit = robust_scale(image)
    assert unit.min() == 0.0 and unit.max() == 1.0
    assert np.mean(unit[image > 2000]) > np.mean(unit[image < 1000])


def test_clahe_changes_the_image_when_enabled() -> None:
    plain, _ = prepare_unit_image(_image(), InputProfile(size=64))
    equalised, _ = prepare_unit_image(_image(), InputProfile(size=64, clahe=ClaheSettings(enabled=True)))
    assert not np.allclose(plain, equalised)
    assert equalised.dtype == np.float32


def test_letterbox_pads_the_short_side_symmetrically() -> None:
    _, geometry = apply_profile(_image(300, 200), InputProfile(size=150))
    assert geometry.scale_x == pytest.approx(0.5) and geometry.scale_y == pytest.approx(0.5)
    assert geometry.pad_x == 25 and geometry.pad_y == 0


def test_letterbox_round_trip_maps_a_box_back() -> None:
    _, geometry = apply_profile(_image(300, 200), InputProfile(size=256))
    box = np.array([[20.0, 40.0, 120.0, 290.0]], dtype=np.float32)
    np.testing.assert_allclose(geometry.to_original(geometry.to_tensor(box)), box, atol=1e-3)


def test_stretch_round_trip_and_clipping() -> None:
    _, geometry = apply_profile(_image(300, 200), InputProfile(size=100, letterbox=False))
    assert geometry.pad_x == 0 and geometry.pad_y == 0
    box = np.array([[10.0, 30.0, 150.0, 240.0]], dtype=np.float32)
    np.testing.assert_allclose(geometry.to_original(geometry.to_tensor(box)), box, atol=1e-3)
    outside = geometry.to_original(np.array([[-20.0, -20.0, 500.0, 500.0]]))
    np.testing.assert_allclose(outside, [[0.0, 0.0, 200.0, 300.0]])


@pytest.mark.parametrize("letterbox", [True, False])
def test_a_bright_square_lands_where_the_letterbox_says(letterbox: bool) -> None:
    image = np.zeros((400, 240), dtype=np.float32)
    image[100:180, 60:140] = 1000.0
    tensor, geometry = apply_profile(image, InputProfile(size=200, letterbox=letterbox, interpolation="bilinear"))
    ys, xs = np.nonzero(tensor[0] > tensor[0].min() + 0.5 * np.ptp(tensor[0]))
    found = geometry.to_original(np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]]))
    np.testing.assert_allclose(found, [[60, 100, 140, 180]], atol=3)


def test_apply_profiles_equals_apply_profile_for_every_profile_in_force() -> None:
    """The shared steps (robust scale once, CLAHE per setting, resize per geometry) change no
    tensor: the six demo models' profiles on a real radiograph (RG1) and on a wide image."""
    from pydicom.data import get_testdata_file

    from radstream.domain.dicom.decode import decode_instance
    from radstream.models.profile import PREPROCESS_STEPS, apply_profiles
    from radstream.models.registry import default_registry_dir, load_manifests

    profiles = list({m.input_profile.hash(): m.input_profile for m in load_manifests(default_registry_dir()).values()}
                    .values())
    profiles.append(InputProfile(size=96, interpolation="bilinear", channels=3,
                                 clahe=ClaheSettings(enabled=True, clip_limit=3.0, tile_grid=4)))
    assert len({(p.size, p.letterbox, p.clahe.enabled) for p in profiles}) >= 4  # several geometries and CLAHE
    rg1 = get_testdata_file("RG1_UNCR.dcm")
    images = [_image(300, 700)]
    if rg1 is not None:
        images.append(decode_instance(open(rg1, "rb").read()).frames[0])
    for image in images:
        seconds: dict[str, float] = {}
        shared = apply_profiles(image, profiles, seconds)
        assert set(shared) == {p.hash() for p in profiles} and set(seconds) == set(PREPROCESS_STEPS)
        for profile in profiles:
            tensor, box = apply_profile(image, profile)
            got_tensor, got_box = shared[profile.hash()]
            np.testing.assert_array_equal(got_tensor, tensor)
            assert got_box == box
