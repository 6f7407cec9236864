"""Table-driven hostile-input test through the real command line.

Every case runs ``camcorr ...`` as its own process (forked from a server that imported camcorr
once: ``tests/cli_forkserver.py``) in a private folder holding copies of the input files, and
asserts:

* the exit status (2 for bad input; 0 only for the few cases that must succeed with a warning);
* no Python traceback on stderr;
* the message names the argument at fault (``--output``, ``STACK``, ``--gain-ref``, ...);
* every input file is byte-identical afterwards;
* nothing is left behind: no new file or folder (no ``.part`` temporary, no partial output).

A summary (cases, clear errors, tracebacks, silent wrong results, inputs changed, leftovers)
is printed at the end of the test session.  Categories: unreadable or unsuitable images (colour,
palette, complex, empty, truncated, not a TIFF, NaN, infinity, folder, missing) for every
image argument of every command; outputs colliding with inputs or parameter files, under a
file, a folder where a file is expected, duplicate inputs; implausible parameter values
(offset above the data, saturating levels, out-of-range numbers, unknown choices).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import pytest
import tifffile

from _helpers import mount_tmpfs, umount

ROOT = Path(__file__).resolve().parents[1]
SERVER = Path(__file__).with_name("cli_forkserver.py")

# ------------------------------------------------------------------------------------------
# input files
# ------------------------------------------------------------------------------------------

SHAPE = (12, 32, 32)


def _write_inputs(folder: Path) -> None:
    """Good inputs, and one file per kind of bad image, in `folder`."""
    from camcorr.flash.params import FlashParams, write_params
    from camcorr.flatfield.profiles import Profiles, save_profiles

    rng = np.random.default_rng(12)
    folder.mkdir(parents=True, exist_ok=True)
    good = (100 + rng.poisson(300, SHAPE)).astype(np.uint16)
    tifffile.imwrite(folder / "good.tif", good, imagej=True, metadata={"axes": "ZYX"})
    tifffile.imwrite(folder / "good2.tif", (100 + rng.poisson(300, SHAPE)).astype(np.uint16),
                     imagej=True, metadata={"axes": "ZYX"})
    tifffile.imwrite(folder / "plane.tif", (100 + rng.poisson(300, SHAPE[1:])).astype(np.uint16))
    tifffile.imwrite(folder / "plane2.tif", (100 + rng.poisson(300, SHAPE[1:])).astype(np.uint16))
    shp = SHAPE[1:]
    write_params(FlashParams(A=np.full(shp, 40.0, np.float32), B=np.full(shp, 2e-3, np.float32),
                             offset=np.full(shp, 100.0, np.float32),
                             noise=np.ones(shp, np.float32)), folder / "params.tif")
    save_profiles(Profiles(flatfield=np.ones(shp, np.float32),
                           darkfield=np.zeros(shp, np.float32), baseline=0.0,
                           source="measured"), folder / "profiles.npz")
    (folder / "notes.txt").write_text("not an image\n")
    tifffile.imwrite(folder / "small.tif", (100 + rng.poisson(300, (12, 16, 16))).astype(np.uint16),
                     imagej=True, metadata={"axes": "ZYX"})
    tifffile.imwrite(folder / "plane_small.tif",
                     (100 + rng.poisson(300, (16, 16))).astype(np.uint16))
    # bad images
    tifffile.imwrite(folder / "rgb.tif", rng.integers(0, 255, (32, 32, 3), dtype=np.uint8),
                     photometric="rgb")
    tifffile.imwrite(folder / "rgbstack.tif", rng.integers(0, 255, (6, 32, 32, 3), dtype=np.uint8),
                     photometric="rgb")
    tifffile.imwrite(folder / "palette.tif", rng.integers(0, 255, (32, 32), dtype=np.uint8),
                     photometric="palette",
                     colormap=rng.integers(0, 65535, (3, 256), dtype=np.uint16))  # colours
    tifffile.imwrite(folder / "planar.tif", rng.integers(0, 255, (3, 32, 32), dtype=np.uint8),
                     photometric="rgb", planarconfig="separate")
    tifffile.imwrite(folder / "complex.tif", np.zeros((4, 32, 32), np.complex64))
    (folder / "empty.tif").write_bytes(b"")
    long = (100 + rng.poisson(300, (100, 32, 32))).astype(np.uint16)
    for name, kw in (("trunc_ij.tif", {"imagej": True, "metadata": {"axes": "ZYX"}}),
                     ("trunc_plain.tif", {})):
        tifffile.imwrite(folder / name, long, **kw)
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[: len(data) // 2])
    (folder / "notatiff.tif").write_text("hello, I am text\n")
    f = good.astype(np.float32)
    f[3, 5, 7] = np.nan
    tifffile.imwrite(folder / "nan.tif", f)
    f = good.astype(np.float32)
    f[1, 2, 3] = np.inf  # read as the B map of a parameter file
    f[7, 2, 3] = -np.inf  # a plane the z-range flat-field samples
    tifffile.imwrite(folder / "inf.tif", f)
    (folder / "folder.tif").mkdir()
    (folder / "calib").mkdir()  # an empty calibration folder
    (folder / "rundir").mkdir()  # an empty run folder


BAD_IMAGES = ("rgb.tif", "rgbstack.tif", "palette.tif", "planar.tif", "complex.tif", "empty.tif",
              "trunc_ij.tif", "trunc_plain.tif", "notatiff.tif", "nan.tif", "inf.tif",
              "folder.tif", "missing.tif")

# ------------------------------------------------------------------------------------------
# the table
# ------------------------------------------------------------------------------------------


@dataclass
class Case:
    id: str
    argv: List[str]
    names: str  # regex: the argument the message must name
    status: int = 2
    category: str = ""
    needs: Tuple[str, ...] = ()  # fixtures: "ro" (read-only folder), "full" (full file system)
    stderr_has: Optional[str] = None  # regex that must also appear (e.g. the reason)


# (command template with {BAD}, argument names) - every image argument of every command
IMAGE_ARGS = [
    ("median {BAD} -o out.tif", r"STACK|IMAGE"),
    ("gain estimate {BAD} -o gain.tif", r"MOVIE"),
    ("gain estimate good.tif --gain-ref {BAD} -o gain.tif", r"--gain-ref"),
    ("gain normalize {BAD} -o outdir", r"FRAMES"),
    ("frc {BAD} plane.tif", r"\bA\b"),
    ("frc plane.tif {BAD}", r"\bB\b"),
    ("flash correct {BAD} -p params.tif -o outdir", r"STACK|IMAGES"),
    ("flash correct good.tif -p {BAD} -o outdir", r"--params|params"),
    ("parallel dark {BAD} -o dark.tif", r"DARK|FRAMES"),
    ("flatfield apply {BAD} --profiles profiles.npz -o outdir", r"TILES|tile 1"),
    ("flatfield estimate {BAD} -o prof.npz --method z-range --z-levels 0 2", r"TILES|tile 1"),
    ("flatfield estimate good.tif -o prof.npz --method z-range --z-levels 0 2 --darkfield {BAD}",
     r"--darkfield|darkfield"),
]

OUTPUT_CASES = [
    # outputs colliding with inputs and parameter files
    ("median good.tif -o good.tif", r"--output"),
    ("median good.tif -o ./good.tif", r"--output"),
    ("median good.tif -o out.tif --mask-out good.tif", r"--mask-out"),
    ("median good.tif -o out.tif --mask-out out.tif", r"--mask-out"),
    ("median good.tif -o good.tif/x.tif", r"--output"),
    ("median good.tif -o notes.txt/sub/x.tif", r"--output"),
    ("median good.tif -o folder.tif", r"--output"),
    ("median good.tif -o ''", r"--output"),
    ("gain estimate good.tif -o good.tif", r"--output"),
    ("gain estimate good.tif -o gain.tif --report good.tif", r"--report"),
    ("gain estimate good.tif -o gain.tif --report gain.tif", r"--output|--report"),
    ("gain estimate good.tif --gain-ref plane.tif -o plane.tif", r"--output"),
    ("gain estimate good.tif -o good.tif/gain.tif", r"--output"),
    ("gain estimate good.tif good.tif -o gain.tif", r"MOVIE"),
    ("gain estimate good.tif ./good.tif -o gain.tif", r"MOVIE"),
    ("gain estimate good.tif --gain-ref good.tif -o gain.tif", r"MOVIE|--gain-ref"),
    ("gain normalize good.tif -o .", r"--output"),
    ("gain normalize good.tif good.tif -o outdir", r"FRAMES"),
    ("gain normalize good.tif -o outdir --stats good.tif", r"--stats"),
    ("gain normalize good.tif -o outdir --from-stats good.tif", r"--from-stats"),
    ("gain normalize good.tif -o outdir --from-stats notes.txt", r"--from-stats"),
    ("gain normalize good.tif -o notes.txt", r"--output"),
    ("frc plane.tif plane.tif", r"\bA\b|\bB\b"),
    ("frc plane.tif ./plane.tif", r"\bA\b|\bB\b"),
    ("frc plane.tif plane2.tif --plot plane.tif", r"--plot"),
    ("frc plane.tif plane2.tif --json plane2.tif", r"--json"),
    ("frc plane.tif plane2.tif --json f.json --plot f.json", r"--json|--plot"),
    ("frc plane.tif plane2.tif --plot good.tif/f.png", r"--plot"),
    ("flash correct good.tif good.tif -p params.tif -o outdir", r"STACK|IMAGES"),
    ("flash correct good.tif -p params.tif -o .", r"--output"),
    ("flash correct good.tif -p params.tif -o params.tif", r"--output"),
    ("flash correct good.tif -p params.tif -o good.tif/out", r"--output"),
    ("flash correct params.tif -p params.tif -o outdir", r"STACK|IMAGES|params"),
    ("flash correct good.tif -p params.tif -s good.tif -o outdir", r"--settings|settings"),
    ("flash correct good.tif -p params.tif -s missing.txt -o outdir", r"--settings|settings"),
    ("flash calibrate calib", r"CALIB_DIR"),
    ("flash calibrate missing_dir", r"CALIB_DIR"),
    ("flash calibrate good.tif", r"CALIB_DIR"),
    ("flash calibrate calib -o good.tif/p.tif", r"--output"),
    ("parallel dark good.tif -o good.tif", r"--output"),
    ("parallel dark good.tif good.tif -o dark.tif", r"DARK|FRAMES"),
    ("parallel dark good.tif -o notes.txt/dark.tif", r"--output"),
    ("parallel dark good.tif -o folder.tif", r"--output"),
    ("parallel calibrate calib", r"CALIB_DIR"),
    ("parallel calibrate notes.txt", r"CALIB_DIR"),
    ("flatfield apply good.tif --profiles profiles.npz -o .", r"--output"),
    ("flatfield apply good.tif --profiles good.tif -o outdir", r"--profiles"),
    ("flatfield apply good.tif --profiles notes.txt -o outdir", r"--profiles"),
    ("flatfield apply good.tif --profiles missing.npz -o outdir", r"--profiles"),
    ("flatfield apply good.tif --profiles profiles.npz -o profiles.npz", r"--output"),
    ("flatfield apply good.tif good.tif --profiles profiles.npz -o outdir", r"TILES"),
    ("flatfield apply good.tif -o outdir", r"--profiles"),
    ("flatfield estimate good.tif -o good.tif --method z-range --z-levels 0 2", r"--output"),
    ("flatfield estimate good.tif -o notes.txt/p.npz --method z-range --z-levels 0 2",
     r"--output"),
    ("report rundir", r"RUN_DIR|rundir"),
    ("report missing_dir", r"RUN_DIR|missing_dir"),
    ("report good.tif", r"RUN_DIR|good.tif"),
    ("report rundir -o good.tif", r"--output"),
    ("demo --out good.tif", r"--out"),
    ("demo --out notes.txt/demo", r"--out"),
]

SHAPE_CASES = [
    ("flash correct good.tif small.tif -p params.tif -o outdir", r"STACK|IMAGES"),
    ("flash correct small.tif -p params.tif -o outdir", r"params"),
    ("gain estimate good.tif small.tif -o gain.tif", r"MOVIE"),
    ("gain estimate good.tif --gain-ref plane_small.tif -o gain.tif", r"--gain-ref"),
    ("gain estimate good.tif --gain-ref good2.tif -o gain.tif", r"--gain-ref"),
    ("gain normalize good.tif small.tif -o outdir", r"FRAMES"),
    ("frc plane.tif plane_small.tif", r"\bA\b|\bB\b"),
    ("parallel dark good.tif small.tif -o dark.tif", r"DARK|FRAMES"),
    ("flatfield apply small.tif --profiles profiles.npz -o outdir", r"TILES|tile 1|--profiles"),
    ("flatfield estimate good.tif small.tif -o prof.npz --method z-range --z-levels 0 2",
     r"TILES|tile"),
]

PARAM_CASES = [
    ("median good.tif -o out.tif --k -1", r"--k"),
    ("median good.tif -o out.tif --k abc", r"--k"),
    ("median good.tif -o out.tif --k nan", r"--k"),
    ("median good.tif -o out.tif --k inf", r"--k"),
    ("median good.tif -o out.tif --rule foo", r"--rule"),
    ("median good.tif -o out.tif --mean-k -3", r"--mean-k"),
    ("median plane.tif -o out.tif", r"STACK|IMAGE"),
    ("median", r"STACK|IMAGE|required"),
    ("gain estimate good.tif -o gain.tif --offset 60000", r"--offset"),
    ("gain estimate good.tif -o gain.tif --offset 400", r"--offset"),
    ("gain estimate good.tif -o gain.tif --offset -5", r"--offset"),
    ("gain estimate good.tif -o gain.tif --sigmas abc", r"--sigmas"),
    ("gain estimate good.tif -o gain.tif --sigmas 100", r"--sigmas"),
    ("gain estimate good.tif -o gain.tif --iterations 0", r"--iterations"),
    ("gain estimate good.tif -o gain.tif --tolerance -1", r"--tolerance"),
    ("gain estimate good.tif -o gain.tif --electrons-per-adu 0", r"--electrons-per-adu"),
    ("gain estimate good.tif -o gain.tif --read-noise -1", r"--read-noise"),
    ("gain estimate good.tif -o gain.tif --ref-orientation sideways", r"--ref-orientation"),
    ("gain estimate good.tif -o gain.tif --reference foo", r"--reference"),
    ("gain estimate good.tif", r"--output"),
    ("gain normalize good.tif -o outdir --i0 1e12", r"--i0"),
    ("gain normalize good.tif -o outdir --i0 -500", r"--i0"),
    ("gain normalize good.tif -o outdir --sigma0 0", r"--sigma0"),
    ("gain normalize good.tif -o outdir --sigma0 -1", r"--sigma0"),
    ("gain normalize good.tif -o outdir --reject-k -1", r"--reject-k"),
    ("gain normalize good.tif -o outdir --split foo", r"--split"),
    ("gain normalize good.tif -o outdir --zero-sigma foo", r"--zero-sigma"),
    ("gain normalize good.tif -o outdir --dtype int8", r"--dtype"),
    ("frc plane.tif plane2.tif --n-sigma -1", r"--n-sigma"),
    ("frc plane.tif plane2.tif --window foo", r"--window"),
    ("frc good.tif plane.tif", r"\bA\b"),
    ("frc plane.tif rgb.tif", r"\bB\b"),
    ("flash correct good.tif -p params.tif -o outdir --dampening 5", r"--dampening"),
    ("flash correct good.tif -p params.tif -o outdir --dampening -1", r"--dampening"),
    ("flash correct good.tif -p params.tif -o outdir --dampening nan", r"--dampening"),
    ("flash correct good.tif -p params.tif -o outdir --dtype int8", r"--dtype"),
    ("flash correct good.tif -o outdir", r"--params|params"),
    ("parallel dark good.tif -o dark.tif --scheduler notes.txt", r"--scheduler"),
    ("parallel dark good.tif -o dark.tif --chunk-frames 0", r"--chunk-frames"),
    ("parallel dark good.tif -o dark.tif --chunk-frames -4", r"--chunk-frames"),
    ("report rundir --pixel 99999 -5", r"--pixel|RUN_DIR|rundir"),
    ("flatfield apply good.tif --profiles profiles.npz -o outdir --baseline foo", r"--baseline"),
    ("flatfield apply good.tif --profiles profiles.npz -o outdir --dtype int8", r"--dtype"),
    ("flatfield estimate good.tif -o prof.npz --method z-range --z-levels 5 1", r"z-levels"),
    ("flatfield estimate good.tif -o prof.npz --method z-range --z-levels 0 99", r"z-levels"),
    ("flatfield estimate good.tif -o prof.npz --method z-range", r"z-levels"),
    ("flatfield estimate good.tif -o prof.npz --sigma -1", r"--sigma"),
    ("flatfield estimate good.tif -o prof.npz --planes 0", r"--planes"),
    ("flatfield estimate good.tif -o prof.npz --method foo", r"--method"),
    ("flatfield estimate good.tif -o prof.npz --grid 0 0", r"grid"),
    ("flatfield estimate good.tif -o prof.npz --offset -3", r"--offset"),
    ("demo --size huge", r"--size"),
    ("demo --seed -1 --out demo_out --size tiny --runner foo", r"--runner"),
    ("nosuchcommand", r"nosuchcommand|invalid choice"),
]

# read-only destination (needs a read-only folder) and a full file system (needs a tiny tmpfs)
RO_CASES = [
    ("median good.tif -o ro/out.tif", r"--output"),
    ("median good.tif -o out.tif --mask-out ro/mask.tif", r"--mask-out"),
    ("gain estimate good.tif -o ro/gain.tif", r"--output"),
    ("gain normalize good.tif -o ro/outdir", r"--output"),
    ("frc plane.tif plane2.tif --json ro/frc.json", r"--json"),
    ("flash correct good.tif -p params.tif -o ro/outdir", r"--output"),
    ("parallel dark good.tif -o ro/dark.tif", r"--output"),
    ("flatfield apply good.tif --profiles profiles.npz -o ro/outdir", r"--output"),
    ("demo --out ro/demo", r"--out"),
]
# a calibration folder with one file replaced by a bad one (the dark frames, a bright stack)
CALIB_BAD = ("rgb.tif", "palette.tif", "empty.tif", "trunc_plain.tif", "notatiff.tif", "nan.tif",
             "complex.tif")
CALIB_CASES = [(f"flash calibrate calib_{target}_{bad[:-4]}", r"CALIB_DIR", target, bad)
               for target in ("dark", "ch0") for bad in CALIB_BAD]
FULL_CASES = [
    ("median good.tif -o full/out.tif", r"--output"),
    ("flash correct good.tif -p params.tif -o full/outdir", r"--output"),
]


def _split(cmd: str) -> List[str]:
    import shlex

    return shlex.split(cmd)


def build_cases() -> List[Case]:
    cases: List[Case] = []
    for tmpl, names in IMAGE_ARGS:
        for bad in BAD_IMAGES:
            cmd = tmpl.format(BAD=bad)
            cases.append(Case(id=f"image:{cmd}", argv=_split(cmd), names=names,
                              category="unusable image"))
    for cmd, names in OUTPUT_CASES:
        cases.append(Case(id=f"paths:{cmd}", argv=_split(cmd), names=names,
                          category="inputs and outputs"))
    for cmd, names in SHAPE_CASES:
        cases.append(Case(id=f"shape:{cmd}", argv=_split(cmd), names=names,
                          category="shape and plane count"))
    for cmd, names in PARAM_CASES:
        cases.append(Case(id=f"param:{cmd}", argv=_split(cmd), names=names,
                          category="implausible parameters"))
    for cmd, names in RO_CASES:
        cases.append(Case(id=f"readonly:{cmd}", argv=_split(cmd), names=names,
                          category="read-only destination", needs=("ro",),
                          stderr_has=r"read-only|permission"))
    for cmd, names, target, bad in CALIB_CASES:
        cases.append(Case(id=f"calib:{cmd}", argv=_split(cmd), names=names,
                          category="unusable image", needs=(f"calib:{target}:{bad}",)))
    for cmd, names in FULL_CASES:
        cases.append(Case(id=f"full:{cmd}", argv=_split(cmd), names=names,
                          category="full disk", needs=("full",), stderr_has=r"space|disk full"))
    return cases


CASES = build_cases()

# ------------------------------------------------------------------------------------------
# running
# ------------------------------------------------------------------------------------------


def _snapshot(folder: Path) -> Dict[str, Optional[str]]:
    """{relative path: sha256 (None for folders)} of everything under `folder`."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), folder) + "/"] = None
        for f in filenames:
            p = os.path.join(dirpath, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, folder)] = hashlib.sha256(fh.read()).hexdigest()
    return out


@dataclass
class Outcome:
    case: Case
    status: int
    stderr: str
    stdout: str
    traceback: bool = False
    named: bool = False
    changed: List[str] = field(default_factory=list)
    leftovers: List[str] = field(default_factory=list)
    skipped: str = ""


@pytest.fixture(scope="module")
def table_results(tmp_path_factory, request):
    base = tmp_path_factory.mktemp("badinput")
    pristine = base / "pristine"
    _write_inputs(pristine)
    work = base / "cases"
    work.mkdir()
    from camcorr.simulate.lls import write_calibration_folder

    calib = base / "calib_ok"
    write_calibration_folder(calib, seed=4, n_planes=2, dark_planes=4, n_dark_files=2,
                             powers=(0.0, 5.0, 30.0, 100.0))
    mounts: List[Path] = []
    # a read-only folder: chmod works for ordinary users; root needs a read-only mount
    ro_ok = full_ok = False
    ro_reason = full_reason = ""
    ro_dir = base / "ro_mount"
    full_dir = base / "full_mount"
    if os.geteuid() != 0:
        ro_dir.mkdir()
        os.chmod(ro_dir, 0o555)
        ro_ok = True
    elif mount_tmpfs(ro_dir, "1m", readonly=True):
        mounts.append(ro_dir)
        ro_ok = True
    else:
        ro_reason = "cannot make a read-only folder (running as root without mount permission)"
    if mount_tmpfs(full_dir, "64k", readonly=False):
        mounts.append(full_dir)
        full_ok = True
    else:
        full_reason = "mount -t tmpfs is not permitted on this machine"
    cases = []
    runs = []
    for i, case in enumerate(CASES):
        if "ro" in case.needs and not ro_ok:
            cases.append(Outcome(case, -1, "", "", skipped=ro_reason))
            continue
        if "full" in case.needs and not full_ok:
            cases.append(Outcome(case, -1, "", "", skipped=full_reason))
            continue
        cwd = work / f"c{i:03d}"
        shutil.copytree(pristine, cwd, symlinks=True)
        if "ro" in case.needs:
            (cwd / "ro").symlink_to(ro_dir)
        if "full" in case.needs:
            (cwd / "full").symlink_to(full_dir)
        for need in case.needs:
            if need.startswith("calib:"):
                _, target, bad = need.split(":")
                dest = cwd / f"calib_{target}_{bad[:-4]}"
                shutil.copytree(calib, dest)
                victim = sorted(p for p in dest.glob("*.tif")
                                if ("dark" in p.name.lower()) == (target == "dark")
                                and ("_ch0_" in p.name or target == "dark"))[0]
                victim.unlink()
                shutil.copyfile(pristine / bad, victim)
        runs.append((i, case, cwd, _snapshot(cwd)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [p for p in (env.get("PYTHONPATH", ""),) if p] + [str(ROOT / "tests")])
    env.pop("CAMCORR_DEBUG", None)
    env["CAMCORR_LOG_DIR"] = str(base / "logs")
    proc = subprocess.Popen([sys.executable, str(SERVER), str(max(2, os.cpu_count() or 2))],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    payload = "".join(json.dumps({"id": i, "argv": case.argv, "cwd": str(cwd),
                                  "stdout": str(base / f"o{i:03d}.txt"),
                                  "stderr": str(base / f"e{i:03d}.txt")}) + "\n"
                      for i, case, cwd, _ in runs)
    out, _ = proc.communicate(payload, timeout=1200)
    status = {}
    for line in out.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        status[rec["id"]] = rec["status"]
    import re

    for i, case, cwd, before in runs:
        err = (base / f"e{i:03d}.txt").read_text(errors="replace")
        sout = (base / f"o{i:03d}.txt").read_text(errors="replace")
        after = _snapshot(cwd)
        o = Outcome(case, status.get(i, -999), err, sout)
        o.traceback = "Traceback (most recent call last)" in err or "Traceback" in sout
        o.named = re.search(case.names, err, re.IGNORECASE) is not None
        o.changed = [k for k, v in before.items() if after.get(k, "<gone>") != v]
        o.leftovers = sorted(set(after) - set(before))
        if "ro" in case.needs or "full" in case.needs:
            for d in (ro_dir, full_dir):
                if d.exists():
                    extra = [str(p) for p in d.rglob("*")]
                    o.leftovers += extra
        cases.append(o)
    for m in mounts:
        umount(m)
    summary = _summary(cases)
    request.config._camcorr_summaries = getattr(request.config, "_camcorr_summaries", [])
    request.config._camcorr_summaries.append(summary)
    return cases


def _summary(outcomes: List[Outcome]) -> str:
    ran = [o for o in outcomes if not o.skipped]
    skipped = [o for o in outcomes if o.skipped]
    clear = [o for o in ran if o.status == o.case.status and o.status != 0 and o.named
             and not o.traceback]
    silent = [o for o in ran if o.status == 0 and o.case.status != 0]
    lines = ["bad-input table (real CLI): "
             f"cases {len(ran)}, clear errors {len(clear)}, "
             f"tracebacks {sum(o.traceback for o in ran)}, silent wrong results {len(silent)}, "
             f"inputs changed {sum(bool(o.changed) for o in ran)}, "
             f"leftovers {sum(bool(o.leftovers) for o in ran)}"
             + (f", skipped {len(skipped)} ({skipped[0].skipped})" if skipped else "")]
    cats: Dict[str, List[int]] = {}
    for o in ran:
        c = cats.setdefault(o.case.category, [0, 0])
        c[0] += 1
        c[1] += o in clear
    lines.append("  by category: " + "; ".join(f"{k} {v[1]}/{v[0]}" for k, v in cats.items()))
    return "\n".join(lines)


def test_table_has_enough_cases():
    assert len(CASES) >= 150
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c.id for c in CASES])
def test_bad_input(table_results, index):
    o = next(x for x in table_results if x.case is CASES[index])
    if o.skipped:
        pytest.skip(o.skipped)
    msg = f"camcorr {' '.join(o.case.argv)}\nstatus {o.status}\nstderr:\n{o.stderr}\nstdout:\n{o.stdout}"
    assert not o.traceback, "traceback shown\n" + msg
    assert o.status == o.case.status, "wrong exit status\n" + msg
    assert o.named, f"message does not name {o.case.names!r}\n" + msg
    if o.case.stderr_has:
        import re

        assert re.search(o.case.stderr_has, o.stderr, re.IGNORECASE), msg
    assert not o.changed, f"inputs changed: {o.changed}\n" + msg
    assert not o.leftovers, f"left behind: {o.leftovers}\n" + msg
    assert o.stderr.count("error:") == 1, "not exactly one error message\n" + msg
