"""Dialogs: help, JSON export, changing the pair, a group's detail, and the terminal-too-small hint."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Markdown, Static

from ..views import group_detail

HELP = """\
# ctkd-inspect — keys

**Screens** — `1` Alignment · `2` Engines · `3` Diff · `4` Metrics · `5` Failures · `6` Vocabulary
(or click the bar on top, or `ctrl+p` for the command palette).

| key | anywhere (not while typing) |
|---|---|
| `?` / `F1` | this help |
| `ctrl+p` | command palette: every action, screen, engine |
| `x` / `y` | export / copy the current alignment as JSON |
| `p` | change the teacher and student |
| `t` | light / dark theme |
| `q` / `ctrl+q` | quit |
| `Esc` | leave a text field |

| Alignment (1) | |
|---|---|
| `/` | edit the text (re-aligned as you type) |
| `↑` `↓` `PgUp` `PgDn` | move through the groups (the ribbons follow) |
| `]` / `[` | next / previous group that is not an exact 1:1 pair |
| `Enter` | the group's detail in a dialog |
| `e` | next engine |
| `s` | swap teacher and student |
| click | a token in a ribbon selects its group |

| Engines (2) | |
|---|---|
| `↑` `↓` | engines; the form shows the highlighted one's options |
| `a` / Enter | use the engine with the options in the form |
| `r` | back to the defaults |

| Diff (3) | |
|---|---|
| `c` | compare with the engine / teacher chosen for b |
| `v` | diff view (disagreeing groups in colour) / side by side |

| Metrics (4) · Failures (5) | |
|---|---|
| `Enter` | open the row / example on the Alignment screen |
| `o` | rows worst first / in file order |
| `r` | run the preflight checks |
| `c` | failures of this text / of the data set |

| Vocabulary (6) | |
|---|---|
| type | a token (`␣the`, `Ġthe`, `'12'` for digits) or an id (`#1234`) |
| `s` | teacher / student side |
| `m` | load or compute the MinED mapping (minutes the first time) |
| `Enter` | on a nearest token: look it up from the other side |

Ribbons: one colour per group (as on the command line); exact 1:1 groups plain, other groups **bold underlined**,
red = no partner, grey = special, yellow = the selected group; `␣` space, `⏎` newline, `⇥` tab, `×n` one character
from n byte tokens.
"""


class HelpScreen(ModalScreen):
    """Keys and screens."""

    BINDINGS: ClassVar[list] = [Binding("escape,q,question_mark,f1", "dismiss", "Close", key_display="Esc")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box", classes="dialog"):
            yield Markdown(HELP, id="help-text")
            yield Static(Text("Esc closes this help", style="dim"))


class ExportScreen(ModalScreen):
    """Ask for a file and write the current alignment there as JSON (checked first, written atomically)."""

    BINDINGS: ClassVar[list] = [Binding("escape", "dismiss", "Cancel")]

    def __init__(self, default: str):
        super().__init__()
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical(id="export-box", classes="dialog"):
            yield Label("Export the current alignment as JSON (the --json document)")
            yield Input(value=self.default, id="export-path")
            yield Checkbox("replace an existing file", id="export-overwrite")
            yield Static("", id="export-message")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Export", id="export-go", variant="primary")
                yield Button("Cancel", id="export-cancel")

    def on_mount(self) -> None:
        self.query_one("#export-path", Input).focus()

    def _export(self) -> None:
        path = self.query_one("#export-path", Input).value.strip()
        overwrite = self.query_one("#export-overwrite", Checkbox).value
        message = self.query_one("#export-message", Static)
        if not path:
            message.update(Text("type a file name ending in .json", style="bold red"))
            return
        try:
            written = self.app.export_alignment(path, overwrite=overwrite)
        except Exception as exc:  # OutputError and friends: the message says what to do
            message.update(Text(str(exc), style="bold red"))
            return
        self.app.notify(f"wrote {written}", timeout=4)
        self.app.last_export = str(written)
        self.dismiss(str(written))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._export()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "export-go":
            self._export()
        else:
            self.dismiss(None)


class PairScreen(ModalScreen):
    """Choose another teacher and student."""

    BINDINGS: ClassVar[list] = [Binding("escape", "dismiss", "Cancel")]

    def __init__(self, teacher: str, student: str):
        super().__init__()
        self.teacher, self.student = teacher, student

    def compose(self) -> ComposeResult:
        with Vertical(id="pair-box", classes="dialog"):
            yield Label("Teacher and student: aliases (ctkd-inspect tokenizers), paths or hub ids")
            yield Input(value=self.teacher, placeholder="teacher", id="pair-teacher")
            yield Input(value=self.student, placeholder="student", id="pair-student")
            yield Static("", id="pair-message")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Load", id="pair-go", variant="primary")
                yield Button("Cancel", id="pair-cancel")

    def _go(self) -> None:
        teacher = self.query_one("#pair-teacher", Input).value.strip()
        student = self.query_one("#pair-student", Input).value.strip()
        if not teacher or not student:
            self.query_one("#pair-message", Static).update(Text("give both a teacher and a student",
                                                                style="bold red"))
            return
        self.dismiss((teacher, student))
        self.app.set_pair(teacher, student)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "pair-teacher":
            self.query_one("#pair-student", Input).focus()
        else:
            self._go()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "pair-go":
            self._go()
        else:
            self.dismiss(None)


class GroupScreen(ModalScreen):
    """The current group's detail, large (Esc closes; ↑/↓ move to the neighbouring groups)."""

    BINDINGS: ClassVar[list] = [Binding("escape,enter,q", "dismiss", "Close", key_display="Esc"),
                Binding("up", "move(-1)", "Previous group"), Binding("down", "move(1)", "Next group")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="group-box", classes="dialog"):
            yield Static("", id="group-detail")

    def on_mount(self) -> None:
        self.watch(self.app, "group", self._show)

    def _show(self, group: int) -> None:
        self.query_one("#group-detail", Static).update(group_detail(self.app.alignment, group,
                                                                    self.app.failure_of(group)))

    def action_move(self, step: int) -> None:
        self.app.select_group(self.app.group + step)


class TooSmallScreen(ModalScreen):
    """Shown instead of the screens while the terminal is smaller than the layout needs."""

    def compose(self) -> ComposeResult:
        yield Static("", id="too-small")

    def on_mount(self) -> None:
        self.refresh_hint()

    def refresh_hint(self) -> None:
        from ..app import MIN_HEIGHT, MIN_WIDTH

        width, height = self.app.size
        self.query_one("#too-small", Static).update(Text(
            f"The terminal is {width}×{height}; ctkd-inspect needs at least {MIN_WIDTH}×{MIN_HEIGHT}.\n"
            "Enlarge the window (or reduce the font size). ctrl+q quits.", justify="center"))

    def on_resize(self, event) -> None:
        self.app.check_size()
        if self.is_current:
            self.refresh_hint()
