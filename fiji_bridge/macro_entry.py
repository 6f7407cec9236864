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
from pathlib import Path
from typing import Dict, List, Optional, Sequence

__all__ = ["main", "label_of", "numbers_rows", "EXTRA_IMAGE", "EXTRA_TABLE", "EXTRA_NUMBERS"]

EXTRA_IMAGE = "extra-image.tif"
EXTRA_TABLE = "extra-table.csv"
#: The run's QC numbers (:attr:`camcorr.operations.RunResult.numbers`, nested keys joined by
#: '.'), shown by the macro as a named Results table ``quantity, value``.
EXTRA_NUMBERS = "extra-numbers.csv"


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


def numbers_rows(numbers: Dict, prefix: str = "") -> List[str]:
    """``'quantity,value'`` rows of a RunResult's numbers: nested dicts flattened with '.'
    (``held_out.cv_after``), booleans as yes/no, numbers with 6 significant digits, short texts
    (commas replaced); lists and long texts are left out (they are in the Log)."""
    rows = []
    for k, v in numbers.items():
        if isinstance(v, dict):
            rows += numbers_rows(v, f"{prefix}{k}.")
        elif isinstance(v, bool):
            rows.append(f"{prefix}{k},{'yes' if v else 'no'}")
        elif isinstance(v, (int, float)) or hasattr(v, "dtype"):
            try:
                rows.append(f"{prefix}{k},{float(v):.6g}")
            except (TypeError, ValueError):
                pass
        elif isinstance(v, str) and 0 < len(v) <= 40:
            rows.append(f"{prefix}{k},{v.replace(',', ';')}")
    return rows


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


def _report_progress(path: str) -> None:
    """Make every :class:`camcorr.progress.Progress` (e.g. the carryover calibration's) also
    write ``"done total"`` to `path`, at most 5 times a second, for Fiji's progress bar (the
    command's helper reads it; a partial read is skipped there)."""
    import time

    from camcorr import progress as _progress

    update = _progress.Progress.update
    last = [0.0]

    def update_and_report(self, n: int = 1):
        update(self, n)
        now = time.monotonic()
        if self.total and (now - last[0] > 0.2 or self.done >= self.total):
            last[0] = now
            tmp = path + ".part"
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(f"{self.done} {self.total}\n")
            os.replace(tmp, path)

    _progress.Progress.update = update_and_report


def run(argv: Sequence[str], *, operations=None) -> int:
    """Run the command line `argv` as a Fiji command does; returns the exit status.

    This is :func:`camcorr.cli.main` itself (same parser, validation, pre-flight checks and
    runner); its error paragraph is printed as one line ``CAMCORR-ERROR <message>`` with the
    dialog labels in place of the flags, which the macro shows as its error line.
    """
    import contextlib
    import io

    from camcorr.cli import build_parser
    from camcorr.cli import main as cli_main

    argv = [str(a) for a in argv]
    if os.environ.get("CAMCORR_FIJI_PROGRESS"):
        _report_progress(os.environ["CAMCORR_FIJI_PROGRESS"])
    extras = "CAMCORR_FIJI_EXTRAS" in os.environ
    folder = Path(os.environ.get("CAMCORR_FIJI_EXTRAS", "") or ".")
    op, values = None, {}
    try:
        args = build_parser(operations).parse_args(argv)
        op = getattr(args, "_operation", None)
        values = {p.name: getattr(args, p.name) for p in op.params_for("cli")} if op else {}
    except SystemExit:
        pass  # cli_main reports the usage error
    if op is not None and extras:
        names = {p.name for p in op.params_for("cli")}
        if op.name == "frc" and not values.get("json"):
            values["json"] = str(folder / "frc.json")
            argv += ["--json", values["json"]]
        if op.name == "gain-estimate" and not values.get("report"):
            values["report"] = str(folder / "report.json")
            argv += ["--report", values["report"]]
        if "progress" in names:
            argv.append("--no-progress")  # a text progress bar would only fill the Log window
    from camcorr.operations import RunResult

    results = []
    show = RunResult.print

    def keep_and_print(self, *args, **kwargs):  # the RunResult camcorr.cli.main prints
        results.append(self)
        return show(self, *args, **kwargs)

    err = io.StringIO()
    RunResult.print = keep_and_print
    try:
        with contextlib.redirect_stderr(err):
            status = int(cli_main(argv, operations) or 0)
    except SystemExit as exc:  # argparse: a usage error
        status = exc.code if isinstance(exc.code, int) else 2
    finally:
        RunResult.print = show
    text = err.getvalue()
    if status == 0:
        sys.stderr.write(text)
        if op is not None and extras:
            _extras(op, values, folder)
            # the gain report (a superset) and the FRC curve have tables of their own
            rows = numbers_rows(results[-1].numbers) if results else []
            if rows and op.name not in ("gain-estimate", "frc"):
                (folder / EXTRA_NUMBERS).write_text("quantity,value\n" + "\n".join(rows) + "\n",
                                                    encoding="utf-8")
        return 0
    message = " ".join(text.split())
    marker = message.rfind(": error: ")
    if marker >= 0:
        message = message[marker + len(": error: "):]
    print("CAMCORR-ERROR " + (_relabel(message, op) if op is not None else message))
    return status


def main(argv: Optional[List[str]] = None) -> int:
    """``main(argv)``: the macro's entry point (command-line words, as ``camcorr.cli.main``).

    The environment variable ``CAMCORR_FIJI_EXTRAS`` (set by the boot code to the folder of
    ``args.txt``) enables the extras.
    """
    return run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
