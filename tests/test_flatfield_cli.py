"""``camcorr flatfield estimate|apply`` on TIFF files: scenarios, outputs, errors (exit 2)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import tifffile

from camcorr.cli import main
from camcorr.flatfield import read_profiles
from camcorr.operations import get_operation
from camcorr.simulate.tiles import simulate_tiles
from _helpers import rms_rel


def _write(sim, folder):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, t in enumerate(sim.tiles):
        p = folder / f"tile_{i + 1:03d}.tif"
        tifffile.imwrite(p, t)
        paths.append(str(p))
    return paths


@pytest.fixture(scope="module")
def tiles2d(tmp_path_factory):
    sim = simulate_tiles(4, 5, (64, 64), seed=21, dark_amplitude=0.0)
    return sim, _write(sim, tmp_path_factory.mktemp("t2d"))


@pytest.fixture(scope="module")
def tiles3d(tmp_path_factory):
    sim = simulate_tiles(3, 3, (64, 64), n_z=24, seed=22, dark_amplitude=0.0, order="serpentine")
    return sim, _write(sim, tmp_path_factory.mktemp("t3d"))


def test_operations_are_registered_with_labels_and_help():
    for name in ("flatfield-estimate", "flatfield-apply"):
        op = get_operation(name)
        assert op.cellprofiler_module == "FlatfieldFromEmptyTiles"
        for p in op.params:
            assert p.label and len(p.help) > 20, p.name
    est = get_operation("flatfield-estimate")
    assert est.command == ("flatfield", "estimate")
    assert est.param("order").choices == ("inverted-n", "serpentine", "row-major")


def test_estimate_empty_tiles_then_apply(tiles2d, tmp_path, capsys):
    sim, paths = tiles2d
    empty = ",".join(str(n) for n in sim.empty_tiles)
    out = tmp_path / "profiles.npz"
    assert main(["flatfield", "estimate", *paths, "--grid", "4", "5", "--empty-tiles", empty,
                 "--offset", "100", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "empty-tiles" in text and "corner/centre" in text
    prof = read_profiles(out)
    assert rms_rel(prof.flatfield, sim.flatfield) < 0.02
    assert np.allclose(prof.darkfield, 100)
    outdir = tmp_path / "corrected"
    assert main(["flatfield", "apply", *paths, "--profiles", str(out), "-o", str(outdir),
                 "--baseline", "none"]) == 0
    corrected = tifffile.imread(outdir / "tile_001.tif")
    assert corrected.dtype == np.uint16
    # an empty tile is flat after correction: corners match the centre
    from camcorr.flatfield import corner_centre_ratio
    raw = tifffile.imread(paths[sim.empty_tiles[0] - 1]).astype(float) - 100
    assert corner_centre_ratio(raw) < 0.8
    assert abs(corner_centre_ratio(corrected.astype(float)) - 1) < 0.05


def test_estimate_z_range_from_corner_tiles(tiles3d, tmp_path):
    sim, paths = tiles3d
    out = tmp_path / "p.npz"
    low, high = sim.z_levels
    assert main(["flatfield", "estimate", *paths, "--grid", "3", "3", "--order", "serpentine",
                 "--z-levels", str(low), str(high), "--offset", "100", "-o", str(out)]) == 0
    prof = read_profiles(out)
    assert prof.source == "z-range"
    assert prof.meta["tiles_used"] == [1, 3, 7, 9]
    assert rms_rel(prof.flatfield, sim.flatfield) < 0.02
    outdir = tmp_path / "c"
    assert main(["flatfield", "apply", paths[0], "--profiles", str(out), "-o", str(outdir)]) == 0
    data = tifffile.imread(outdir / "tile_001.tif")
    assert data.shape == sim.tiles[0].shape and data.dtype == np.uint16


def test_measured_scenario_from_models_folder(tiles2d, tmp_path, capsys):
    sim, paths = tiles2d
    folder = tmp_path / "models" / "GFP"
    folder.mkdir(parents=True)
    np.savez(folder / "profiles.npz", flatfield=sim.flatfield)
    out = tmp_path / "p.npz"
    assert main(["flatfield", "estimate", *paths, "--models-folder", str(tmp_path / "models"),
                 "--channel", "GFP", "-o", str(out)]) == 0
    assert "measured" in capsys.readouterr().out
    prof = read_profiles(out)
    np.testing.assert_allclose(prof.flatfield, sim.flatfield, rtol=1e-6)
    assert prof.quality["corner_centre_before"] < prof.quality["corner_centre_after"]
    # apply straight from the models folder
    assert main(["flatfield", "apply", paths[0], "--models-folder", str(tmp_path / "models"),
                 "--channel", "GFP", "-o", str(tmp_path / "c")]) == 0


@pytest.mark.parametrize("extra, match", [
    (["--empty-tiles", "0,3"], "out of range"),
    (["--empty-tiles", "21"], "out of range"),
    (["--grid", "3", "3", "--empty-tiles", "1"], "grid does not match"),
    (["--empty-tiles", "1", "--planes", "50"], "fewer eligible planes"),
    (["--models-folder", "MISSING", "--channel", "GFP"], "models folder not found"),
])
def test_bad_estimate_inputs_exit_2_without_traceback(tiles2d, tmp_path, capsys, extra, match):
    sim, paths = tiles2d
    extra = [str(tmp_path / "nope") if e == "MISSING" else e for e in extra]
    assert main(["flatfield", "estimate", *paths, *extra, "-o", str(tmp_path / "p.npz")]) == 2
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err
    assert not (tmp_path / "p.npz").exists()


@pytest.mark.parametrize("levels, match", [(("5", "5"), "equal"), (("2", "30"), "out of range")])
def test_bad_z_levels_exit_2(tiles3d, tmp_path, capsys, levels, match):
    sim, paths = tiles3d
    assert main(["flatfield", "estimate", *paths, "--z-levels", *levels,
                 "-o", str(tmp_path / "p.npz")]) == 2
    assert match in capsys.readouterr().err


def test_apply_shape_mismatch_missing_key_exit_2(tiles2d, tmp_path, capsys):
    sim, paths = tiles2d
    np.savez(tmp_path / "small.npz", flatfield=np.ones((32, 32)))
    assert main(["flatfield", "apply", paths[0], "--profiles", str(tmp_path / "small.npz"),
                 "-o", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "differ in size" in err and "--resample" in err
    assert main(["flatfield", "apply", paths[0], "--profiles", str(tmp_path / "small.npz"),
                 "-o", str(tmp_path / "c"), "--resample"]) == 0
    np.savez(tmp_path / "nokey.npz", darkfield=np.ones((64, 64)))
    assert main(["flatfield", "apply", paths[0], "--profiles", str(tmp_path / "nokey.npz"),
                 "-o", str(tmp_path / "c")]) == 2
    assert "flatfield" in capsys.readouterr().err


def test_apply_never_overwrites_inputs(tiles2d, tmp_path, capsys):
    sim, paths = tiles2d
    np.savez(tmp_path / "p.npz", flatfield=np.ones((64, 64)))
    from pathlib import Path
    folder = str(Path(paths[0]).parent)
    before = tifffile.imread(paths[0]).copy()
    assert main(["flatfield", "apply", paths[0], "--profiles", str(tmp_path / "p.npz"),
                 "-o", folder]) == 2
    assert "overwrite" in capsys.readouterr().err
    np.testing.assert_array_equal(tifffile.imread(paths[0]), before)


def test_real_process_exit_status(tmp_path):
    """The installed entry point exits 2 with a one-paragraph message."""
    tifffile.imwrite(tmp_path / "a.tif", np.ones((16, 16), np.uint16))
    proc = subprocess.run([sys.executable, "-m", "camcorr", "flatfield", "estimate",
                           str(tmp_path / "a.tif"), "--empty-tiles", "0",
                           "-o", str(tmp_path / "p.npz")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "tile number out of range" in proc.stderr and "Traceback" not in proc.stderr


def test_measured_profile_of_another_size_exit_2(tiles2d, tmp_path, capsys):
    sim, paths = tiles2d
    (tmp_path / "m" / "GFP").mkdir(parents=True)
    np.savez(tmp_path / "m" / "GFP" / "profiles.npz", flatfield=np.ones((32, 32)))
    assert main(["flatfield", "estimate", *paths, "--models-folder", str(tmp_path / "m"),
                 "--channel", "GFP", "-o", str(tmp_path / "p.npz")]) == 2
    err = capsys.readouterr().err
    assert "differ in size" in err and "GFP" in err


@pytest.mark.slow
def test_basicpy_scenario_from_the_command_line(tmp_path, capsys):
    from conftest import require_module
    require_module("basicpy")
    sim = simulate_tiles(4, 5, (64, 64), seed=23)
    paths = _write(sim, tmp_path / "t")
    out = tmp_path / "model"
    assert main(["flatfield", "estimate", *paths, "--offset", "100", "--working-size", "64",
                 "--max-workers", "1", "-o", str(out)]) == 0
    assert "basicpy" in capsys.readouterr().out
    assert (out / "profiles.npz").is_file() and (out / "settings.json").is_file()
    prof = read_profiles(out)
    assert prof.source == "basicpy" and prof.per_image_baseline
    assert rms_rel(prof.flatfield, sim.flatfield) < 0.05


def test_darkfield_image_option(tiles2d, tmp_path):
    sim, paths = tiles2d
    tifffile.imwrite(tmp_path / "dark.tif", np.full((64, 64), 100.0, np.float32))
    out = tmp_path / "p.npz"
    assert main(["flatfield", "estimate", *paths, "--empty-tiles",
                 ",".join(map(str, sim.empty_tiles)), "--darkfield", str(tmp_path / "dark.tif"),
                 "-o", str(out)]) == 0
    prof = read_profiles(out)
    assert np.allclose(prof.darkfield, 100.0)
    assert rms_rel(prof.flatfield, sim.flatfield) < 0.02


def test_estimate_kwargs_maps_front_end_values():
    from camcorr.flatfield.operations import ESTIMATE, estimate_kwargs
    values = ESTIMATE.validate({"tiles": ["a.tif"], "output": "p.npz", "empty_tiles": "1,3-4",
                                "grid": ("2", "2"), "working_size": "0", "offset": 90})
    kw = estimate_kwargs(values)
    assert kw["empty_tiles"] == [1, 3, 4] and kw["grid"] == (2, 2) and kw["darkfield"] == 90
    assert kw["basicpy_options"]["working_size"] is None
    assert kw["method"] == "auto" and kw["order"] == "inverted-n"
