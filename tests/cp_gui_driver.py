"""Drive the real CellProfiler GUI on one pipeline (run under Xvfb by test_cellprofiler_gui.py).

Usage::

    python cp_gui_driver.py --report R.json --shots DIR -- -p PIPELINE --plugins-directory P \
        --enable-readers imageio_reader -i INPUT -o OUTPUT

Everything after ``--`` is CellProfiler's own command line: the driver runs
``python -m cellprofiler`` (``runpy``, the same ``__main__``) with it; once CellProfiler's main
loop runs, the driver waits for the pipeline and then, on the GUI thread (``wx.CallLater``):

1. selects each camcorr module in the pipeline list, changes one numeric setting through the
   module view (``on_value_change``, as typing in the box does) and switches its display window
   on;
2. waits for the GUI's own background validation and reads each module's error state from the
   pipeline list (what the red/yellow flags show);
3. runs Test mode for one cycle (``start_debugging`` and one ``do_step`` per module: every
   module's ``display()`` draws into its figure window);
4. saves a screenshot of the whole screen and one PNG per camcorr figure, writes the report
   and closes CellProfiler (exit status 0).

Any failure is written to the report and the process exits with status 3.
"""
from __future__ import annotations

import json
import os
import runpy
import sys
import threading
import time
import traceback

OURS = ("SelectiveMedian", "FlashCarryoverCorrect", "EstimateResidualGain",
        "FlatfieldFromEmptyTiles")


def _parse(argv):
    split = argv.index("--")
    own, cp = argv[:split], argv[split + 1:]
    opts = dict(zip(own[0::2], own[1::2]))
    return opts["--report"], opts["--shots"], opts.get("--name", "pipeline"), cp


REPORT, SHOTS, NAME, CP_ARGS = _parse(sys.argv[1:])
STATE = {"steps": [], "modules": {}, "errors": [], "figures": {}, "done": False}


def log(msg):
    STATE["steps"].append(msg)
    print("[gui-driver]", msg, flush=True)


def write_report():
    with open(REPORT, "w") as fh:
        json.dump(STATE, fh, indent=1, default=str)


def fail(exc_text):
    import wx

    STATE["errors"].append(exc_text)
    log("FAILED: " + exc_text.splitlines()[-1])
    try:
        screenshot(os.path.join(SHOTS, f"{NAME}_failure.png"))
    except Exception:  # noqa: BLE001 - best effort
        pass
    write_report()
    wx.CallAfter(os._exit, 3)


def guarded(fn):
    def inner(*a, **k):
        try:
            return fn(*a, **k)
        except Exception:  # noqa: BLE001 - reported
            fail(traceback.format_exc())
    return inner


def screenshot(path):
    import wx

    dc = wx.ScreenDC()
    w, h = dc.GetSize()
    bmp = wx.Bitmap(w, h)
    mem = wx.MemoryDC(bmp)
    mem.Blit(0, 0, w, h, dc, 0, 0)
    mem.SelectObject(wx.NullBitmap)
    bmp.SaveFile(path, wx.BITMAP_TYPE_PNG)
    return path


def frame_parts(frame):
    return (frame._CPFrame__pipeline, frame.pipeline_controller,
            frame._CPFrame__pipeline_list_view, frame._CPFrame__module_view)


def close_dialogs():
    import wx

    for w in wx.GetTopLevelWindows():
        if isinstance(w, wx.Dialog) and w.IsModal():
            w.EndModal(wx.ID_CANCEL)


def after(ms, fn, *args):
    import wx

    wx.CallLater(ms, guarded(fn), *args)


@guarded
def step_select_and_edit(frame):
    """1. select each of our modules, change a setting, switch its window on."""
    pipeline, controller, list_view, module_view = frame_parts(frame)
    frame.SetPosition((0, 0))
    frame.SetSize((900, 1000))
    if getattr(frame, "startup_blurb_frame", None) is not None:
        frame.startup_blurb_frame.Hide()
    ours = [m for m in pipeline.modules() if m.module_name in OURS]
    if not ours:
        raise RuntimeError(f"no camcorr module in the pipeline: "
                           f"{[m.module_name for m in pipeline.modules()]}")
    from cellprofiler_core.setting.text import Float

    for module in ours:
        list_view.select_one_module(module.module_num)
        shown = module_view.get_current_module() if hasattr(module_view,
                                                             "get_current_module") else None
        setting = next(s for s in module.visible_settings() if isinstance(s, Float))
        old = setting.value
        new = old + 0.25 if setting.max_value is None or old + 0.25 <= setting.max_value \
            else old - 0.25
        module_view.on_value_change(setting, None, str(new), None)  # as typing does
        module.show_window = True
        STATE["modules"][f"{module.module_num} {module.module_name}"] = {
            "edited": setting.text, "old": old, "new": setting.value,
            "shown_in_module_view": (shown is module) if shown is not None else None}
        log(f"selected {module.module_name} #{module.module_num}, {setting.text}: "
            f"{old} -> {setting.value}")
    list_view.request_validation()
    after(4000, step_validation, frame, 0)


@guarded
def step_validation(frame, tries):
    """2. the GUI's validation of every module, as the pipeline list shows it."""
    pipeline, controller, list_view, module_view = frame_parts(frame)
    pending = [r for r in list_view.validation_requests if not getattr(r, "cancelled", False)]
    states = {}
    for module in pipeline.modules():
        ctrl, index = list_view.get_ctrl_and_index(module)
        item = ctrl.items[index]
        states[f"{module.module_num} {module.module_name}"] = {
            "state": str(item.get_error_state()).upper(),  # OK, WARNING or ERROR
            "tooltip": getattr(item, "tooltip", None)}
    STATE["validation"] = states
    if tries < 3:  # let the idle-time validation finish (it runs in the background)
        after(1500, step_validation, frame, tries + 1)
        return
    bad = {k: v for k, v in states.items() if v["state"] == "ERROR"}
    log(f"validation: {len(states)} modules, {len(bad)} flagged invalid")
    screenshot(os.path.join(SHOTS, f"{NAME}_pipeline.png"))
    after(200, step_test_mode, frame)


@guarded
def step_test_mode(frame):
    """3. Test mode, one cycle: every module once; our display() draws its figure."""
    pipeline, controller, list_view, module_view = frame_parts(frame)
    t0 = time.time()
    log("starting test mode")
    if not controller.start_debugging():
        raise RuntimeError("Test mode did not start (see the log: prepare_run/prepare_group)")
    ran = []
    while True:
        module = controller.current_debug_module()
        if module is None:
            break
        log(f"test mode: running {module.module_name} #{module.module_num}")
        ok = controller.do_step(module)
        ran.append((module.module_name, bool(ok)))
        if not ok:
            raise RuntimeError(f"Test mode: {module.module_name} #{module.module_num} failed")
        if not controller.next_debug_module():
            break
    STATE["test_mode"] = {"ran": ran, "seconds": round(time.time() - t0, 1)}
    log(f"test mode: {len(ran)} modules ran in {time.time() - t0:.1f} s")
    after(1500, step_figures, frame)


@guarded
def step_figures(frame):
    """4. the figures our modules drew, a screenshot, then close."""
    import wx

    from cellprofiler.gui.figure import Figure

    figures = [w for w in wx.GetTopLevelWindows() if isinstance(w, Figure) and w.IsShown()]
    x = 900
    for fig in figures:
        title = fig.GetTitle()
        hit = next((n for n in OURS if n in title), None)
        if hit is None:
            continue
        axes = fig.figure.axes
        images = sum(len(ax.get_images()) for ax in axes)
        tables = sum(len(ax.tables) for ax in axes)
        png = os.path.join(SHOTS, f"{NAME}_figure_{len(STATE['figures']) + 1}.png")
        fig.figure.savefig(png, dpi=60)
        STATE["figures"][title] = {"module": hit, "axes": len(axes), "images": images,
                                   "tables": tables, "png": png}
        fig.SetPosition((x, 40 * len(STATE["figures"])))
        fig.SetSize((700, 480))
        fig.Show()
        fig.Raise()
        fig.Refresh()
        fig.Update()
        x = min(x + 60, 1100)
    wx.SafeYield()
    after(2500, step_close, frame)


@guarded
def step_close(frame):
    import wx

    pipeline, controller, list_view, module_view = frame_parts(frame)
    STATE["screenshot"] = screenshot(os.path.join(SHOTS, f"{NAME}.png"))
    controller.stop_debugging()
    STATE["done"] = True
    write_report()
    log("closing")
    controller._PipelineController__dirty_workspace = False  # nothing to save: no dialog
    for w in wx.GetTopLevelWindows():
        if w is not frame:
            w.Destroy()
    frame.Close(force=True)
    wx.CallLater(3000, lambda: wx.GetApp().ExitMainLoop())


def begin(tries=0):
    """On the GUI thread, once the main loop runs: wait for the pipeline, then drive."""
    import wx

    frame = getattr(wx.GetApp(), "frame", None)
    pipeline = getattr(frame, "_CPFrame__pipeline", None) if frame is not None else None
    if pipeline is None or len(pipeline.modules()) < 5:
        if tries > 120:
            raise RuntimeError("the CellProfiler main window or pipeline did not appear")
        after(1000, begin, tries + 1)
        return
    close_dialogs()
    integer_points()  # the GUI modules are loaded now
    record_error_dialogs()
    after(2000, step_select_and_edit, frame)


def hook_main_loop():
    """Start the driver from CellProfiler's own main loop: no second thread touches wx (a
    thread polling wx while the main thread initialises GTK made wx fail to start)."""
    import wx

    original = wx.App.MainLoop

    def main_loop(self):
        wx.CallLater(3000, guarded(begin))
        return original(self)

    wx.App.MainLoop = main_loop


def watchdog(seconds=540):
    """Without touching wx: stop a hung run with a report."""
    def expire():
        STATE["errors"].append(f"the GUI run did not finish in {seconds} s")
        write_report()
        os._exit(4)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()


def allow_one_wx_app():
    """Two work-arounds for Debian's wxPython 4.2.0 (python3-wxgtk4.0, GTK 3), both found by
    running this driver; neither touches camcorr or CellProfiler's files.

    1. ``wx.App.IsDisplayAvailable()`` called before any ``wx.App`` exists leaves GTK without a
       display connection: every later ``wx.App`` fails ("Unable to access the X Display" /
       "wxEntryStart failed").  CellProfiler calls it at import time (``cellprofiler.icons``,
       the preferences); here it is answered from ``$DISPLAY`` until the GUI App exists.
    2. CellProfiler 5 (nightly dev784) creates a throw-away ``wx.App(0)`` in
    ``cellprofiler_core.preferences.get_config`` when a preference is read before the GUI
    starts, then its GUI ``App``: a second ``wx.App`` in one process, which wxPython 4.2.0 on
    GTK 3 (Debian's python3-wxgtk4.0) cannot create ("Unable to access the X Display" /
    "Can't create a GtkStyleContext without a display connection").  Until the GUI App exists,
    preferences are read from CellProfiler's in-memory configuration instead (everything this
    driver needs is on the command line); afterwards CellProfiler's own code runs unchanged."""
    import wx
    import cellprofiler_core.preferences as prefs

    probe = wx.App.IsDisplayAvailable

    def is_display_available():
        if wx.App.Get() is None:
            return bool(os.environ.get("DISPLAY"))
        return probe()

    wx.App.IsDisplayAvailable = staticmethod(is_display_available)
    original = prefs.get_config
    early = prefs.__dict__["__headless_config"]
    if not hasattr(early, "Flush"):  # config_write flushes a GUI configuration
        early.Flush = lambda: None

    def get_config():
        if not prefs.get_headless() and wx.App.Get() is None:
            return early
        return original()

    prefs.get_config = get_config


def no_telemetry():
    """The user said no to sending diagnostics (no consent dialog, no network)."""
    import cellprofiler_core.preferences as prefs

    prefs.get_telemetry = lambda: False
    prefs.get_telemetry_prompt = lambda: False


def integer_points():
    """CellProfiler's module-view sizer and its figure tables (``subplot_table`` ->
    ``align_widget``) pass float coordinates and sizes to ``wx.Point`` and ``wx.Size``, which
    wxPython 4.2.0 refuses (TypeError: the module's settings are not laid out, and every table
    display fails with an error dialog).  Their ``wx`` is given a ``Point`` and ``Size`` that
    round; nothing else changes."""
    import types

    import wx
    import cellprofiler.gui.figure._figure as figure
    import cellprofiler.gui.module_view._module_sizer as sizer

    def rounded(cls):
        return lambda *a: cls(*[int(round(v)) if isinstance(v, float) else v for v in a])

    proxy = types.ModuleType("wx_int_points")
    proxy.__dict__.update(wx.__dict__)
    proxy.Point, proxy.Size = rounded(wx.Point), rounded(wx.Size)
    sizer.wx = proxy
    figure.wx = proxy


def record_error_dialogs():
    """CellProfiler's "Error while processing MODULE ... Do you want to stop processing?"
    dialog (``cellprofiler.gui.dialog.Error``) is recorded as an error of the run and answered
    "Cancel" (stop) instead of waiting for a click."""
    import wx
    import cellprofiler.gui.dialog as dialog

    class Error:
        def __init__(self, title, message):
            STATE["errors"].append(f"{title}: {message}"[:2000])
            log(f"error dialog: {message.splitlines()[0] if message else title}")
            self.status = wx.ID_CANCEL

    dialog.Error = Error


def main():
    os.makedirs(SHOTS, exist_ok=True)
    allow_one_wx_app()
    no_telemetry()
    hook_main_loop()
    watchdog()
    sys.argv = ["cellprofiler", *CP_ARGS]
    try:
        runpy.run_module("cellprofiler", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code or 0
    else:
        code = 0
    if not STATE["done"]:
        STATE["errors"].append(f"CellProfiler exited ({code}) before the driver finished")
        write_report()
        os._exit(5)
    write_report()
    os._exit(0 if not STATE["errors"] else 3)


if __name__ == "__main__":
    main()
