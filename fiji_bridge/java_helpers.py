"""The two small Java classes the commands need, written without a Java compiler.

* ImageJ 1.x: ``CamcorrMacroAbort.abort()`` stops the macro that called a failing command
  (below).
* Fiji: ``CamcorrBshRunner.run(path, args)`` runs the commands' BeanShell helper from a macro's
  ``call(...)``, so that the helper needs no menu entry (:func:`bsh_runner_bytes`).

Why a class
-----------
ImageJ 1.x runs a plugin macro (``plugins/Camera Corrections/*.ijm``) inside the caller's
``run(...)``: ``ij.plugin.Macro_Runner`` catches the plugin macro's ``exit`` (and any error), so
the calling macro goes on.  ImageJ's own way for a command to stop its caller is the abort flag
that :meth:`ij.Macro.abort` sets ("Aborts the currently running macro or any plugin using
IJ.run()", ImageJ 1.x API, imagej.net/ij/developer/api): when ``IJ.run`` returns from the
command it finds the flag and throws ImageJ's quiet ``"Macro canceled"``, which stops the calling
macro at that line without a dialog (``MacroRunner``, ``runMacro`` and ``-batch`` treat it as a
cancellation).  ``IJ.run`` does so only when no macro interpreter is registered as the
command's caller (``IJ.macroInterpreter`` cleared), which the plugin macro's own ``run(...)``
calls do but an early failure does not.

The macro language can call ``ij.Macro.abort`` only through ``call(...)``, and on a macro thread
``Macro.abort`` also throws, which ``call`` shows as a Java exception window (headless: a stack
trace in the log).  ``CamcorrMacroAbort.abort()`` does the three steps in Java: clears the
registered interpreter (if this ImageJ has that field), calls ``Macro.abort()`` and drops the
exception it throws on a macro thread.  The macro calls it as its last statement after its error
line: ``call("CamcorrMacroAbort.abort");``.

No Java compiler is needed: :func:`class_bytes` writes the class file (JVM class-file format,
version 49, Java SE 5, so that no stack-map frames are needed; The Java Virtual Machine
Specification, Java SE 17 edition, chapter 4) and :mod:`fiji_bridge.install` puts it beside the
commands, where ImageJ's plugin class loader finds it (a class without an underscore gets no
menu entry).  Its equivalent Java source::

    public final class CamcorrMacroAbort {
        public static String abort() {
            try {
                java.lang.reflect.Field f = ij.IJ.class.getDeclaredField("macroInterpreter");
                f.setAccessible(true);
                f.set(null, null);
            } catch (Throwable e) { }
            try {
                ij.Macro.abort();
            } catch (Throwable e) { }
            return "aborted";
        }
    }
"""
from __future__ import annotations

import struct
from typing import Dict, List, Tuple

__all__ = ["CLASS_NAME", "CLASS_FILE", "MACRO_CALL", "class_bytes", "BSH_RUNNER",
           "bsh_runner_bytes", "jar_bytes"]

CLASS_NAME = "CamcorrMacroAbort"
CLASS_FILE = CLASS_NAME + ".class"
#: The statement the ImageJ 1.x commands end a failure with.
MACRO_CALL = f'call("{CLASS_NAME}.abort");'


class _Pool:
    """A class-file constant pool (JVMS 4.4): entries are added once and referred to by index."""

    def __init__(self):
        self.entries: List[bytes] = []
        self.index: Dict[Tuple, int] = {}

    def _add(self, key: Tuple, data: bytes) -> int:
        if key not in self.index:
            self.entries.append(data)
            self.index[key] = len(self.entries)  # 1-based; no 8-byte constants here
        return self.index[key]

    def utf8(self, text: str) -> int:
        raw = text.encode("utf-8")  # ASCII only here (modified UTF-8 differs only for NUL/astral)
        return self._add(("utf8", text), b"\x01" + struct.pack(">H", len(raw)) + raw)

    def cls(self, name: str) -> int:
        return self._add(("class", name), b"\x07" + struct.pack(">H", self.utf8(name)))

    def string(self, text: str) -> int:
        return self._add(("string", text), b"\x08" + struct.pack(">H", self.utf8(text)))

    def method(self, owner: str, name: str, descriptor: str) -> int:
        nat = self._add(("nat", name, descriptor), b"\x0c" + struct.pack(
            ">HH", self.utf8(name), self.utf8(descriptor)))
        return self._add(("method", owner, name, descriptor),
                         b"\x0a" + struct.pack(">HH", self.cls(owner), nat))

    def to_bytes(self) -> bytes:
        return struct.pack(">H", len(self.entries) + 1) + b"".join(self.entries)


def _u2(v: int) -> bytes:
    return struct.pack(">H", v)


def _class_file(pool: "_Pool", this: int, sup: int, name: str, descriptor: str, code: bytes, *,
                max_stack: int, max_locals: int, handlers=(), marker: str = "") -> bytes:
    """A Java SE 5 class file (public final) with one public static method `name`.

    `pool` must already hold every constant `code` refers to; the method's name, descriptor,
    the ``Code`` attribute name and `marker` (an unused constant by which the installer
    recognises its own file) are added here, after them.  `handlers`: exception table rows
    ``(start, end, handler, catch type)``.
    """
    m_name, m_desc, code_attr = pool.utf8(name), pool.utf8(descriptor), pool.utf8("Code")
    if marker:
        pool.utf8(marker)
    table = _u2(len(handlers)) + b"".join(struct.pack(">HHHH", *h) for h in handlers)
    body = (_u2(max_stack) + _u2(max_locals) + struct.pack(">I", len(code)) + code + table
            + _u2(0))
    method = (_u2(0x0009) + _u2(m_name) + _u2(m_desc) + _u2(1)     # public static, 1 attribute
              + _u2(code_attr) + struct.pack(">I", len(body)) + body)
    return b"".join([
        b"\xca\xfe\xba\xbe", _u2(0), _u2(49),    # magic, minor, major (Java SE 5)
        pool.to_bytes(),
        _u2(0x0031), _u2(this), _u2(sup),          # public final super
        _u2(0), _u2(0),                            # no interfaces, no fields
        _u2(1), method,
        _u2(0),                                    # no class attributes
    ])


def class_bytes(marker: str = "") -> bytes:
    """The class file of ``CamcorrMacroAbort`` (see the module docstring).

    Parameters
    ----------
    marker : str
        Text stored as an (unused) constant, so that the installer recognises its own file.

    Returns
    -------
    bytes
        A class file that the JVM's verifier accepts (tested by loading it into ImageJ 1.x).
    """
    pool = _Pool()
    this = pool.cls(CLASS_NAME)
    sup = pool.cls("java/lang/Object")
    ij_cls = pool.cls("ij/IJ")
    field_name = pool.string("macroInterpreter")
    get_field = pool.method("java/lang/Class", "getDeclaredField",
                            "(Ljava/lang/String;)Ljava/lang/reflect/Field;")
    set_access = pool.method("java/lang/reflect/AccessibleObject", "setAccessible", "(Z)V")
    set_value = pool.method("java/lang/reflect/Field", "set",
                            "(Ljava/lang/Object;Ljava/lang/Object;)V")
    abort = pool.method("ij/Macro", "abort", "()V")
    result = pool.string("aborted")
    code = b"".join([
        b"\x12" + bytes([ij_cls]),                 # 0  ldc ij.IJ.class
        b"\x12" + bytes([field_name]),             # 2  ldc "macroInterpreter"
        b"\xb6" + _u2(get_field),                  # 4  invokevirtual getDeclaredField
        b"\x59",                                   # 7  dup
        b"\x04",                                   # 8  iconst_1
        b"\xb6" + _u2(set_access),                 # 9  invokevirtual setAccessible
        b"\x01\x01",                               # 12 aconst_null x2
        b"\xb6" + _u2(set_value),                  # 14 invokevirtual Field.set
        b"\xa7" + struct.pack(">h", 4),            # 17 goto 21
        b"\x57",                                   # 20 pop (handler: the Throwable)
        b"\xb8" + _u2(abort),                      # 21 invokestatic ij.Macro.abort
        b"\xa7" + struct.pack(">h", 4),            # 24 goto 28
        b"\x57",                                   # 27 pop (handler)
        b"\x12" + bytes([result]),                 # 28 ldc "aborted"
        b"\xb0",                                   # 30 areturn
    ])
    if max(ij_cls, field_name, result) > 255:      # ldc takes a one-byte index
        raise ValueError("constant pool too large for ldc")
    handlers = [(0, 17, 20, 0), (21, 24, 27, 0)]  # (start, end, handler, any Throwable)
    return _class_file(pool, this, sup, "abort", "()Ljava/lang/String;", code, max_stack=3,
                       max_locals=0, handlers=handlers, marker=marker)


#: Fiji: the class that runs the commands' BeanShell helper from a macro's ``call(...)``, so that
#: the helper needs no menu entry (see :data:`fiji_bridge.generate.HELPER_TEXT`).
BSH_RUNNER = "CamcorrBshRunner"


def bsh_runner_bytes(marker: str = "") -> bytes:
    """The class file of ``CamcorrBshRunner``: one static method, Java equivalent::

        public final class CamcorrBshRunner {
            public static String run(String path, String args) throws Exception {
                bsh.Interpreter i = new bsh.Interpreter();
                i.set("args", args);
                i.source(path);
                return "";
            }
        }

    (BeanShell, ``bsh-*.jar``, ships with Fiji.)  ImageJ's ``call("CamcorrBshRunner.run", path,
    args)`` runs the BeanShell file `path` on the calling thread with the variable ``args``.
    """
    pool = _Pool()
    this = pool.cls(BSH_RUNNER)
    sup = pool.cls("java/lang/Object")
    interp = pool.cls("bsh/Interpreter")
    init = pool.method("bsh/Interpreter", "<init>", "()V")
    set_var = pool.method("bsh/Interpreter", "set", "(Ljava/lang/String;Ljava/lang/Object;)V")
    source = pool.method("bsh/Interpreter", "source", "(Ljava/lang/String;)Ljava/lang/Object;")
    args_name = pool.string("args")
    empty = pool.string("")
    if max(args_name, empty) > 255:
        raise ValueError("constant pool too large for ldc")
    code = b"".join([
        b"\xbb" + _u2(interp),                    # new bsh.Interpreter
        b"\x59",                                  # dup
        b"\xb7" + _u2(init),                      # invokespecial <init>
        b"\x4d",                                  # astore_2
        b"\x2c",                                  # aload_2
        b"\x12" + bytes([args_name]),             # ldc "args"
        b"\x2b",                                  # aload_1
        b"\xb6" + _u2(set_var),                   # invokevirtual set
        b"\x2c",                                  # aload_2
        b"\x2a",                                  # aload_0
        b"\xb6" + _u2(source),                    # invokevirtual source
        b"\x57",                                  # pop
        b"\x12" + bytes([empty]),                 # ldc ""
        b"\xb0",                                  # areturn
    ])
    return _class_file(pool, this, sup, "run",
                       "(Ljava/lang/String;Ljava/lang/String;)Ljava/lang/String;", code,
                       max_stack=3, max_locals=3, marker=marker)


def jar_bytes(entries, marker: str = "") -> bytes:
    """A jar (zip) holding `entries` ``{name: bytes}``, with fixed timestamps (the same bytes on
    every install) and `marker` as its comment."""
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name in ["META-INF/MANIFEST.MF"] + sorted(entries):
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            data = (b"Manifest-Version: 1.0\r\n\r\n" if name == "META-INF/MANIFEST.MF"
                    else entries[name])
            z.writestr(info, data)
        z.comment = marker.encode("ascii")
    return buf.getvalue()
