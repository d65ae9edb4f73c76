"""The ctkd-inspect Textual app (installed as ``ctkd_inspect_tui``).

The folder is called ``tui/`` in the repository, but installs under a distinct import name because an unrelated
``tui`` package exists on PyPI. The app is a thin front-end over :mod:`ctkd_inspect`: it reads the
:class:`ctkd_inspect.Alignment` schema, the presentation segments of :mod:`ctkd_inspect.render`, the engines'
declarations, diffs, failure summaries, preflight findings and vocabulary lookups.

Run it with ``ctkd-inspect tui TEACHER STUDENT [TEXT]``, or from Python::

    from ctkd_inspect_tui import CtkdInspectApp
    CtkdInspectApp("llama3", "gemma2", "The café costs 3.50€").run()

``textual`` (the ``tui`` extra) is imported only when the app is.
"""

from __future__ import annotations

__all__ = ["CtkdInspectApp", "run_app"]


def __getattr__(name: str):
    # deferred: importing the package (e.g. to find its files) must not import textual
    if name in __all__:
        from . import app

        return getattr(app, name)
    raise AttributeError(f"module 'ctkd_inspect_tui' has no attribute {name!r}")
