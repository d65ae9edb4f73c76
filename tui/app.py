"""The ctkd-inspect terminal UI: one tokenizer pair across texts, engines, metrics, failures and vocabularies.

:class:`CtkdInspectApp` holds the state every screen shows (the pair, the text, the engine and its options, the
current alignment and group, a loaded data set or corpus report, the diff, the failure summaries, the vocabulary
lookup) and does all work in worker threads through :class:`~ctkd_inspect_tui.session.Session`, so the UI never
waits: re-alignment is debounced while typing, a newer request makes an older one stale (its result is dropped),
and the core's progress stages drive the status line's spinner.

Screens (modes; keys 1–6, the navigation bar, or the command palette): Alignment, Engines, Diff, Metrics, Failures,
Vocabulary. Everything shown comes from :mod:`ctkd_inspect`: the alignment schema, the presentation model, the
engines' declarations, diffs, failure summaries, preflight findings and vocabulary lookups.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections import Counter
from pathlib import Path
from typing import ClassVar

from textual import events, work
from textual.app import App
from textual.binding import Binding
from textual.reactive import var
from textual.worker import get_current_worker

from ctkd_inspect.errors import CtkdError

from .activity import Activities
from .commands import CtkdCommands
from .screens.align import AlignView
from .screens.base import MainScreen, View
from .screens.diff import DiffView
from .screens.engines import EnginesView
from .screens.failures import FailuresView
from .screens.metrics import MetricsView
from .screens.modals import ExportScreen, GroupScreen, HelpScreen, PairScreen, TooSmallScreen
from .screens.vocab import VocabView
from .session import DEFAULT_TEXT, Prepared, ReportSource, Session, TextSource, prepare
from .widgets.chrome import SCREENS

#: The smallest terminal the screens are laid out for; below it the app shows a hint instead.
MIN_WIDTH, MIN_HEIGHT = 80, 24
#: Seconds of quiet typing before the text is re-aligned.
DEBOUNCE = 0.15
#: Seconds without a change before hidden views are brought up to date (see ``mark_stale``).
UPKEEP_DELAY = 0.25
THEMES = {"dark": "textual-dark", "light": "textual-light"}


def _message(exc: BaseException) -> str:
    """An exception as a message for people: ours as they are, anything else named as unexpected."""
    if isinstance(exc, CtkdError):
        return str(exc)
    return f"unexpected {type(exc).__name__}: {exc}"


class CtkdInspectApp(App):
    """The terminal UI.

    Args:
        teacher, student: tokenizer names (aliases, paths, hub ids); an unknown name is reported in the app.
        text: the text to open with (default: a sample with the usual troublemakers).
        engine: the engine to start with; options: its options, already checked (``check_request``).
        data: a file of texts (``--data``), aligned lazily; report: a corpus report Parquet (``--report``).
        theme: ``dark`` or ``light`` (or any Textual theme name).
        cache_dir: the cache folder.
        session: a :class:`Session` to share (tests reuse loaded tokenizers); a new one by default.
    """

    TITLE = "ctkd-inspect"
    CSS_PATH = "app.tcss"
    #: The views (the screens a user moves between), by name, in navigation order.
    VIEWS: ClassVar[dict] = {"align": AlignView, "engines": EnginesView, "diff": DiffView, "metrics": MetricsView,
                             "failures": FailuresView, "vocab": VocabView}
    COMMANDS = App.COMMANDS | {CtkdCommands}
    BINDINGS: ClassVar[list] = [
        *(Binding(key, f"show_screen('{mode}')", title, show=False, id=f"screen-{mode}")
          for mode, key, title in SCREENS),
        Binding("f1", "help", "Help", show=False, priority=True, id="help-f1"),
        Binding("question_mark", "help", "Help", key_display="?", id="help"),
        Binding("x", "export", "Export", id="export"),
        Binding("y", "copy_json", "Copy JSON", show=False, id="copy"),
        Binding("p", "change_pair", "Pair", show=False, id="change-pair"),
        Binding("t", "toggle_theme", "Theme", show=False, id="toggle-theme"),
        Binding("q", "quit", "Quit", show=False, id="quit"),
    ]

    # -- state the views watch (var: a change redraws only what its watchers redraw, never the whole screen) ----
    view_name: var[str] = var("align")  # the view shown
    pair_label: var[str] = var("")
    activity_tick: var[int] = var(0)
    alignment = var(None, always_update=True)  # the current Alignment, or None
    group: var[int] = var(-1, always_update=True)  # the current group, -1 for none
    text_version: var[int] = var(0)  # the text was replaced (a row was opened): editors reload
    engine_version: var[int] = var(0)  # the engine or its options changed
    diff_tick: var[int] = var(0)
    dataset_tick: var[int] = var(0)
    summary_tick: var[int] = var(0)
    lookup_tick: var[int] = var(0)

    def __init__(self, teacher: str, student: str, text: str | None = None, *, engine: str = "span",
                 options: dict | None = None, data: str | None = None, report: str | None = None,
                 theme: str = "dark", cache_dir: str | None = None, session: Session | None = None):
        super().__init__()
        self.session = session or Session(cache_dir)
        self.teacher, self.student = teacher, student
        self.text = DEFAULT_TEXT if text is None else text
        self.engine, self.options = engine, dict(options or {})
        self.data_path, self.report_path = data, report
        self.initial_theme = THEMES.get(theme, theme)
        self.activities = Activities(self._activities_changed)
        self.status_message, self.status_is_error = "", False
        self.pair_ready, self.pair_error = False, ""
        self.align_error = ""
        self.prepared: Prepared | None = None  # the current alignment's rows, cells and failures
        self.current_row: int | None = None  # the data-set row the current text came from
        self._align_generation = 0
        self._align_timer = None
        # data set or corpus report
        self.dataset: ReportSource | TextSource | None = None
        self.dataset_error = ""
        self.dataset_summary = None  # FailureSummary over the data set, when computed
        self.dataset_shapes: Counter = Counter()
        self.dataset_progress: tuple[int, int] | None = None
        self.dataset_pass_pair: tuple[str, str] | None = None  # the pair the --data pass aligned with
        # diff
        self.compare_engine: str | None = None
        self.compare_teacher: str | None = None
        self.diff_view = "diff"  # or "side"
        self.diff_result = None  # (a, b, AlignmentDiff)
        self.diff_error = ""
        # failures
        self.findings = None
        self.findings_error = ""
        self.selected_failure: dict | None = None
        # vocabulary
        self.lookup_side, self.lookup_query = "teacher", ""
        self.lookup_result = None
        self.lookup_error = ""
        self.mined_state = "absent"  # absent, computing, ready, failed
        self.mined_error = ""
        self._too_small = False
        self._views: dict[str, View] = {}
        self._warming: list[str] = []  # views still to be built in the background
        self._stale: list[str] = []  # hidden views whose content or size changed since they were last laid out
        self._upkeep_timer = None
        self._last_key_at = 0.0  # time.monotonic() of the last key
        self._offscreen_layout = True  # off when Textual's layout internals turn out to differ (see _lay_out_hidden)
        self.heap_frozen = 0  # how many times freeze_long_lived ran
        self.first_paint_at: float | None = None  # time.perf_counter() of the first frame (benchmarks)

    # -- start --------------------------------------------------------------------------------------------------

    def get_default_screen(self) -> MainScreen:
        first = self._views["align"] = AlignView()
        return MainScreen(first)

    def on_mount(self) -> None:
        self._event_loop = asyncio.get_running_loop()
        self._app_thread = threading.get_ident()
        try:
            self.theme = self.initial_theme
        except Exception:  # an unknown theme name: keep the default, say so
            self.set_status(f"unknown theme {self.initial_theme!r}; available: {', '.join(self.available_themes)}",
                            error=True)
        self._update_pair_label()
        self.activities.begin("pair", f"loading tokenizers {self.teacher} and {self.student}")
        self.check_size()
        self._warming = [name for name in self.VIEWS if name not in self._views]
        self.call_after_refresh(self._first_frame)

    def _first_frame(self) -> None:
        import time

        self.first_paint_at = time.perf_counter()
        # the work starts once the first frame is on screen: parsing a large tokenizer holds the interpreter for
        # a while (the Rust parser keeps the GIL), which would otherwise delay the first frame by seconds
        self.load_pair()
        if self.report_path or self.data_path:
            self.load_dataset()
        self._views["align"].activated()
        self.set_timer(0.02, self._warm_next)

    async def _warm_next(self) -> None:
        """Build the next hidden view (one per idle moment after the first frame), so that showing it later is a
        display toggle: building a view styles and mounts dozens of widgets, too slow for a keypress."""
        while self._warming and self._warming[0] in self._views:
            self._warming.pop(0)
        if not self._warming:
            return
        name = self._warming[0]
        view = await self._mount_view(name)
        if name != self.view_name:
            self._bring_up_to_date(view)  # while idle, so that showing it first costs no backlog
        if name in self._warming:
            self._warming.remove(name)
        if self._warming:
            self.set_timer(0.02, self._warm_next)
        else:
            self._style_new_scrollbars(self.main)
            self.freeze_long_lived()

    # -- hidden views kept ready ------------------------------------------------------------------------------------
    #
    # Showing a view must be one frame of work. Textual lays out and draws a view only while it is displayed, so a
    # view shown for the first time, or after its content changed while hidden, used to cost two or three frames:
    # the first sizes its widgets, each size change asks for another layout pass, and Textual paces passes at
    # 60 per second (a second pass comes 17-33 ms after the first). So, while the app is idle, every hidden view
    # whose content changed is brought up to date and laid out off screen at the size it will be shown at.

    def mark_stale(self, view: View) -> None:
        """``view`` (hidden) changed or missed updates: bring it up to date at the next idle moment."""
        if self.view_name == view.MODE:
            return
        if view.MODE not in self._stale:
            self._stale.append(view.MODE)
        if self._upkeep_timer is None:
            self._upkeep_timer = self.set_timer(UPKEEP_DELAY, self._upkeep)
        else:
            self._upkeep_timer.reset()  # still changing (typing, a pass in progress): wait for quiet

    async def on_event(self, event) -> None:
        if isinstance(event, events.Key):
            self._last_key_at = time.monotonic()  # hidden views wait for a pause in the keys too (see _upkeep)
        await super().on_event(event)

    def _upkeep(self) -> None:
        """Bring one stale hidden view up to date, then come back for the next (keys are handled in between).
        Waits until no key has come for ``UPKEEP_DELAY`` seconds: a key that arrived while a view was being
        brought up to date would wait for it."""
        self._upkeep_timer = None
        quiet_for = time.monotonic() - self._last_key_at
        if quiet_for < UPKEEP_DELAY:
            self._upkeep_timer = self.set_timer(UPKEEP_DELAY - quiet_for, self._upkeep)
            return
        self._style_new_scrollbars(self.view)  # the view shown may have grown scrollbars too
        while self._stale:
            name = self._stale.pop(0)
            view = self._views.get(name)
            if view is not None and name != self.view_name:
                self._bring_up_to_date(view)
                break
        if self._stale:
            self._upkeep_timer = self.set_timer(0.01, self._upkeep)

    def _bring_up_to_date(self, view: View) -> None:
        """Run the updates ``view`` missed, then (once their coroutines ran) lay it out off screen."""
        view.catch_up()
        view.call_later(self._lay_out_hidden, view)  # after the view's queued updates

    def _lay_out_hidden(self, view: View) -> None:
        """Give every widget of the hidden ``view`` the size it will have when shown, without touching the
        screen: a private layout map of the view alone, at the size of the view shown now (all views fill the same
        area), as many passes as sizes keep changing. Showing it then finds every size unchanged: one layout pass.
        Nothing is drawn here: a hidden widget has no place on screen, and lines drawn without one could be kept
        and shown later.

        Uses Textual's compositor directly (``textual._compositor``, ``Widget._size_updated``): should a Textual
        release change them, the first failure switches this off for the session, which costs speed, not function.
        """
        if not self._offscreen_layout or self.view_name == view.MODE or not view.is_mounted:
            return
        size = self.view.region.size
        if not size:
            return
        try:
            from textual._compositor import Compositor

            compositor = Compositor()
            for _ in range(3):  # as on screen: a size change (a scrollbar appearing, say) asks for another pass
                compositor.reflow(view, size)
                changed = False
                for widget, (region, _order, _clip, virtual_size, container_size, *_) in compositor.layers:
                    if widget._size_updated(region.size, virtual_size, container_size):
                        widget.post_message(events.Resize(region.size, virtual_size, container_size))
                        changed = True
                if not changed:
                    break
            self._style_new_scrollbars(view)
        except Exception as error:  # an optimisation must never take the app down
            self._offscreen_layout = False
            self.log.warning(f"off-screen layout switched off: {error!r}")

    def _style_new_scrollbars(self, root) -> None:
        """Style the scrollbars under ``root`` that Textual has not styled yet. Textual styles a widget's scrollbars
        at its first focus change, and their size rules then ask for one more layout pass: a frame of its own,
        17-33 ms after the view switch or focus move that caused it. Styled here, while idle, they are already
        what the focus change computes."""
        if not self._offscreen_layout:
            return
        try:
            bars = [bar for widget in root.walk_children(with_self=True)
                    for bar in (widget._vertical_scrollbar, widget._horizontal_scrollbar)
                    if bar is not None and not bar.styles.base.has_rule("scrollbar_color")]
            if bars:
                self.stylesheet.update_nodes(bars)
        except Exception as error:  # Textual internals (see _lay_out_hidden): speed, never function
            self._offscreen_layout = False
            self.log.warning(f"off-screen layout switched off: {error!r}")

    def on_unmount(self) -> None:
        """The app closes: what :meth:`freeze_long_lived` froze goes back to the collector (an app run inside a
        longer process, a notebook or a test session, leaves nothing behind)."""
        if self.heap_frozen:
            import gc

            gc.unfreeze()

    def freeze_long_lived(self) -> None:
        """Collect once, then move every object alive now (tokenizers, the loaded data set, the built views) out of
        the garbage collector's reach (``gc.freeze``); called on the app's thread after each large load.

        Why: a full collection walks every tracked object. With a 20,000-row report loaded that took about 0.1 s,
        and it struck at whatever keypress happened to allocate past the threshold (measured: the slowest plain
        table moves were those). Frozen objects are still freed when their last reference goes; reference cycles
        among them wait until the app closes, which unfreezes them (:meth:`on_unmount`)."""
        import gc

        gc.collect()
        gc.freeze()
        self.heap_frozen += 1

    async def _mount_view(self, name: str) -> View:
        view = self._views.get(name)
        if view is None:
            view = self._views[name] = self.VIEWS[name]()
            view.display = False
            await self.main.query_one("#views").mount(view)
        return view

    @property
    def main(self) -> MainScreen:
        """The main screen (under any dialog)."""
        return self.screen_stack[0]

    @property
    def view(self) -> View:
        """The view shown."""
        return self._views[self.view_name]

    def go(self, name: str) -> None:
        """Show the view ``name`` soon (for callers that cannot await :meth:`show_view`)."""
        self.call_later(self.show_view, name)

    async def show_view(self, name: str) -> None:
        """Show the view ``name`` (a key of :data:`VIEWS`), building it first if the background has not yet."""
        if name not in self.VIEWS:
            return
        view = await self._mount_view(name)
        if name in self._stale:
            self._stale.remove(name)  # brought up to date by being shown
        self.main.query_one("#views").current = view.id
        self.view_name = name
        view.activated()

    def _post(self, callback, *args) -> None:
        """Run ``callback(*args)`` on the app's thread (from a worker), without waiting for it.

        Like ``call_from_thread``, but the worker goes on at once: a worker reporting progress must not wait for
        the screen to redraw. The callback runs with the app's context variables set, as Textual's own callbacks
        do (timers and messages look the app up there).
        """
        if threading.get_ident() == getattr(self, "_app_thread", None):
            callback(*args)
            return

        def run() -> None:
            with self._context():
                callback(*args)

        # the app has closed (or not opened) its loop: nobody is left to show the result
        with contextlib.suppress(RuntimeError, AttributeError):
            self._event_loop.call_soon_threadsafe(run)

    def _activities_changed(self) -> None:
        self._post(self._bump_activity)

    def _bump_activity(self) -> None:
        self.activity_tick += 1

    def set_status(self, message: str, *, error: bool = False) -> None:
        """The status line's message when nothing runs (``error`` colours it)."""
        self.status_message, self.status_is_error = message, error
        self.activity_tick += 1

    def _update_pair_label(self) -> None:
        options = ", ".join(f"{k}={v}" for k, v in self.options.items() if isinstance(v, (int, float, str, bool)))
        self.pair_label = f"{self.teacher} → {self.student} · {self.engine}" + (f" ({options})" if options else "")

    # -- the pair -----------------------------------------------------------------------------------------------

    def load_pair(self) -> None:
        """Load both tokenizers in a worker; then align the text."""
        self.pair_ready, self.pair_error = False, ""
        self.activities.begin("pair", f"loading tokenizers {self.teacher} and {self.student}")
        self._load_pair_worker(self.teacher, self.student)

    @work(thread=True, exclusive=True, group="pair")
    def _load_pair_worker(self, teacher: str, student: str) -> None:
        from ctkd_inspect.progress import reporting

        error = ""
        with reporting(self.activities):
            for role, name in (("teacher", teacher), ("student", student)):
                try:
                    self.session.tokenizer(name)
                except Exception as exc:
                    error = f"{role} {name!r}: {_message(exc)}"
                    break
        self._post(self._pair_loaded, teacher, student, error)

    def _pair_loaded(self, teacher: str, student: str, error: str) -> None:
        if (teacher, student) != (self.teacher, self.student):
            return  # the pair changed meanwhile
        self.activities.end("pair")
        self.pair_error = error
        self.pair_ready = not error
        if error:
            self.align_error = f"cannot load the tokenizers: {error}\nPress p to choose another pair."
            self.alignment = None
            self.set_status(error, error=True)
            self.notify(error, title="tokenizer", severity="error", timeout=8)
            return
        self.set_status("")
        self.request_align()
        self.freeze_long_lived()
        if self.dataset is not None and self.dataset.kind == "data" and self.dataset_pass_pair != (teacher, student):
            self.start_dataset_pass()  # the rates and failures were of another pair

    def set_pair(self, teacher: str, student: str) -> None:
        """Use another teacher and student (loaded in a worker; the vocabulary state is reset)."""
        self.teacher, self.student = teacher.strip(), student.strip()
        self.lookup_result, self.lookup_error, self.mined_state = None, "", "absent"
        self.findings, self.findings_error, self.diff_result = None, "", None
        self._update_pair_label()
        self.summary_tick += 1
        self.lookup_tick += 1
        self.diff_tick += 1
        self.load_pair()

    def action_change_pair(self) -> None:
        self.push_screen(PairScreen(self.teacher, self.student))

    def action_swap(self) -> None:
        """Swap teacher and student."""
        self.set_pair(self.student, self.teacher)

    # -- aligning the text --------------------------------------------------------------------------------------

    def set_text(self, text: str, *, delay: float = DEBOUNCE) -> None:
        """The text was edited: re-align after ``delay`` seconds of quiet (a newer edit restarts the wait)."""
        if text == self.text:
            return
        self.text = text
        self.current_row = None
        self.request_align(delay)

    def request_align(self, delay: float = 0.0) -> None:
        """Align the current text with the current engine (after ``delay``); any earlier request becomes stale."""
        self._align_generation += 1
        if self._align_timer is not None:
            self._align_timer.stop()
            self._align_timer = None
        if delay:
            self._align_timer = self.set_timer(delay, self._start_align)
        else:
            self._start_align()

    def _start_align(self) -> None:
        self._align_timer = None
        if not self.pair_ready:
            return
        generation = self._align_generation
        self.activities.begin("align", f"aligning with {self.engine}")
        self._align_worker(generation, self.teacher, self.student, self.text, self.engine, dict(self.options))

    @work(thread=True, exclusive=True, group="align")
    def _align_worker(self, generation: int, teacher: str, student: str, text: str, engine: str,
                      options: dict) -> None:
        from ctkd_inspect.progress import reporting

        with reporting(self.activities):
            try:
                result, error = prepare(self.session.align(teacher, student, text, engine, options)), ""
            except Exception as exc:
                result, error = None, _message(exc)
        if not get_current_worker().is_cancelled:
            self._post(self._align_done, generation, result, error)
        else:
            self._post(self._align_dropped, generation)

    def _align_dropped(self, generation: int) -> None:
        if generation == self._align_generation:
            self.activities.end("align")

    def _align_done(self, generation: int, result, error: str) -> None:
        if generation != self._align_generation:
            return  # a newer request is on its way
        self.activities.end("align")
        if error:
            self.align_error = f"the {self.engine} engine cannot align this text: {error}"
            self.set_status(self.align_error, error=True)
            self.alignment = None
            self.group = -1
            return
        self.align_error = ""
        if self.status_is_error:
            self.set_status("")
        self._show_alignment(result, keep_group=True)
        if self.compare_engine or self.compare_teacher:
            self.compute_diff()

    def _show_alignment(self, prepared: Prepared, *, keep_group: bool, group: int | None = None) -> None:
        alignment = prepared.alignment
        count = len(alignment.table)
        if group is None:
            group = self.group if keep_group else 0
        self.prepared = prepared
        self.alignment = alignment
        self.group = min(max(group, 0), count - 1) if count else -1

    def failure_of(self, group: int):
        """Why ``group`` of the current alignment is not an exact pair (a ``GroupFailure``), or ``None``."""
        if self.prepared is None or self.prepared.alignment is not self.alignment:
            return None
        return self.prepared.failure_by_group.get(group)

    def is_idle(self) -> bool:
        """No debounce pending, no worker running, nothing in the status line's table, no hidden view waiting to be
        brought up to date."""
        from textual.worker import WorkerState

        running = any(w.state in (WorkerState.PENDING, WorkerState.RUNNING) for w in self.workers)
        return (self._align_timer is None and not running and not self.activities.busy and not self._warming
                and not self._stale and self._upkeep_timer is None)

    # -- groups ---------------------------------------------------------------------------------------------------

    def select_group(self, group: int) -> None:
        """Make ``group`` the current group (clamped to the alignment's groups)."""
        if self.alignment is None or not len(self.alignment.table):
            return
        self.group = min(max(int(group), 0), len(self.alignment.table) - 1)

    def next_group(self, step: int = 1) -> None:
        """Move to the next (``step`` 1) or previous (-1) group that is not an exact 1:1 pair, wrapping around."""
        alignment = self.alignment
        if alignment is None or not len(alignment.table):
            return
        exact = alignment.exact_mask()
        count = len(exact)
        for offset in range(1, count + 1):
            candidate = (self.group + step * offset) % count
            if not exact[candidate]:
                self.group = candidate
                return
        self.notify("every group is an exact 1:1 pair", timeout=3)

    def action_group_detail(self) -> None:
        if self.alignment is not None and self.group >= 0:
            self.push_screen(GroupScreen())

    # -- engines --------------------------------------------------------------------------------------------------

    def set_engine(self, engine: str, options: dict | None = None) -> None:
        """Use ``engine`` with ``options`` (already validated by the engine's declaration), and re-align."""
        self.engine, self.options = engine, dict(options or {})
        self._update_pair_label()
        self.engine_version += 1
        self.request_align()
        if self.dataset is not None and self.dataset.kind == "data":
            self.start_dataset_pass()

    def cycle_engine(self, step: int = 1) -> None:
        """The next registered engine, with its defaults."""
        from ctkd_inspect.engines import engine_names

        names = engine_names()
        position = names.index(self.engine) if self.engine in names else -1
        self.set_engine(names[(position + step) % len(names)])

    # -- diff -----------------------------------------------------------------------------------------------------

    def set_compare(self, engine: str | None, teacher: str | None) -> None:
        """Compare the current alignment with another engine and/or teacher (``None``: the same)."""
        self.compare_engine = engine or None
        self.compare_teacher = (teacher or "").strip() or None
        self.compute_diff()

    def compute_diff(self) -> None:
        if self.alignment is None:
            self.diff_result, self.diff_error = None, self.align_error or "nothing aligned yet"
            self.diff_tick += 1
            return
        engine = self.compare_engine or self.engine
        teacher = self.compare_teacher or self.teacher
        options = self.options if engine == self.engine else {}
        self.activities.begin("diff", f"aligning with {engine} for the diff")
        self._diff_worker(self.alignment, teacher, self.student, engine, dict(options))

    @work(thread=True, exclusive=True, group="diff")
    def _diff_worker(self, a, teacher: str, student: str, engine: str, options: dict) -> None:
        from ctkd_inspect.diffs import diff
        from ctkd_inspect.progress import reporting

        with reporting(self.activities):
            try:
                b = self.session.align(teacher, student, a.text, engine, options)
                result, error = (a, b, diff(a, b)), ""
            except Exception as exc:
                label = f"teacher {teacher}" if teacher != self.teacher else f"the {engine} engine"
                result, error = None, f"{label} cannot align this text: {_message(exc)}"
        if not get_current_worker().is_cancelled:
            self._post(self._diff_done, a, result, error)

    def _diff_done(self, a, result, error: str) -> None:
        self.activities.end("diff")
        if a is not self.alignment:
            return
        self.diff_result, self.diff_error = result, error
        self.diff_tick += 1

    def toggle_diff_view(self) -> None:
        self.diff_view = "side" if self.diff_view == "diff" else "diff"
        self.diff_tick += 1

    # -- data sets ------------------------------------------------------------------------------------------------

    def load_dataset(self) -> None:
        kind, path = ("report", self.report_path) if self.report_path else ("data", self.data_path)
        self.activities.begin("dataset", f"opening {kind} {Path(path).name}")
        self._dataset_worker(kind, path)

    @work(thread=True, exclusive=True, group="dataset-load")
    def _dataset_worker(self, kind: str, path: str) -> None:
        try:
            source = ReportSource(path) if kind == "report" else TextSource(path)
            error = ""
        except Exception as exc:
            source, error = None, _message(exc)
        self._post(self._dataset_loaded, source, error)
        if source is not None and kind == "report":
            import time

            # the tokenizers and the first alignment come first: the user is waiting for those
            while not (self.pair_ready or self.pair_error) and not get_current_worker().is_cancelled:
                time.sleep(0.05)
            try:
                source.load()  # the full rows, so opening one is instant
            except Exception as exc:
                self._post(self._dataset_failed, _message(exc))
            else:
                self._post(self.freeze_long_lived)

    def _dataset_loaded(self, source, error: str) -> None:
        self.activities.end("dataset")
        if error:
            self.dataset_error = error
            self.set_status(error, error=True)
            self.notify(error, title="data", severity="error", timeout=8)
        else:
            self.dataset = source
            if source.kind == "report":
                names = set(source.teachers) | set(source.students)
                if names and not {self.teacher, self.student} <= names:
                    self.notify(f"the report aligns {', '.join(source.teachers)} → {', '.join(source.students)}; "
                                f"edited texts are aligned with {self.teacher} → {self.student}", timeout=6)
            else:
                if source.note:
                    self.notify(f"{source.label}: {source.note}", timeout=6)
                self.start_dataset_pass()
        self.dataset_tick += 1

    def _dataset_failed(self, error: str) -> None:
        self.dataset_error = error
        self.set_status(error, error=True)
        self.dataset_tick += 1

    def start_dataset_pass(self) -> None:
        """Align every text of a ``--data`` file in the background (engines that need no model only), filling
        the rates, the distributions and the failure summary; rows still open on demand meanwhile."""
        from ctkd_inspect.engines import engine_class
        from ctkd_inspect.engines.options import uses_signals

        source = self.dataset
        if source is None or source.kind != "data":
            return
        self.dataset_summary, self.dataset_shapes, self.dataset_progress = None, Counter(), None
        source.rates[:] = float("nan")
        source.groups[:] = -1
        if uses_signals(engine_class(self.engine)) or not self.pair_ready:
            self.dataset_tick += 1
            self.summary_tick += 1
            return  # model forward passes for every text would take minutes: rows align when opened
        self.dataset_pass_pair = (self.teacher, self.student)
        self._dataset_pass_worker(source, self.teacher, self.student, self.engine, dict(self.options))

    @work(thread=True, exclusive=True, group="dataset-pass")
    def _dataset_pass_worker(self, source, teacher, student, engine, options) -> None:
        # the pass runs in a child process (ctkd_inspect_tui.background): tens of seconds of Python there cost
        # the interface nothing; this thread only relays its progress
        from ctkd_inspect.progress import reporting, stage

        from .background import run_pass

        worker = get_current_worker()
        total = len(source)
        with reporting(self.activities), stage(f"aligning the {total:,} texts of {source.label}", total=total,
                                               unit="texts") as bar:
            def progress(done, _total, payload):
                bar.update(completed=done)
                self._post(self._dataset_pass_progress, source, done, total, payload)

            try:
                result = run_pass("data_pass", (list(source.texts), teacher, student, engine, options,
                                                self.session.cache_dir), progress, lambda: worker.is_cancelled)
            except Exception as exc:
                self._post(self._dataset_failed, f"aligning {source.label}: {_message(exc)}")
                return
        if result is not None:
            self._post(self._dataset_pass_done, source, *result)

    def _dataset_pass_progress(self, source, done: int, total: int, payload) -> None:
        if source is not self.dataset:
            return
        if payload is not None:
            first, rates, groups = payload
            source.rates[first:first + len(rates)] = rates
            source.groups[first:first + len(groups)] = groups
        self.dataset_progress = (done, total)
        self.dataset_tick += 1

    def _dataset_pass_done(self, source, summary, shapes) -> None:
        from ctkd_inspect.failures import FailureSummary

        if source is not self.dataset:
            return
        if isinstance(summary, dict):
            summary = FailureSummary.from_dict(summary)
        self.dataset_summary, self.dataset_shapes, self.dataset_progress = summary, Counter(shapes), None
        self.dataset_tick += 1
        self.summary_tick += 1

    def ensure_dataset_summary(self) -> None:
        """The failure summary of a corpus report (computed once, in a worker, when first needed)."""
        source = self.dataset
        if source is None or source.kind != "report" or self.dataset_summary is not None:
            return
        if any(w.group == "report-summary" and not w.is_finished for w in self.workers):
            return
        self._report_summary_worker(source)

    @work(thread=True, exclusive=True, group="report-summary")
    def _report_summary_worker(self, source) -> None:
        # in a child process, as the --data pass (see _dataset_pass_worker)
        from ctkd_inspect.progress import reporting, stage

        from .background import run_pass

        worker = get_current_worker()
        with reporting(self.activities), stage(f"failure summary of {source.label}", total=len(source),
                                               unit="texts") as bar:
            try:
                result = run_pass("report_summary", (str(source.path),),
                                  lambda done, total, _payload: bar.update(completed=done, total=total),
                                  lambda: worker.is_cancelled)
            except Exception as exc:
                self._post(self._dataset_failed, f"summarising {source.label}: {_message(exc)}")
                return
        if result is not None:
            self._post(self._dataset_pass_done, source, *result)

    def open_row(self, index: int, group: int | None = None) -> None:
        """Open row ``index`` of the data set on the Alignment screen (at ``group`` when given)."""
        if self.dataset is None:
            return
        self.activities.begin("row", f"opening row {index}")
        self._open_row_worker(self.dataset, int(index), group)

    @work(thread=True, exclusive=True, group="row")
    def _open_row_worker(self, source, index: int, group: int | None) -> None:
        from ctkd_inspect.progress import reporting

        with reporting(self.activities):
            try:
                if source.kind == "report":
                    result, error = prepare(source.alignment(index)), ""
                else:
                    result = prepare(source.alignment(index, self.session, self.teacher, self.student, self.engine,
                                                      dict(self.options)))
                    error = ""
            except Exception as exc:
                result, error = None, f"row {index}: {_message(exc)}"
        self._post(self._row_opened, index, group, result, error)

    def _row_opened(self, index: int, group: int | None, result, error: str) -> None:
        self.activities.end("row")
        if error:
            self.set_status(error, error=True)
            self.notify(error, severity="error", timeout=6)
            return
        self._align_generation += 1  # a pending edit of the previous text is stale now
        if self._align_timer is not None:
            self._align_timer.stop()
            self._align_timer = None
        self.text = result.alignment.text
        self.current_row = index
        self.align_error = ""
        self.text_version += 1
        self._show_alignment(result, keep_group=False, group=group)
        self.dataset_tick += 1  # a --data row now has its rate
        self.go("align")

    # -- failures -------------------------------------------------------------------------------------------------

    def run_checks(self) -> None:
        """Run the preflight checks of the pair in a worker (on the data set's texts when one is loaded)."""
        if not self.pair_ready:
            self.findings_error = self.pair_error or "the tokenizers are still loading"
            self.summary_tick += 1
            return
        texts = list(self.dataset.texts[:2000]) if self.dataset is not None else None
        self.findings, self.findings_error = None, ""
        self.summary_tick += 1
        self._checks_worker(self.teacher, self.student, texts)

    @work(thread=True, exclusive=True, group="checks")
    def _checks_worker(self, teacher: str, student: str, texts) -> None:
        from ctkd_inspect.progress import reporting

        with reporting(self.activities):
            try:
                from ctkd_inspect.checks import check_pair

                findings = check_pair(self.session.tokenizer(teacher), self.session.tokenizer(student), texts)
                error = ""
            except ImportError:
                findings, error = None, "preflight checks are not available in this version of ctkd-inspect"
            except Exception as exc:
                findings, error = None, _message(exc)
        self._post(self._checks_done, teacher, student, findings, error)

    def _checks_done(self, teacher: str, student: str, findings, error: str) -> None:
        if (teacher, student) != (self.teacher, self.student):
            return
        self.findings, self.findings_error = findings, error
        self.summary_tick += 1

    def action_run_checks(self) -> None:
        self.run_checks()

    # -- vocabulary -----------------------------------------------------------------------------------------------

    def lookup(self, side: str, query: str) -> None:
        """Look ``query`` (typed text: a token or an id) up on ``side`` in a worker."""
        self.lookup_side, self.lookup_query = side, query
        if not query:
            self.lookup_result, self.lookup_error = None, ""
            self.lookup_tick += 1
            return
        if not self.pair_ready:
            self.lookup_error = self.pair_error or "the tokenizers are still loading"
            self.lookup_tick += 1
            return
        self._lookup_worker(self.teacher, self.student, side, query)

    @work(thread=True, exclusive=True, group="lookup")
    def _lookup_worker(self, teacher: str, student: str, side: str, query: str) -> None:
        from ctkd_inspect.lookup import parse_query
        from ctkd_inspect.progress import reporting

        with reporting(self.activities):
            key = ("vocab", teacher, student)
            try:
                self.activities.begin(key, "building the vocabulary tables")
                table = self.session.lookup(teacher, student)
                result, error = table.lookup(side, parse_query(query), k=10), ""
            except Exception as exc:
                result, error = None, _message(exc)
            finally:
                self.activities.end(key)
        if not get_current_worker().is_cancelled:
            self._post(self._lookup_done, side, query, result, error)

    def _lookup_done(self, side: str, query: str, result, error: str) -> None:
        if (side, query) != (self.lookup_side, self.lookup_query):
            return
        self.lookup_result, self.lookup_error = result, error
        self.lookup_tick += 1

    def compute_mined(self) -> None:
        """Load or compute the pair's MinED mapping in a worker (minutes the first time, with progress)."""
        if self.mined_state in ("computing", "ready") or not self.pair_ready:
            return
        self.mined_state, self.mined_error = "computing", ""
        self.lookup_tick += 1
        self._mined_worker(self.teacher, self.student)

    @work(thread=True, exclusive=True, group="mined")
    def _mined_worker(self, teacher: str, student: str) -> None:
        from ctkd_inspect.progress import reporting

        with reporting(self.activities):
            try:
                mapping = self.session.mined(teacher, student)
                self.session.lookup(teacher, student).set_mined(mapping)
                error = ""
            except Exception as exc:
                error = _message(exc)
        self._post(self._mined_done, teacher, student, error)

    def _mined_done(self, teacher: str, student: str, error: str) -> None:
        if (teacher, student) != (self.teacher, self.student):
            return
        self.mined_state, self.mined_error = ("failed", error) if error else ("ready", "")
        self.lookup_tick += 1
        if not error and self.lookup_query:
            self.lookup(self.lookup_side, self.lookup_query)

    def action_compute_mined(self) -> None:
        self.compute_mined()

    # -- app actions ----------------------------------------------------------------------------------------------

    async def action_show_screen(self, mode: str) -> None:
        if not self._too_small:
            await self.show_view(mode)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.current_theme.dark else "textual-dark"

    def alignment_json(self) -> str | None:
        """The current alignment as the ``--json`` document (``None`` when nothing is aligned)."""
        if self.alignment is None:
            return None
        return json.dumps(self.alignment.to_dict(), ensure_ascii=False, indent=2, default=_json_default)

    def action_copy_json(self) -> None:
        document = self.alignment_json()
        if document is None:
            self.notify("nothing to copy: no alignment yet", severity="warning")
            return
        self.copy_to_clipboard(document)
        self.notify(f"copied the alignment as JSON ({len(document):,} characters) to the clipboard", timeout=3)

    def action_export(self) -> None:
        if self.alignment is None:
            self.notify("nothing to export: no alignment yet", severity="warning")
            return
        self.push_screen(ExportScreen(_default_export_name(self.alignment)))

    def export_alignment(self, path: str, overwrite: bool = False) -> Path:
        """Write the current alignment as JSON to ``path`` (checked first, written atomically).

        Raises:
            OutputError: the path cannot be written (missing folder, an existing file without ``overwrite``...).
            InputError: nothing is aligned.
        """
        from ctkd_inspect.errors import InputError
        from ctkd_inspect.outputs import atomic_write_text, check_output_path

        document = self.alignment_json()
        if document is None:
            raise InputError("nothing to export: no alignment yet")
        target = check_output_path(path, suffixes=(".json",), overwrite=overwrite, option="file")
        atomic_write_text(target, document + "\n")
        return target

    # -- terminal size --------------------------------------------------------------------------------------------

    def on_resize(self, event) -> None:
        self.check_size()
        for view in self._views.values():  # laid out at the old size: again at the new one
            self.mark_stale(view)

    def check_size(self) -> None:
        """Show the too-small hint while the terminal is below the minimum size, and remove it when it grows
        (called on every resize, by the app and by the screens)."""
        width, height = self.size
        small = width < MIN_WIDTH or height < MIN_HEIGHT
        if small and not self._too_small:
            self._too_small = True
            self.push_screen(TooSmallScreen())
        elif not small and self._too_small:
            self._too_small = False
            if isinstance(self.screen, TooSmallScreen):
                self.pop_screen()
        elif small and isinstance(self.screen, TooSmallScreen):
            self.screen.refresh_hint()


def _json_default(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(type(value).__name__)


def _default_export_name(alignment) -> str:
    def clean(name: str) -> str:
        return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in Path(name).name) or "tokenizer"

    return f"alignment-{clean(alignment.teacher.name)}-{clean(alignment.student.name)}-{alignment.engine}.json"


def run_app(teacher: str, student: str, text: str | None = None, **kwargs) -> None:
    """Run the app in this terminal until the user quits (the ``ctkd-inspect tui`` command)."""
    CtkdInspectApp(teacher, student, text, **kwargs).run()
