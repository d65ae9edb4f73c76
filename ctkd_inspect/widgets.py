"""Jupyter widgets (ipywidgets): an alignment explorer, a corpus report and a vocabulary-mapping browser.

A thin front-end over the core: the views are the HTML of :mod:`ctkd_inspect.html` (the presentation model's
colours), the engine option controls are generated from the engines' declarations
(:func:`ctkd_inspect.engines.options_of`), requests are checked with :func:`ctkd_inspect.api.check_request`, and
long work reports :mod:`ctkd_inspect.progress` stages that the widgets draw as a progress line. Works wherever
ipywidgets 8 does: JupyterLab, the classic notebook, Voila, and headless (tests set ``.value``, call ``.click()``
and :meth:`wait`).

Usage::

    from ctkd_inspect.widgets import AlignmentExplorer, CorpusReportWidget, VocabMappingBrowser
    explorer = AlignmentExplorer("llama3", "gemma2", "The café costs 3.50€")
    explorer                    # the widget; explorer.result is the Alignment shown, to keep computing with

Work runs in a background thread, debounced (typing re-aligns once the typing pauses), one request at a time, the
newest winning; the kernel stays free and the progress line says what is happening (a first download, a model
load). Bad input — an unknown tokenizer, an empty text, an option out of bounds, a text an engine cannot align —
is a message in the widget's error area, never a traceback in the output area.

Needs the ``notebook`` extra (ipywidgets, matplotlib); ``import ctkd_inspect`` never imports this module.
"""

from __future__ import annotations

import contextlib
import contextvars
import html as _html
import io
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .extras import require

require("notebook", feature="the notebook widgets (ctkd_inspect.widgets)")

import ipywidgets as widgets  # noqa: E402  (after the extra check, so a missing extra gets the install command)

from .errors import CtkdError, InputError  # noqa: E402
from .progress import Stage, reporting  # noqa: E402

__all__ = ["DEFAULT_TEXT", "AlignmentExplorer", "CorpusReportWidget", "VocabMappingBrowser"]

#: The text an explorer starts with: accents, a price, an emoji split into byte tokens, a tab, code.
DEFAULT_TEXT = "The café costs 3.50€ 🦙 — naïve\tcode: x+=1"

_ERROR_STYLE = ("border-left:4px solid #c00000;background:rgba(192,0,0,0.08);padding:4px 8px;margin:4px 0;"
                "white-space:pre-wrap;font-family:system-ui,sans-serif;font-size:13px")


def _alias_names() -> list[str]:
    from .sources.registry import ALIASES

    return sorted(ALIASES)


def in_kernel() -> bool:
    """Whether this runs in a Jupyter kernel (a notebook, JupyterLab, Voila), where widget work goes to a
    background thread so the kernel stays free; elsewhere (a script, a test) it runs in the calling thread."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - ipywidgets depends on IPython
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _message(exc: BaseException) -> str:
    """What a person reads for an exception: our errors' own messages; anything else named, without a traceback."""
    if isinstance(exc, CtkdError):
        return str(exc)
    return (f"unexpected error ({type(exc).__name__}): {exc}. This is a bug in ctkd-inspect or in a tokenizer file; "
            "please report it with the inputs that caused it")


def _check_arguments(**checks: tuple[Any, Any, str]) -> None:
    """Refuse constructor arguments of the wrong type or value (the public API's contract: a message naming the
    argument). Each check is ``(value, kinds or a predicate, what it must be)``."""
    from .errors import InputError, InputTypeError

    for name, (value, expected, what) in checks.items():
        if isinstance(expected, (type, tuple)):
            if isinstance(value, bool) and bool not in (expected if isinstance(expected, tuple) else (expected,)):
                raise InputTypeError(f"{name} must be {what}, not bool")
            if not isinstance(value, expected):
                raise InputTypeError(f"{name} must be {what}, not {type(value).__name__}")
        elif not expected(value):
            raise InputError(f"{name} must be {what}, got {value!r}")


def _error_html(message: str) -> str:
    return f'<div class="ctkd-error" style="{_ERROR_STYLE}">{_html.escape(message)}</div>' if message else ""


def _wrapped(fragment: str, kind: str = "view") -> str:
    from .html import STYLE

    return f'{STYLE}<div class="ctkd ctkd-{kind}">{fragment}</div>'


# ---------------------------------------------------------------------------------------------------------------
# background work with progress


#: Held while any widget's job runs: the jobs of all widgets in a kernel run one at a time. Two first imports of
#: transformers' tokenizer classes in two threads at once can see a half-initialised module (an ImportError), and
#: two model loads at once would need twice the memory; a widget whose job waits says so in its progress line.
_ONE_JOB_AT_A_TIME = threading.RLock()


class _Worker:
    """Runs a widget's jobs in one background thread, in submission order, one at a time (and one at a time across
    all widgets: :data:`_ONE_JOB_AT_A_TIME`). With ``latest_only`` (the explorer), jobs are debounced: a job waits
    until its delay has passed and is skipped when a newer one was submitted meanwhile, so typing re-aligns once
    the typing pauses. Each job runs in a copy of the submitting context (so a progress reporter installed there
    follows it). ``on_wait`` is called when a job must wait for another widget's job. With ``background=False``
    a job runs at once in the submitting thread (no debounce): outside a kernel nothing needs to stay responsive,
    and a script or a test sees the result as soon as it sets a value.
    """

    _IDLE_EXIT = 30.0  # seconds an idle thread waits for work before it ends (a later submit starts another)

    def __init__(self, delay: float, latest_only: bool = True, on_wait: Callable[[], None] | None = None,
                 background: bool | None = None):
        self.delay = delay
        self.latest_only = latest_only
        self.on_wait = on_wait
        self.background = in_kernel() if background is None else bool(background)
        self._generation = 0
        self._pending = 0
        self._state = threading.Condition()
        self._turn = _ONE_JOB_AT_A_TIME  # held while a job runs (refresh() takes it too)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def submit(self, job: Callable[[Callable[[], bool]], None], delay: float | None = None) -> None:
        """Queue ``job(is_current)`` to run ``delay`` seconds from now (default: the debounce delay);
        ``is_current()`` tells a running job whether it is still the newest."""
        if not self.background:
            with self._state:
                self._generation += 1
            # jobs report their own errors; nothing escapes into the caller's output
            with self._turn, contextlib.suppress(Exception):
                contextvars.copy_context().run(job, lambda: True)
            return
        with self._state:
            self._generation += 1
            self._pending += 1
            due = time.monotonic() + (self.delay if delay is None else delay)
            self._queue.put((self._generation, due, job, contextvars.copy_context()))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="ctkd-widget-worker", daemon=True)
                self._thread.start()

    def _current(self, generation: int) -> bool:
        return not self.latest_only or generation == self._generation

    def _loop(self) -> None:
        while True:
            try:
                generation, due, job, context = self._queue.get(timeout=self._IDLE_EXIT)
            except queue.Empty:
                with self._state:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            try:
                if self.latest_only:
                    pause = due - time.monotonic()
                    if pause > 0:
                        time.sleep(pause)
                if self._current(generation):
                    if not self._turn.acquire(blocking=False):
                        if self.on_wait is not None:
                            self.on_wait()
                        self._turn.acquire()
                    try:
                        context.run(job, lambda generation=generation: self._current(generation))
                    finally:
                        self._turn.release()
            except Exception:  # jobs report their own errors; nothing may kill the thread
                pass
            finally:
                with self._state:
                    self._pending -= 1
                    self._state.notify_all()

    @property
    def busy(self) -> bool:
        return self._pending > 0

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no job is pending or running; False when ``timeout`` seconds passed first."""
        with self._state:
            return self._state.wait_for(lambda: self._pending == 0, timeout)


class _ProgressLine:
    """A status line and a progress bar that show what the core reports (a :mod:`ctkd_inspect.progress`
    reporter), plus a ticking elapsed time while work runs, so long steps without reports still show life."""

    _INTERVAL = 0.25

    def __init__(self):
        self.label = widgets.HTML(value="", layout=widgets.Layout(min_height="1.6em"))
        self.bar = widgets.FloatProgress(value=0.0, min=0.0, max=1.0,
                                         layout=widgets.Layout(width="180px", display="none"))
        self.box = widgets.HBox([self.bar, self.label], layout=widgets.Layout(align_items="center"))
        self._stages: list[Stage] = []
        self._task = ""
        self._started = 0.0
        self._running = False
        self._stop = threading.Event()
        self._lock = threading.RLock()
        self._last_draw = 0.0

    # -- the reporter protocol (called from the worker thread) ------------------------------------------------

    def start(self, stage: Stage) -> None:
        with self._lock:
            self._stages.append(stage)
        self._draw(force=True)

    def update(self, stage: Stage) -> None:
        self._draw()

    def finish(self, stage: Stage) -> None:
        with self._lock:
            if stage in self._stages:
                self._stages.remove(stage)
        self._draw(force=True)

    # -- the job's frame --------------------------------------------------------------------------------------

    def run(self, task: str, work: Callable[[], Any]) -> Any:
        """Run ``work()`` with this line as the progress reporter, showing ``task`` and the elapsed time."""
        with self._lock:
            self._task, self._started, self._running, self._stages = task, time.monotonic(), True, []
        self._stop.clear()
        self.bar.layout.display = "flex"
        self._draw(force=True)
        ticker = threading.Thread(target=self._tick, daemon=True)
        ticker.start()
        try:
            with reporting(self):
                return work()
        finally:
            with self._lock:
                self._running = False
            self._stop.set()
            ticker.join()
            self.bar.layout.display = "none"

    def done(self, text: str) -> None:
        self.label.value = f'<i style="opacity:0.75">{_html.escape(text)}</i>'

    def waiting(self) -> None:
        self.label.value = '<b style="color:#2e6da4">⏳</b> <i>waiting for another widget\'s work to finish…</i>'

    def _tick(self) -> None:
        while not self._stop.wait(self._INTERVAL):
            self._draw(force=True)

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            if not force and now - self._last_draw < 0.1:
                return  # the comm need not carry a message per token of a download
            self._last_draw = now
            stage = self._stages[-1] if self._stages else None
            text = f"{self._task} · {now - self._started:.1f} s"
        if stage is not None:
            amount = ""
            if stage.total:
                self.bar.value = max(0.0, min(1.0, stage.completed / stage.total))
                amount = f" {stage.completed / stage.total:.0%}"
            else:
                self.bar.value = 0.0
            detail = f" ({stage.detail})" if stage.detail else ""
            text = f"{stage.name}{amount}{detail} · {self._task} · {now - self._started:.1f} s"
        else:
            self.bar.value = 0.0
        self.label.value = f'<b style="color:#2e6da4">⏳</b> {_html.escape(text)}'


# ---------------------------------------------------------------------------------------------------------------
# engine option controls, generated from the declarations


def _option_control(option) -> widgets.Widget:
    """A control for one declared option: a dropdown for choices, a checkbox for a flag, a number field for a
    number, a text field for anything else (paths, models, numbers that also take words such as ``auto``).
    Number fields are not clamped: a value out of bounds gets the declaration's message in the error area."""
    common = {"description": option.name, "tooltip": option.describe(), "style": {"description_width": "initial"},
              "layout": widgets.Layout(width="auto", min_width="150px", max_width="320px")}
    default = option.default
    if option.choices:
        value = default if default in option.choices else option.choices[0]
        return widgets.Dropdown(options=list(option.choices), value=value, **common)
    if option.type is bool:
        return widgets.Checkbox(value=bool(default), indent=False, **common)
    if option.type is int and not option.also and isinstance(default, int):
        return widgets.IntText(value=default, **common)
    if option.type is float and not option.also and isinstance(default, (int, float)):
        return widgets.FloatText(value=float(default), **common)
    return widgets.Text(value="" if default is None else str(default), placeholder=option.metavar or "", **common)


class _OptionForm:
    """The controls of one engine's declared options (those offered to people: ``cli=True``)."""

    def __init__(self, engine: str):
        from .engines import engine_class, options_of

        self.engine = engine
        self.cls = engine_class(engine)
        self.options = {option.name: option for option in options_of(self.cls) if option.cli}
        self.controls: dict[str, widgets.Widget] = {name: _option_control(option)
                                                    for name, option in self.options.items()}

    def raw(self) -> dict[str, Any]:
        return {name: control.value for name, control in self.controls.items()}

    def set(self, values: dict[str, Any]) -> list[str]:
        """Put values into the controls (those this engine declares); returns a sentence for each value that was
        left out: an option the engine does not declare, or a value its control cannot hold."""
        skipped = []
        for name, value in values.items():
            control = self.controls.get(name)
            if control is None:
                known = ", ".join(self.controls) or "none"
                skipped.append(f"the {self.engine} engine has no option {name!r} (its options: {known}); ignored")
                continue
            if value is None:
                continue
            if isinstance(control, widgets.Text):
                control.value = str(value)
            elif isinstance(control, widgets.Dropdown):
                if value in control.options:
                    control.value = value
                else:
                    skipped.append(f"{name} must be one of {', '.join(map(str, control.options))} (got {value!r}); "
                                   f"using {control.value}")
            else:
                try:
                    control.value = value
                except Exception:  # a value the control cannot hold (a mapping object...): leave the default
                    skipped.append(f"{name} cannot be {value!r} here; using {control.value!r}")
        return skipped


def typed_options(engine: str, raw: dict[str, Any]) -> dict[str, Any]:
    """The options a form's raw values stand for, checked against the engine's declaration: text parsed into the
    declared type, empty fields and values equal to the default left out (so ``alignment.options`` matches a plain
    :func:`ctkd_inspect.align` call).

    Raises:
        EngineError: an unknown engine, or a value the declaration refuses (the message names the option).
    """
    from .engines import engine_class, options_of
    from .engines.options import parse_options

    cls = engine_class(engine)
    declared = {option.name: option for option in options_of(cls)}
    parsed = parse_options(cls, raw, style="python")
    return {name: value for name, value in parsed.items()
            if name not in declared or not _same(value, declared[name].default)}


def _same(value: Any, default: Any) -> bool:
    try:
        return type(value) is type(default) and bool(value == default)
    except Exception:  # values without a plain truth (arrays, mappings): never "the default"
        return False


# ---------------------------------------------------------------------------------------------------------------
# the explorer


@dataclass(frozen=True)
class _Request:
    teacher: str
    student: str
    text: str
    engine: str
    raw_options: dict[str, Any] = field(default_factory=dict)
    compare: str | None = None  # "engine", "teacher" or None
    other_engine: str = ""
    other_teacher: str = ""


class AlignmentExplorer(widgets.VBox):
    """Align a text under two tokenizers and look at it: pickers, text, engine and its options, the view, metrics,
    and a diff against a second engine or teacher.

    Args:
        teacher, student: tokenizer names (aliases are offered in the pickers; a path or hub id can be typed).
        text: the text to align first.
        engine: a registered engine (the dropdown lists :func:`ctkd_inspect.engines.engine_names`).
        options: initial values of the engine's options (``{"mode": "reference"}``).
        compare: ``"engine"`` or ``"teacher"`` to start in diff mode; ``other_engine`` / ``other_teacher`` say
            against what (defaults: ``mined``, ``llama2``).
        auto: re-align when an input changes (debounced by ``delay`` seconds); otherwise on the Align button.
        align_now: align the initial inputs at once.
        background: run the work in a background thread (``None``: when in a Jupyter kernel, so the kernel stays
            free; elsewhere, e.g. a script or a test, in the calling thread, so results are there at once).
        max_groups: rows of the group table.

    Attributes (the parts, for code and tests): ``teacher``, ``student`` (Combobox), ``text`` (Textarea), ``engine``
    (Dropdown), ``option_controls`` (name → control of the current engine), ``align_button``, ``diff_toggle``
    (ToggleButton), ``compare_with`` (ToggleButtons: engine/teacher), ``other_engine`` (Dropdown), ``other_teacher``
    (Combobox), ``status`` (the progress line), ``error`` (HTML), ``view`` (HTML), ``metrics`` (HTML).
    Results: ``result`` (the :class:`~ctkd_inspect.alignment.Alignment` shown), ``other`` and ``diff_result`` in diff
    mode, ``error_message`` (empty when the last request succeeded).
    """

    def __init__(self, teacher: str = "llama3", student: str = "gemma2", text: str = DEFAULT_TEXT,
                 engine: str = "span", *, options: dict[str, Any] | None = None, compare: str | None = None,
                 other_engine: str = "mined", other_teacher: str = "llama2", auto: bool = True, delay: float = 0.3,
                 align_now: bool = True, max_groups: int = 80, background: bool | None = None):
        from .engines import engine_names

        _check_arguments(
            teacher=(teacher, str, "a tokenizer name (str)"), student=(student, str, "a tokenizer name (str)"),
            text=(text, str, "a str"), engine=(engine, str, "an engine name (str)"),
            options=(options, (dict, type(None)), "a dict of option values or None"),
            compare=(compare, lambda v: v in (None, "engine", "teacher"), "None, 'engine' or 'teacher'"),
            other_engine=(other_engine, str, "an engine name (str)"),
            other_teacher=(other_teacher, str, "a tokenizer name (str)"), auto=(auto, bool, "True or False"),
            delay=(delay, (int, float), "a number of seconds ≥ 0"),
            align_now=(align_now, bool, "True or False"), max_groups=(max_groups, int, "an int ≥ 0"),
            background=(background, (bool, type(None)), "True, False or None"))
        _check_arguments(delay=(delay, lambda v: v >= 0, "≥ 0"), max_groups=(max_groups, lambda v: v >= 0, "≥ 0"))
        self.auto = auto
        self.max_groups = max_groups
        self.result = None
        self.other = None
        self.diff_result = None
        self.error_message = ""
        self._worker = _Worker(delay, background=background)
        self._quiet = False  # True while code sets several inputs at once (no request per change)
        self._forms: dict[str, _OptionForm] = {}
        names = engine_names()
        aliases = _alias_names()
        self._startup_error = ""
        if engine not in names:
            self._startup_error = (f"unknown engine {engine!r}: choose one of {', '.join(names)}; showing the span "
                                   "engine")
            engine = "span"
        self.teacher = widgets.Combobox(value=teacher, options=aliases, ensure_option=False, description="teacher",
                                        placeholder="alias or path", continuous_update=False,
                                        layout=widgets.Layout(width="210px"),
                                        style={"description_width": "52px"})
        self.student = widgets.Combobox(value=student, options=aliases, ensure_option=False, description="student",
                                        placeholder="alias or path", continuous_update=False,
                                        layout=widgets.Layout(width="210px"),
                                        style={"description_width": "52px"})
        self.engine = widgets.Dropdown(options=names, value=engine, description="engine",
                                       layout=widgets.Layout(width="170px"), style={"description_width": "48px"})
        self.align_button = widgets.Button(description="Align", button_style="primary",
                                           tooltip="align now", layout=widgets.Layout(width="90px"))
        self.diff_toggle = widgets.ToggleButton(value=compare is not None, description="diff",
                                                tooltip="compare with a second engine or teacher",
                                                layout=widgets.Layout(width="80px"))
        self.engine_info = widgets.HTML()
        self.options_box = widgets.HBox(layout=widgets.Layout(flex_flow="row wrap"))
        self.compare_with = widgets.ToggleButtons(options=["engine", "teacher"],
                                                  value=compare if compare in ("engine", "teacher") else "engine",
                                                  description="against", style={"button_width": "70px"})
        self.other_engine = widgets.Dropdown(options=names, value=other_engine if other_engine in names else names[0],
                                             description="engine b", layout=widgets.Layout(width="190px"))
        self.other_teacher = widgets.Combobox(value=other_teacher, options=aliases, ensure_option=False,
                                              description="teacher b", continuous_update=False,
                                              layout=widgets.Layout(width="230px"))
        self.diff_box = widgets.HBox([self.compare_with, self.other_engine, self.other_teacher],
                                     layout=widgets.Layout(flex_flow="row wrap"))
        self.text = widgets.Textarea(value=text, placeholder="a text to align", continuous_update=True,
                                     layout=widgets.Layout(width="auto", height="70px"))
        self.status = _ProgressLine()
        self._worker.on_wait = self.status.waiting
        self.error = widgets.HTML()
        self.view = widgets.HTML(layout=widgets.Layout(width="100%"))
        self.metrics = widgets.HTML()

        self._show_form(engine)
        if options:
            # a value the form cannot take stays on screen until the first change, as an unknown engine does
            problems = [self._startup_error, *self._forms[engine].set(options)]
            self._startup_error = "; ".join(p for p in problems if p)
        self._layout_diff()
        header = widgets.HBox([self.teacher, self.student, self.engine, self.align_button, self.diff_toggle],
                              layout=widgets.Layout(flex_flow="row wrap", align_items="center"))
        super().__init__([header, self.engine_info, self.options_box, self.diff_box, self.text, self.status.box,
                          self.error, self.view, self.metrics], layout=widgets.Layout(width="100%"))
        self.add_class("ctkd-explorer")
        # stable hooks for browser tests and custom CSS (the class survives into the rendered page)
        for part, name in ((self.teacher, "teacher"), (self.student, "student"), (self.engine, "engine"),
                           (self.text, "text"), (self.align_button, "align"), (self.diff_toggle, "diff"),
                           (self.other_engine, "other-engine"), (self.other_teacher, "other-teacher"),
                           (self.error, "error"), (self.view, "view"), (self.metrics, "metrics"),
                           (self.status.label, "status")):
            part.add_class(f"ctkd-{name}")

        for control in (self.teacher, self.student, self.text, self.compare_with, self.other_engine,
                        self.other_teacher):
            control.observe(self._changed, names="value")
        self.engine.observe(self._engine_changed, names="value")
        self.diff_toggle.observe(self._diff_toggled, names="value")
        self.align_button.on_click(lambda _: self.align())
        if self._startup_error:
            self._show_error(self._startup_error)
        if align_now:
            self.align(delay=0)

    # -- public -------------------------------------------------------------------------------------------------

    @property
    def option_controls(self) -> dict[str, widgets.Widget]:
        """The controls of the current engine's options, by option name."""
        return self._forms[self.engine.value].controls

    def align(self, delay: float | None = 0) -> None:
        """Align the current inputs in the background (after ``delay`` seconds); :meth:`wait` waits for it."""
        self._worker.submit(self._job(self._request()), delay=delay)

    def refresh(self) -> None:
        """Align the current inputs now, in the calling thread (scripts and tests)."""
        request = self._request()
        with self._worker._turn:
            self._job(request)(lambda: True)

    def wait(self, timeout: float | None = 120) -> bool:
        """Block until pending work is done (False when ``timeout`` seconds passed first)."""
        return self._worker.wait(timeout)

    def show(self, alignment, *, other=None) -> None:
        """Show a ready alignment (from a corpus file, a script) without aligning: the inputs are set to its
        pair, text, engine and options, and the view to it. With ``other``, show the diff of the two."""
        from .diffs import diff

        self._quiet = True
        try:
            self.teacher.value = alignment.teacher.name
            self.student.value = alignment.student.name
            self.text.value = alignment.text
            if alignment.engine in self.engine.options:
                self.engine.value = alignment.engine
                self._forms[alignment.engine].set(alignment.options)
            self.diff_toggle.value = other is not None
        finally:
            self._quiet = False
        self._publish(alignment, other, diff(alignment, other) if other is not None else None, "")
        self.status.done(f"shown from {alignment.engine} output · {len(alignment.table)} groups")

    # -- events -------------------------------------------------------------------------------------------------

    def _changed(self, change=None) -> None:
        if self._quiet or not self.auto:
            return
        self._worker.submit(self._job(self._request()))

    def _engine_changed(self, change) -> None:
        try:
            self._show_form(change["new"])
        except Exception as exc:  # an engine whose declaration cannot be read: say so, keep the kernel quiet
            self._show_error(_message(exc))
            return
        self._changed()

    def _diff_toggled(self, change) -> None:
        self._layout_diff()
        self._changed()

    def _option_changed(self, change) -> None:
        self._changed()

    # -- building -----------------------------------------------------------------------------------------------

    def _show_form(self, engine: str) -> None:
        from .engines import describe_engine

        form = self._forms.get(engine)
        if form is None:
            form = self._forms[engine] = _OptionForm(engine)
            for control in form.controls.values():
                control.observe(self._option_changed, names="value")
        self.options_box.children = tuple(form.controls.values())
        self.options_box.layout.display = "flex" if form.controls else "none"
        info = describe_engine(engine)
        needs = " · needs model signals (give teacher_model / student_model, or aliases that name a model: gemma3, " \
                "smollm2)" if info.get("requires_signals") else ""
        self.engine_info.value = (f'<i style="opacity:0.75;font-size:12px">{_html.escape(info.get("description", ""))}'
                                  f"{_html.escape(needs)}</i>")

    def _layout_diff(self) -> None:
        on = self.diff_toggle.value
        self.diff_box.layout.display = "flex" if on else "none"
        by_engine = self.compare_with.value == "engine"
        self.other_engine.layout.display = "flex" if by_engine else "none"
        self.other_teacher.layout.display = "none" if by_engine else "flex"

    def _request(self) -> _Request:
        self._layout_diff()
        compare = self.compare_with.value if self.diff_toggle.value else None
        return _Request(self.teacher.value or "", self.student.value or "", self.text.value or "", self.engine.value,
                        self._forms[self.engine.value].raw(), compare, self.other_engine.value,
                        self.other_teacher.value or "")

    # -- the work -----------------------------------------------------------------------------------------------

    def _job(self, request: _Request) -> Callable[[Callable[[], bool]], None]:
        def job(is_current: Callable[[], bool]) -> None:
            started = time.monotonic()
            task = f"aligning with {request.engine}" + (f", diff against {request.compare}" if request.compare else "")
            try:
                a, b, d = self.status.run(task, lambda: self._compute(request))
            except Exception as exc:  # every failure becomes a message in the widget, never a traceback
                if is_current():
                    self._publish(None, None, None, _message(exc))
                    self.status.done("not aligned: see the message below")
                return
            if is_current():
                # a bad constructor argument stays on screen until the first change after it
                self._publish(a, b, d, self._startup_error)
                self._startup_error = ""
                self.status.done(f"{a.summary()} · {time.monotonic() - started:.2f} s")

        return job

    @staticmethod
    def _compute(request: _Request):
        from .api import align, check_request
        from .diffs import diff

        if not request.text:
            raise InputError("the text is empty: type or paste a text to align")
        for side, value in (("teacher", request.teacher), ("student", request.student)):
            if not value.strip():
                raise InputError(f"choose a {side} tokenizer: an alias from the list (llama3, gemma2, ...) or the "
                                 "path of a tokenizer file or folder")
        teacher, student = request.teacher.strip(), request.student.strip()
        options = typed_options(request.engine, request.raw_options)
        check_request(teacher, student, request.engine, options)
        a = align(teacher, student, request.text, request.engine, **options)
        if request.compare is None:
            return a, None, None
        if request.compare == "engine":
            from .engines import engine_class, options_of

            shared = {o.name for o in options_of(engine_class(request.other_engine))}
            b = align(teacher, student, request.text, request.other_engine,
                      **{k: v for k, v in options.items() if k in shared})
        else:
            if not request.other_teacher.strip():
                raise InputError("choose the second teacher (teacher b) to compare with, or switch the diff off")
            b = align(request.other_teacher.strip(), student, request.text, request.engine, **options)
        return a, b, diff(a, b)

    def _publish(self, a, b, d, message: str) -> None:
        from .html import alignment_html, diff_html, metrics_html

        self.result, self.other, self.diff_result = a, b, d
        self._show_error(message)
        if a is None:
            self.view.value = ""
            self.metrics.value = ""
            return
        if d is None:
            self.view.value = alignment_html(a, max_groups=self.max_groups, metrics=False)
            self.metrics.value = _wrapped(metrics_html(a), "metrics")
        else:
            self.view.value = diff_html(a, b, d, max_groups=self.max_groups)
            self.metrics.value = _wrapped(
                '<div style="display:flex;gap:24px;flex-wrap:wrap">'
                f"<div><b>a</b>{metrics_html(a)}</div><div><b>b</b>{metrics_html(b)}</div></div>", "metrics")

    def _show_error(self, message: str) -> None:
        self.error_message = message
        self.error.value = _error_html(message)


# ---------------------------------------------------------------------------------------------------------------
# corpus report


@dataclass
class _Corpus:
    """A corpus to report on: its summary (the dict :func:`summarize_corpus` returns) and where its rows are."""

    summary: dict
    texts: int
    parquet: Path | None = None
    table: Any = None
    alignments: list | None = None

    @property
    def has_rows(self) -> bool:
        return self.parquet is not None or self.table is not None or self.alignments is not None

    def alignment(self, index: int):
        """Row ``index`` as an :class:`~ctkd_inspect.alignment.Alignment` (a corpus file is read one row group at a
        time, so opening a text of a large run reads little)."""
        if self.parquet is not None:
            from .columns import read_parquet_row

            return read_parquet_row(self.parquet, index)
        if self.table is not None:
            from .columns import from_arrow

            return from_arrow(self.table, index)
        if self.alignments is not None:
            return self.alignments[index]
        raise InputError("this report has no rows to open: give the run's Parquet file too (parquet=...)")


def _summary_dict(summary) -> dict:
    """A :class:`~ctkd_inspect.corpus.CorpusSummary` as the report's dict."""
    data = summary.to_dict()
    data["source"] = "corpus run"
    return data


def _load_corpus(source, parquet=None, *, max_examples: int, max_worst: int) -> _Corpus:
    from .alignment import Alignment

    if parquet is not None and not isinstance(parquet, (str, os.PathLike)):
        from .errors import InputTypeError

        raise InputTypeError(f"parquet must be the path of the run's Parquet file, not {type(parquet).__name__}")
    parquet = Path(parquet).expanduser() if parquet is not None else None
    if parquet is not None and not parquet.exists():
        raise InputError(f"no Parquet file at {str(parquet)!r}: give the output file of the corpus run")
    if hasattr(source, "summary") and hasattr(source, "output"):  # a CorpusResult of run_corpus
        return _Corpus(_summary_dict(source.summary), source.summary.texts, parquet or Path(source.output))
    if hasattr(source, "to_dict") and hasattr(source, "rate_counts"):  # a CorpusSummary
        own = getattr(source, "parquet", None)
        return _Corpus(_summary_dict(source), source.texts, parquet or (Path(own) if own else None))
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        if not path.exists():
            raise InputError(f"no corpus file at {str(source)!r}: give the Parquet file of a corpus run "
                             "(ctkd-inspect corpus, or ctkd_inspect.columns.write_parquet) or its summary JSON")
        if path.suffix.lower() == ".json":
            from .corpus import load_summary

            summary = load_summary(path)
            return _Corpus(_summary_dict(summary), summary.texts, parquet)
        from .columns import read_table

        table = read_table(path)
        summary = _summarize(table, max_examples=max_examples, max_worst=max_worst)
        return _Corpus(summary, table.num_rows, path)
    if hasattr(source, "schema") and hasattr(source, "num_rows"):
        return _Corpus(_summarize(source, max_examples=max_examples, max_worst=max_worst), source.num_rows,
                       table=source)
    if isinstance(source, Sequence) and not isinstance(source, str) and all(isinstance(a, Alignment)
                                                                            for a in source):
        alignments = list(source)
        return _Corpus(_summarize(alignments, max_examples=max_examples, max_worst=max_worst), len(alignments),
                       alignments=alignments)
    raise InputError("a corpus report reads a corpus run (its result, summary or Parquet file), a summary JSON, a "
                     f"pyarrow table of alignment columns or a list of Alignments, not {type(source).__name__}")


def summarize_corpus(source, *, max_examples: int = 8, max_worst: int = 10) -> dict:
    """The summary a corpus report shows, as a dict (the input of :func:`ctkd_inspect.html.corpus_summary_html`).

    A corpus run's own summary (a :class:`~ctkd_inspect.corpus.CorpusResult`, a
    :class:`~ctkd_inspect.corpus.CorpusSummary` or its JSON file) is taken as it is (``to_dict()``). Anything else
    (a Parquet file of alignment columns, a pyarrow table of them, a list of Alignments) is summarised here, with the
    same keys: ``teacher``, ``student``, ``engine``, ``texts``, ``characters``, ``tokens``, ``alignment_rate``
    (``corpus``, ``mean``, ``median``, ``min``, ``max``, ``histogram``), ``shapes``, ``failures`` (a
    :class:`~ctkd_inspect.failures.FailureSummary` as a dict) and ``worst_texts`` (``index`` = the row).

    Raises:
        InputError: a missing file or an unsupported source.
    """
    return _load_corpus(source, max_examples=max_examples, max_worst=max_worst).summary


def _summarize(rows, *, max_examples: int, max_worst: int) -> dict:
    import numpy as np

    from .failures import FailureSummary
    from .html import histogram
    from .progress import stage

    if hasattr(rows, "num_rows"):
        from .columns import iter_alignments

        count, alignments = rows.num_rows, iter_alignments(rows)
    else:
        count, alignments = len(rows), iter(rows)
    failures = FailureSummary(max_examples=max_examples, max_worst=max_worst)
    rates, shapes = [], {"1:1": 0, "1:n": 0, "n:1": 0, "n:m": 0, "unmatched": 0}
    names: dict[str, set] = {"teacher": set(), "student": set(), "engine": set()}
    tokens = {"teacher": 0, "student": 0}
    counted = exact = characters = 0
    with stage("summarising the corpus", total=count, unit="texts") as bar:
        for index, alignment in enumerate(alignments):
            failures.add(alignment, index)
            rate = alignment.metrics.get("alignment_rate")
            if rate is not None:
                rates.append(float(rate))
            for name, number in alignment.metrics.get("shapes", {}).items():
                shapes[name] = shapes.get(name, 0) + int(number)
            names["teacher"].add(alignment.teacher.name)
            names["student"].add(alignment.student.name)
            names["engine"].add(alignment.engine)
            tokens["teacher"] += len(alignment.teacher)
            tokens["student"] += len(alignment.student)
            counted += int((~alignment.student.special).sum())
            exact += int(alignment.metrics.get("exact_groups", 0))
            characters += len(alignment.text)
            bar.advance(1)
    values = np.asarray(rates, dtype=float)
    data = failures.to_dict()
    worst = [{"index": r["text_index"], "score": r["score"], "alignment_rate": 1.0 - r["score"],
              "student_tokens": r["student_tokens"], "failed_student_tokens": r["failed_student_tokens"],
              "preview": r["preview"]} for r in data.pop("worst_texts")]
    return {"teacher": " / ".join(sorted(names["teacher"])), "student": " / ".join(sorted(names["student"])),
            "engine": " / ".join(sorted(names["engine"])), "texts": count, "characters": characters,
            "tokens": tokens, "source": "alignments",
            "alignment_rate": {"corpus": exact / counted if counted else None,
                               "mean": float(values.mean()) if len(values) else None,
                               "median": float(np.median(values)) if len(values) else None,
                               "min": float(values.min()) if len(values) else None,
                               "max": float(values.max()) if len(values) else None,
                               "histogram": histogram(values.tolist(), bins=50)},
            "shapes": shapes, "failures": data, "worst_texts": worst}


def corpus_figure(summary: dict):
    """A matplotlib ``Figure`` of a corpus summary (:func:`summarize_corpus`): the distribution of per-text
    alignment rates, the group shapes, and the share of student tokens outside exact 1:1 groups by primary failure
    kind. Built with the object API (no pyplot state), so it is safe in a worker thread."""
    import numpy as np
    from matplotlib.figure import Figure

    from .failures import KINDS

    figure = Figure(figsize=(11, 3.0), dpi=96, layout="constrained")
    axes = figure.subplots(1, 3)
    histogram = summary["alignment_rate"]["histogram"]
    counts, edges = np.asarray(histogram["counts"]), np.asarray(histogram["edges"])
    while len(counts) > 50 and len(counts) % 2 == 0:  # a run's 1000 fine bins drawn as 50
        counts, edges = counts.reshape(-1, 2).sum(axis=1), edges[::2]
    axes[0].stairs(counts, edges, fill=True, color="#2e6da4")
    axes[0].set_title("alignment rate per text", fontsize=10)
    axes[0].set_xlabel("share of student tokens in exact 1:1 groups", fontsize=8)
    axes[0].set_ylabel("texts", fontsize=8)
    shapes = {k: v for k, v in summary["shapes"].items() if v}
    axes[1].bar(list(shapes), list(shapes.values()), color="#1e5e2e")
    axes[1].set_title("group shapes", fontsize=10)
    axes[1].set_yscale("log")
    kinds = summary["failures"]["kinds"]
    shares = [(kind, (kinds.get(kind, {}).get("student_token_share") or 0.0) * 100) for kind in KINDS]
    axes[2].barh([k for k, _ in shares][::-1], [v for _, v in shares][::-1], color="#a00000")
    axes[2].set_title("student tokens outside exact 1:1, by kind", fontsize=10)
    axes[2].set_xlabel("% of student tokens", fontsize=8)
    for axis in axes:
        axis.tick_params(labelsize=8)
    return figure


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


class CorpusReportWidget(widgets.VBox):
    """A corpus of alignments at a glance: the summary (rates, shapes, failure taxonomy), distributions drawn with
    matplotlib, the worst texts and examples of each failure kind; clicking one opens it in an explorer view.

    Args:
        source: a corpus run — the :class:`~ctkd_inspect.corpus.runner.CorpusResult` of
            :func:`~ctkd_inspect.corpus.runner.run_corpus`, its :class:`~ctkd_inspect.corpus.CorpusSummary`, its
            summary JSON or its Parquet file — or a Parquet file / pyarrow table of alignment columns
            (:func:`ctkd_inspect.columns.write_parquet`), or a list of Alignments. A bad source is a message in the
            widget.
        parquet: the run's Parquet file, when ``source`` is a summary that does not name it (to open texts).
        max_examples, max_worst: examples kept per failure kind and worst texts listed, for sources summarised
            here (a run's summary keeps its own).
        load_now: load the report at once.
        background: run the work in a background thread (``None``: when in a Jupyter kernel, so the kernel stays
            free; elsewhere, e.g. a script or a test, in the calling thread, so results are there at once).

    Attributes: ``summary`` (the dict of :func:`summarize_corpus`), ``summary_view`` (HTML), ``plot`` (Image),
    ``worst_buttons`` / ``example_buttons`` (a Button per text, with its row as ``text_index``), ``kind`` (Dropdown of
    failure kinds), ``explorer`` (the :class:`AlignmentExplorer` that shows an opened text), ``opened`` (the row
    shown), ``error_message``.
    """

    def __init__(self, source, *, parquet=None, max_examples: int = 8, max_worst: int = 10, load_now: bool = True,
                 background: bool | None = None):
        _check_arguments(max_examples=(max_examples, int, "an int ≥ 0"), max_worst=(max_worst, int, "an int ≥ 0"),
                         load_now=(load_now, bool, "True or False"),
                         background=(background, (bool, type(None)), "True, False or None"))
        _check_arguments(max_examples=(max_examples, lambda v: v >= 0, "≥ 0"),
                         max_worst=(max_worst, lambda v: v >= 0, "≥ 0"))
        self.summary: dict | None = None
        self.opened: int | None = None
        self.error_message = ""
        self._source, self._parquet = source, parquet
        self._corpus: _Corpus | None = None
        self._limits = {"max_examples": max_examples, "max_worst": max_worst}
        self.status = _ProgressLine()
        self._worker = _Worker(0.0, latest_only=False, on_wait=self.status.waiting, background=background)
        self.error = widgets.HTML()
        self.summary_view = widgets.HTML()
        self.plot = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        self.worst_buttons: list[widgets.Button] = []
        self.example_buttons: list[widgets.Button] = []
        self.worst_box = widgets.VBox()
        self.kind = widgets.Dropdown(description="failure kind", options=[], style={"description_width": "initial"})
        self.example_box = widgets.VBox()
        self.explorer = AlignmentExplorer(text="", align_now=False, background=background)
        self.explorer.layout.display = "none"
        self.kind.observe(self._kind_changed, names="value")
        lists = widgets.HBox([
            widgets.VBox([widgets.HTML("<b>worst texts</b> <i>(click one to open it below)</i>"), self.worst_box],
                         layout=widgets.Layout(width="50%")),
            widgets.VBox([self.kind, self.example_box], layout=widgets.Layout(width="50%"))])
        super().__init__([self.status.box, self.error, self.summary_view, self.plot, lists, self.explorer],
                         layout=widgets.Layout(width="100%"))
        self.add_class("ctkd-corpus-report")
        if load_now:
            self.load()

    def load(self, source=None, *, parquet=None) -> None:
        """(Re)load the report from ``source`` (default: the one given), in the background."""
        if source is not None:
            self._source, self._parquet = source, parquet
        self._worker.submit(self._load_job(self._source, self._parquet), delay=0)

    def wait(self, timeout: float | None = 300) -> bool:
        """Block until loading (and any explorer work) is done; False when ``timeout`` passed first."""
        started = time.monotonic()
        done = self._worker.wait(timeout)
        left = None if timeout is None else max(0.0, timeout - (time.monotonic() - started))
        return done and self.explorer.wait(left)

    def open_text(self, text_index: int) -> None:
        """Show row ``text_index`` of the corpus in the explorer view (its stored alignment, not a new one)."""
        try:
            if self._corpus is None:
                raise InputError("the corpus is not loaded yet")
            if not 0 <= int(text_index) < self._corpus.texts:
                raise InputError(f"text {text_index} is not in the corpus (rows 0–{self._corpus.texts - 1})")
            alignment = self._corpus.alignment(int(text_index))
            self.explorer.layout.display = "flex"
            self.explorer.show(alignment)
            self.opened = int(text_index)
            self._show_error("")
        except Exception as exc:
            self._show_error(_message(exc))

    # -- internals ----------------------------------------------------------------------------------------------

    def _load_job(self, source, parquet):
        def job(is_current):
            from .html import corpus_summary_html

            try:
                def work():
                    corpus = _load_corpus(source, parquet, **self._limits)
                    return corpus, _png(corpus_figure(corpus.summary))

                corpus, png = self.status.run("loading the corpus report", work)
            except Exception as exc:
                self._show_error(_message(exc))
                self.status.done("no report: see the message below")
                return
            self._corpus, self.summary = corpus, corpus.summary
            shown = dict(corpus.summary)  # the distribution is drawn by matplotlib below, not twice
            shown["alignment_rate"] = {k: v for k, v in shown["alignment_rate"].items() if k != "histogram"}
            self.summary_view.value = corpus_summary_html(shown)
            self.plot.value = png
            self._fill_worst(corpus.summary.get("worst_texts", []))
            kinds = list(corpus.summary["failures"].get("examples", {}))
            self.kind.options = kinds
            if kinds:
                self.kind.value = kinds[0]
            note = "" if corpus.has_rows else " · no rows to open (give parquet=...)"
            self._show_error("")
            self.status.done(f"{corpus.texts:,} texts{note}")

        return job

    def _button(self, label: str, index: int, tooltip: str) -> widgets.Button:
        button = widgets.Button(description=label, tooltip=tooltip,
                                layout=widgets.Layout(width="100%", justify_content="flex-start"))
        button.on_click(lambda _button, i=index: self.open_text(i))
        button.text_index = index
        return button

    def _fill_worst(self, worst: list[dict]) -> None:
        from .render import visible

        self.worst_buttons = [
            self._button(f"row {w['index']} · {w['alignment_rate']:.0%} aligned · {visible(w['preview'])[:60]}",
                         int(w["index"]), w["preview"]) for w in worst]
        self.worst_box.children = tuple(self.worst_buttons)

    def _kind_changed(self, change) -> None:
        from .render import visible

        if self.summary is None or not change["new"]:
            return
        examples = self.summary["failures"]["examples"].get(change["new"], [])
        self.example_buttons = [
            self._button(f"row {e['text_index']} · {' '.join(visible(p) for p in e['teacher_pieces'])} | "
                         f"{' '.join(visible(p) for p in e['student_pieces'])}"[:90], int(e["text_index"]),
                         e.get("detail") or "") for e in examples]
        self.example_box.children = tuple(self.example_buttons)

    def _show_error(self, message: str) -> None:
        self.error_message = message
        self.error.value = _error_html(message)


# ---------------------------------------------------------------------------------------------------------------
# vocabulary-mapping browser


class VocabMappingBrowser(widgets.VBox):
    """Browse the vocabulary mappings of a tokenizer pair: coverage (exact, and MinED once computed), the near
    misses, and a lookup of any token or id of either side (its exact and MinED counterparts and nearest tokens,
    :mod:`ctkd_inspect.lookup`).

    Args:
        teacher, student: the pair (aliases offered; paths can be typed).
        k: nearest tokens listed per lookup.
        query: a first query to look up once the pair is loaded.
        load_now: load the pair at once.
        background: run the work in a background thread (``None``: when in a Jupyter kernel, so the kernel stays
            free; elsewhere, e.g. a script or a test, in the calling thread, so results are there at once).

    Attributes: ``teacher``, ``student`` (Combobox), ``load_button``, ``side`` (ToggleButtons), ``query`` (Text),
    ``lookup_button``, ``mined_button`` (compute or read the cached MinED mapping), ``coverage`` (HTML),
    ``result_view`` (HTML), ``error``, ``lookup`` (the :class:`~ctkd_inspect.lookup.VocabLookup`), ``result`` (the last
    :class:`~ctkd_inspect.lookup.LookupResult`), ``error_message``.
    """

    def __init__(self, teacher: str = "llama3", student: str = "gemma2", *, k: int = 10, query: str = "",
                 load_now: bool = True, background: bool | None = None):
        _check_arguments(teacher=(teacher, str, "a tokenizer name (str)"),
                         student=(student, str, "a tokenizer name (str)"), k=(k, int, "an int ≥ 1"),
                         query=(query, str, "a str"), load_now=(load_now, bool, "True or False"),
                         background=(background, (bool, type(None)), "True, False or None"))
        _check_arguments(k=(k, lambda v: v >= 1, "≥ 1"))
        aliases = _alias_names()
        self.lookup = None
        self.result = None
        self.error_message = ""
        self._k = k
        # every job runs, in order: loading, then a lookup
        self._worker = _Worker(0.0, latest_only=False, background=background)
        self.teacher = widgets.Combobox(value=teacher, options=aliases, ensure_option=False, description="teacher",
                                        continuous_update=False, layout=widgets.Layout(width="210px"))
        self.student = widgets.Combobox(value=student, options=aliases, ensure_option=False, description="student",
                                        continuous_update=False, layout=widgets.Layout(width="210px"))
        self.load_button = widgets.Button(description="Load pair")
        self.mined_button = widgets.Button(description="MinED mapping",
                                           tooltip="compute the MinED mapping (about two minutes for a large pair the "
                                                   "first time, then read from the cache)")
        self.side = widgets.ToggleButtons(options=["teacher", "student"], value="teacher", description="side",
                                          style={"button_width": "70px"})
        self.query = widgets.Text(value=query, placeholder="a token (␣the, Ġthe, ▁the) or an id (#1234)",
                                  description="token", continuous_update=False, layout=widgets.Layout(width="320px"))
        self.lookup_button = widgets.Button(description="Look up", button_style="primary")
        self.status = _ProgressLine()
        self._worker.on_wait = self.status.waiting
        self.error = widgets.HTML()
        self.result_view = widgets.HTML()
        self.coverage = widgets.HTML()
        self.load_button.on_click(lambda _: self.load())
        self.mined_button.on_click(lambda _: self._submit(self._mined_job()))
        self.lookup_button.on_click(lambda _: self.find())
        self.query.observe(lambda change: self.find(), names="value")
        self.side.observe(lambda change: self.find() if self.query.value else None, names="value")
        super().__init__([
            widgets.HBox([self.teacher, self.student, self.load_button, self.mined_button],
                         layout=widgets.Layout(flex_flow="row wrap")),
            widgets.HBox([self.side, self.query, self.lookup_button],
                         layout=widgets.Layout(flex_flow="row wrap", align_items="center")),
            self.status.box, self.error, self.result_view, self.coverage], layout=widgets.Layout(width="100%"))
        self.add_class("ctkd-vocab-browser")
        if load_now:
            self.load()

    def load(self) -> None:
        """Load the pair's vocabularies and exact mapping (in the background), then look up the query, if any."""
        self._submit(self._load_job(self.teacher.value.strip(), self.student.value.strip()))

    def find(self) -> None:
        """Look the query up on the chosen side (in the background, after any loading)."""
        self._submit(self._find_job(self.side.value, self.query.value))

    def wait(self, timeout: float | None = 300) -> bool:
        """Block until pending work is done; False when ``timeout`` passed first."""
        return self._worker.wait(timeout)

    # -- internals ----------------------------------------------------------------------------------------------

    def _submit(self, job) -> None:
        self._worker.submit(job, delay=0)

    def _guard(self, task: str, work: Callable[[], None]) -> None:
        try:
            self.status.run(task, work)
        except Exception as exc:
            self._show_error(_message(exc))
            self.status.done(f"{task}: failed, see the message below")
            return
        self._show_error("")

    def _load_job(self, teacher: str, student: str):
        def job(is_current):
            self.lookup = None

            def work():
                from .lookup import VocabLookup
                from .sources import load_tokenizer
                from .vocab import vocabulary

                for side, name in (("teacher", teacher), ("student", student)):
                    if not name:
                        raise InputError(f"choose a {side} tokenizer: an alias from the list or a path")
                teacher_vocab = vocabulary(load_tokenizer(teacher), teacher)
                student_vocab = vocabulary(load_tokenizer(student), student)
                self.lookup = VocabLookup(teacher_vocab, student_vocab)
                self.lookup.exact  # noqa: B018  (computed here, in the background, not at the first lookup)

            self._guard(f"loading {teacher} → {student}", work)
            if self.lookup is not None and self.lookup.teacher.name == teacher:
                self._show_coverage()
                self.status.done(f"{teacher} ({len(self.lookup.teacher):,} ids) → {student} "
                                 f"({len(self.lookup.student):,} ids)")
                if self.query.value:
                    self._find_job(self.side.value, self.query.value)(is_current)

        return job

    def _mined_job(self):
        def job(is_current):
            def work():
                from .vocab import mined_mapping

                if self.lookup is None:
                    raise InputError("load a pair first")
                self.lookup.set_mined(mined_mapping(self.lookup.teacher, self.lookup.student))

            self._guard("MinED mapping", work)
            if self.lookup is not None and self.lookup.mined is not None:
                self._show_coverage()
                self.status.done("MinED mapping ready")
                if self.query.value:
                    self._find_job(self.side.value, self.query.value)(is_current)

        return job

    def _find_job(self, side: str, text: str):
        def job(is_current):
            from .html import lookup_html
            from .lookup import parse_query

            if not text:
                self.result_view.value = ""
                return
            try:
                if self.lookup is None:
                    raise InputError("no pair is loaded: choose a teacher and a student and press Load pair")
                self.result = self.lookup.lookup(side, parse_query(text), k=self._k)
            except Exception as exc:
                self.result = None
                self.result_view.value = ""
                self._show_error(_message(exc))
                return
            self._show_error("")
            self.result_view.value = lookup_html(self.result)

        return job

    def _show_coverage(self) -> None:
        from .html import vocab_mapping_html

        lookup = self.lookup
        parts = [vocab_mapping_html(lookup.exact, lookup.teacher, lookup.student)]
        if lookup.mined is not None:
            parts.append(vocab_mapping_html(lookup.mined, lookup.teacher, lookup.student))
        self.coverage.value = "".join(parts)

    def _show_error(self, message: str) -> None:
        self.error_message = message
        self.error.value = _error_html(message)
