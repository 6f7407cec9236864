"""Flat-field engine: simulated ground truth, grid geometry, profiles files, apply, bad inputs."""
from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from camcorr.errors import CamcorrError
from camcorr.flatfield import (Profiles, apply_flatfield, check_tile_numbers, corner_centre_ratio,
                               corner_tiles, estimate_flatfield, estimate_from_empty_tiles,
                               estimate_from_z_ranges, flatfield_quality, load_profiles,
                               read_profiles, resample_profiles, sample_planes, save_profiles,
                               tile_grid, TileSet)
from camcorr.flatfield._kernels import median_over_planes, median_over_planes_numpy
from camcorr.simulate.tiles import simulate_tiles
from _helpers import rms_rel


# --------------------------------------------------------------------------------------------
# grid geometry
# --------------------------------------------------------------------------------------------
def test_inverted_n_grid_matches_the_seed_drawing():
    assert tile_grid(3, 3).tolist() == [[1, 4, 7], [2, 5, 8], [3, 6, 9]]
    assert corner_tiles(3, 3) == (1, 3, 7, 9)
    # the seed's formula 1, R, (C-1)R+1, CR
    assert corner_tiles(7, 9) == (1, 7, 8 * 7 + 1, 63)


def test_serpentine_and_row_major():
    assert tile_grid(3, 3, "serpentine").tolist() == [[1, 2, 3], [6, 5, 4], [7, 8, 9]]
    assert tile_grid(2, 3, "row-major").tolist() == [[1, 2, 3], [4, 5, 6]]
    assert corner_tiles(7, 9, "serpentine") == (1, 9, 55, 63)
    assert corner_tiles(2, 3, "row-major") == (1, 3, 4, 6)


@pytest.mark.parametrize("order", ["inverted-n", "serpentine", "row-major"])
def test_corner_tiles_without_duplicates_on_single_row_or_column(order):
    assert corner_tiles(1, 5, order) == (1, 5)
    assert corner_tiles(4, 1, order) == (1, 4)
    assert corner_tiles(1, 1, order) == (1,)


def test_every_tile_once_in_every_order():
    for order in ("inverted-n", "serpentine", "row-major"):
        g = tile_grid(4, 5, order)
        assert sorted(g.ravel().tolist()) == list(range(1, 21))


def test_wsi_brain_layout_is_a_serpentine(shared_data):
    """TileConfiguration.txt of the real mosaic: 9 columns x 7 rows, snake by rows."""
    text = (shared_data / "basicpy_wsi_brain" / "TileConfiguration.txt").read_text()
    pos = {}
    for line in text.splitlines():
        if line.startswith("C3-"):
            name, _, xy = line.split(";")
            x, y = (float(v) for v in xy.strip(" ()").split(","))
            pos[int(name[-8:-4])] = (round(y / 460), round(x / 460))
    grid = np.zeros((7, 9), int)
    for n, (r, c) in pos.items():
        grid[r, c] = n
    ours = tile_grid(7, 9, "serpentine")[:, ::-1]
    # the data snakes starting right-to-left: the mirror image of ours (same corners); the
    # file lists the first 6 rows (54 tiles) of the 7 x 9 mosaic
    listed = grid > 0
    assert listed.sum() >= 54
    assert np.array_equal(grid[listed], ours[listed])
    assert corner_tiles(7, 9, "serpentine") == tuple(sorted(
        {int(ours[0, 0]), int(ours[0, -1]), int(ours[-1, 0]), int(ours[-1, -1])}))


# --------------------------------------------------------------------------------------------
# sampler and median kernel
# --------------------------------------------------------------------------------------------
def test_sampler_is_seeded_uniform_and_in_range():
    cands = [(0, range(0, 10)), (3, [0, 1, 2, 90, 91])]
    a = sample_planes(cands, 7, seed=3)
    assert a == sample_planes(cands, 7, seed=3)
    assert a != sample_planes(cands, 7, seed=4)
    assert len(set(a)) == 7
    allowed = {(0, z) for z in range(10)} | {(3, z) for z in (0, 1, 2, 90, 91)}
    assert set(a) <= allowed
    assert sample_planes(cands, None) == sorted(allowed)  # all when fewer than the cap
    assert len(sample_planes(cands, None, max_planes=4)) == 4


@pytest.mark.parametrize("k", [1, 2, 3, 19, 20, 57])
def test_median_kernel_matches_numpy(k, rng):
    stack = rng.normal(100, 10, (k, 33, 41)).astype(np.float32)
    stack[:, 5, 5] = 7.0  # ties
    np.testing.assert_allclose(median_over_planes(stack), median_over_planes_numpy(stack),
                               rtol=0, atol=1e-5)


@pytest.mark.parametrize("backend", ["network", "select"])
@pytest.mark.parametrize("k", [2, 3, 11, 64, 65, 128, 129])
def test_median_kernels_match_numpy(backend, k, rng):
    # both numba kernels (sorting network and selection), on widths that are not a multiple
    # of the network's 64-pixel chunk, with ties and sizes on both sides of the switch
    stack = rng.normal(100, 10, (k, 7, 131)).astype(np.float32)
    stack[:, 3, 70] = 7.0
    stack[: k // 2, 4, 5] = 1.0
    np.testing.assert_array_equal(median_over_planes(stack, backend=backend),
                                  median_over_planes_numpy(stack))


# --------------------------------------------------------------------------------------------
# simulated ground truth
# --------------------------------------------------------------------------------------------
def test_simulator_truth_is_consistent():
    sim = simulate_tiles(4, 5, (64, 64), seed=3)
    assert sim.empty_tiles and set(corner_tiles(4, 5)) <= set(sim.empty_tiles)
    assert abs(sim.flatfield.mean() - 1) < 1e-12
    assert 0.55 < corner_centre_ratio(sim.flatfield) < 0.75
    for n in sim.empty_tiles:
        assert not sim.specimen[n - 1].any()
    # an empty tile is darkfield + flat * background (+ noise)
    t = sim.tiles[sim.empty_tiles[0] - 1].astype(float)
    model = sim.darkfield + sim.flatfield * sim.background[0]
    assert abs((t - model).mean()) < 1.0


def test_empty_tiles_recover_flatfield_within_2_percent():
    sim = simulate_tiles(4, 5, (128, 128), seed=1)
    prof = estimate_from_empty_tiles(sim.tiles, sim.empty_tiles, darkfield=sim.darkfield)
    err = rms_rel(prof.flatfield, sim.flatfield)
    assert err < 0.02, err
    assert prof.source == "empty-tiles"
    assert prof.meta["tiles_used"] == list(sim.empty_tiles)
    # quality numbers: the shading is removed (held-out half)
    q = prof.quality
    assert q["held_out"]
    assert q["corner_centre_before"] < 0.75
    assert abs(q["corner_centre_after"] - 1) < 0.02
    assert q["cv_after"] < 0.2 * q["cv_before"]
    # baseline: the background level left after correction, ADU (background is 300 photons)
    assert 250 < prof.baseline < 310


def test_empty_tiles_with_scalar_offset_and_3d_tiles():
    sim = simulate_tiles(3, 3, (96, 96), n_z=12, seed=5)
    # the whole 3D stacks of the empty corner tiles are empty only outside the z-levels, so
    # use the z-range estimator for 3D data; 2D empty tiles with a scalar camera offset:
    sim2 = simulate_tiles(4, 5, (96, 96), seed=6, dark_amplitude=0.0)
    assert len(sim2.empty_tiles) >= 4
    prof = estimate_from_empty_tiles(sim2.tiles, sim2.empty_tiles, darkfield=100.0)
    assert rms_rel(prof.flatfield, sim2.flatfield) < 0.02
    assert np.allclose(prof.darkfield, 100.0)
    prof3 = estimate_from_z_ranges(sim.tiles, sim.z_levels, grid=sim.grid,
                                   darkfield=sim.darkfield)
    assert rms_rel(prof3.flatfield, sim.flatfield) < 0.02


def test_z_range_scenario_within_2_percent_and_samples_outside_the_levels():
    sim = simulate_tiles(3, 3, (128, 128), n_z=40, seed=2)
    assert sim.empty_tiles == ()  # no empty tile: the specimen fills every tile's middle planes
    prof = estimate_from_z_ranges(sim.tiles, sim.z_levels, grid=sim.grid, order=sim.order,
                                  darkfield=sim.darkfield, seed=1)
    assert rms_rel(prof.flatfield, sim.flatfield) < 0.02
    assert prof.meta["tiles_used"] == list(corner_tiles(3, 3))
    low, high = sim.z_levels
    # planes z < low and z > high: (low + (40 - 1 - high)) per tile
    assert prof.meta["n_planes_used"] == 4 * (low + 39 - high)
    assert abs(prof.quality["corner_centre_after"] - 1) < 0.03


def test_z_levels_follow_the_seed_text_not_its_code():
    """Tiles whose planes inside [low, high] hold the specimen: sampling [Z - high, Z) (the
    upstream code) would include specimen planes; we sample z < low or z > high only."""
    nz, low, high = 30, 5, 24
    flat = np.ones((32, 32), np.float32)
    tile = np.full((nz, 32, 32), 100.0, np.float32)
    tile[low:high + 1] = 5000.0  # specimen everywhere in the middle
    ts = TileSet([tile])
    from camcorr.flatfield.empty import eligible_z
    zs = eligible_z(nz, (low, high))
    assert zs == [0, 1, 2, 3, 4, 25, 26, 27, 28, 29]
    prof = estimate_from_z_ranges([tile], (low, high), normalize_planes=False, sigma=0)
    assert prof.meta["n_planes_used"] == 10
    assert abs(prof.baseline - 100) < 1e-3  # no specimen plane got in
    np.testing.assert_allclose(prof.flatfield, flat, atol=1e-6)
    ts.close()


def test_streaming_row_blocks_give_the_same_result():
    sim = simulate_tiles(3, 3, (64, 64), n_z=16, seed=8)
    kw = dict(grid=sim.grid, darkfield=sim.darkfield)
    full = estimate_from_z_ranges(sim.tiles, sim.z_levels, **kw)
    small = estimate_from_z_ranges(sim.tiles, sim.z_levels, memory_limit=20_000, **kw)
    np.testing.assert_allclose(small.flatfield, full.flatfield, rtol=1e-5)
    assert small.baseline == pytest.approx(full.baseline, rel=1e-5)


def test_memory_independent_of_plane_count(tmp_path):
    """Only the sampled planes are read: a 3D TIFF with 4x more planes costs the same."""
    import tracemalloc

    rng = np.random.default_rng(0)
    peaks = []
    for nz in (40, 160):
        path = tmp_path / f"t{nz}.tif"
        tifffile.imwrite(path, rng.poisson(200, (nz, 64, 64)).astype(np.uint16))
        tracemalloc.start()
        estimate_from_z_ranges([path], (10, nz - 11), n_planes=20, seed=0)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 1.3 * peaks[0], peaks
    assert peaks[1] < 40 * 64 * 64 * 4  # far below holding the stack as float32


def test_files_and_arrays_give_the_same_profiles(tmp_path):
    sim = simulate_tiles(3, 3, (64, 64), n_z=10, seed=9)
    paths = []
    for i, t in enumerate(sim.tiles):
        p = tmp_path / f"tile{i + 1:02d}.tif"
        tifffile.imwrite(p, t, compression="zlib" if i % 2 else None)  # pages and memmap
        paths.append(p)
    a = estimate_from_z_ranges(sim.tiles, sim.z_levels, grid=sim.grid, darkfield=100.0)
    b = estimate_from_z_ranges(paths, sim.z_levels, grid=sim.grid, darkfield=100.0)
    np.testing.assert_array_equal(a.flatfield, b.flatfield)


def test_mean_statistic_and_all_tiles():
    sim = simulate_tiles(3, 3, (64, 64), seed=4)
    prof = estimate_flatfield(sim.tiles, method="empty-tiles", statistic="mean",
                              darkfield=sim.darkfield)
    assert prof.meta["tiles_used"] == list(range(1, 10))
    assert prof.meta["statistic"] == "mean"


# --------------------------------------------------------------------------------------------
# profiles files
# --------------------------------------------------------------------------------------------
def _write_npz(path, **arrays):
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)


def test_load_profiles_measured_scenario(tmp_path):
    flat = np.linspace(0.8, 1.2, 64 * 64).reshape(64, 64)
    _write_npz(tmp_path / "models" / "GFP" / "profiles.npz", flatfield=flat)
    prof = load_profiles(tmp_path / "models", "GFP")
    np.testing.assert_allclose(prof.flatfield, flat, rtol=1e-6)
    assert np.all(prof.darkfield == 0) and prof.baseline == 0.0
    _write_npz(tmp_path / "models" / "RFP" / "profiles.npz", flatfield=flat,
               darkfield=np.full((64, 64), 99.0), baseline=np.arange(5.0))
    prof = load_profiles(tmp_path / "models", "RFP")
    assert prof.per_image_baseline and prof.baseline.tolist() == [0, 1, 2, 3, 4]


def test_profiles_missing_key_folder_or_channel(tmp_path):
    _write_npz(tmp_path / "m" / "GFP" / "profiles.npz", darkfield=np.zeros((8, 8)))
    with pytest.raises(CamcorrError) as exc:
        load_profiles(tmp_path / "m", "GFP")
    msg = str(exc.value)
    assert "flatfield" in msg and "GFP" in msg and str(tmp_path / "m") in msg
    with pytest.raises(CamcorrError, match="channel 'DAPI'.*GFP"):
        load_profiles(tmp_path / "m", "DAPI")
    with pytest.raises(CamcorrError, match="models folder not found"):
        load_profiles(tmp_path / "nope", "GFP")
    (tmp_path / "m" / "CY5").mkdir()
    with pytest.raises(CamcorrError, match="profiles.npz missing"):
        load_profiles(tmp_path / "m", "CY5")


def test_profiles_with_bad_values_are_refused(tmp_path):
    flat = np.ones((8, 8))
    flat[2, 2] = np.nan
    _write_npz(tmp_path / "a" / "c" / "profiles.npz", flatfield=flat)
    with pytest.raises(CamcorrError, match="NaN"):
        load_profiles(tmp_path / "a", "c")
    flat[2, 2] = 0
    _write_npz(tmp_path / "b" / "c" / "profiles.npz", flatfield=flat)
    with pytest.raises(CamcorrError, match="zero or negative"):
        load_profiles(tmp_path / "b", "c")


def test_save_and_read_round_trip(tmp_path):
    sim = simulate_tiles(3, 3, (64, 64), seed=2)
    prof = estimate_from_empty_tiles(sim.tiles, sim.empty_tiles, darkfield=sim.darkfield)
    out = save_profiles(prof, tmp_path / "p.npz")
    back = read_profiles(out)
    np.testing.assert_array_equal(back.flatfield, prof.flatfield)
    np.testing.assert_allclose(back.darkfield, prof.darkfield)
    assert back.baseline == pytest.approx(prof.baseline, rel=1e-6)
    assert back.source == "empty-tiles" and back.quality["cv_after"] == pytest.approx(
        prof.quality["cv_after"])
    with np.load(out) as npz:  # BaSiCPy's keys
        assert {"flatfield", "darkfield", "baseline"} <= set(npz.files)
    # folder form: <dir>/profiles.npz + settings.json without null smoothness values
    out2 = save_profiles(prof, tmp_path / "models" / "GFP")
    settings = json.loads((out2.parent / "settings.json").read_text())
    assert settings["smoothness_flatfield"] is not None
    assert load_profiles(tmp_path / "models", "GFP").flatfield.shape == (64, 64)


def test_save_never_overwrites_an_input(tmp_path):
    prof = Profiles(flatfield=np.ones((8, 8)))
    src = tmp_path / "in.npz"
    src.write_bytes(b"x")
    with pytest.raises(CamcorrError, match="overwrite"):
        save_profiles(prof, src, inputs=[src])


# --------------------------------------------------------------------------------------------
# apply
# --------------------------------------------------------------------------------------------
def test_apply_inverts_the_forward_model():
    rng = np.random.default_rng(1)
    flat = simulate_tiles(1, 1, (48, 64), seed=0).flatfield
    dark = np.full(flat.shape, 100.0)
    truth = rng.uniform(200, 2000, (3,) + flat.shape)
    raw = np.rint(dark + flat * truth).astype(np.uint16)
    prof = Profiles(flatfield=flat, darkfield=dark, baseline=0.0)
    out = apply_flatfield(raw, prof, rescale="none")
    assert out.dtype == np.uint16 and out.shape == raw.shape
    assert np.max(np.abs(out.astype(float) - truth)) < 1.5  # rounding only
    f32 = apply_flatfield(raw.astype(np.float32), prof, rescale="none")
    assert f32.dtype == np.float32
    np.testing.assert_allclose(f32, truth, atol=1.0)
    # the default rescale ('ceiling') divides by the flat-field over its minimum: darker by it
    np.testing.assert_allclose(apply_flatfield(raw.astype(np.float32), prof),
                               truth * flat.min(), atol=1.0)


def test_apply_baseline_and_clipping():
    prof = Profiles(flatfield=np.ones((4, 4)), darkfield=np.zeros((4, 4)), baseline=50.0)
    img = np.array([[10, 60, 65535, 70]] * 4, np.uint16)
    assert apply_flatfield(img, prof).tolist() == img.tolist()  # default: no baseline
    out = apply_flatfield(img, prof, baseline="auto")
    assert out.tolist()[0] == [0, 10, 65485, 20]  # floored at 0, not wrapped
    assert apply_flatfield(img, prof, baseline="none").tolist() == img.tolist()
    f = apply_flatfield(img.astype(np.float32), prof, clip=False, baseline="auto")
    assert f[0, 0] == -40
    # per-image baseline: ignored by 'auto', used with 'subtract' and an index
    prof2 = Profiles(flatfield=np.ones((4, 4)), baseline=[5.0, 7.0])
    assert apply_flatfield(img, prof2, baseline="auto")[0, 1] == 60
    assert apply_flatfield(img, prof2, baseline="subtract", index=1)[0, 1] == 53
    with pytest.raises(CamcorrError, match="index"):
        apply_flatfield(img, prof2, baseline="subtract")


def test_apply_to_16bit_saturation_keeps_dtype_and_clips():
    prof = Profiles(flatfield=np.full((4, 4), 0.5))
    img = np.full((4, 4), 60000, np.uint16)
    out = apply_flatfield(img, prof, rescale="none")
    assert out.dtype == np.uint16 and np.all(out == 65535)


def test_apply_shape_mismatch_and_resampling():
    flat = simulate_tiles(1, 1, (64, 64), seed=0).flatfield
    prof = Profiles(flatfield=flat, darkfield=np.full((64, 64), 10.0))
    img = np.full((32, 32), 110.0, np.float32)
    with pytest.raises(CamcorrError, match="differ in size"):
        apply_flatfield(img, prof)
    out = apply_flatfield(img, prof, resample=True, rescale="none")
    rp = resample_profiles(prof, (32, 32))
    assert rp.flatfield.shape == (32, 32) and abs(rp.flatfield.mean() - 1) < 1e-6
    np.testing.assert_allclose(rp.darkfield, 10.0)
    # float data: resampled flat equals the 2x2 block mean of the original flat (bilinear)
    block = flat.reshape(32, 2, 32, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(rp.flatfield, block / block.mean(), rtol=0.01)
    np.testing.assert_allclose(out, 100.0 / rp.flatfield, rtol=1e-5)


def test_apply_refuses_nan():
    prof = Profiles(flatfield=np.ones((4, 4)))
    img = np.ones((4, 4), np.float32)
    img[1, 1] = np.nan
    with pytest.raises(CamcorrError, match="NaN"):
        apply_flatfield(img, prof)


def test_quality_numbers():
    flat = simulate_tiles(1, 1, (128, 128), seed=0).flatfield
    ref = 100 + 500 * flat
    q = flatfield_quality(ref, flat, 100)
    assert q["corner_centre_before"] < 0.75
    assert q["corner_centre_after"] == pytest.approx(1.0, abs=1e-9)
    assert q["cv_after"] < 1e-9 < q["cv_before"]


# --------------------------------------------------------------------------------------------
# bad inputs: each a clear CamcorrError
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_sim():
    return simulate_tiles(3, 3, (32, 32), n_z=12, seed=11)


@pytest.mark.parametrize("numbers, match", [
    ([0, 2], "out of range"), ([10], "out of range"), ([-1], "out of range"),
    ([2, 2], "twice"), ([1.5], "whole"), ([], "no tile numbers")])
def test_bad_tile_numbers(small_sim, numbers, match):
    with pytest.raises(CamcorrError, match=match) as exc:
        estimate_from_empty_tiles(small_sim.tiles, numbers) if numbers else \
            check_tile_numbers(numbers, 9)
    assert "tile" in str(exc.value)


@pytest.mark.parametrize("levels, match", [
    ((5, 5), "equal"), ((8, 3), "wrong order"), ((-1, 5), "out of range"),
    ((2, 12), "out of range"), ((0, 11), "no plane"), (("a", 3), "whole numbers")])
def test_bad_z_levels(small_sim, levels, match):
    with pytest.raises(CamcorrError, match=match):
        estimate_from_z_ranges(small_sim.tiles, levels, grid=(3, 3))


def test_z_levels_need_3d_tiles():
    sim = simulate_tiles(2, 2, (32, 32), seed=1)
    with pytest.raises(CamcorrError, match="3D"):
        estimate_from_z_ranges(sim.tiles, (1, 2))


def test_grid_must_match_tile_count(small_sim):
    with pytest.raises(CamcorrError, match="grid does not match"):
        estimate_from_z_ranges(small_sim.tiles, (3, 8), grid=(2, 3))
    with pytest.raises(CamcorrError, match="grid does not match"):
        estimate_flatfield(small_sim.tiles, empty_tiles=[1], grid=(4, 4))


def test_fewer_planes_than_requested(small_sim):
    low, high = 3, 8  # 3 + 3 planes per tile, 4 corner tiles -> 24 eligible
    with pytest.raises(CamcorrError, match="fewer eligible planes than requested") as exc:
        estimate_from_z_ranges(small_sim.tiles, (low, high), grid=(3, 3), n_planes=25)
    assert "24" in str(exc.value)
    prof = estimate_from_z_ranges(small_sim.tiles, (low, high), grid=(3, 3), n_planes=24)
    assert prof.meta["n_planes_used"] == 24


def test_nans_in_tiles():
    sim = simulate_tiles(2, 2, (32, 32), seed=1)
    tiles = [t.astype(np.float32) for t in sim.tiles]
    tiles[0][3, 3] = np.nan
    with pytest.raises(CamcorrError, match="NaN") as exc:
        estimate_from_empty_tiles(tiles, [1, 2])
    assert "tile 1" in str(exc.value)


def test_tiles_of_different_size():
    with pytest.raises(CamcorrError, match="differ in size"):
        estimate_from_empty_tiles([np.ones((8, 8)), np.ones((8, 9))])


def test_darkfield_above_signal_is_explained():
    sim = simulate_tiles(2, 2, (32, 32), seed=1)
    with pytest.raises(CamcorrError, match="darkfield"):
        estimate_from_empty_tiles(sim.tiles, [1], darkfield=5000.0)


# --------------------------------------------------------------------------------------------
# binned statistic (default b = floor(sigma)) against the full-resolution one
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape, b", [((64, 48), 2), ((64, 48), 3), ((50, 37), 4)])
def test_bin2d_is_the_block_mean(shape, b, rng):
    from camcorr.flatfield.empty import bin2d
    a = rng.random(shape).astype(np.float32)
    ny, nx = shape
    ref = np.array([[a[i:i + b, j:j + b].mean() for j in range(0, nx, b)]
                    for i in range(0, ny, b)])
    np.testing.assert_allclose(bin2d(a, b), ref, atol=1e-6)


def test_unbin2d_reproduces_a_linear_ramp():
    from camcorr.flatfield.empty import bin2d, unbin2d
    y, x = np.mgrid[0:64, 0:48].astype(np.float32)
    ramp = 1 + 0.01 * y + 0.02 * x
    back = unbin2d(bin2d(ramp, 4), 4, ramp.shape)
    np.testing.assert_allclose(back[4:-4, 4:-4], ramp[4:-4, 4:-4], atol=1e-5)


def test_binned_and_full_resolution_estimates_agree():
    sim = simulate_tiles(4, 5, (128, 128), seed=1)
    kw = dict(darkfield=sim.darkfield, sigma=4.0)
    binned = estimate_from_empty_tiles(sim.tiles, sim.empty_tiles, **kw)
    full = estimate_from_empty_tiles(sim.tiles, sim.empty_tiles, binning=1, **kw)
    assert binned.meta["binning"] == 4 and full.meta["binning"] == 1
    assert rms_rel(binned.flatfield, full.flatfield) < 0.003
    assert rms_rel(binned.flatfield, sim.flatfield) < 0.02
    with pytest.raises(CamcorrError, match="binning"):
        estimate_from_empty_tiles(sim.tiles, sim.empty_tiles, binning=0)


@pytest.mark.parametrize("dtype", [np.uint16, np.float32, np.uint8, ">u2", ">f4"])
@pytest.mark.parametrize("shape, b", [((64, 48), 2), ((50, 37), 3), ((9, 9), 4)])
def test_bin_subtract_kernel_matches_numpy(dtype, shape, b, rng):
    from camcorr.flatfield._kernels import bin_subtract, bin_subtract_numpy
    plane = (rng.random(shape) * 200).astype(dtype)
    dark = rng.random(shape).astype(np.float32) * 5
    np.testing.assert_allclose(bin_subtract(plane, dark, b, 0.01),
                               bin_subtract_numpy(plane, dark, b, 0.01), rtol=1e-5, atol=1e-6)
