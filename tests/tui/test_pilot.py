"""Pilot tests: every screen driven by keys and mouse, asserting on the app's state.

The expected values come from hand-checked facts about the real tokenizers (README: Llama 3 cuts "50" as one token
where Gemma 2 cuts "5" "0"; 🦙 is three byte tokens in Llama 3 and one piece in Gemma 2; span vs mined on this
text: 6 groups agree, 1 is split, 2 cross) and from independent computations (pyarrow columns, the tokenizers'
own vocabularies, a brute-force edit distance)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from .conftest import SAMPLE, plain, settle

pytestmark = pytest.mark.anyio


def _pieces(alignment, side, group):
    tokens = alignment.teacher if side == "teacher" else alignment.student
    indices = alignment.groups[group].teacher if side == "teacher" else alignment.groups[group].student
    return [tokens.pieces[i] for i in indices]


# -- Alignment ------------------------------------------------------------------------------------------------------


async def test_alignment_screen_moves_through_groups(make_app):
    from ctkd_inspect_tui.screens.base import MainScreen
    from ctkd_inspect_tui.widgets.ribbon import SELECTED, Ribbon

    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, MainScreen) and app.view_name == "align"
        alignment = app.alignment
        assert alignment.text == SAMPLE and alignment.engine == "span"
        assert app.group == 0 and _pieces(alignment, "teacher", 0) == ["The"]
        await pilot.press("]")  # the first group that is not an exact pair: llama3 "50" against gemma2 "5" "0"
        assert app.group == 6
        assert _pieces(alignment, "teacher", 6) == ["50"] and _pieces(alignment, "student", 6) == ["5", "0"]
        detail = plain(app.screen.query_one("#detail"))
        assert "1:n" in detail and "id " in detail and "35 30" in detail  # the bytes of "50"
        await pilot.press("]")  # the llama: three byte tokens against " " and "🦙"
        assert app.group == 8 and alignment.groups[8].shape == "n:m" and len(alignment.groups[8].teacher) == 3
        assert "byte-split" in plain(app.screen.query_one("#detail"))
        await pilot.press("[")
        assert app.group == 6
        await pilot.press("down", "down")
        assert app.group == 8
        await pilot.press("home")
        assert app.group == 0
        # the selected group is drawn highlighted in both ribbons
        teacher_ribbon = app.screen.query_one("#teacher-ribbon", Ribbon).text
        highlighted = [span for span in teacher_ribbon.spans if span.style.bgcolor == SELECTED.bgcolor]
        assert [teacher_ribbon.plain[s.start:s.end] for s in highlighted] == ["The"]
        await pilot.press("enter")  # the group's detail as a dialog
        from ctkd_inspect_tui.screens.modals import GroupScreen

        assert isinstance(app.screen, GroupScreen)
        await pilot.press("down")
        assert app.group == 1
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


async def test_typing_realigns_after_a_pause_and_drops_stale_runs(make_app, tui_session, monkeypatch):
    calls = []
    original = tui_session.align

    def counting(teacher, student, text, engine, options):
        calls.append(text)
        return original(teacher, student, text, engine, options)

    monkeypatch.setattr(tui_session, "align", counting)
    app = make_app(text="x")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        calls.clear()
        await pilot.press("slash")
        assert app.focused.id == "editor"
        await pilot.press("end", *"1234")  # typed faster than the debounce: one alignment, of the final text
        await settle(pilot)
        assert app.alignment.text == "x1234"
        assert calls == ["x1234"]
        await pilot.press("escape")
        assert app.focused.id == "groups"
        # Llama 3 groups up to three digits: "x", "123", "4" against Gemma 2's single digits
        assert _pieces(app.alignment, "teacher", 1) == ["123"]
        assert _pieces(app.alignment, "student", 1) == ["1", "2", "3"]


async def test_clicking_a_token_selects_its_group(make_app):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        ribbon = app.screen.query_one("#student-ribbon")
        column = ribbon.text.plain.index("5")  # gemma2's "5" of "50" (group 6)
        assert await pilot.click("#student-ribbon", offset=(column, 0))
        assert app.group == 6
        nav = plain(app.screen.query_one("#nav"))
        assert await pilot.click("#nav", offset=(nav.index("3 Diff") + 2, 0))  # on the navigation bar
        assert app.view_name == "diff"


# -- Engines ----------------------------------------------------------------------------------------------------------


async def test_engine_form_switches_engine_and_refuses_bad_options(make_app):
    from ctkd_inspect.engines import engine_class, engine_names, options_of

    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("2")
        assert app.view_name == "engines"
        listing = app.screen.query_one("#engine-list")
        assert [listing.get_option_at_index(i).id for i in range(listing.option_count)] == engine_names()
        await pilot.press("down")  # mined: its form is its declaration's CLI options (mode, vocab_mapping, ...)
        assert app.view.shown == "mined"
        declared = [o.name for o in options_of(engine_class("mined")) if o.cli]
        assert [f.option.name for f in app.screen.query("OptionField")] == declared and "mode" in declared
        app.screen.query_one("#input-mode").value = "reference"
        await pilot.press("a")
        await settle(pilot)
        assert app.engine == "mined" and app.options == {"mode": "reference"}
        assert app.alignment.engine == "mined" and app.alignment.options["mode"] == "reference"
        # softdtw: a refused value is shown under its field and nothing changes
        await pilot.press("down", "down")
        assert app.view.shown == "softdtw"
        app.screen.query_one("#input-gamma").value = "-1"
        app.screen.query_one("#input-band_width").value = "wide"
        await pilot.press("a")
        assert app.engine == "mined"
        invalid = {f.option.name: plain(f.query_one(".option-error")) for f in app.screen.query("OptionField")
                   if f.has_class("-invalid")}
        assert invalid == {"gamma": "gamma must be > 0 (got -1)", "band_width": "band_width must be a number "
                                                                                "(got 'wide')"}
        assert "not applied" in plain(app.screen.query_one("#engine-message"))


async def test_an_engine_that_cannot_align_says_why(make_app):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.set_engine("cdm")  # llama3 and gemma2 name no models: CDM has no entropy to weigh with
        await settle(pilot)
        assert app.alignment is None
        assert app.align_error.startswith("the cdm engine cannot align this text:")
        assert "model" in app.align_error
        message = plain(app.screen.query_one("#align-message"))
        assert "cdm" in message and app.screen.query_one("#align-message").display
        await pilot.press("e")  # the next engine, softdtw: also needs models
        await settle(pilot)
        assert app.engine == "softdtw" and "softdtw" in app.align_error
        await pilot.press("e")
        await settle(pilot)
        assert app.engine == "span" and app.alignment is not None and app.align_error == ""


async def test_a_slow_engine_shows_a_spinner_and_the_ui_keeps_answering(make_app, monkeypatch):
    import threading

    from ctkd_inspect.engines import base
    from ctkd_inspect.engines.span import SpanEngine

    release = threading.Event()

    class SlowEngine(SpanEngine):
        name = "slow"
        description = "the span engine, after a wait (a stand-in for an engine that takes seconds)"

        def align(self, teacher, student, **options):
            release.wait(30)
            return super().align(teacher, student, **options)

    monkeypatch.setitem(base._REGISTRY, "slow", SlowEngine)
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.set_engine("slow")
        await pilot.pause(0.3)
        status = plain(app.screen.query_one("#status"))
        assert "aligning with slow" in status and status[0] in "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
        assert app.screen.query_one("#status").has_class("-busy")
        await pilot.press("4")  # screens and keys still answer while the engine works
        assert app.view_name == "metrics"
        await pilot.press("1", "down")
        assert app.group == 1
        release.set()
        await settle(pilot)
        assert app.alignment.engine == "slow"
        assert not app.screen.query_one("#status").has_class("-busy")


# -- Diff -------------------------------------------------------------------------------------------------------------


async def test_diff_of_two_engines_and_two_teachers(make_app):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("3")
        app.screen.query_one("#diff-engine").value = "mined"  # choosing an engine compares at once
        await settle(pilot)
        a, b, result = app.diff_result
        assert (a.engine, b.engine) == ("span", "mined")
        # README: span vs mined on this text
        assert (result.agree, result.split, result.merge, result.cross) == (6, 1, 0, 2)
        assert round(result.boundary_precision, 3) == 0.833 and round(result.boundary_recall, 3) == 0.938
        assert app.screen.query_one("#diff-rows").row_count == len(result.disagreeing_a) + len(result.disagreeing_b)
        summary = plain(app.screen.query_one("#diff-summary"))
        assert "the alignments differ" in summary and "agree 6" in summary
        assert len(app.screen.query("#diff-ribbons Ribbon")) == 4
        await pilot.press("v")
        assert app.diff_view == "side" and len(app.screen.query(".side-column")) == 2
        await pilot.press("v")
        # the live diff follows the text
        app.set_text("The cat", delay=0)
        await settle(pilot)
        assert app.diff_result[1].text == "The cat" and not app.diff_result[2].differs
        # two teachers: llama2 against llama3, same student and engine
        app.screen.query_one("#diff-engine").clear()
        app.screen.query_one("#diff-teacher").value = "llama2"
        await pilot.press("escape", "c")
        await settle(pilot)
        assert app.diff_error == ""
        a, b, result = app.diff_result
        assert (a.teacher.name, b.teacher.name) == ("llama3", "llama2") and b.engine == "span"
        assert result.basis["teacher"] == "offset" and result.basis["student"] == "index"


# -- Metrics and data sets ------------------------------------------------------------------------------------------


async def test_metrics_of_a_report_and_opening_its_worst_row(make_app, report_path, report_texts):
    import pyarrow.parquet as pq

    rates = np.array(pq.read_table(report_path, columns=["alignment_rate"]).column(0).to_pylist(), dtype=float)
    app = make_app(report=str(report_path))
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("4")
        await settle(pilot)
        table = app.screen.query_one("#data-rows")
        assert table.row_count == 40
        worst = int(np.argmin(rates))
        assert app.view.row_at_cursor() == worst
        overview = plain(app.screen.query_one("#data-overview"))
        assert "40 texts" in overview and f"mean {rates.mean():.1%}" in overview
        await pilot.press("end")
        assert app.view.row_at_cursor() == int(np.argsort(rates, kind="stable")[-1])
        await pilot.press("home", "enter")
        await settle(pilot)
        assert app.view_name == "align" and app.current_row == worst
        assert app.text == report_texts[worst] and app.alignment.text == report_texts[worst]
        assert app.screen.query_one("#editor").text == report_texts[worst]
        assert app.alignment.metrics["alignment_rate"] == pytest.approx(rates[worst])
        await pilot.press("4", "o")  # file order
        assert app.view.row_at_cursor() == 0
        # the current text's metrics panel shows its rate and shapes
        panel = plain(app.screen.query_one("#metrics-text"))
        assert f"{rates[worst]:.1%}" in panel


async def test_data_file_rows_align_in_the_background(make_app, tmp_path, report_texts):
    path = tmp_path / "texts.jsonl"
    path.write_text("\n".join(json.dumps({"text": t}) for t in report_texts[:12]) + "\n", encoding="utf-8")
    app = make_app(data=str(path))
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        source = app.dataset
        assert source.kind == "data" and source.texts == report_texts[:12]
        assert not np.isnan(source.rates).any()  # the background pass aligned every text
        assert app.dataset_summary is not None and app.dataset_summary.texts == 12
        await pilot.press("4")
        await pilot.press("down", "enter")
        await settle(pilot)
        second_worst = int(np.argsort(source.rates, kind="stable")[1])
        assert app.current_row == second_worst and app.text == report_texts[second_worst]


# -- Failures ---------------------------------------------------------------------------------------------------------


async def test_failures_of_the_text_open_their_group(make_app):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("5")
        tree = app.screen.query_one("#failure-tree")
        scope = tree.root.children[0]
        kinds = [node.data["kind"] for node in scope.children if node.data]
        # "50" against "5" "0" is a digit run; the llama's three byte tokens against " " and "🦙" are a byte split
        # whose space stands alone on one side (leading-space, its second kind)
        assert kinds == ["byte-split", "digit-run", "leading-space"]
        byte_split = scope.children[0]
        byte_split.expand()
        await pilot.pause()
        example = byte_split.children[0]
        tree.move_cursor(example)
        await pilot.pause()
        assert app.selected_failure["example"]["group"] == 8
        assert "open" in plain(app.screen.query_one("#failure-detail"))
        await pilot.press("enter")
        await pilot.pause()
        assert app.view_name == "align" and app.group == 8


async def test_preflight_findings_grouped_by_severity(make_app):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("5", "r")
        await settle(pilot)
        assert app.findings_error == "" and app.findings
        tree = app.screen.query_one("#failure-tree")
        findings = tree.root.children[1]
        severities = [node.data["severity"] for node in findings.children]
        assert severities == [s for s in ("error", "warning", "info") if any(f.severity == s for f in app.findings)]
        digit = next(n for branch in findings.children for n in branch.children
                     if n.data["finding"].kind == "digit-runs")
        branch = digit.parent
        branch.expand()
        await pilot.pause()
        tree.move_cursor(digit)
        await pilot.pause()
        assert app.selected_failure["finding"].kind == "digit-runs"
        assert "digit" in plain(app.screen.query_one("#failure-detail")).lower()


async def test_failures_of_a_report_open_their_row(make_app, report_path, report_texts):
    app = make_app(report=str(report_path))
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("5")
        await settle(pilot)
        assert app.dataset_summary is not None and app.dataset_summary.texts == 40
        tree = app.screen.query_one("#failure-tree")
        scope = tree.root.children[0]
        assert "data set" in str(scope.label)
        kind = scope.children[0]
        kind.expand()
        await pilot.pause()
        example = kind.children[-1]
        tree.move_cursor(example)
        await pilot.pause()
        await pilot.press("enter")
        await settle(pilot)
        wanted = example.data["example"]
        assert app.current_row == wanted["text_index"] and app.text == report_texts[wanted["text_index"]]
        assert app.group == wanted["group"] and app.view_name == "align"
        await pilot.press("5", "c")  # back to this text's failures
        assert "this text" in str(app.screen.query_one("#failure-tree").root.children[0].label)


# -- Vocabulary -------------------------------------------------------------------------------------------------------


async def test_vocabulary_lookup_on_both_sides(make_app, tok):
    llama, gemma = tok("llama3"), tok("gemma2")
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("6")
        assert app.focused.id == "vocab-query"
        await pilot.press(*"Ġthe")
        await settle(pilot)
        result = app.lookup_result
        assert (result.side, result.id) == ("teacher", llama.convert_tokens_to_ids("Ġthe"))
        assert result.exact.id == gemma.convert_tokens_to_ids("▁the")
        assert result.nearest[0].id == result.exact.id and result.nearest[0].distance == 0
        table = app.screen.query_one("#vocab-nearest")
        assert table.row_count == 10
        assert "press m" in plain(app.screen.query_one("#vocab-result"))
        # an id on the student side
        await pilot.press("escape", "s")
        await pilot.press("slash", "ctrl+u", *"#651")
        await settle(pilot)
        result = app.lookup_result
        assert result.side == "student" and result.id == 651 and result.token == gemma.convert_ids_to_tokens(651)
        assert result.exact.id == llama.convert_tokens_to_ids(result.token.replace("▁", "Ġ"))
        # Enter on a nearest token looks it up from the other side
        await pilot.press("escape", "down", "enter")
        await settle(pilot)
        assert app.lookup_result.side == "teacher" and app.lookup_result.id == result.nearest[1].id
        # a bad id: a message, not a crash
        await pilot.press("slash", "ctrl+u", *"#999999")
        await settle(pilot)
        assert app.lookup_result is None and "out of range" in app.lookup_error


async def test_mined_mapping_loads_off_the_ui_thread(make_app):
    from rapidfuzz.distance import Levenshtein
    from rapidfuzz.process import cdist

    app = make_app("bert", "gpt2", "unbelievable tokenization")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert app.mined_state == "absent"
        await pilot.press("6", "escape", "m")
        assert app.mined_state in ("computing", "ready")  # ready at once when the disk cache holds it
        await settle(pilot, timeout=300)
        assert app.mined_state == "ready"
        await pilot.press("slash", *"#1")  # a bert token with no exact gpt2 counterpart
        await settle(pilot)
        result = app.lookup_result
        assert result.exact is None and result.mined is not None and result.mined.distance > 0
        # brute force: no gpt2 token is closer (over canonical strings) than the MinED answer
        t_vocab, s_vocab = app.session.vocabulary("bert"), app.session.vocabulary("gpt2")
        source = t_vocab.canonical[result.id]
        targets = [s for s in s_vocab.canonical]
        distances = cdist([source], targets, scorer=Levenshtein.distance, workers=1)[0]
        usable = [d for d, s, special in zip(distances, targets, s_vocab.special) if s and not special]
        assert result.mined.distance == min(usable)
        assert result.mined.distance == Levenshtein.distance(source, s_vocab.canonical[result.mined.id])


# -- export, copy, help, palette, themes -----------------------------------------------------------------------------


async def test_export_and_copy_the_alignment_as_json(make_app, tmp_path):
    from ctkd_inspect_tui.screens.modals import ExportScreen

    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        expected = app.alignment.to_dict()
        await pilot.press("y")
        assert json.loads(app.clipboard) == json.loads(json.dumps(expected, default=int))
        target = tmp_path / "alignment.json"
        await pilot.press("x")
        assert isinstance(app.screen, ExportScreen)
        app.screen.query_one("#export-path").value = str(target)
        await pilot.press("enter")
        await pilot.pause()
        assert json.loads(target.read_text(encoding="utf-8"))["groups"] == expected["groups"]
        before = target.read_bytes()
        await pilot.press("x")
        app.screen.query_one("#export-path").value = str(target)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ExportScreen)  # refused: the file exists
        assert "exists" in plain(app.screen.query_one("#export-message"))
        assert target.read_bytes() == before
        app.screen.query_one("#export-path").value = str(tmp_path / "missing" / "a.json")
        await pilot.press("enter")
        assert "does not exist" in plain(app.screen.query_one("#export-message"))
        await pilot.press("escape")
        assert not isinstance(app.screen, ExportScreen)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["alignment.json"]  # no temporary file left


async def test_help_palette_and_theme(make_app):
    from ctkd_inspect_tui.screens.modals import HelpScreen
    from textual.command import CommandPalette

    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.press("ctrl+p")
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"Engine: mined")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await settle(pilot)
        assert app.engine == "mined" and app.alignment.engine == "mined"
        assert app.current_theme.dark
        await pilot.press("t")
        assert app.theme == "textual-light" and not app.current_theme.dark
        await pilot.press("t")
        assert app.theme == "textual-dark"


async def test_every_screen_fits_80x24_in_both_themes(make_app, report_path):
    app = make_app(report=str(report_path), theme="light")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.theme == "textual-light"
        for key, main in (("1", "#groups"), ("2", "#engine-form-area"), ("3", "#diff-rows"), ("4", "#data-rows"),
                          ("5", "#failure-tree"), ("6", "#vocab-nearest")):
            await pilot.press("escape", key)
            await settle(pilot)
            widget = app.screen.query_one(main)
            region = widget.region
            assert region.height >= 3 and region.width >= 30, (key, region)
            assert region.bottom <= 24 - 2  # above the status line and the footer
            assert app.screen.query_one("#nav").region.y == 0
        await pilot.press("escape", "1", "t")
        assert app.current_theme.dark


# -- bad input --------------------------------------------------------------------------------------------------------


async def test_unknown_tokenizer_is_a_message_in_the_app(make_app):
    app = make_app("llam3", "gemma2")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert app.pair_error.startswith("teacher 'llam3': ")
        assert "llama3" in app.pair_error  # the close-match suggestion
        assert app.alignment is None
        message = plain(app.screen.query_one("#align-message"))
        assert "llam3" in message and "Press p" in message
        assert app.screen.query_one("#status").has_class("-error")
        await pilot.press("p")
        app.screen.query_one("#pair-teacher").value = "llama3"
        await pilot.press("enter", "enter")
        await settle(pilot)
        assert app.pair_error == "" and app.alignment is not None and app.alignment.teacher.name == "llama3"


async def test_a_corrupt_report_is_a_message_in_the_app(make_app, tmp_path):
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 this is not a parquet file at all")
    app = make_app(report=str(broken))
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert "broken.parquet is not a readable corpus report" in app.dataset_error
        assert app.dataset is None and app.alignment is not None  # the text still aligns
        await pilot.press("4")
        assert "not a readable corpus report" in plain(app.screen.query_one("#data-overview"))


async def test_a_report_without_our_schema_is_refused(make_app, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"text": ["a", "b"]}), other)
    app = make_app(report=str(other))
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert "ctkd_inspect.schema_version" in app.dataset_error


async def test_a_tiny_terminal_gets_a_hint(make_app):
    from ctkd_inspect_tui.screens.modals import TooSmallScreen

    app = make_app()
    async with app.run_test(size=(60, 18)) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, TooSmallScreen)
        hint = plain(app.screen.query_one("#too-small"))
        assert "60×18" in hint and "80×24" in hint
        await pilot.resize_terminal(100, 30)
        await pilot.pause()
        assert not isinstance(app.screen, TooSmallScreen)
        assert app.alignment is not None


@pytest.mark.slow
@pytest.mark.models
async def test_engines_with_models_work_with_the_aliases_that_name_models(make_app):
    """gemma3 and smollm2 name small real models: CDM's entropy and Soft-DTW's representations come from them,
    with the spinner up while the signals compute, and the interface answering meanwhile."""
    pytest.importorskip("torch")
    import uuid

    # a text no earlier test aligned: its model signals are not in the cache, so computing them takes seconds
    # (with cached signals CDM answers between two polls and the spinner is never seen)
    app = make_app("gemma3", "smollm2", f"The capital of France is Paris. Run {uuid.uuid4().hex[:8]}.")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.set_engine("cdm")
        seen_busy = False
        for _ in range(200):
            await pilot.pause(0.05)
            if app.screen.query_one("#status").has_class("-busy"):
                seen_busy = True
                await pilot.press("2")  # the interface answers while the models run
                assert app.view_name == "engines"
                break
        assert seen_busy
        await settle(pilot, timeout=900)
        assert app.align_error == "" and app.alignment.engine == "cdm"
        assert app.alignment.options["teacher_model"] == "gemma3"
        assert app.alignment.options["student_model"] == "smollm2"
        app.set_engine("softdtw", {"gamma": 0.5})
        await settle(pilot, timeout=900)
        assert app.align_error == "" and app.alignment.engine == "softdtw"
        assert app.alignment.options["gamma"] == 0.5


async def test_long_lived_objects_leave_the_collector_while_the_app_runs(make_app, report_path):
    """After the tokenizers, the report's rows and the views are loaded, they are frozen out of the garbage
    collector's reach (full collections over them cost about 0.1 s and struck at random keys); closing the app
    gives them back."""
    import gc

    app = make_app(report=str(report_path))
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        for _ in range(200):  # the report's full rows load last, in the background
            if app.heap_frozen >= 3:
                break
            await pilot.pause(0.05)
        assert app.heap_frozen >= 3  # pair loaded, views built, report rows read
        assert gc.get_freeze_count() > 10_000
        await pilot.press("4")
        assert app.view_name == "metrics"
    assert gc.get_freeze_count() == 0


async def test_switching_views_is_one_layout_pass(make_app, report_path):
    """Hidden views are kept ready while the app is idle (brought up to date, laid out off screen, scrollbars
    styled), so showing one is a single layout pass: a second pass would come a frame (17-33 ms) later. The one
    exception is the Engines view's first show: Textual's ``OptionList`` measures its options when first drawn."""
    app = make_app(report=str(report_path))
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.ensure_dataset_summary()  # the Failures view's data-set findings, computed before it is shown
        await settle(pilot)
        passes: list[str] = []
        screen = app.screen
        original = screen._refresh_layout

        def counting(*args, **kwargs):
            passes.append(app.view_name)
            return original(*args, **kwargs)

        screen._refresh_layout = counting
        counts = []
        for key in "2345612345":
            await pilot.press("escape")  # out of a text field, so that the digit switches views
            await settle(pilot)
            passes.clear()
            await pilot.press(key)
            await pilot.pause(0.2)
            await settle(pilot)
            counts.append((key, len(passes)))
        first, again = counts[:6], counts[6:]
        assert dict(first)["2"] <= 2
        assert all(count == 1 for key, count in first if key != "2"), counts
        assert all(count == 1 for _, count in again), counts


async def test_hidden_views_catch_up_while_the_app_is_idle(make_app):
    """A change made while a view is hidden reaches it once the app is idle, not only when it is shown: after the
    text is edited on the Alignment view, the Metrics view already shows the new text's figures, with nothing left
    to run when it is shown, and the app counts as busy until then."""
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        metrics = app._views["metrics"]
        marks = []
        original = app.mark_stale

        def recording(view):
            original(view)
            marks.append((view.MODE, bool(view._pending), app.is_idle()))

        app.mark_stale = recording
        app.set_text(SAMPLE + " and a few more words", delay=0)
        await settle(pilot)
        # the new alignment arrived while the view was hidden, and a hidden view waiting made the app busy
        assert ("metrics", True, False) in marks
        assert app.view_name == "align" and not metrics._pending
        assert f"{len(SAMPLE) + 21:,} chars" in plain(app.main.query_one("#metrics-text"))


async def test_the_editor_keeps_its_wrapping_while_its_view_is_laid_out_hidden(make_app):
    """After a terminal resize, hidden views are laid out off screen at the new size. The editor must not rewrap its
    text there (it has no place on screen, so no width to wrap to): its text stays wrapped."""
    text = " ".join(["the editor wraps this long paragraph over many lines"] * 12)
    app = make_app(text=text)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        editor = app.main.query_one("#editor")
        wrapped = editor.virtual_size.height
        assert wrapped > 3  # one logical line, many wrapped ones
        await pilot.press("4")
        await settle(pilot)
        await pilot.resize_terminal(110, 32)
        await settle(pilot)
        assert "align" not in app._stale  # the hidden Alignment view was laid out again at the new size
        assert editor.virtual_size.height > 3  # still wrapped (unwrapped, it would be 1 line)
        await pilot.press("1")
        await settle(pilot)
        assert editor.virtual_size.height > 3
