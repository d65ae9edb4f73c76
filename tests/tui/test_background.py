"""Whole-data-set passes in a child process (ctkd_inspect_tui.background): the same results as in this process,
progress on the way, failures as messages, cancellation that stops the child."""

from __future__ import annotations

import time

import pytest
from ctkd_inspect_tui.background import CHUNK, run_pass


def test_report_summary_in_a_child_equals_the_summary_here(report_path):
    from ctkd_inspect.columns import read_parquet
    from ctkd_inspect.failures import summarize_failures

    progress = []
    summary, shapes = run_pass("report_summary", (str(report_path),), lambda *p: progress.append(p[:2]),
                               lambda: False)
    alignments = read_parquet(report_path)
    expected = summarize_failures(alignments)
    assert summary == expected.to_dict()
    totals = {}
    for alignment in alignments:
        for shape, count in alignment.metrics["shapes"].items():
            totals[shape] = totals.get(shape, 0) + count
    assert shapes == totals
    assert progress[-1] == (40, 40)


def test_data_pass_streams_rates_in_order(report_texts, tok):
    from ctkd_inspect import align

    texts = report_texts[:7]
    chunks = []
    summary, _shapes = run_pass("data_pass", (texts, "llama3", "gemma2", "span", {}, None),
                                lambda done, total, payload: chunks.append((done, total, payload)), lambda: False)
    assert [c[:2] for c in chunks] == [(7, 7)] and CHUNK > 7
    first, rates, groups = chunks[0][2]
    expected = [align(tok("llama3"), tok("gemma2"), t) for t in texts]
    assert first == 0 and rates == pytest.approx([a.metrics["alignment_rate"] for a in expected])
    assert groups == [len(a.table) for a in expected]
    assert summary["texts"] == 7


def test_a_failing_pass_raises_its_message(tmp_path):
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet")
    with pytest.raises(RuntimeError, match=r"(?i)parquet"):
        run_pass("report_summary", (str(broken),), lambda *p: None, lambda: False)


def test_a_cancelled_pass_stops_its_child(report_texts):
    import multiprocessing

    started = time.monotonic()
    result = run_pass("data_pass", (report_texts * 50, "llama3", "gemma2", "span", {}, None), lambda *p: None,
                      lambda: time.monotonic() - started > 0.5)
    assert result is None
    assert not [p for p in multiprocessing.active_children() if p.is_alive()]
