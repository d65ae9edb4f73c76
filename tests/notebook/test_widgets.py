"""The notebook widgets driven headless: set values, click buttons, wait for the worker, read the HTML produced.

ipywidgets 8 works without a kernel (``comm`` supplies a dummy comm), so every observer and click runs as in a
notebook. An exception escaping into the output area would surface here: as an exception from the setter (an
observer) or as an unhandled-thread-exception warning (the worker), which these tests turn into errors.
"""

from __future__ import annotations

import threading
import time
from fractions import Fraction
from html.parser import HTMLParser

import pytest

from ctkd_inspect.widgets import AlignmentExplorer, CorpusReportWidget, VocabMappingBrowser

pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")

TEXT = "The café costs 3.50€ 🦙 — naïve\tcode: x+=1"


class Cells(HTMLParser):
    """The token cells (``span`` elements) of a view, with their attributes and labels."""

    def __init__(self, markup: str):
        super().__init__(convert_charrefs=True)
        self.cells: list[dict] = []
        self._open: dict | None = None
        self.feed(markup)

    def handle_starttag(self, tag, attrs):
        if tag == "span":
            self._open = {**dict(attrs), "label": ""}
            self.cells.append(self._open)

    def handle_endtag(self, tag):
        if tag == "span":
            self._open = None

    def handle_data(self, data):
        if self._open is not None:
            self._open["label"] += data

    def ids(self, side: str) -> list[int]:
        return [int(i) for c in self.cells if c["data-side"] == side for i in c["data-ids"].split()]


def settled(widget, timeout: float = 180) -> None:
    assert widget.wait(timeout), "the widget's background work did not finish"


def eventually(condition, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture(scope="module")
def explorer():
    # in a background thread, as in a notebook (outside a kernel the default is the calling thread)
    widget = AlignmentExplorer("llama3", "gemma2", TEXT, delay=0.05, background=True)
    settled(widget)
    return widget


def test_first_view_shows_every_token_with_its_tooltip(explorer, tok):
    assert explorer.error_message == "" and explorer.error.value == ""
    cells = Cells(explorer.view.value)
    assert cells.ids("teacher") == tok("llama3")(TEXT)["input_ids"]
    assert cells.ids("student") == tok("gemma2")(TEXT)["input_ids"]
    for cell in cells.cells:
        title = cell["title"]
        assert all(f"id {i}" in title for i in cell["data-ids"].split())
        assert f"span {cell['data-start']}–{cell['data-end']}" in title
        assert "bytes" in title and "group" in title
    assert "alignment rate" in explorer.metrics.value and "63.2%" in explorer.metrics.value
    assert explorer.result.metrics["alignment_rate"] == pytest.approx(12 / 19)  # an Alignment to keep using
    assert "alignment rate 63.2%" in explorer.status.label.value


def test_new_text_engine_and_options(explorer, tok):
    explorer.text.value = "Hello  world\n12345"
    settled(explorer)
    assert Cells(explorer.view.value).ids("student") == tok("gemma2")("Hello  world\n12345")["input_ids"]
    explorer.engine.value = "mined"
    settled(explorer)
    assert explorer.result.engine == "mined" and 'data-engine="mined"' in explorer.view.value
    # the controls are the declaration's options offered to people, typed as declared
    from ctkd_inspect.engines import engine_class, options_of

    declared = {o.name: o for o in options_of(engine_class("mined")) if o.cli}
    assert list(explorer.option_controls) == list(declared)
    mode = explorer.option_controls["mode"]
    assert type(mode).__name__ == "Dropdown" and tuple(mode.options) == declared["mode"].choices
    assert type(explorer.option_controls["top_k"]).__name__ == "IntText"
    mode.value = "reference"
    settled(explorer)
    assert explorer.result.options["mode"] == "reference" and explorer.error_message == ""
    explorer.engine.value = "span"
    settled(explorer)
    assert explorer.option_controls == {} and explorer.result.engine == "span"
    explorer.engine.value = "mined"  # the form remembers its values
    assert explorer.option_controls["mode"].value == "reference"
    explorer.option_controls["mode"].value = "canonical"
    explorer.engine.value = "span"
    explorer.text.value = TEXT
    settled(explorer)


def test_bad_input_is_a_message_in_the_widget(explorer):
    explorer.text.value = ""
    settled(explorer)
    assert "text is empty" in explorer.error_message and "ctkd-error" in explorer.error.value
    assert explorer.view.value == "" and explorer.result is None
    explorer.text.value = TEXT

    explorer.teacher.value = "llama9"
    settled(explorer)
    assert "unknown tokenizer 'llama9'" in explorer.error_message and "llama3" in explorer.error_message
    assert "llama9" in explorer.error.value and "Traceback" not in explorer.error.value
    explorer.teacher.value = "llama3"

    explorer.engine.value = "softdtw"
    explorer.option_controls["band_alpha"].value = 1.5  # declared in [0, 1]
    settled(explorer)
    assert "band_alpha must be in [0, 1] (got 1.5)" in explorer.error_message
    explorer.option_controls["band_alpha"].value = 0.7
    explorer.option_controls["ridge"].value = "lots"  # a number or 'auto'
    settled(explorer)
    assert "ridge" in explorer.error_message and "'auto'" in explorer.error_message
    explorer.option_controls["ridge"].value = "auto"
    settled(explorer)
    # an engine that needs models, for a pair whose aliases name none: the engine's own advice
    assert "teacher_model" in explorer.error_message and explorer.result is None

    explorer.engine.value = "span"
    settled(explorer)
    assert explorer.error_message == "" and explorer.error.value == "" and explorer.result is not None


def test_constructor_options_the_form_cannot_take_are_a_message():
    widget = AlignmentExplorer("llama3", "gemma2", "hello world", engine="mined",
                               options={"mode": "weird", "nope": 1, "top_k": 7}, background=False)
    # the alignment runs with what the form holds, and the message says what was left out
    assert widget.result is not None and widget.result.options.get("mode", "canonical") == "canonical"
    assert widget.option_controls["top_k"].value == 7
    assert "mode must be one of canonical, reference (got 'weird'); using canonical" in widget.error_message
    assert "the mined engine has no option 'nope'" in widget.error_message and "ctkd-error" in widget.error.value
    widget.text.value = "hello there"  # the first change clears it
    assert widget.error_message == ""


def test_diff_against_a_second_engine_and_a_second_teacher(explorer, tok):
    explorer.other_engine.value = "mined"
    explorer.diff_toggle.value = True
    settled(explorer)
    assert explorer.error_message == ""
    assert explorer.other.engine == "mined" and explorer.diff_result is not None
    cells = Cells(explorer.view.value).cells
    b_groups = {(tuple(g.teacher), tuple(g.student)) for g in explorer.other.groups}
    a_disagreeing = {g for g, group in enumerate(explorer.result.groups)
                     if (tuple(group.teacher), tuple(group.student)) not in b_groups}
    assert a_disagreeing  # span and MinED group the llama emoji differently
    flagged = [c for c in cells if c["data-disagree"] == "true"]
    assert {int(c["data-group"]) for c in flagged} >= a_disagreeing
    assert "precision" in explorer.view.value and "alignment rate" in explorer.metrics.value

    explorer.compare_with.value = "teacher"
    explorer.other_teacher.value = "llama2"
    settled(explorer)
    assert explorer.error_message == "" and explorer.other.teacher.name == "llama2"
    ids = [int(i) for c in Cells(explorer.view.value).cells if c["data-side"] == "teacher"
           for i in c["data-ids"].split()]
    assert ids == tok("llama3")(TEXT)["input_ids"] + tok("llama2")(TEXT)["input_ids"]  # a's ribbon, then b's

    explorer.other_teacher.value = "nonesuch"
    settled(explorer)
    assert "nonesuch" in explorer.error_message
    explorer.diff_toggle.value = False
    settled(explorer)
    assert explorer.diff_result is None and explorer.error_message == ""


def test_outside_a_kernel_work_is_done_when_the_value_is_set(tok):
    from ctkd_inspect.widgets import in_kernel

    assert not in_kernel()  # pytest is no Jupyter kernel
    widget = AlignmentExplorer("llama3", "gemma2", "first")
    assert widget.result.text == "first"  # no waiting: the constructor aligned in this thread
    widget.text.value = "second text"
    assert Cells(widget.view.value).ids("student") == tok("gemma2")("second text")["input_ids"]
    widget.text.value = ""
    assert "text is empty" in widget.error_message and widget.view.value == ""
    widget.text.value = "third"
    widget.engine.value = "cdm"
    assert "entropy" in widget.error_message
    unknown = AlignmentExplorer("gpt2", "bert", "x", engine="nonesuch")
    assert "unknown engine 'nonesuch'" in unknown.error_message and unknown.engine.value == "span"
    assert unknown.result is not None  # the span engine's view, with the message above it


def test_manual_mode_aligns_on_click_and_show_displays_a_given_alignment():
    import ctkd_inspect

    widget = AlignmentExplorer("gpt2", "bert", "no automatic alignment", auto=False, align_now=False)
    widget.text.value = "Click to align"
    assert widget.wait(5) and widget.result is None  # nothing happens until the button is pressed
    widget.align_button.click()
    settled(widget)
    assert widget.result.text == "Click to align" and widget.result.student.name == "bert"

    given = ctkd_inspect.align("llama2", "qwen2", "shown, not aligned", engine="mined")
    widget.show(given)
    assert widget.result is given and widget.engine.value == "mined" and widget.text.value == "shown, not aligned"
    assert widget.teacher.value == "llama2"
    assert Cells(widget.view.value).ids("teacher") == given.teacher.ids.tolist()
    assert widget.wait(5) and widget.result is given  # setting the inputs did not start an alignment


def test_long_work_reports_progress_while_it_runs(monkeypatch):
    """A plugin engine that reports a stage and then waits: the progress line shows the stage while the kernel's
    thread is free, and the plugin's declared options appear as controls."""
    from ctkd_inspect.engines import base
    from ctkd_inspect.engines.options import EngineOption
    from ctkd_inspect.engines.span import SpanEngine
    from ctkd_inspect.progress import stage

    gate, inside = threading.Event(), threading.Event()

    class GatedEngine(SpanEngine):
        name = "gated"
        description = "span groups, after a step that waits"
        options = (EngineOption("steps", int, 2, "steps to report", minimum=1, maximum=5),
                   EngineOption("verbose", bool, False, "a flag"))

        def align(self, teacher, student, steps=2, verbose=False, **rest):
            with stage("gated step", total=steps, unit="steps") as bar:
                bar.advance(1)
                inside.set()
                gate.wait(60)
                bar.advance(steps - 1)
            return super().align(teacher, student, **rest)

    monkeypatch.setitem(base._REGISTRY, "gated", GatedEngine)
    widget = AlignmentExplorer("gpt2", "gpt2", "a b c", engine="gated", options={"steps": 4}, delay=0.0,
                               background=True)
    assert {name: type(c).__name__ for name, c in widget.option_controls.items()} == {"steps": "IntText",
                                                                                     "verbose": "Checkbox"}
    assert inside.wait(60)
    try:
        # 1 of 4 steps, while the work waits (the line is redrawn a few times a second)
        assert eventually(lambda: "gated step 25%" in widget.status.label.value), widget.status.label.value
        assert widget.status.bar.layout.display != "none" and widget.status.bar.value == pytest.approx(0.25)
        # another widget's work waits its turn (widgets' jobs run one at a time in a kernel), and says so
        other = AlignmentExplorer("gpt2", "bert", "meanwhile", delay=0.0, background=True)
        assert eventually(lambda: "waiting for another widget" in other.status.label.value)
        assert other.result is None
    finally:
        gate.set()
    settled(widget)
    settled(other)
    assert widget.result.engine == "gated" and widget.status.bar.layout.display == "none"
    assert other.result.text == "meanwhile" and other.error_message == ""
    widget.option_controls["steps"].value = 9
    settled(widget)
    assert "steps must be in [1, 5] (got 9)" in widget.error_message


def worst_row(alignments) -> int:
    """The worst text by the report's rule: the largest share of non-special student tokens outside exact 1:1
    groups, then the most such tokens, then the first row."""
    def badness(i):
        student = int((~alignments[i].student.special).sum())
        failed = student - round(alignments[i].metrics["alignment_rate"] * student)
        return Fraction(failed, student), failed, -i

    return max(range(len(alignments)), key=badness)


def test_corpus_report_of_alignment_columns_opens_the_worst_text(tmp_path, corpus):
    import ctkd_inspect
    from ctkd_inspect.columns import write_parquet

    texts = corpus[:60]
    alignments = [ctkd_inspect.align("llama3", "gemma2", text) for text in texts]
    path = write_parquet(alignments, tmp_path / "run.parquet")
    report = CorpusReportWidget(str(path))
    settled(report)
    assert report.error_message == ""
    assert report.summary["texts"] == 60 and "llama3" in report.summary_view.value
    assert report.plot.value[:8] == b"\x89PNG\r\n\x1a\n"  # the matplotlib distributions
    rates = [a.metrics["alignment_rate"] for a in alignments]
    assert report.summary["alignment_rate"]["mean"] == pytest.approx(sum(rates) / len(rates))
    worst = worst_row(alignments)
    first = report.worst_buttons[0]
    assert first.text_index == worst
    first.click()
    settled(report)
    assert report.opened == worst and report.explorer.text.value == texts[worst]
    assert Cells(report.explorer.view.value).ids("student") == alignments[worst].student.ids.tolist()
    assert report.kind.options and report.example_buttons
    report.example_buttons[0].click()
    assert report.explorer.text.value == texts[report.example_buttons[0].text_index]

    missing = CorpusReportWidget(str(tmp_path / "nowhere.parquet"))
    settled(missing)
    assert "no corpus file" in missing.error_message and missing.summary is None
    wrong = CorpusReportWidget(42)
    settled(wrong)
    assert "not int" in wrong.error_message


def test_corpus_report_of_a_corpus_run(tmp_path, corpus):
    import json

    from ctkd_inspect.columns import read_parquet
    from ctkd_inspect.corpus.runner import run_corpus

    data = tmp_path / "texts.jsonl"
    data.write_text("".join(json.dumps({"text": text}) + "\n" for text in corpus[100:180]), encoding="utf-8")
    result = run_corpus("llama3", "gemma2", data, tmp_path / "run.parquet", field="text", workers=1,
                        summary=tmp_path / "summary.json")
    rows = read_parquet(result.output)
    worst = worst_row(rows)
    for source, parquet in ((result, None), (result.summary, result.output),
                            (str(tmp_path / "summary.json"), result.output)):
        report = CorpusReportWidget(source, parquet=parquet)
        settled(report)
        assert report.error_message == "" and report.summary["texts"] == 80
        assert report.worst_buttons[0].text_index == worst
        report.worst_buttons[0].click()
        assert report.opened == worst and report.explorer.text.value == corpus[100 + worst]
    without_rows = CorpusReportWidget(str(tmp_path / "summary.json"))
    settled(without_rows)
    without_rows.worst_buttons[0].click()
    assert "parquet=" in without_rows.error_message


def test_vocab_browser_lookups_and_coverage():
    browser = VocabMappingBrowser("llama3", "gemma2", query="␣the")
    settled(browser)
    assert browser.error_message == ""
    assert "85,699" in browser.coverage.value  # exact coverage of the pair (the README's figure)
    assert browser.result.token == "Ġthe" and browser.result.exact.token == "▁the"
    assert "▁the" in browser.result_view.value and "nearest" in browser.result_view.value
    browser.side.value = "student"
    browser.query.value = "#573"
    settled(browser)
    assert browser.result.token == "▁the" and browser.result.exact.token == "Ġthe"
    browser.query.value = "#99999999"
    settled(browser)
    assert "out of range" in browser.error_message and browser.result_view.value == ""
    browser.student.value = "nonesuch"
    browser.load_button.click()
    settled(browser)
    assert "nonesuch" in browser.error_message
    browser.query.value = "␣the"
    settled(browser)
    assert "no pair is loaded" in browser.error_message


def test_widgets_stay_out_of_the_core_and_name_their_extra():
    import subprocess
    import sys

    code = ("import sys, ctkd_inspect\n"
            "ctkd_inspect.align('gpt2', 'bert', 'x')._repr_html_()\n"
            "print(','.join(m for m in ('ctkd_inspect.widgets', 'ipywidgets', 'matplotlib') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""  # displaying an alignment as HTML imports no widget toolkit
    code = ("import sys\nsys.modules['ipywidgets'] = None\n"
            "from ctkd_inspect.errors import MissingExtraError\n"
            "try:\n    import ctkd_inspect.widgets\nexcept MissingExtraError as exc:\n    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "ipywidgets" in out.stdout and 'pip install -e ".[notebook]"' in out.stdout


@pytest.mark.parametrize(("make", "argument"), [
    (lambda: AlignmentExplorer(teacher=3), "teacher"),
    (lambda: AlignmentExplorer(text=None), "text"),
    (lambda: AlignmentExplorer(engine=["span"]), "engine"),
    (lambda: AlignmentExplorer(options="mode=reference"), "options"),
    (lambda: AlignmentExplorer(compare="both"), "compare"),
    (lambda: AlignmentExplorer(delay=-1), "delay"),
    (lambda: AlignmentExplorer(max_groups=1.5), "max_groups"),
    (lambda: AlignmentExplorer(background="yes"), "background"),
    (lambda: CorpusReportWidget("run.parquet", max_worst=-1), "max_worst"),
    (lambda: VocabMappingBrowser(k=0), "k"),
    (lambda: VocabMappingBrowser(query=5), "query"),
])
def test_wrong_constructor_arguments_name_themselves(make, argument):
    from ctkd_inspect.errors import InputError

    with pytest.raises(InputError, match=rf"\b{argument}\b"):
        make()


def test_a_bad_parquet_argument_is_a_message_in_the_report(tmp_path):
    report = CorpusReportWidget(str(tmp_path / "summary.json"), parquet=7)
    assert "parquet must be the path" in report.error_message
