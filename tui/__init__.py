"""The ctkd-inspect Textual app (installed as ``ctkd_inspect_tui``).

The folder is called ``tui/`` in the repository, but installs under a distinct import name because an unrelated
``tui`` package exists on PyPI. The app is a thin front-end over :mod:`ctkd_inspect`: it reads only the
:class:`ctkd_inspect.Alignment` schema and the presentation segments of :mod:`ctkd_inspect.render`.
It has no screens yet; the terminal front-end today is the ``ctkd-inspect`` command.
"""
