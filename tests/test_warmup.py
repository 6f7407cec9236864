"""`camcorr warmup` compiles every kernel the command line uses: afterwards a fresh process
running the commands finds all of them in numba's cache (no compilation on a first run)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap


from camcorr.cli import main

CHILD = textwrap.dedent(r"""
    import json, sys, contextlib, io
    import numpy as np
    from camcorr.cli import main
    import camcorr.flash.correct, camcorr.flash.calibrate, camcorr.median._kernels
    import camcorr.gain._kernels, camcorr.flatfield._kernels
    from camcorr.median import selective_median
    d = sys.argv[1]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        codes = [main(["median", d + "/stack.tif", "-o", d + "/clean.tif"]),
                 main(["flash", "correct", d + "/stack.tif", "-p", d + "/params.tif",
                       "-o", d + "/flash"]),
                 main(["gain", "estimate", d + "/movie.tif", "-o", d + "/gain.tif"])]
    selective_median(np.random.default_rng(0).normal(9, 1, (4, 9, 9)).astype(np.float32))
    misses, hits = {}, 0
    for mod in (camcorr.flash.correct, camcorr.flash.calibrate, camcorr.median._kernels,
                camcorr.gain._kernels, camcorr.flatfield._kernels):
        for name, obj in vars(mod).items():
            stats = getattr(obj, "stats", None)
            if stats is None or not hasattr(stats, "cache_misses"):
                continue
            hits += sum(stats.cache_hits.values())
            n = sum(stats.cache_misses.values())
            if n:
                misses[mod.__name__ + "." + name] = n
    print(json.dumps({"codes": codes, "misses": misses, "hits": hits}))
""")


def test_unknown_step_is_a_clear_error(capsys):
    assert main(["warmup", "--only", "flash,bogus"]) == 2
    err = capsys.readouterr().err
    assert "--only" in err and "bogus" in err and "flatfield" in err


def test_commands_after_warmup_compile_nothing(tmp_path):
    from camcorr.simulate.samples import write_cli_samples

    assert main(["warmup"]) == 0
    write_cli_samples(tmp_path)
    res = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)], capture_output=True,
                         text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["codes"] == [0, 0, 0]
    assert out["hits"] > 0            # kernels were loaded from the cache ...
    assert out["misses"] == {}        # ... and none had to be compiled


def test_import_sets_a_short_openmp_spin_unless_the_user_chose():
    # numba's OpenMP workers must not busy-wait on a busy machine (core/_threads.py); a user's
    # own GOMP_SPINCOUNT or OMP_WAIT_POLICY is kept
    code = "import os, camcorr; print(os.environ.get('GOMP_SPINCOUNT'))"
    base = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    for extra, expected in (({}, "1000"), ({"GOMP_SPINCOUNT": "5"}, "5"),
                            ({"OMP_WAIT_POLICY": "ACTIVE"}, "None")):
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env={**base, **extra}, timeout=300)
        assert res.returncode == 0, res.stderr[-2000:]
        assert res.stdout.strip() == expected, (extra, res.stdout)
