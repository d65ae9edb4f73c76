"""``softdtw``: DWA-KD's attention-banded Soft-DTW between the two models' representations, as an inspection engine.

What it computes, for the non-special tokens of a text (special tokens are reported unmatched, as everywhere):

1. **Representations**: each model's final hidden states (``representation="hidden"``, default) or input
   embeddings (``"embedding"``), from :mod:`ctkd_inspect.signals`.
2. **Teacher → student map.** DWA-KD trains a projector; for inspection none exists, so a linear map
   ``t ↦ t·W + c`` is fitted by **ridge regression on anchor pairs**: the exact 1:1 groups of the span engine
   (a teacher and a student token covering exactly the same characters — the pairs any method must align).
   They come from the text itself and, optionally, from more texts (``anchor_texts``). A text gives fewer
   anchors than dimensions, so any weak ridge reproduces the anchors exactly (in-sample R² ≈ 1) whatever it does
   to the other tokens; the ridge strength is therefore chosen by **leave-one-out** error over a grid (closed
   form, one SVD; ``ridge="auto"``, the default) or fixed (``ridge=`` a number, relative to the mean non-zero
   eigenvalue of the anchors' Gram matrix). The metrics report the anchors, the chosen ridge, the in-sample R²
   and the leave-one-out R² — the honest measure of how well the map transfers to tokens it was not fitted on.
3. **Cost**: ``C[i, j] = clamp(1 − cos(s_i, t̃_j), 0, 2)``, student rows, teacher columns (DWA-KD's layout).
4. **Band**: DWA-KD's adaptive soft band (:mod:`ctkd_inspect.batch.band`, defaults b = 5, β = 2.0, α = 0.7,
   λ = 1.0) from a student→teacher attention matrix. Without a trained cross-model attention, the attention is the
   **span-overlap prior**: ``A[i, j]`` proportional to the number of characters student token ``i`` and teacher
   token ``j`` share (a student token that overlaps nothing gets a narrow Gaussian around its proportional
   position).
5. **Soft-DTW** (γ default 0.1, crisper than training's 2.0) of the banded cost: the value, the divergence
   ``sdtw(s, t̃) − ½(sdtw(s, s) + sdtw(t̃, t̃))`` (band on the cross term only), and the expected alignment
   ``E = ∂sdtw/∂C`` — the soft alignment, kept in the result (``"soft_alignment"``) for heat maps.
6. **Hard groups**: the monotone path that maximises the product of the soft alignment's cell probabilities
   (classic DTW on ``−log E``), split into connected components like the DTW engines, so ``diff`` and every
   front-end compare it with the other engines.

Memory: every step above is quadratic (about :data:`BYTES_PER_CELL` bytes per student × teacher cell, measured,
the soft alignment kept in the result included, plus :data:`SELF_BYTES_PER_CELL` per cell of the two self terms
of the divergence). The engine estimates it from the token counts before any model is loaded and refuses above
the budget (``max_memory`` / ``--max-memory``, default half of the available memory; see
:mod:`ctkd_inspect.memory`) with :class:`~ctkd_inspect.errors.MemoryBudgetError`.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..alignment import Alignment, GroupTable
from ..errors import EngineError
from ..metrics import compute_metrics
from ..text import Tokenization
from .dtw import MAX_MEMORY_OPTION, result_memory
from .dtw_core import dtw_path, path_components
from .options import EngineOption, validate_options

DEFAULTS = {"gamma": 0.1, "band_width": 5.0, "band_beta": 2.0, "band_alpha": 0.7, "band_penalty": 1.0,
            "representation": "hidden", "ridge": "auto"}


#: Bytes per student × teacher cell at the engine's peak (cost, attention, band, the Soft-DTW matrices, the decoding
#: and the soft alignment as the result's Python list), measured with tracemalloc on Llama 3 × Gemma 2 texts of
#: 1-2k tokens a side (about 96, with numba's two matrices) and rounded up.
BYTES_PER_CELL = 128
#: Bytes per cell of the self terms ``sdtw(s, s)`` and ``sdtw(t̃, t̃)`` (cost, R and E, and the cosine's temporaries).
SELF_BYTES_PER_CELL = 48


def softdtw_memory(students: int, teachers: int) -> int:
    """Bytes the engine needs for ``students`` × ``teachers`` non-special tokens (see the module docstring)."""
    return (students * teachers * BYTES_PER_CELL + (students ** 2 + teachers ** 2) * SELF_BYTES_PER_CELL
            + result_memory(students, teachers))


def check_softdtw_memory(teacher: Tokenization, student: Tokenization, max_memory=None) -> None:
    """Refuse a text whose Soft-DTW matrices would exceed the memory budget (before any model is loaded).

    Raises:
        MemoryBudgetError: the estimate is above the budget.
    """
    from ..memory import check_memory, memory_budget

    S, T = int(np.count_nonzero(~student.special)), int(np.count_nonzero(~teacher.special))
    check_memory(softdtw_memory(S, T), memory_budget(max_memory),
                 f"the softdtw engine's matrices for {S:,} student × {T:,} teacher tokens",
                 "Align a shorter text; or raise the budget with --max-memory (max_memory=, e.g. 8G) if the machine "
                 "has the memory; or use the mined engine with --chunking anchors or the span engine, whose memory "
                 "stays bounded on long texts.")


def overlap_attention(student: Tokenization, teacher: Tokenization, s_idx: np.ndarray,
                      t_idx: np.ndarray) -> np.ndarray:
    """``(S, T)`` row-stochastic attention from shared characters (see the module docstring)."""
    ss, se = student.starts[s_idx][:, None], student.ends[s_idx][:, None]
    ts, te = teacher.starts[t_idx][None, :], teacher.ends[t_idx][None, :]
    shared = np.clip(np.minimum(se, te) - np.maximum(ss, ts), 0, None).astype(np.float64)
    lonely = shared.sum(1) == 0
    if lonely.any():
        S, T = shared.shape
        centre = np.arange(S)[lonely] * (T / S)
        shared[lonely] = np.exp(-0.5 * (np.arange(T)[None, :] - centre[:, None]) ** 2)
    return shared / shared.sum(1, keepdims=True)


#: Candidate ridge strengths of the automatic fit, relative to the mean non-zero eigenvalue of the anchors' Gram
#: matrix (so they do not depend on the scale of the vectors).
RIDGE_GRID = tuple(float(v) for v in np.logspace(-4, 3, 22))


def fit_projector(teacher_vectors: np.ndarray, student_vectors: np.ndarray,
                  ridge: float | str = "auto") -> tuple[np.ndarray, dict]:
    """Ridge regression ``student ≈ teacher·W + c`` on anchor pairs; returns ``(W augmented with c, info)``.

    The strength is ``ridge ×`` the mean non-zero eigenvalue of the centred teacher Gram matrix. With
    ``ridge="auto"`` it is the value of :data:`RIDGE_GRID` with the smallest leave-one-out error (closed form:
    residual / (1 − leverage), from one SVD), because a text gives fewer anchors than dimensions and any small
    ridge then reproduces the anchors exactly whatever it does elsewhere. ``info`` holds ``anchors``,
    ``ridge`` (the relative value used), ``ridge_strength`` (absolute), ``fit_r2`` (in-sample, optimistic) and
    ``loo_r2`` (leave-one-out: how well the map predicts an anchor it was not fitted on; ``None`` for a constant
    student side).

    Raises:
        EngineError: fewer than two anchor pairs.
    """
    X = np.asarray(teacher_vectors, dtype=np.float64)
    Y = np.asarray(student_vectors, dtype=np.float64)
    n = len(X)
    if n < 2:
        raise EngineError(f"the softdtw engine needs at least 2 anchor pairs (exact 1:1 span groups) to fit the "
                          f"teacher→student map, found {n}; give a longer text or anchor_texts")
    x_mean, y_mean = X.mean(0), Y.mean(0)
    Xc, Yc = X - x_mean, Y - y_mean
    U, sv, Vt = np.linalg.svd(Xc, full_matrices=False)
    eig = sv ** 2
    nonzero = eig > eig.max(initial=0.0) * 1e-12
    scale = float(eig[nonzero].mean()) if nonzero.any() else 1.0
    projected = U.T @ Yc
    total = float((Yc ** 2).sum())

    def fit(relative: float):
        shrink = eig / (eig + relative * scale)
        residual = Yc - U @ (shrink[:, None] * projected)
        # leverage of the centred ridge fit plus 1/n for the intercept
        leverage = (U ** 2) @ shrink + 1.0 / n
        held_out = np.where(leverage < 1 - 1e-9, 1 - leverage, np.nan)
        press = float(((residual / held_out[:, None]) ** 2).sum())
        return residual, press

    if isinstance(ridge, str):
        scores = [fit(relative)[1] for relative in RIDGE_GRID]
        scores = [np.inf if np.isnan(score) else score for score in scores]
        ridge = RIDGE_GRID[int(np.argmin(scores))]
    residual, press = fit(float(ridge))
    strength = float(ridge) * scale
    W = Vt.T @ ((sv / (eig + strength))[:, None] * projected)
    c = y_mean - x_mean @ W
    fit_r2 = 1 - float((residual ** 2).sum()) / total if total > 0 else None
    loo_r2 = 1 - press / total if total > 0 and np.isfinite(press) else None
    return np.vstack([W, c[None, :]]), {"anchors": n, "ridge": float(ridge), "ridge_strength": strength,
                                        "fit_r2": fit_r2, "loo_r2": loo_r2}


def _apply(projector: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    return vectors @ projector[:-1] + projector[-1]


def _cosine_cost(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    an = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    bn = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return np.clip(1 - an @ bn.T, 0, 2)


def _vectors(signals, representation: str, side: str) -> np.ndarray:
    vectors = signals.hidden_states if representation == "hidden" else signals.input_embeddings
    if vectors is None:
        raise EngineError(f"the {side} signals hold no {representation} vectors")
    return np.asarray(vectors, dtype=np.float64)


def _anchors(teacher: Tokenization, student: Tokenization) -> tuple[np.ndarray, np.ndarray]:
    """Token indices of the exact 1:1 span groups (same characters on both sides)."""
    from .span import span_groups

    table = span_groups(teacher, student)
    one = (table.teacher_sizes == 1) & (table.student_sizes == 1)
    ti = table.teacher_indices[table.teacher_offsets[:-1][one]]
    sj = table.student_indices[table.student_offsets[:-1][one]]
    same = (teacher.starts[ti] == student.starts[sj]) & (teacher.ends[ti] == student.ends[sj])
    return ti[same], sj[same]


def _texts(value):
    """``anchor_texts`` option: a list of strings."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__") or not all(isinstance(t, str)
                                                                                    for t in value):
        raise ValueError(f"give a list of texts (strings), got {type(value).__name__}")
    return list(value)


class SoftDTWEngine:
    """DWA-KD's attention-banded Soft-DTW over model representations; needs both models' signals."""

    name: ClassVar[str] = "softdtw"
    description: ClassVar[str] = "DWA-KD: attention-banded Soft-DTW over model representations (needs both models)"
    options: ClassVar[tuple[EngineOption, ...]] = (
        EngineOption("gamma", float, DEFAULTS["gamma"], "Soft-DTW smoothing γ", minimum=0, exclusive_minimum=True),
        EngineOption("band_width", float, DEFAULTS["band_width"], "Band base width b", minimum=0),
        EngineOption("band_beta", float, DEFAULTS["band_beta"], "Band entropy factor β", minimum=0),
        EngineOption("band_alpha", float, DEFAULTS["band_alpha"], "Band centre mix α", minimum=0, maximum=1),
        EngineOption("band_penalty", float, DEFAULTS["band_penalty"], "Penalty λ outside the band", minimum=0),
        EngineOption("representation", str, DEFAULTS["representation"], "Vectors to align: final hidden states or "
                     "input embeddings", choices=("hidden", "embedding")),
        EngineOption("ridge", float, DEFAULTS["ridge"], "Ridge of the teacher→student map, relative to the anchors' "
                     "mean eigenvalue ('auto': chosen by leave-one-out error)", minimum=0, exclusive_minimum=True,
                     also=("auto",)),
        EngineOption("fit_texts", int, 0, "Also fit the teacher→student map on this many texts of the offline "
                     "corpus (one forward pass of each model per text)", minimum=0, metavar="N"),
        EngineOption("anchor_texts", object, None, "More texts whose exact 1:1 span groups join the anchors of the "
                     "projector fit", cli=False, convert=_texts),
        MAX_MEMORY_OPTION,
    )
    requires_signals: ClassVar[frozenset[str]] = frozenset({"hidden_states", "embeddings"})
    optional_signals: ClassVar[frozenset[str]] = frozenset()
    differentiable: ClassVar[bool] = True
    batched: ClassVar[bool] = True

    def needs_model(self, side: str, options: dict) -> bool:
        return True

    def check_options(self, **options) -> dict:
        """The settings (``DEFAULTS`` updated by ``options``) once every option is known and valid.

        Cheap and model-free, so callers run it before computing any signals.

        Raises:
            EngineError: an unknown option, a representation other than hidden/embedding, γ not a finite number
                > 0, or band parameters out of range (width, beta, penalty ≥ 0, alpha in [0, 1], all finite).
        """
        checked = validate_options(self, options, model_options=False)
        return {**DEFAULTS, **{k: v for k, v in checked.items() if k in DEFAULTS}}

    def preflight(self, teacher: Tokenization, student: Tokenization, options: dict) -> None:
        """Check the memory budget from the token counts, before the models are loaded (see
        :func:`check_softdtw_memory`)."""
        check_softdtw_memory(teacher, student, options.get("max_memory"))

    def prepare(self, options: dict, context) -> dict:
        """Turn ``fit_texts`` / ``anchor_texts`` into ``anchor_pairs`` (tokenizations and signals of the extra texts),
        using the tokenizers and models of ``context`` (:class:`ctkd_inspect.engines.AlignContext`).

        Raises:
            EngineError: extra anchor texts without both models.
        """
        options = dict(options)
        texts = list(options.pop("anchor_texts", None) or [])
        count = options.pop("fit_texts", 0) or 0
        if count:
            from ..sources.corpus import llama_cpp_corpus

            texts += llama_cpp_corpus()[:count]
        if not texts:
            return options
        if context.teacher_model is None or context.student_model is None:
            raise EngineError("fit_texts/anchor_texts need both models (teacher_model and student_model)")
        from ..progress import stage
        from ..text import tokenize

        pairs = []
        with stage("fitting the teacher→student map: signals of the anchor texts", total=len(texts),
                   unit="texts") as bar:
            for other in texts:
                t_other = tokenize(context.teacher_tokenizer, other, add_special_tokens=context.add_special_tokens)
                s_other = tokenize(context.student_tokenizer, other, add_special_tokens=context.add_special_tokens)
                pairs.append((t_other, s_other, context.signals_for("teacher", t_other, top_k=1),
                              context.signals_for("student", s_other, top_k=1)))
                bar.advance()
        options["anchor_pairs"] = pairs
        return options

    def align(self, teacher: Tokenization, student: Tokenization, *, teacher_signals=None, student_signals=None,
              anchor_pairs=(), teacher_tokenizer=None, student_tokenizer=None, **options) -> Alignment:
        """Align by banded Soft-DTW (see the module docstring for every step and default).

        Args:
            teacher_signals, student_signals: :class:`ctkd_inspect.signals.Signals` of the two tokenizations.
            anchor_pairs: more ``(teacher Tokenization, student Tokenization, teacher Signals, student Signals)``
                of other texts, whose exact 1:1 groups join the anchors of the projector fit.
            gamma, band_width, band_beta, band_alpha, band_penalty, representation, ridge: see ``DEFAULTS``.
            max_memory: the memory budget (bytes or a size such as ``"4G"``; default half of the available memory).

        Raises:
            EngineError: missing signals, unknown options, too few anchors, invalid parameters.
            MemoryBudgetError: the matrices would need more memory than the budget (checked before they exist).
        """
        settings = self.check_options(**options)
        max_memory = validate_options(self, {"max_memory": options.get("max_memory")},
                                      model_options=False).get("max_memory")
        if options.get("fit_texts") or options.get("anchor_texts"):
            raise EngineError("fit_texts/anchor_texts are turned into anchor_pairs by ctkd_inspect.align(); when "
                              "calling the engine directly, pass anchor_pairs")
        if teacher.text != student.text:
            raise EngineError("the teacher and student tokenizations are of different texts")
        if teacher_signals is None or student_signals is None:
            raise EngineError(
                "the softdtw engine compares the models' representations: pass teacher_model= and student_model= "
                "(a model alias such as gemma3 or smollm2, a .gguf, a folder or a hub id; CLI: --teacher-model, "
                "--student-model), or use aliases that name a model")
        for side, tokens, signals in (("teacher", teacher, teacher_signals), ("student", student, student_signals)):
            if len(signals) != len(tokens) or not np.array_equal(np.asarray(signals.ids), tokens.ids):
                raise EngineError(f"the {side} signals were computed for other token ids than this tokenization")
        check_softdtw_memory(teacher, student, max_memory)
        representation = settings["representation"]
        t_vec = _vectors(teacher_signals, representation, "teacher")
        s_vec = _vectors(student_signals, representation, "student")
        # projector fit on the exact 1:1 anchors of this text and of the extra texts
        xs, ys = [], []
        for t_tok, s_tok, t_sig, s_sig in [(teacher, student, teacher_signals, student_signals), *anchor_pairs]:
            ti, sj = _anchors(t_tok, s_tok)
            xs.append(_vectors(t_sig, representation, "teacher")[ti])
            ys.append(_vectors(s_sig, representation, "student")[sj])
        projector, fit = fit_projector(np.concatenate(xs), np.concatenate(ys), settings["ridge"])
        t_idx = np.flatnonzero(~teacher.special)
        s_idx = np.flatnonzero(~student.special)
        options_out = {k: settings[k] for k in DEFAULTS}
        if len(t_idx) == 0 or len(s_idx) == 0:
            raise EngineError("the softdtw engine needs at least one non-special token on each side")
        mapped = _apply(projector, t_vec[t_idx])
        students = s_vec[s_idx]
        cost = _cosine_cost(students, mapped)  # (S, T): student rows, teacher columns
        from ..batch import _softdtw_cpu
        from ..batch.band import dwa_band

        attention = overlap_attention(student, teacher, s_idx, t_idx)
        band, centers, widths = dwa_band(attention, width=settings["band_width"], beta=settings["band_beta"],
                                         alpha=settings["band_alpha"], penalty=settings["band_penalty"])
        gamma = float(settings["gamma"])
        value, soft = _softdtw_cpu.value_and_alignment(cost, gamma, band)
        self_s, _ = _softdtw_cpu.value_and_alignment(_cosine_cost(students, students), gamma)
        self_t, _ = _softdtw_cpu.value_and_alignment(_cosine_cost(mapped, mapped), gamma)
        # hard decoding: the monotone path with the largest product of cell probabilities
        decoded = dtw_path(-np.log(np.clip(soft.T, 1e-300, None)))
        pieces = path_components(decoded.path)
        path_cost = cost.T[decoded.path[:, 0], decoded.path[:, 1]]
        step_group = np.concatenate([[0], np.cumsum((np.diff(decoded.path[:, 0]) > 0)
                                                    & (np.diff(decoded.path[:, 1]) > 0))])
        group_cost = np.bincount(step_group, weights=path_cost, minlength=len(pieces))
        group_mass = np.bincount(step_group, weights=soft.T[decoded.path[:, 0], decoded.path[:, 1]],
                                 minlength=len(pieces))
        table = GroupTable.from_lists([t_idx[t].tolist() for t, _ in pieces], [s_idx[s].tolist() for _, s in pieces],
                                      {"cost": group_cost.tolist(), "soft_mass": group_mass.tolist()})
        path_full = np.stack([t_idx[decoded.path[:, 0]], s_idx[decoded.path[:, 1]]], axis=1)
        extra = {
            "path": path_full.tolist(),
            "soft_alignment": {"rows": "student", "columns": "teacher", "student_index": s_idx.tolist(),
                               "teacher_index": t_idx.tolist(), "matrix": np.round(soft, 6).tolist()},
            "band": {"centers": np.round(centers, 4).tolist(), "widths": np.round(widths, 4).tolist(),
                     "penalised_cells": int((band > 0).sum())},
        }
        alignment = Alignment(teacher, student, table, engine=self.name, options=options_out, extra=extra)
        alignment.metrics = compute_metrics(alignment)
        alignment.metrics.update({
            "soft_dtw": value,
            "soft_dtw_divergence": value - 0.5 * (self_s + self_t),
            "expected_path_length": float(soft.sum()),
            "path_cost": float(path_cost.sum()),
            "anchors": fit["anchors"],
            "projector_fit_r2": fit["fit_r2"],
            "projector_loo_r2": fit["loo_r2"],
            "projector_ridge": fit["ridge"],
        })
        return alignment
