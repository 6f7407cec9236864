"""Parser for the ``*Settings.txt`` files written by the Janelia lattice light-sheet software.

Only what camera corrections need is extracted: the camera ROI, the camera serial number and
model, the channels (laser, power, exposure), how lasers are cycled, the Z motion and the number
of planes.  The format is the LabVIEW acquisition software's: sections separated by lines of
``*****``, ``key :<TAB>value`` lines, and a trailing SPIMProject ``.ini`` part.  Layout facts
were read from the two public Settings.txt examples of LLSpy's test data (BSD-3,
github.com/tlambert03/LLSpy); no code was copied.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import List, Optional, Tuple

from ..errors import CamcorrError

__all__ = ["LLSSettings", "Channel", "parse_settings", "find_settings", "roi_shape"]

ROI = Tuple[int, int, int, int]


@dataclass(frozen=True)
class Channel:
    """One acquisition channel of a Settings.txt.

    Attributes
    ----------
    index : int
        Channel number (``ch0``, ``ch1`` ... in file names).
    laser : int or None
        Excitation laser line in nm.
    power : float or None
        Laser power in percent.
    exposure_ms : float or None
        Exposure time in ms.
    n_stacks : int or None
        Number of stacks (timepoints) requested.
    """

    index: int
    laser: Optional[int] = None
    power: Optional[float] = None
    exposure_ms: Optional[float] = None
    n_stacks: Optional[int] = None


@dataclass
class LLSSettings:
    """What camcorr uses from an LLS Settings.txt.

    Attributes
    ----------
    path : pathlib.Path
        File parsed.
    roi : (left, top, right, bottom)
        Camera ROI in sensor pixels, inclusive (``ROI : Left=.. Top=.. Right=.. Bot=..``).
    serial : str or None
        Camera serial number (``Serial :`` in the camera section).
    model : str or None
        Camera model, e.g. ``'C11440-22C'`` (Orca Flash4.0 v2).
    channels : list of Channel
        Channels in acquisition order.
    cycle_lasers : str or None
        ``'per Z'`` (channels interleaved plane by plane) or ``'per stack'``.
    z_motion : str or None
        ``'Sample piezo'``, ``'Z galvo & piezo'``, ...
    n_planes : int or None
        Planes per stack (S PZT pixels when the sample piezo scans, else Z PZT pixels).
    date : datetime or None
        Acquisition date.
    twin_cam : bool or None
        ``Twin cam mode?`` of the ini part (twin-camera mode clears the carryover).
    synchronous_readout : bool or None
        ``Use Synch readout mode?`` of the ini part (the mode that causes the carryover).
    """

    path: Path
    roi: ROI
    serial: Optional[str] = None
    model: Optional[str] = None
    channels: List[Channel] = field(default_factory=list)
    cycle_lasers: Optional[str] = None
    z_motion: Optional[str] = None
    n_planes: Optional[int] = None
    date: Optional[datetime] = None
    twin_cam: Optional[bool] = None
    synchronous_readout: Optional[bool] = None

    @property
    def shape(self) -> Tuple[int, int]:
        """(Y, X) of the images: (Right - Left + 1, Bot - Top + 1) (the camera is rotated 90 deg)."""
        return roi_shape(self.roi)

    @property
    def interleaved_per_z(self) -> bool:
        """True when channels alternate plane by plane (``Cycle lasers : per Z``, the default)."""
        return self.cycle_lasers is None or "stack" not in self.cycle_lasers.lower()


def roi_shape(roi: ROI) -> Tuple[int, int]:
    """Image shape (Y, X) of a camera ROI (left, top, right, bottom).

    LLS data are stored with the camera rotated by 90 degrees: image rows follow the sensor's
    Left..Right axis, image columns its Top..Bottom axis (LLSpy's ``ny = roi.width``,
    ``nx = roi.height``).
    """
    left, top, right, bottom = (int(v) for v in roi)
    return right - left + 1, bottom - top + 1


_SECTION = re.compile(r"^\*{5}[\s*]*?([A-Za-z][A-Za-z .]*?)\s*\*{5}[\s*]*$", re.MULTILINE)
_KEYVAL = re.compile(r"^\s*([^:\n]+?)\s*:\s*(.*?)\s*$")
_ROI = re.compile(r"Left\s*=\s*(\d+)\s+Top\s*=\s*(\d+)\s+Right\s*=\s*(\d+)\s+Bot(?:tom)?\s*=\s*(\d+)",
                  re.IGNORECASE)
_EXCITATION = re.compile(r"^Excitation Filter, Laser, Power \(%\), Exp\(ms\) \((\d+)\)\s*:\s*(.*)$",
                         re.MULTILINE)
_NSTACKS = re.compile(r"^# of stacks \((\d+)\)\s*:\s*(\d+)", re.MULTILINE)
_WAVEFORM = re.compile(r"^(.+?) Offset, Interval \(um\), # of Pixels for Excitation \((\d+)\)\s*:"
                       r"\s*(\S+)\s+(\S+)\s+(\d+)", re.MULTILINE)


def _sections(text: str) -> dict:
    """Split the text at ``***** ... *****`` headings; returns {heading: body}."""
    out = {}
    matches = list(_SECTION.finditer(text))
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        out[m.group(1).strip()] = text[m.end():end]
    return out


def _keyvals(body: str) -> dict:
    out = {}
    for line in body.splitlines():
        m = _KEYVAL.match(line)
        if m and m.group(1) not in out:
            out[m.group(1)] = m.group(2)
    return out


def _ini_value(text: str, key: str) -> Optional[str]:
    m = re.search(r"^" + re.escape(key) + r"\s*=\s*(.*?)\s*$", text, re.MULTILINE)
    return m.group(1).strip('"') if m else None


def _truthy(value: Optional[str]) -> Optional[bool]:
    if value is None:
        return None
    return value.strip().strip('"').upper() in ("TRUE", "YES", "1")


def _float(s: str) -> Optional[float]:
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


def _parse_date(s: Optional[str]) -> Optional[datetime]:
    if not s:
        return None
    for fmt in ("%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %I:%M:%S", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(s.strip(), fmt)
        except ValueError:
            continue
    return None


def parse_settings(path) -> LLSSettings:
    """Parse an LLS ``Settings.txt`` file.

    Parameters
    ----------
    path : str or path-like
        The ``*Settings.txt`` written beside the acquisition.

    Returns
    -------
    LLSSettings
        Camera ROI (left, top, right, bottom), serial, model, channels, laser cycling mode,
        Z motion, number of planes, date and camera modes.

    Raises
    ------
    CamcorrError
        If the file is missing, unreadable, or has no camera ROI line.
    """
    p = Path(path)
    if not p.is_file():
        raise CamcorrError("Settings file not found", argument="settings",
                           expected="an existing *Settings.txt file written by the LLS software",
                           received=str(p), fix="Check the path")
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise CamcorrError("cannot read Settings file", argument="settings", received=f"{p} ({exc})")
    text = text.replace("\r\n", "\n")
    sections = _sections(text)
    camera = _keyvals(sections.get("Camera", ""))
    general = _keyvals(sections.get("General", ""))
    waveform_text = sections.get("Waveform", "")
    waveform = _keyvals(waveform_text)

    roi_text = camera.get("ROI")
    m = _ROI.search(roi_text or "")
    if m is None:
        raise CamcorrError("no camera ROI in the Settings file", argument="settings",
                           expected="a line 'ROI :  Left=.. Top=.. Right=.. Bot=..' in the Camera section",
                           received=str(p), fix="Use the Settings.txt written with this acquisition")
    roi = tuple(int(v) for v in m.groups())
    if roi[2] < roi[0] or roi[3] < roi[1]:
        raise CamcorrError("camera ROI is empty", argument="settings",
                           expected="Right >= Left and Bot >= Top", received=f"ROI {roi} in {p}")

    serial = camera.get("Serial")
    serial = serial.strip() if serial else None

    # channels: excitation lines, number of stacks
    chans = {}
    for cm in _EXCITATION.finditer(waveform_text):
        idx = int(cm.group(1))
        fields = [f for f in cm.group(2).split("\t")] if "\t" in cm.group(2) else cm.group(2).split()
        fields = [f.strip() for f in fields]
        # layout: filter, laser, power, exposure
        laser = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None
        power = _float(fields[2]) if len(fields) > 2 else None
        exposure = _float(fields[3]) if len(fields) > 3 else None
        chans[idx] = dict(index=idx, laser=laser, power=power, exposure_ms=exposure)
    for nm in _NSTACKS.finditer(waveform_text):
        chans.setdefault(int(nm.group(1)), dict(index=int(nm.group(1))))["n_stacks"] = int(nm.group(2))
    channels = [Channel(**chans[k]) for k in sorted(chans)]

    z_motion = waveform.get("Z motion")
    planes = {}
    for wm in _WAVEFORM.finditer(waveform_text):
        if int(wm.group(2)) == (channels[0].index if channels else 0):
            planes[wm.group(1).strip()] = int(wm.group(5))
    if z_motion and z_motion.lower() in ("sample piezo", "x stage"):
        n_planes = planes.get("S PZT", planes.get("X Stage"))
    else:
        n_planes = planes.get("Z PZT")

    ini = text.split("***** ***** *****")[-1]
    twin = _ini_value(ini, "CAM 1 Twin cam mode?") or _ini_value(ini, "Twin cam mode?")
    return LLSSettings(
        path=p, roi=roi, serial=serial, model=(camera.get("Model") or None), channels=channels,
        cycle_lasers=waveform.get("Cycle lasers"), z_motion=z_motion, n_planes=n_planes,
        date=_parse_date(general.get("Date")), twin_cam=_truthy(twin),
        synchronous_readout=_truthy(_ini_value(ini, "Use Synch readout mode?")),
    )


def find_settings(folder, *, argument: str = "settings") -> Optional[Path]:
    """The ``*Settings.txt`` in `folder`, or None if there is none.

    When several exist (one per acquisition in a calibration folder), they must agree on the
    camera ROI and serial; the first in name order is returned.

    Raises
    ------
    CamcorrError
        If several Settings files disagree on the ROI or the serial.
    """
    files = sorted(Path(folder).glob("*Settings.txt"))
    if not files:
        return None
    first = parse_settings(files[0])
    for other in files[1:]:
        s = parse_settings(other)
        if s.roi != first.roi or s.serial != first.serial:
            raise CamcorrError("Settings files in one folder disagree", argument=argument,
                               expected=f"the same camera ROI {first.roi} and serial {first.serial} "
                                        f"as {files[0].name}",
                               received=f"ROI {s.roi}, serial {s.serial} in {other.name}",
                               fix="Keep one acquisition's files per folder")
    return files[0]
