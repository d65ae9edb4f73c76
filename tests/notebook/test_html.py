"""HTML views and ``_repr_html_``: one span per ribbon cell with its tooltip, the rich palette, nothing fetched."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

import ctkd_inspect
from ctkd_inspect import html as views

README_TEXT = "The café costs 3.50€ 🦙 — naïve\tcode: x+=1"


class Page(HTMLParser):
    """Every element with its attributes, the token spans with their text, and the page's text."""

    def __init__(self, markup: str):
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict]] = []
        self.cells: list[dict] = []
        self.text: list[str] = []
        self._open_cell: dict | None = None
        self._which: str | None = None  # in a diff view: the alignment ("a" or "b") of the ribbons that follow
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.elements.append((tag, attributes))
        if "data-which" in attributes and tag == "div":
            self._which = attributes["data-which"]
        if tag == "span":
            self._open_cell = {**attributes, "label": "", "which": self._which}
            self.cells.append(self._open_cell)

    def handle_endtag(self, tag):
        if tag == "span":
            self._open_cell = None

    def handle_data(self, data):
        self.text.append(data)
        if self._open_cell is not None:
            self._open_cell["label"] += data

    def side(self, side: str, which: str | None = None) -> list[dict]:
        return [c for c in self.cells if c.get("data-side") == side and (which is None or c["which"] == which)]


def references(markup: str) -> list[str]:
    """Everything in a page that would make a browser fetch something: src/href/srcset attributes, CSS url() and
    @import, script and link elements, xmlns-style namespace URLs."""
    page = Page(markup)
    found = [f"<{tag}>" for tag, _ in page.elements if tag in ("script", "link", "img", "iframe", "object")]
    found += [value for _, attributes in page.elements for name, value in attributes.items()
              if name in ("src", "href", "srcset", "xmlns", "data") and value]
    found += re.findall(r"url\(|@import", markup)
    return found


def ids_of(cells: list[dict]) -> list[int]:
    return [int(i) for cell in cells for i in cell["data-ids"].split()]


def style_of(cell: dict) -> dict[str, str]:
    return dict(part.split(":", 1) for part in cell["style"].split(";") if part)


@pytest.fixture(scope="module")
def readme_alignment():
    return ctkd_inspect.align("llama3", "gemma2", README_TEXT)


def test_one_span_per_cell_with_ids_spans_and_bytes_from_the_tokenizers(readme_alignment, tok):
    page = Page(readme_alignment._repr_html_())
    assert all("tok" in cell["class"].split() for cell in page.cells)  # no span is anything but a token cell
    for side, name in (("teacher", "llama3"), ("student", "gemma2")):
        encoding = tok(name)(README_TEXT, return_offsets_mapping=True)
        cells = page.side(side)
        assert ids_of(cells) == encoding["input_ids"]  # every token once, in order
        offsets = encoding["offset_mapping"]
        position = 0
        for cell in cells:
            count = len(cell["data-ids"].split())
            first, last = offsets[position], offsets[position + count - 1]
            start, end = int(cell["data-start"]), int(cell["data-end"])
            assert (start, end) == (min(first[0], last[0]), max(first[1], last[1]))
            title = cell["title"]
            assert f"span {start}–{end}" in title and "bytes" in title and "group" in title
            assert all(f"{i}" in title for i in cell["data-ids"].split()) and "id" in title
            if cell["data-status"] != "special":
                # the bytes are those of the characters the cell covers (a byte cluster: its whole characters)
                expected = README_TEXT[start:end].encode("utf-8")
                assert bytes.fromhex(cell["data-bytes"]) == expected
                assert f"bytes {expected.hex(' ')}" in title
            position += count
    # Llama 3's three byte tokens of " 🦙" are one cell: "␣🦙×3"
    (llama,) = [c for c in page.side("teacher") if "🦙" in c["label"]]
    assert llama["label"] == "␣🦙×3" and len(llama["data-ids"].split()) == 3


def test_groups_shapes_and_the_readme_figures(readme_alignment):
    page = Page(views.alignment_html(readme_alignment))
    groups = {int(c["data-group"]) for c in page.cells if int(c["data-group"]) >= 0}
    assert groups == set(range(16))  # the README's 16 groups, 12 of them exact 1:1
    exact = {int(c["data-group"]) for c in page.cells if c["data-status"] == "exact"}
    assert len(exact) == 12
    for group in groups:  # both sides of a group cover the same characters (span engine)
        hulls = []
        for side in ("teacher", "student"):
            cells = [c for c in page.side(side) if int(c["data-group"]) == group]
            hulls.append((min(int(c["data-start"]) for c in cells), max(int(c["data-end"]) for c in cells)))
        assert hulls[0] == hulls[1]
    naive = [c for c in page.side("teacher") if c["label"] in ("␣naï", "ve")]
    assert {c["data-shape"] for c in naive} == {"n:1"} and len({c["data-group"] for c in naive}) == 1
    tab = [c for c in page.side("student") if c["label"] == "⇥"]
    assert len(tab) == 1  # whitespace drawn visibly
    text = "".join(page.text)
    assert "alignment rate" in text and "63.2%" in text  # the README's figure


def test_colours_are_the_rich_palette(readme_alignment):
    from rich.style import Style

    from ctkd_inspect.rich_view import _BACKGROUNDS, _STATUS_STYLE, ribbon

    page = Page(views.alignment_html(readme_alignment))
    for side in ("teacher", "student"):
        rich_text = ribbon(readme_alignment, side)
        rich_backgrounds = []
        for span in rich_text.spans:
            style = Style.parse(span.style) if isinstance(span.style, str) else span.style
            rich_backgrounds.append(style.bgcolor.get_truecolor().hex if style.bgcolor else None)
        html_backgrounds = [style_of(c)["background"] for c in page.side(side)]
        assert html_backgrounds == rich_backgrounds  # cell for cell, the terminal's colours
        for cell in page.side(side):
            if cell["data-status"] in ("exact", "aligned"):
                assert style_of(cell)["background"] in _BACKGROUNDS[int(cell["data-group"]) % len(_BACKGROUNDS)]
            if cell["data-status"] == "special":
                assert style_of(cell)["background"] in _STATUS_STYLE["special"]


def test_self_contained_and_escaped():
    text = 'x <script>alert("&")</script> \'quoted\' <img src=x onerror=alert(1)> <b>'
    alignment = ctkd_inspect.align("gpt2", "bert", text)
    allowed = {"style", "div", "i", "b", "span", "kbd", "details", "summary", "table", "caption", "tr", "th", "td",
               "code"}
    for markup in (views.alignment_html(alignment), alignment._repr_html_()):
        assert not re.search(r"https?://", markup) and not references(markup)
        assert "<script" not in markup and "<link" not in markup and "@import" not in markup
        assert not re.search(r"\bsrc\s*=", markup) and "url(" not in markup
        page = Page(markup)
        assert {tag for tag, _ in page.elements} <= allowed  # the text's tags stayed text
        labels = "".join(c["label"] for c in page.side("teacher"))
        assert labels.replace("␣", " ") == text  # GPT-2's tokens, unescaped by the parser, give the text back


def test_ribbon_limit_and_diff_view(readme_alignment):
    long = ctkd_inspect.align("llama3", "gemma2", "word " * 300)
    page = Page(views.alignment_html(long, max_cells=50, max_groups=10))
    assert len(page.side("teacher")) == 50 and len(page.side("student")) == 50
    assert "more cells" in "".join(page.text) and "more groups" in "".join(page.text)

    mined = ctkd_inspect.align("llama3", "gemma2", README_TEXT, engine="mined")
    difference = ctkd_inspect.diff(readme_alignment, mined)
    markup = difference._repr_html_()
    page = Page(markup)
    # gemma2 cuts the text into 20 tokens, none of them byte tokens: 20 cells in each alignment's student ribbon
    assert len(page.side("student")) == 2 * 20
    text = "".join(page.text)
    assert f"{difference.agree} of a's {len(readme_alignment.groups)}" in text
    assert f"{difference.boundary_precision:.3f}" in text and f"{difference.boundary_f1:.3f}" in text
    # a cell is marked exactly when its group (its two token sets) is not a group of the other alignment
    token_sets = {which: {g: (tuple(group.teacher), tuple(group.student)) for g, group in enumerate(x.groups)}
                  for which, x in (("a", readme_alignment), ("b", mined))}
    marked = 0
    for which, other in (("a", "b"), ("b", "a")):
        others = set(token_sets[other].values())
        for side in ("teacher", "student"):
            for cell in page.side(side, which):
                group = int(cell["data-group"])
                disagrees = group >= 0 and token_sets[which][group] not in others
                assert cell["data-disagree"] == ("true" if disagrees else "false")
                marked += disagrees
                if not disagrees and cell["data-status"] != "special":
                    assert style_of(cell)["background"] == "#2a2a2a"  # agreeing groups in grey
    assert marked > 0
    the = [c for c in page.cells if c["label"] == "The"]
    assert len(the) == 4 and all(c["data-disagree"] == "false" for c in the)
    assert not re.search(r"https?://", markup) and not references(markup)


def test_vocab_mapping_views(tok):
    from ctkd_inspect.diffs import vocab_diff
    from ctkd_inspect.vocab import exact_mapping, vocabulary

    teacher, student = vocabulary(tok("llama3"), "llama3"), vocabulary(tok("gemma2"), "gemma2")
    exact = exact_mapping(teacher, student)
    text = "".join(Page(exact._repr_html_()).text)
    assert "85,699" in text  # the shared tokens the README documents (tokenkit's figure)
    assert "llama3 → gemma2" in text
    with_tokens = Page(views.vocab_mapping_html(exact, teacher, student, limit=5))
    assert "teacher tokens without a partner" in "".join(with_tokens.text)
    reference = exact_mapping(teacher, student, "reference")
    compared = vocab_diff(exact, reference, teacher_vocab=teacher, student_vocab=student)
    page = Page(compared._repr_html_())
    assert "the mappings differ" in "".join(page.text)
    rows = {a.get("data-direction"): a for tag, a in page.elements if tag == "tr" and a.get("data-direction")}
    assert set(rows) == {"teacher_to_student", "student_to_teacher"}
    assert not page.cells  # no token ribbons here: spans are reserved for token cells


def test_vocab_diff_examples_show_whitespace_tokens():
    import numpy as np

    from ctkd_inspect.diffs import vocab_diff
    from ctkd_inspect.vocab import VocabMapping, Vocabulary

    teacher = Vocabulary("t", "plain", ["\n\n", "  ", "a"], ["\n\n", "  ", "a"], np.zeros(3, bool))
    student = Vocabulary("s", "plain", ["\n", "\t", "a"], ["\n", "\t", "a"], np.zeros(3, bool))

    def mapping(t2s, s2t):
        t2s, s2t = np.array(t2s), np.array(s2t)
        return VocabMapping("exact", "canonical", "t", "s", t2s, np.where(t2s >= 0, 0, -1), s2t,
                            np.where(s2t >= 0, 0, -1), {})

    # teacher "\n\n" → "\n" in a only, "  " → "\t" in b only; "a" agrees
    page = views.vocab_diff_html(vocab_diff(mapping([0, -1, 2], [0, -1, 2]), mapping([-1, 1, 2], [-1, 1, 2]),
                                            teacher_vocab=teacher, student_vocab=student))
    codes = re.findall(r"<code>(.*?)</code>", page)
    # whitespace drawn visibly, as in every other view: no example cell is blank
    assert {"⏎⏎", "⏎", "␣␣", "⇥"} <= set(codes) and all(code.strip() for code in codes)
    # and in the view of one mapping: "  " has no exact partner, so it is in the unmapped sample
    page = views.vocab_mapping_html(mapping([0, -1, 2], [0, -1, 2]), teacher, student)
    codes = re.findall(r"<code[^>]*>(.*?)</code>", page)
    assert "␣␣" in codes and all(code.strip() for code in codes)


def test_corpus_and_failure_summaries(corpus):
    from ctkd_inspect.failures import summarize_failures

    alignments = [ctkd_inspect.align("llama3", "gemma2", text) for text in corpus[:40]]
    rates = [a.metrics["alignment_rate"] for a in alignments]
    summary = {"teacher": "llama3", "student": "gemma2", "engine": "span", "texts": len(alignments),
               "alignment_rate": {"mean": sum(rates) / len(rates), "histogram": views.histogram(rates, bins=10)},
               "shapes": {"1:1": 10, "n:m": 2}, "failures": summarize_failures(alignments)}
    markup = views.corpus_summary_html(summary)
    page = Page(markup)
    text = "".join(page.text)
    assert "llama3" in text and "failure taxonomy" in text and "worst texts" in text
    rects = [a for tag, a in page.elements if tag == "rect"]
    assert len(rects) == 10 and sum(int(re.search(r": ([\d,]+)$", title).group(1).replace(",", ""))
                                    for title in re.findall(r"<title>([^<]*)</title>", markup)) == 40
    assert not references(markup)  # the corpus texts may mention URLs; the page fetches nothing
    kinds = {a["data-kind"] for tag, a in page.elements if tag == "tr" and "data-kind" in a}
    assert kinds and kinds <= set(__import__("ctkd_inspect.failures").failures.KINDS)


@pytest.mark.parametrize(("call", "argument"), [
    (lambda a: views.alignment_html("not an alignment"), "alignment"),
    (lambda a: views.alignment_html(a, max_groups=-1), "max_groups"),
    (lambda a: views.alignment_html(a, max_cells="all"), "max_cells"),
    (lambda a: views.ribbon_html(a, "both"), "side"),
    (lambda a: views.group_table_html(a, max_groups=True), "max_groups"),
    (lambda a: views.metrics_html(a.to_dict()), "alignment"),
    (lambda a: views.diff_html(a, "b"), "b"),
    (lambda a: views.diff_html(a, a, diff={"agree": 1}), "diff"),
    (lambda a: views.diff_html(a, ctkd_inspect.align("llama3", "gemma2", README_TEXT, engine="mined"),
                               diff=ctkd_inspect.diff(a, a)), "diff"),
    (lambda a: views.diff_summary_html(a), "diff"),
    (lambda a: views.vocab_mapping_html({"teacher_to_student": []}), "mapping"),
    (lambda a: views.vocab_diff_html(None), "diff"),
    (lambda a: views.lookup_html("the"), "result"),
    (lambda a: views.corpus_summary_html(["texts", 3]), "summary"),
    (lambda a: views.failure_summary_html({}, max_examples=-2), "max_examples"),
    (lambda a: views.histogram([0.5], bins=0), "bins"),
    (lambda a: views.histogram([0.5], low=1.0, high=0.0), "low"),
    (lambda a: views.histogram("0.5"), "values"),
    (lambda a: views.document(b"<p>", "page"), "body"),
])
def test_wrong_arguments_name_themselves(readme_alignment, call, argument):
    from ctkd_inspect.errors import InputError

    with pytest.raises(InputError, match=rf"\b{argument}\b"):
        call(readme_alignment)
