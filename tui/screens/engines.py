"""The Engines screen: every registered engine, and the option form of the one highlighted, generated from its
declaration; "Use" re-aligns the text with it."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, OptionList, Static
from textual.widgets.option_list import Option

from ..widgets.form import EngineForm
from ..widgets.steady import SteadyOptionList
from .base import View


def _engine_summary(name: str) -> Text:
    from ctkd_inspect.engines import describe_engine

    info = describe_engine(name)
    out = Text(end="")
    out.append(f"{name}\n", "bold")
    out.append(f"{info['description']}\n", "")
    capabilities = []
    if info["requires_signals"]:
        capabilities.append("needs model signals: " + ", ".join(info["requires_signals"]))
    elif info["optional_signals"]:
        capabilities.append("uses model signals when models are given: " + ", ".join(info["optional_signals"]))
    else:
        capabilities.append("no model needed")
    if info["differentiable"]:
        capabilities.append("differentiable")
    if info["batched"]:
        capabilities.append("batched")
    out.append(" · ".join(capabilities), "dim")
    if info["uses_models"]:
        out.append("\nmodels: the aliases gemma3 and smollm2 name models; other pairs need teacher_model and "
                   "student_model", "dim")
    return out


class EnginesView(View):
    """Screen 2: engines and their options."""

    MODE = "engines"
    MAIN = "#engine-list"
    AUTO_FOCUS = "#engine-list"
    BINDINGS: ClassVar[list] = [
        Binding("a", "apply", "Use engine", id="apply-engine"),
        Binding("r", "defaults", "Defaults", id="engine-defaults"),
    ]

    def compose_body(self) -> ComposeResult:
        from ctkd_inspect.engines import engine_names

        with Horizontal(id="engines-body"):
            yield SteadyOptionList(*(Option(name, id=name) for name in engine_names()), id="engine-list")
            with Vertical(id="engine-pane"):
                yield Static("", id="engine-summary")
                yield VerticalScroll(id="engine-form-area")
                with Horizontal(id="engine-buttons"):
                    yield Button("Use this engine", id="engine-apply", variant="primary", compact=True)
                    yield Button("Defaults", id="engine-reset", compact=True)
                yield Static("", id="engine-message")

    def on_mount(self) -> None:
        self.shown: str | None = None
        listing = self.query_one("#engine-list", OptionList)
        names = [listing.get_option_at_index(i).id for i in range(listing.option_count)]
        listing.highlighted = names.index(self.app.engine) if self.app.engine in names else 0
        self.watch(self.app, "engine_version", lambda value: self.when_active(self._engine_changed, value),
                   init=False)

    async def _engine_changed(self, _version=None) -> None:
        if self.shown == self.app.engine:
            await self._show(self.app.engine)

    async def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        await self._show(event.option.id)

    async def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id != self.shown:
            await self._show(event.option.id)
        self.action_apply()

    async def _show(self, name: str, *, defaults: bool = False) -> None:
        from ctkd_inspect.engines import engine_class

        self.shown = name
        self.query_one("#engine-summary", Static).update(_engine_summary(name))
        values = {} if defaults or name != self.app.engine else self.app.options
        area = self.query_one("#engine-form-area", VerticalScroll)
        await area.remove_children()
        await area.mount(EngineForm(engine_class(name), values, id="engine-form"))
        current = name == self.app.engine
        self._say(f"in use{' with the options below' if self.app.options else ''}" if current else
                  "not in use: set its options, then Use this engine (a)", error=False)

    def _say(self, message: str, *, error: bool) -> None:
        self.query_one("#engine-message", Static).update(Text(message, style="bold red" if error else "dim"))

    def action_apply(self) -> None:
        from ctkd_inspect.api import check_request
        from ctkd_inspect.engines.options import OptionError

        if self.shown is None:
            return
        form = self.query_one("#engine-form", EngineForm)
        try:
            options = form.parse()
            # the same checks as the command line: options, sides, and the extras the engine needs
            check_request(self.app.teacher, self.app.student, self.shown, options)
        except OptionError as exc:
            self._say(f"not applied: {exc}", error=True)
            return
        except Exception as exc:
            self._say(f"not applied: {exc}", error=True)
            return
        self.app.set_engine(self.shown, options)
        self._say(f"using {self.shown}; the text is being re-aligned (Alignment screen: 1)", error=False)

    async def action_defaults(self) -> None:
        if self.shown is not None:
            await self._show(self.shown, defaults=True)

    async def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "engine-apply":
            self.action_apply()
        elif event.button.id == "engine-reset":
            await self.action_defaults()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_apply()
