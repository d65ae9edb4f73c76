"""The command palette (ctrl+p): every screen, every registered engine (use it, or diff against it), export and
copy, the theme, the pair, preflight checks, the MinED mapping, help."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from .widgets.chrome import SCREENS


class CtkdCommands(Provider):
    """The app's actions as palette commands (built from the engine registry, so plugin engines appear too)."""

    def _commands(self) -> list[tuple[str, Callable[[], object], str]]:
        from ctkd_inspect.engines import describe_engine, engine_names

        app = self.app
        commands: list[tuple[str, Callable[[], object], str]] = [
            (f"Go to {title}", partial(app.go, mode), f"screen {key}") for mode, key, title in SCREENS
        ]
        for name in engine_names():
            description = describe_engine(name)["description"]
            commands.append((f"Engine: {name}", partial(app.set_engine, name), description))
            commands.append((f"Diff against engine: {name}", partial(self._diff_with, name),
                             f"compare the current alignment with {name}'s"))
        commands += [
            ("Next non-1:1 group", partial(app.next_group, 1), "the next group that is not an exact pair (])"),
            ("Previous non-1:1 group", partial(app.next_group, -1), "([)"),
            ("Export the alignment as JSON…", app.action_export, "write the --json document to a file (x)"),
            ("Copy the alignment as JSON", app.action_copy_json, "to the clipboard (y)"),
            ("Toggle light/dark theme", app.action_toggle_theme, "(t)"),
            ("Change teacher and student…", app.action_change_pair, "(p)"),
            ("Swap teacher and student", app.action_swap, ""),
            ("Run the preflight checks", self._checks, "what will break when distilling between the two"),
            ("Compute the MinED vocabulary mapping", self._mined, "minutes the first time for a pair; cached"),
            ("Help: keys and screens", app.action_help, "(? or F1)"),
        ]
        return commands

    def _diff_with(self, engine: str) -> None:
        self.app.set_compare(engine, None)
        self.app.go("diff")

    def _checks(self) -> None:
        self.app.run_checks()
        self.app.go("failures")

    def _mined(self) -> None:
        self.app.compute_mined()
        self.app.go("vocab")

    async def discover(self) -> Hits:
        for title, callback, help_text in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, callback, help_text in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
