"""An engine's option form, generated from its declaration (:func:`ctkd_inspect.engines.options_of`).

One field per option the engine offers on the command line: a switch for ``bool``, a choice list for options with
``choices``, a text field for everything else (numbers, names, paths). Values are read back as typed and checked by
:func:`ctkd_inspect.engines.options.parse_options`, the same code that checks CLI flags, so the form knows no engine
by name and a plugin engine gets its form for free. A refused value is shown under its field.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input, Label, Select, Static, Switch


def form_fields(engine_cls) -> list:
    """The declarations the form shows: every option offered on the command line."""
    from ctkd_inspect.engines.options import options_of

    return [option for option in options_of(engine_cls) if option.cli]


class OptionField(Vertical):
    """One option: its name, the input widget, its help line and a line for a refused value."""

    DEFAULT_CSS = """
    OptionField { height: auto; margin: 0 0 1 0; }
    OptionField > .option-name { text-style: bold; }
    OptionField > .option-help { color: $text-muted; }
    OptionField > .option-error { color: $text-error; display: none; }
    OptionField.-invalid > .option-error { display: block; }
    OptionField Input, OptionField Select { width: 1fr; max-width: 60; }
    """

    def __init__(self, option, value=None):
        super().__init__(id=f"field-{option.name}")
        self.option = option
        self.initial = value

    def compose(self) -> ComposeResult:
        option = self.option
        yield Label(f"{option.name}  ({_type_name(option)})", classes="option-name")
        if option.type is bool:
            default = bool(option.default) if self.initial is None else bool(self.initial)
            yield Switch(value=default, id=f"input-{option.name}")
        elif option.choices:
            current = self.initial if self.initial in option.choices else option.default
            yield Select([(choice, choice) for choice in option.choices], value=current, allow_blank=False,
                         id=f"input-{option.name}", compact=True)
        else:
            shown = "" if self.initial is None or not isinstance(self.initial, (int, float, str)) else str(
                self.initial)
            placeholder = f"default: {option.default}" if option.default is not None else "not set"
            yield Input(value=shown, placeholder=placeholder, id=f"input-{option.name}", compact=True)
        yield Static(option.describe(), classes="option-help")
        yield Static("", classes="option-error")

    def value(self):
        """The value as the person set it: a bool, a choice, or the typed text; ``None`` (not given) for an empty
        field and for a switch or choice left at the declared default."""
        widget = self.query_one(f"#input-{self.option.name}")
        if isinstance(widget, (Switch, Select)):
            if isinstance(widget, Select) and widget.is_blank():
                return None
            value = widget.value
            return None if value == self.option.default else value
        return widget.value.strip() or None

    def show_error(self, message: str | None) -> None:
        self.set_class(bool(message), "-invalid")
        self.query_one(".option-error", Static).update(message or "")


class EngineForm(Vertical):
    """The form of one engine (``engine_cls``), filled with ``values`` (the options in use, if this engine is
    the current one)."""

    DEFAULT_CSS = """
    EngineForm { height: auto; }
    EngineForm > .form-none { color: $text-muted; }
    """

    def __init__(self, engine_cls, values: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        self.engine_cls = engine_cls
        self.values = dict(values or {})

    def compose(self) -> ComposeResult:
        fields = form_fields(self.engine_cls)
        if not fields:
            yield Static("This engine has no options.", classes="form-none")
        for option in fields:
            yield OptionField(option, self.values.get(option.name))

    def typed(self) -> dict:
        """The values set (see :meth:`OptionField.value`), fields left alone omitted."""
        values = {field.option.name: field.value() for field in self.query(OptionField)}
        return {name: value for name, value in values.items() if value is not None}

    def parse(self) -> dict:
        """The typed values checked against the declaration (errors shown under their fields).

        Raises:
            OptionError: a refused value (the first one); its field shows the message.
        """
        from ctkd_inspect.engines.options import OptionError, parse_options

        values, refused = {}, []
        # each field on its own, so every refused value is marked at once, not only the first
        for field in self.query(OptionField):
            try:
                given = field.value()
                if given is not None:
                    values.update(parse_options(self.engine_cls, {field.option.name: given}, style="python"))
                field.show_error(None)
            except OptionError as exc:
                field.show_error(str(exc))
                refused.append(exc)
        if refused:
            raise refused[0]
        return values


def _type_name(option) -> str:
    if option.choices:
        return "choice"
    names = {bool: "on/off", int: "integer", float: "number", str: "text", object: "path"}
    text = names.get(option.type, option.type.__name__)
    if option.also:
        text += " or " + ", ".join(map(str, option.also))
    return text
