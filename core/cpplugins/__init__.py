"""Install the camcorr CellProfiler plugins into a user's plugins folder.

``camcorr cellprofiler install PLUGINS_DIR`` copies the plugin files (the modules and their
``_``-prefixed helpers) into CellProfiler's plugins folder; ``--uninstall`` removes them again.
Only files are copied: camcorr never imports CellProfiler.  The plugins import camcorr from the
Python environment CellProfiler runs in, so nothing refers back to this checkout.

A manifest (``.camcorr-cellprofiler.json``) in the plugins folder records the files written and
their SHA-256: a later install replaces only files it wrote itself (an upgrade), and refuses a
file of the same name that is someone else's (or that the user edited); uninstall removes only
unmodified files of its own.
"""
from .install import MANIFEST, install_plugins, plugin_source_dir, uninstall_plugins

__all__ = ["MANIFEST", "install_plugins", "uninstall_plugins", "plugin_source_dir"]
