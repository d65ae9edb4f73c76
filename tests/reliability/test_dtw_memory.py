"""Memory budgets of the quadratic engines and the chunked DTW mode (the reliability issue, point 1).

Expected values are independent of the code under test: sizes written out by hand, cgroup and address-space limits
set by the test, tokenizations built by hand with their cut points worked out on paper, a plain-Python DTW with a
Levenshtein call per cell as the oracle of every chunk, and the process limit of the "done when" (a 100k-character
text under a 4 GiB address space) enforced by the kernel.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rapidfuzz.distance import Levenshtein

from ctkd_inspect import Alignment, align
from ctkd_inspect.api import tokenize_pair
from ctkd_inspect.batch.dtw import dtw_paths
from ctkd_inspect.engines.dtw import RESULT_BYTES_PER_TOKEN, MinedEngine, canonical_string
from ctkd_inspect.engines.dtw_chunks import anchor_splits, paragraph_splits, plan_chunks
from ctkd_inspect.errors import EngineError, MemoryBudgetError
from ctkd_inspect.memory import Budget, _cgroup_available, check_memory, format_size, memory_budget, parse_size
from tests.engines.helpers import assert_engine_invariants, from_pieces, from_spans
from tests.engines.test_dtw import brute_force_dtw

from .conftest import cli

GiB = 1 << 30

# -------------------------------------------------------------------------------------------------------------
# sizes and available memory


@pytest.mark.parametrize(("text", "size"), [
    ("4G", 4 * 1024 ** 3), ("4g", 4 * 1024 ** 3), ("4GiB", 4 * 1024 ** 3), ("4GB", 4 * 10 ** 9),
    ("512M", 512 * 1024 ** 2), ("1.5G", 3 * 1024 ** 3 // 2), ("800MB", 800 * 10 ** 6), ("64k", 65536),
    ("1048576", 1048576), (" 2 T ", 2 * 1024 ** 4), (4096, 4096), ("0.5K", 512),
])
def test_sizes_by_hand(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["", "4X", "G", "-1G", "0", 0, -5, 1.5, float("nan"), True, None, [1], b"4G",
                                 "4 G B", "1e9"])
def test_sizes_that_are_refused_say_what_is_accepted(bad):
    with pytest.raises(ValueError, match=r"4G|more than 0"):
        parse_size(bad)


def test_format_size():
    assert format_size(3 * GiB) == "3.0 GiB" and format_size(1536) == "1.5 KiB" and format_size(100) == "100 B"


def test_cgroup_limits_v2_and_v1(tmp_path):
    v2 = tmp_path / "v2"
    (v2 / "job").mkdir(parents=True)
    (v2 / "job" / "memory.max").write_text(f"{GiB}\n")
    (v2 / "job" / "memory.current").write_text(f"{300 * 1024 ** 2}\n")
    membership = tmp_path / "cgroup"
    membership.write_text("0::/job\n")
    assert _cgroup_available(v2, membership) == GiB - 300 * 1024 ** 2
    (v2 / "job" / "memory.max").write_text("max\n")
    assert _cgroup_available(v2, membership) is None  # no limit set
    v1 = tmp_path / "v1"
    (v1 / "memory" / "slice").mkdir(parents=True)
    (v1 / "memory" / "slice" / "memory.limit_in_bytes").write_text(f"{2 * GiB}\n")
    (v1 / "memory" / "slice" / "memory.usage_in_bytes").write_text(f"{GiB}\n")
    membership.write_text("4:memory:/slice\n3:cpuset:/\n")
    assert _cgroup_available(v1, membership) == GiB
    (v1 / "memory" / "slice" / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # v1's "unlimited"
    assert _cgroup_available(v1, membership) is None


def test_the_address_space_limit_bounds_the_budget():
    """In a process limited to 3 GiB of address space, RLIMIT_AS is the smallest source (this machine has more
    free memory than that) and the default budget is half of what remains of it."""
    program = textwrap.dedent("""
        import json, resource
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
        from ctkd_inspect.memory import available_memory, memory_budget
        mapped = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmSize:"))
        value, source = available_memory()
        print(json.dumps({"value": value, "source": source, "mapped": mapped, "budget": memory_budget().limit}))
    """)
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    got = json.loads(done.stdout)
    assert got["source"] == "RLIMIT_AS"
    assert 0 < got["value"] <= 3 * GiB - got["mapped"]
    assert got["value"] > 3 * GiB - got["mapped"] - 64 * 1024 ** 2  # only the interpreter's growth in between
    assert got["value"] // 3 <= got["budget"] <= got["value"] // 2


def test_an_estimate_above_the_budget_is_refused_with_both_sizes():
    check_memory(1000, Budget(1000, "test"), "work", "way out")  # equal: fits
    with pytest.raises(MemoryBudgetError) as caught:
        check_memory(3 * GiB, Budget(GiB, "set by test"), "the thing", "Use less.")
    assert str(caught.value) == "the thing needs about 3.0 GiB, more than the memory budget of 1.0 GiB (set by " \
                                "test). Use less."
    assert caught.value.exit_code == 2 and isinstance(caught.value, EngineError)
    assert memory_budget(12345).limit == 12345


# -------------------------------------------------------------------------------------------------------------
# the kernel: one byte per cell, any integer cost type


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 7), st.integers(1, 7), st.sampled_from(["uint8", "uint16", "int32", "int64", "float32"]),
       st.data())
def test_integer_and_float32_costs_give_the_brute_force_path(n, m, dtype, data):
    values = data.draw(st.lists(st.integers(0, 3), min_size=n * m, max_size=n * m))
    cost = np.array(values).reshape(n, m)
    result = dtw_paths(cost.astype(dtype))
    path, total = brute_force_dtw(cost.astype(float).tolist())
    assert [tuple(p) for p in result.path(0).tolist()] == path and result.totals[0] == total


def test_the_backtrace_needs_one_byte_per_cell():
    """36 M cells of uint8 costs under an address-space limit 160 MiB above what the process maps: the direction
    codes (36 MiB) fit; a float64 accumulated matrix (288 MiB) would not."""
    program = textwrap.dedent("""
        import resource
        import numpy as np
        from ctkd_inspect.batch.dtw import dtw_paths
        dtw_paths(np.ones((3, 3), np.uint8))  # load the compiled kernel first
        n = 6000
        cost = np.ones((n, n), np.uint8)
        np.fill_diagonal(cost, 0)
        mapped = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmSize:"))
        limit = mapped + (160 << 20)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        result = dtw_paths(cost)
        print(int(result.steps[0]), float(result.totals[0]))
    """)
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["6000", "0.0"]  # the zero diagonal, by hand


# -------------------------------------------------------------------------------------------------------------
# refusals: the size, the budget and the ways out, before any model


def test_the_mined_engine_refuses_past_its_budget(corpus):
    text = "\n\n".join(corpus[:40])
    teacher, student = tokenize_pair("llama3", "gemma2", text)
    n, m = int((~teacher.special).sum()), int((~student.special).sum())
    with pytest.raises(MemoryBudgetError) as caught:
        align(teacher, student, text, engine="mined", max_memory="1M")
    message = str(caught.value)
    assert f"{n:,} × {m:,} tokens" in message and "1.0 MiB (set by max_memory" in message
    assert "--chunking anchors" in message and "--max-memory" in message and "--engine span" in message
    assert caught.value.estimate >= 2 * n * m  # at least the cost (1 byte) and the direction codes (1 byte)
    # a budget of the result plus half of that lower bound refuses the whole DTW and fits pieces of 128 tokens
    budget = RESULT_BYTES_PER_TOKEN * (n + m) + n * m
    with pytest.raises(MemoryBudgetError):
        align(teacher, student, text, engine="mined", max_memory=budget)
    pieces = align(teacher, student, text, engine="mined", chunking="anchors", chunk_tokens=128, max_memory=budget)
    assert_engine_invariants(pieces)


def test_the_cli_refuses_with_exit_2_and_a_message(corpus):
    text = "\n\n".join(corpus[:40])
    out = cli("llama3", "gemma2", text, "--engine", "mined", "--max-memory", "64K")
    assert out.exit_code == 2 and out.stdout == ""
    assert "64.0 KiB" in out.stderr and "needs about" in out.stderr and "--chunking anchors" in out.stderr
    bad = cli("llama3", "gemma2", "hi", "--engine", "mined", "--max-memory", "lots")
    assert bad.exit_code == 2 and "--max-memory" in bad.stderr and "4G" in bad.stderr
    wrong_engine = cli("llama3", "gemma2", "hi", "--chunking", "anchors")
    assert wrong_engine.exit_code == 2
    assert "--chunking applies to --engine mined or --engine cdm" in wrong_engine.stderr


def test_running_out_of_memory_anyway_is_a_message(monkeypatch, tmp_path):
    """Past every check (a budget raised by hand, memory taken by others since): exit 1 with a message, no
    traceback, and no output file."""
    from ctkd_inspect.batch import dtw

    def exhausted(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(dtw, "dtw_paths", exhausted)
    out = cli("llama3", "gemma2", "hi there", "--engine", "mined", "--max-memory", "64G", "-o", tmp_path / "a.json")
    assert out.exit_code == 1 and "ran out of memory" in out.stderr and "--chunking anchors" in out.stderr
    assert "this is a bug" not in out.stderr and list(tmp_path.iterdir()) == []


def test_softdtw_checks_its_budget_before_loading_any_model(monkeypatch):
    from ctkd_inspect import api

    monkeypatch.setattr(api, "_compute_signals", lambda *a: pytest.fail("models were loaded"))
    with pytest.raises(MemoryBudgetError, match=r"softdtw engine's matrices for .* student × .* teacher tokens"):
        align("gemma3", "smollm2", "The capital of France is Paris. " * 20, engine="softdtw", max_memory="1M")


def test_cdm_checks_its_budget_before_loading_any_model(monkeypatch):
    from ctkd_inspect import api

    monkeypatch.setattr(api, "_compute_signals", lambda *a: pytest.fail("models were loaded"))
    with pytest.raises(MemoryBudgetError, match="cdm engine's DTW"):
        align("gemma3", "smollm2", "The capital of France is Paris. " * 40, engine="cdm", max_memory="16K")


# -------------------------------------------------------------------------------------------------------------
# chunk planning by hand


def test_pieces_by_hand():
    # splits at (2, 2), (4, 5), (6, 7); pieces of at most 4 tokens a side: from (0, 0) only (2, 2) lies within
    # (4, 5 is 5 student tokens); from (2, 2) the furthest within is (4, 5) ((6, 7) is 5 student tokens); from
    # (4, 5) the rest, 4 × 4 tokens, fits
    splits = np.array([[2, 2], [4, 5], [6, 7]])
    assert plan_chunks(splits, 8, 9, 4) == [(0, 2, 0, 2), (2, 4, 2, 5), (4, 8, 5, 9)]
    assert plan_chunks(splits, 8, 9, 100) == [(0, 8, 0, 9)]
    # size 1: every split is used; the window is always empty, so the next split is taken
    assert plan_chunks(splits, 8, 9, 1) == [(0, 2, 0, 2), (2, 4, 2, 5), (4, 6, 5, 7), (6, 8, 7, 9)]
    assert plan_chunks(np.zeros((0, 2), np.int64), 50, 60, 4) == [(0, 50, 0, 60)]  # no split: one piece


def test_anchor_split_points_by_hand():
    text = "aa bb cc dd"
    teacher = from_spans("t", text, [(0, 2), (2, 5), (5, 8), (8, 11)])  # aa | ␣bb | ␣cc | ␣dd
    student = from_spans("s", text, [(0, 2), (2, 3), (3, 5), (5, 8), (8, 11)])  # aa | ␣ | bb | ␣cc | ␣dd
    t_idx, s_idx = np.arange(4), np.arange(5)
    # exact 1:1 anchors: "aa" (0, 0), "␣cc" (2, 3), "␣dd" (3, 4); the last ends both sequences, so it cuts nothing
    assert anchor_splits(teacher, student, t_idx, s_idx).tolist() == [[1, 1], [3, 4]]


def test_paragraph_split_points_by_hand():
    teacher = from_pieces("t", ["ab", "\n\n", "cd", "\n\n", "ef"])
    student = from_pieces("s", ["ab\n", "\ncd", "\n\n", "ef"])
    # the first blank line is crossed by the student's tokens at every offset; the second is a clean boundary at
    # offset 8 (after 4 teacher and 3 student tokens)
    assert paragraph_splits(teacher, student, np.arange(5), np.arange(4)).tolist() == [[4, 3]]


# -------------------------------------------------------------------------------------------------------------
# chunked alignments against an independent DTW


def test_each_piece_is_the_plain_dtw_of_its_tokens_and_ends_on_an_exact_anchor(corpus):
    """The pieces are recomputed by hand (exact pairs found by checking every token's span, the greedy rule of the
    docs), and each piece's part of the path must be the plain-Python DTW, with a Levenshtein call per cell, of
    exactly that piece's tokens; the path cost is the sum of the pieces' costs."""
    text = "\n\n".join(corpus[100:130])[:4000]
    teacher, student = tokenize_pair("llama3", "gemma2", text)
    result = align(teacher, student, text, engine="mined", chunking="anchors", chunk_tokens=64)
    assert_engine_invariants(result)
    t_idx, s_idx = np.flatnonzero(~teacher.special), np.flatnonzero(~student.special)
    t_str = [canonical_string(teacher, i) for i in t_idx]
    s_str = [canonical_string(student, j) for j in s_idx]
    path = [(int(np.searchsorted(t_idx, i)), int(np.searchsorted(s_idx, j))) for i, j in result.extra["path"]]
    pieces = _pieces_by_hand(teacher, student, t_idx, s_idx, 64)
    assert len(pieces) > 5 and result.metrics["chunks"] == len(pieces)
    total = 0.0
    for t0, t1, s0, s1 in pieces:
        cost = [[Levenshtein.distance(t_str[i], s_str[j]) for j in range(s0, s1)] for i in range(t0, t1)]
        expected, piece_total = brute_force_dtw(cost)
        assert [(i - t0, j - s0) for i, j in path if t0 <= i < t1 and s0 <= j < s1] == expected
        total += piece_total
    assert result.metrics["path_cost"] == total


def _exact_pair(teacher, student, i: int, j: int) -> bool:
    """Teacher token i and student token j cover exactly the same (non-empty) characters and no other non-special
    token of either side overlaps them."""
    start, end = teacher.starts[i], teacher.ends[i]
    if (student.starts[j], student.ends[j]) != (start, end) or end <= start:
        return False
    for tokens, own in ((teacher, i), (student, j)):
        for k in range(len(tokens)):
            if k != own and not tokens.special[k] and tokens.starts[k] < end and start < tokens.ends[k]:
                return False
    return True


def _pieces_by_hand(teacher, student, t_idx, s_idx, size):
    """Greedy pieces: each ends on the furthest exact pair within ``size`` tokens a side (or on the next exact pair
    when none lies within); a pair that ends either sequence cuts nothing; the last piece runs to the end."""
    by_span = {(int(student.starts[j]), int(student.ends[j])): b for b, j in enumerate(s_idx)}
    anchors = []
    for a, i in enumerate(t_idx[:-1]):
        b = by_span.get((int(teacher.starts[i]), int(teacher.ends[i])))
        if b is not None and b < len(s_idx) - 1 and _exact_pair(teacher, student, i, s_idx[b]):
            anchors.append((a, b))
    pieces, p, q = [], 0, 0
    while not (len(t_idx) - p <= size and len(s_idx) - q <= size):
        later = [(a, b) for a, b in anchors if a >= p and b >= q]
        if not later:
            break
        within = [(a, b) for a, b in later if a + 1 - p <= size and b + 1 - q <= size]
        a, b = within[-1] if within else later[0]
        pieces.append((p, a + 1, q, b + 1))
        p, q = a + 1, b + 1
    pieces.append((p, len(t_idx), q, len(s_idx)))
    return pieces


def test_pieces_as_large_as_the_text_change_nothing(corpus):
    text = "\n\n".join(corpus[200:215])
    whole = align("llama3", "gemma2", text, engine="mined")
    for chunking in ("anchors", "paragraphs"):
        chunked = align("llama3", "gemma2", text, engine="mined", chunking=chunking, chunk_tokens=100_000)
        assert chunked.extra["path"] == whole.extra["path"]
        assert chunked.metrics["chunks"] == 1 and chunked.options["chunking"] == chunking


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_chunked_alignments_keep_the_invariants_on_random_slices(corpus, data):
    start = data.draw(st.integers(0, len(corpus) - 30))
    text = "\n\n".join(corpus[start:start + data.draw(st.integers(1, 30))])
    chunking = data.draw(st.sampled_from(["anchors", "paragraphs"]))
    size = data.draw(st.integers(1, 300))
    pair = data.draw(st.sampled_from([("llama3", "gemma2"), ("gpt2", "bert"), ("mistral", "qwen2")]))
    result = align(*pair, text, engine="mined", chunking=chunking, chunk_tokens=size)
    assert_engine_invariants(result)
    path = np.array(result.extra["path"])
    assert np.all(np.diff(path, axis=0) >= 0) and np.all(np.diff(path, axis=0).sum(axis=1) >= 1)


def test_engines_direct_call_checks_the_budget():
    teacher = from_pieces("t", ["a"] * 300)
    student = from_pieces("s", ["a"] * 300)
    with pytest.raises(MemoryBudgetError, match="300 × 300 tokens"):
        MinedEngine().align(teacher, student, max_memory=50_000)


# -------------------------------------------------------------------------------------------------------------
# the "done when": 100k characters under a 4 GiB address space


def _limited(*args):
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (4 * GiB, 4 * GiB))

    return subprocess.run([sys.executable, "-m", "ctkd_inspect", *args], capture_output=True, text=True,
                          preexec_fn=limit, timeout=900)


def test_100k_characters_under_4gib_refuse_cleanly_or_complete_chunked(long_text, tmp_path):
    source = tmp_path / "100k.txt"
    source.write_text(long_text, encoding="utf-8")
    assert len(source.read_text(encoding="utf-8")) == 100_000
    refused = _limited("llama3", "gemma2", "--file", str(source), "--engine", "mined")
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert refused.stdout == ""
    assert "needs about" in refused.stderr and "GiB" in refused.stderr and "RLIMIT_AS" in refused.stderr
    assert "--chunking anchors" in refused.stderr
    for bad in ("Traceback", "MemoryError", "this is a bug"):
        assert bad not in refused.stderr
    out = tmp_path / "chunked.json"
    done = _limited("llama3", "gemma2", "--file", str(source), "--engine", "mined", "--chunking", "anchors",
                    "--json", "-o", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    for bad in ("Traceback", "MemoryError", "this is a bug"):
        assert bad not in done.stderr
    result = Alignment.from_dict(json.loads(out.read_text(encoding="utf-8")))
    assert result.text == long_text and result.options["chunking"] == "anchors" and result.metrics["chunks"] > 1
    assert_engine_invariants(result)
    assert done.stdout == ""  # -o takes the JSON document; --json leaves out the terminal view
