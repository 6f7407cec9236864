"""What the generated Fiji/ImageJ macros run in camcorr's Python: the command line, speaking the
dialog's language, plus the results Fiji shows.

The macro writes the ``camcorr`` command-line words, one per line, to ``args.txt`` in its
temporary folder and runs ``PYTHON -c BOOT args.txt``; :func:`main` then

* runs exactly the command-line code path (:func:`camcorr.cli.main` semantics: same parser, same
  validation, same runner), so a Fiji command gives the command line's pixels;
* names parameters in error messages by their dialog label and macro key
  (``Threshold (robust sigmas) [k]``) instead of the command-line flag (``--k``);
* writes Fiji-only extras beside ``args.txt``, which the macro opens after a successful run:
  ``extra-image.tif`` (an image to show, e.g. the estimated flat-field) and ``extra-table.csv``
  (numbers for a Results table, e.g. the FRC curve).
"""
from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path
from typing import Dict, List, Optional, Sequence

__all__ = ["main", "label_of", "EXTRA_IMAGE", "EXTRA_TABLE"]

EXTRA_IMAGE = "extra-image.tif"
EXTRA_TABLE = "extra-table.csv"


def label_of(p) -> str:
    """How a Fiji dialog names parameter `p`: ``'Label (unit) [macro_key]'``."""
    from .generate import macro_key

    return f"{p.text()} [{macro_key(p)}]"


def _relabel(message: str, op) -> str:
    """Replace command-line flags in `message` by the dialog labels of `op`."""
    for p in sorted(op.params, key=lambda q: -len(q.cli or "")):
        if p.cli and "fiji" in p.frontends:
            for flag in (p.cli, "--no-" + p.cli[2:]):
                message = message.replace(flag + ":", label_of(p) + ":")
                message = message.replace(f"'{flag}'", label_of(p))
                message = message.replace(f" {flag} ", f" {label_of(p)} ")
    return message


def _extras(op, values: Dict, folder: Path):
    """Write the Fiji extras of a successful run of `op` into `folder`."""
    import numpy as np

    if op.name == "flatfield-estimate":
        from camcorr.flatfield import read_profiles
        from camcorr.io import write_tiff

        prof = read_profiles(values["output"], argument="output")
        write_tiff(folder / EXTRA_IMAGE, np.asarray(prof.flatfield, dtype=np.float32))
    elif op.name == "gain-estimate" and values.get("report"):
        import json

        with open(values["report"], encoding="utf-8") as fh:
            report = json.load(fh)
        rows = ["quantity,value"]

        def walk(d, prefix=""):
            for k, v in d.items():
                if isinstance(v, dict):
                    walk(v, prefix + k + ".")
                elif isinstance(v, bool):
                    rows.append(f"{prefix}{k},{'yes' if v else 'no'}")
                elif isinstance(v, (int, float)):
                    rows.append(f"{prefix}{k},{v:.6g}")
                elif isinstance(v, str) and k in ("mode", "reference", "ref_orientation"):
                    rows.append(f"{prefix}{k},{v.replace(',', ';')}")

        walk(report)
        (folder / EXTRA_TABLE).write_text("\n".join(rows) + "\n", encoding="utf-8")
    elif op.name == "frc" and values.get("json"):
        import json

        with open(values["json"], encoding="utf-8") as fh:
            d = json.load(fh)
        rows = ["frequency (cycles/pixel),FRC,noise curve,Fourier pixels"]
        for f, c, t, n in zip(d["frequency_cycles_per_pixel"], d["frc"], d["threshold"],
                              d["n_pixels"]):
            rows.append(f"{f:.6g},{c:.6g},{t:.6g},{n}")
        (folder / EXTRA_TABLE).write_text("\n".join(rows) + "\n", encoding="utf-8")
        cross = d.get("crossover_cycles_per_pixel")
        (folder / "extra-summary.txt").write_text(
            f"{'' if cross is None else cross}\n{d.get('resolution_pixels') or ''}\n"
            f"{d['fraction_above_threshold']}\n{d['n_sigma']}\n", encoding="utf-8")


def run(argv: Sequence[str], *, operations=None) -> int:
    """Run the command line `argv` as a Fiji command does; returns the exit status."""
    from camcorr.cli import build_parser
    from camcorr.errors import CamcorrError

    parser = build_parser(operations)
    args = parser.parse_args(list(argv))
    op = getattr(args, "_operation", None)
    if op is None:
        print("camcorr: no command given", file=sys.stderr)
        return 2
    folder = Path(os.environ.get("CAMCORR_FIJI_EXTRAS", "") or ".")
    try:
        values = {p.name: getattr(args, p.name) for p in op.params_for("cli")}
        if op.name == "frc" and not values.get("json") and "CAMCORR_FIJI_EXTRAS" in os.environ:
            values["json"] = str(folder / "frc.json")
        if op.name == "gain-estimate" and not values.get("report") and \
                "CAMCORR_FIJI_EXTRAS" in os.environ:
            values["report"] = str(folder / "report.json")
        if "progress" in values and "CAMCORR_FIJI_EXTRAS" in os.environ:
            values["progress"] = False  # a text progress bar would only fill the Log window
        values = op.validate(values, frontend="cli", labels=label_of)
        status = int(op.load_runner()(values) or 0)
        if status == 0 and "CAMCORR_FIJI_EXTRAS" in os.environ:
            _extras(op, values, folder)
        return status
    except CamcorrError as exc:
        if os.environ.get("CAMCORR_DEBUG"):
            raise
        print(_relabel(" ".join(str(exc).split()), op), file=sys.stderr)
        return 2
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        print(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2
    except MemoryError:
        print("out of memory. Process fewer planes at once or use a machine with more memory.",
              file=sys.stderr)
        return 3


def main(argv: Optional[List[str]] = None) -> int:
    """``main(argv)``: the macro's entry point (command-line words, as ``camcorr.cli.main``).

    The environment variable ``CAMCORR_FIJI_EXTRAS`` (set by the boot code to the folder of
    ``args.txt``) enables the extras.
    """
    return run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
