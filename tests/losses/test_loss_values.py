"""Every loss on hand-built tiny cases, against values computed here in numpy from the papers' formulas (not by
calling the loss modules), including the hand vectors of research/methods.md §9 (1, 2, 5, 11, 12)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ctkd_inspect.losses import get_loss
from ctkd_inspect.losses.base import ModelOutputs, divergence
from ctkd_inspect.losses.data import IGNORE_INDEX, mined_alignments
from ctkd_inspect.vocab import VocabMapping

from .helpers import all_loss_positions, hand_batch, hand_tokens, kl, log_softmax

RNG = np.random.default_rng(7)


def outputs(logits) -> ModelOutputs:
    return ModelOutputs(torch.as_tensor(np.asarray(logits, dtype=np.float32)))


def ce_numpy(logits, labels):
    lp = log_softmax(logits)
    return np.array([-lp[t, y] for t, y in enumerate(labels) if y != IGNORE_INDEX])


# --------------------------------------------------------------------------------------------------------------
# divergences


@pytest.mark.parametrize("kind", ["forward_kl", "reverse_kl", "skewed_forward_kl", "skewed_reverse_kl", "js"])
def test_divergences_match_their_formulas(kind):
    s, t = RNG.normal(size=(3, 7)), RNG.normal(size=(3, 7)) * 2
    T, lam = 2.0, 0.1
    q, p = np.exp(log_softmax(s / T)), np.exp(log_softmax(t / T))
    expected = {"forward_kl": (p * np.log(p / q)).sum(-1), "reverse_kl": (q * np.log(q / p)).sum(-1),
                "skewed_forward_kl": (p * np.log(p / (lam * p + (1 - lam) * q))).sum(-1),
                "skewed_reverse_kl": (q * np.log(q / ((1 - lam) * p + lam * q))).sum(-1),
                "js": 0.5 * (p * np.log(2 * p / (p + q))).sum(-1) + 0.5 * (q * np.log(2 * q / (p + q))).sum(-1)}
    got = divergence(kind, torch.tensor(s), torch.tensor(t), temperature=T, skew=lam).numpy()
    assert np.allclose(got, expected[kind], rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------------------------
# sft and kd


def test_sft_is_the_mean_cross_entropy_of_each_example():
    logits = RNG.normal(size=(2, 4, 6))
    labels = [[IGNORE_INDEX, 2, 5, IGNORE_INDEX], [1, 1, 0, 3]]
    batch = hand_batch([[0] * 4] * 2, labels, [[0] * 4] * 2, labels)
    out = get_loss("sft")(batch, outputs(logits))
    per = [ce_numpy(logits[b], labels[b]).mean() for b in range(2)]
    assert np.allclose(out.per_example.detach().numpy(), per, rtol=1e-5)
    assert math.isclose(float(out.loss.detach()), (2 * per[0] + 4 * per[1]) / 6, rel_tol=1e-5)  # token-weighted


def test_kd_is_forward_kl_at_temperature_mixed_with_ce():
    s, t = RNG.normal(size=(1, 5, 8)), RNG.normal(size=(1, 5, 8)) * 3
    labels = [[IGNORE_INDEX, 3, 1, 7, 0]]
    ids = [[4, 4, 3, 1, 7]]
    batch = hand_batch(ids, labels, ids, labels)
    out = get_loss("kd")(batch, outputs(s), outputs(t))
    T = 2.0
    mask = np.array(labels[0]) != IGNORE_INDEX
    kd_values = kl(log_softmax(t[0] / T), log_softmax(s[0] / T))[mask]
    expected = 0.5 * ce_numpy(s[0], labels[0]).mean() + 0.5 * kd_values.mean()
    assert math.isclose(float(out.loss.detach()), expected, rel_tol=1e-5)
    hits = (t[0].argmax(-1) == np.array(labels[0]))[mask].mean()
    assert math.isclose(out.statistics["top1_accuracy"], hits)


def test_kd_refuses_two_tokenizations():
    from ctkd_inspect.errors import InputError

    batch = hand_batch([[1, 2]], [[2, -100]], [[1, 3]], [[3, -100]])
    with pytest.raises(InputError, match="same tokenization"):
        get_loss("kd")(batch, outputs(np.zeros((1, 2, 4))), outputs(np.zeros((1, 2, 4))))


# --------------------------------------------------------------------------------------------------------------
# mined: vector 1 with DSKD's rule


def test_vector1_mined_targets_and_statistics():
    teacher = hand_tokens("t", ["▁The", "▁comfort", "▁of", "▁c", "ats"], "sentencepiece")
    student = hand_tokens("s", ["The", "Ġcomfort", "Ġof", "Ġcats"], "byte-level")
    [(aligned, match)] = mined_alignments([(teacher, student, all_loss_positions(5), all_loss_positions(4))],
                                          "reference")
    # the mapping: the first three words map to each other, "▁c" to "Ġcats", "ats" nowhere
    t2s = np.array([0, 1, 2, 3, -1])
    mapping = VocabMapping("exact", "reference", "t", "s", t2s, np.where(t2s >= 0, 0, -1),
                           np.array([0, 1, 2, 3]), np.zeros(4, np.int64))
    labels = [1, 2, 3, 0]
    batch = hand_batch([[0, 1, 2, 3]], [labels], [[0, 1, 2, 3, 4]], [[1, 2, 3, 4, IGNORE_INDEX]],
                       mined_teacher=[aligned], mined_match=[match])
    s, t = RNG.normal(size=(1, 4, 4)), RNG.normal(size=(1, 5, 5)) * 2
    loss = get_loss("mined", vocab_mapping=mapping, statistics_k=5)
    out = loss(batch, outputs(s), outputs(t))
    T = 2.0
    student_lp = log_softmax(s[0] / T)
    # positions 0 and 1 take the teacher's distribution projected on student ids 0..3 (teacher ids 0..3)
    kd = [kl(log_softmax(t[0, u, :4] / T), student_lp[j]) for j, u in ((0, 0), (1, 1))]
    # position 2 (two teacher tokens) and 3 ("ats" is unmapped) fall back to one-hot on the next token
    kd += [-student_lp[2, labels[2]], -student_lp[3, labels[3]]]
    expected = 0.5 * ce_numpy(s[0], labels).mean() + 0.5 * np.mean(kd)
    assert math.isclose(float(out.loss.detach()), expected, rel_tol=1e-5)
    stats = out.statistics
    assert stats["onehot_fallback_rate"] == 0.5 and stats["alignment_rate"] == 0.5
    assert stats["topk_mapping_coverage"] == 0.8  # teacher id 4 ("ats") has no place in the student vocabulary
    teacher_hits = sum(int(t[0, u, :4].argmax() == labels[j]) for j, u in ((0, 0), (1, 1)))
    assert stats["top1_accuracy"] == (2 + teacher_hits) / 4  # a one-hot target's top-1 is the ground truth
    assert stats["top1_accuracy_teacher"] == teacher_hits / 2


def test_dskd_inverse_keeps_the_first_teacher_id():
    from ctkd_inspect.losses.mined import dskd_inverse

    assert dskd_inverse(np.array([2, -1, 2, 0, 1, 0]), 4).tolist() == [3, 4, 0, -1]


# --------------------------------------------------------------------------------------------------------------
# cdm: vector 2 (entropy changes the path), group averaging and the 2K-slot KL


def peaked(vocab: int, top: tuple[int, int], height: float) -> np.ndarray:
    row = np.zeros(vocab)
    row[top[0]], row[top[1]] = height, height - 1
    return row


def test_vector2_cdm_rows_and_loss(pair):
    """Teacher entropies low except the last token, student entropies low except "of": factors [3,3,3,3,5] and
    [3,3,5,3] give the path (0,0),(1,1),(2,2),(3,3),(4,3) (cost 42), so student row 3 carries the mean of teacher
    rows 3 and 4. The top-2 ids of every row are "▁the"/"▁of" and "Ġthe"/"Ġof", mapped statically (exact)."""
    from ctkd_inspect.engines.dtw_core import edit_distance_matrix

    teacher_top = tuple(pair.teacher.convert_tokens_to_ids(["▁the", "▁of"]))
    student_top = tuple(pair.student.convert_tokens_to_ids(["Ġthe", "Ġof"]))
    Vt, Vs = pair.teacher_vocab_size, pair.student_vocab_size
    z_t = np.stack([peaked(Vt, teacher_top, h) for h in (30, 28, 25, 27, 1.5)])
    z_s = np.stack([peaked(Vs, student_top, h) for h in (31, 26, 1.2, 29)])
    cost = edit_distance_matrix(["The", "comfort", "of", "c", "ats"], ["The", "comfort", "of", "cats"])
    labels = [student_top[0], 11, student_top[1], 13]
    batch = hand_batch([[464, 5] * 2], [labels], [[1, 2, 3, 4, 5]], [[1, 2, 3, 4, 5]], student_vocab=Vs,
                       teacher_vocab=Vt, cdm_cost=cost[None], cdm_teacher_index=[[0, 1, 2, 3, 4]],
                       cdm_student_index=[[0, 1, 2, 3]])
    loss = get_loss("cdm", pair=pair, top_k=2)
    _, paths = loss.align(batch, torch.tensor(z_s[None]), torch.tensor(z_t[None]))
    assert paths.path(0).tolist() == [[0, 0], [1, 1], [2, 2], [3, 3], [4, 3]] and paths.totals[0] == 42
    out = loss(batch, outputs(z_s[None]), outputs(z_t[None]))
    T = 0.8
    rows_t = [z_t[0], z_t[1], z_t[2], (z_t[3] + z_t[4]) / 2]  # CDM averages the teacher rows of student 3
    kd = []
    for j, zt in enumerate(rows_t):
        zs = z_s[j]
        # direction 1: teacher top-2 → their student ids; direction 2: student top-2 → their teacher ids
        target = np.array([zt[teacher_top[0]], zt[teacher_top[1]], zt[teacher_top[0]], zt[teacher_top[1]]])
        prediction = np.array([zs[student_top[0]], zs[student_top[1]], zs[student_top[0]], zs[student_top[1]]])
        kd.append(kl(log_softmax(target / T), log_softmax(prediction / T)))
    expected = 0.5 * ce_numpy(z_s, labels).mean() + 0.5 * np.mean(kd)
    assert math.isclose(float(out.loss.detach()), expected, rel_tol=1e-4)
    stats = out.statistics
    assert stats["topk_mapping_coverage"] == 1.0 and stats["onehot_fallback_rate"] == 0.0
    assert stats["alignment_rate"] == 0.75  # The, comfort and of are 1:1 with equal strings; "cats" has two rows
    assert stats["top1_accuracy"] == 0.25  # every row's teacher top-1 maps to "Ġthe"; only label 0 is "Ġthe"


def test_cdm_reference_mode_refuses_a_one_token_response(reference_pair):
    from ctkd_inspect.errors import InputError

    Vt, Vs = reference_pair.teacher_vocab_size, reference_pair.student_vocab_size
    batch = hand_batch([[5, 6]], [[7, IGNORE_INDEX]], [[5, 6]], [[7, IGNORE_INDEX]], mode="reference",
                       student_vocab=Vs, teacher_vocab=Vt, cdm_cost=np.zeros((1, 1, 1)), cdm_teacher_index=[[0]],
                       cdm_student_index=[[0]])
    loss = get_loss("cdm", pair=reference_pair)
    with pytest.raises(InputError, match=r"constant entropy.*example 0"):
        loss(batch, outputs(RNG.normal(size=(1, 2, Vs))), outputs(RNG.normal(size=(1, 2, Vt))))


# --------------------------------------------------------------------------------------------------------------
# sedi: vector 5's windows with the real student tokenizer as the re-encoding oracle


def test_sedi_pseudo_targets_and_loss(pair):
    student_tok, teacher_tok = pair.student, pair.teacher
    Vt, Vs = pair.teacher_vocab_size, pair.student_vocab_size

    def oracle(text: str) -> list[int]:  # GPT-2 has no dummy prefix: its own encoding is the continuation's
        return student_tok(text, add_special_tokens=False)["input_ids"]

    # window 0: q* = teacher 0, no prefix, rows 0 and 1; window 1: q* = teacher 1, prefix " call", row 2
    # " conne" and " conse" both start with GPT-2's "Ġcon" (a collision: their probabilities add up at row 0)
    cands0 = teacher_tok.convert_tokens_to_ids(["▁conne", "▁conse", "▁durch"])
    cands1 = teacher_tok.convert_tokens_to_ids(["ed", "ing", "er"])
    texts0 = [" conne", " conse", " durch"]
    texts1 = [" called", " calling", " caller"]
    z_t = np.zeros((1, 3, Vt))
    z_t[0, 0, cands0] = [6.0, 5.0, 4.5]
    z_t[0, 1, cands1] = [7.0, 3.0, 2.0]  # distinct: no tie decides the top-3
    z_s = RNG.normal(size=(1, 4, Vs))
    labels = [oracle(" con")[0], 500, 600, IGNORE_INDEX]
    assert oracle(" conne")[0] == oracle(" conse")[0] == labels[0] and len(oracle(" durch")) == 2
    batch = hand_batch([[10, 11, 12, 13]], [labels], [[1, 2, 3]], [[1, 2, IGNORE_INDEX]], student_vocab=Vs,
                       teacher_vocab=Vt, sedi_query=[[0, 1]], sedi_rows=[[[0, 1, -1, -1], [2, -1, -1, -1]]],
                       sedi_prefix=[[-1, 0]], span_exact=[[True, False, False, False]],
                       prefixes=[[b" call"]])
    loss = get_loss("sedi", pair=pair, top_k=3, window=4)
    out = loss(batch, outputs(z_s), outputs(z_t))

    lp_t = log_softmax(z_t[0])
    written = [dict(), dict(), dict()]  # row -> {student id: summed probability}
    for q, cands, texts, rows in ((0, cands0, texts0, [0, 1]), (1, cands1, texts1, [2])):
        order = np.argsort(-z_t[0, q])[:3]  # the top-3 of row q
        for v in order:
            pieces = oracle(texts[list(cands).index(v)])
            for k, row in enumerate(rows):
                if k < len(pieces):
                    written[row][pieces[k]] = written[row].get(pieces[k], 0.0) + math.exp(lp_t[q, v])
    kl_terms, gaps = [], []
    for row in range(3):
        q = 0 if row < 2 else 1
        floor = lp_t[q].min()
        pseudo = np.full(Vs, floor)
        for column, prob in written[row].items():
            pseudo[column] = math.log(prob)
        lp_pseudo = log_softmax(pseudo)
        kl_terms.append(kl(lp_pseudo, log_softmax(z_s[0, row])))
        teacher_entropy = -(np.exp(lp_t[q]) * lp_t[q]).sum()
        gaps.append((-(np.exp(lp_pseudo) * lp_pseudo).sum() - teacher_entropy) ** 2)
    expected = 0.5 * ce_numpy(z_s[0], labels).mean() + 0.5 * (np.mean(kl_terms) + np.sum(gaps) / 3)
    assert math.isclose(float(out.loss.detach()), expected, rel_tol=1e-5)
    stats = out.statistics
    assert stats["onehot_fallback_rate"] == 0.0 and stats["alignment_rate"] == 1 / 3
    assert stats["topk_mapping_coverage"] == 1.0
    top_row0 = max(written[0], key=written[0].get)
    assert stats["top1_accuracy"] == (top_row0 == labels[0]) / 3 + (max(written[1], key=written[1].get) == 500) / 3 \
        + (max(written[2], key=written[2].get) == 600) / 3


def test_sedi_rows_without_a_candidate_fall_back_to_one_hot(pair):
    Vt, Vs = pair.teacher_vocab_size, pair.student_vocab_size
    z_t = np.zeros((1, 2, Vt))
    z_t[0, 0, pair.teacher.convert_tokens_to_ids("▁the")] = 9.0  # " the" is one GPT-2 token: row 1 gets nothing
    z_s = RNG.normal(size=(1, 2, Vs))
    labels = [5, 7]
    batch = hand_batch([[1, 2]], [labels], [[1, 2]], [[1, IGNORE_INDEX]], student_vocab=Vs, teacher_vocab=Vt,
                       sedi_query=[[0]], sedi_rows=[[[0, 1]]], sedi_prefix=[[-1]], span_exact=[[False, False]])
    out = get_loss("sedi", pair=pair, top_k=1, window=2)(batch, outputs(z_s), outputs(z_t))
    assert out.statistics["onehot_fallback_rate"] == 0.5
    kl_row1 = -log_softmax(z_s[0, 1])[labels[1]]
    assert out.terms["kl"].item() > 0 and kl_row1 > 0


# --------------------------------------------------------------------------------------------------------------
# uld


def sorted_l1(p, q):
    a, b = -np.sort(-p), -np.sort(-q)
    width = max(len(a), len(b))
    return np.abs(np.pad(a, (0, width - len(a))) - np.pad(b, (0, width - len(b)))).sum()


def test_uld_pairs_responses_by_position():
    s, t = RNG.normal(size=(1, 5, 6)), RNG.normal(size=(1, 6, 9))
    s_labels = [IGNORE_INDEX, 1, 2, 3, IGNORE_INDEX]  # 3 student response predictions from position 1
    t_labels = [IGNORE_INDEX, IGNORE_INDEX, 4, 5, IGNORE_INDEX, IGNORE_INDEX]  # 2 teacher ones from position 2
    batch = hand_batch([[0] * 5], [s_labels], [[0] * 6], [t_labels])
    out = get_loss("uld")(batch, outputs(s), outputs(t))
    p, q = np.exp(log_softmax(s[0])), np.exp(log_softmax(t[0]))
    uld = sorted_l1(p[1], q[2]) + sorted_l1(p[2], q[3])  # the third student position has no partner
    expected = 0.5 * ce_numpy(s[0], s_labels).mean() + 0.5 * uld / 3
    assert math.isclose(float(out.loss.detach()), expected, rel_tol=1e-5)


def test_uld_gold_merges_a_group_by_the_chain_rule():
    s, t = RNG.normal(size=(1, 4, 5)), RNG.normal(size=(1, 3, 7))
    s_labels = [2, 4, 1, IGNORE_INDEX]
    t_labels = [3, 6, IGNORE_INDEX]
    # group 0: student predictions at 0 and 1 (two tokens) ~ teacher prediction at 0; group 1: 2 ~ 1 (the EOS)
    batch = hand_batch([[0] * 4], [s_labels], [[0] * 3], [t_labels], gold_student_group=[[0, 0, 1, -1]],
                       gold_teacher_group=[[0, 1, -1]], gold_eos_group=[[1]], sedi_query=[[0]])
    lp_s, lp_t = log_softmax(s[0]), log_softmax(t[0])
    merged_s = np.exp(lp_s[0]) * np.exp(lp_s[1, s_labels[1]])  # p_0(y) · p_1(label[1])
    skip = get_loss("uld", grouping="gold")(batch, outputs(s), outputs(t))
    assert math.isclose(float(skip.loss.detach()), sorted_l1(merged_s, np.exp(lp_t[0])), rel_tol=1e-5)
    keep = get_loss("uld", grouping="gold", skip_eos=False)(batch, outputs(s), outputs(t))
    expected = (sorted_l1(merged_s, np.exp(lp_t[0])) + sorted_l1(np.exp(lp_s[2]), np.exp(lp_t[1]))) / 2
    assert math.isclose(float(keep.loss.detach()), expected, rel_tol=1e-5)
    assert keep.statistics["alignment_rate"] == 1 / 3  # the EOS group is the only 1:1 group


# --------------------------------------------------------------------------------------------------------------
# dskd and dwa: a numpy re-implementation of cross-model attention, the weights, the band and Soft-DTW


def test_vector11_dwa_weights():
    from ctkd_inspect.losses.dwa import normalised_weights

    student = normalised_weights(torch.tensor([[1.0, 2.0, 9.0]]), torch.tensor([[True, True, False]]))
    assert np.allclose(student.numpy(), [[2 / 3, 4 / 3, 0]], atol=1e-6)
    certainty = 1 - np.array([2.0, 5.0]) / 10  # log V = 10, entropies [2, 5]
    teacher = normalised_weights(torch.tensor(certainty[None]), torch.tensor([[True, True]]))
    assert np.allclose(teacher.numpy(), [[1.2308, 0.7692]], atol=1e-4)


def softdtw(C, gamma):
    n, m = C.shape
    R = np.full((n + 1, m + 1), np.inf)
    R[0, 0] = 0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            a = np.array([R[i - 1, j - 1], R[i - 1, j], R[i, j - 1]])
            r = a.min()
            R[i, j] = C[i - 1, j - 1] + r - gamma * np.log(np.exp(-(a - r) / gamma).sum())
    return R[n, m]


def cosine_cost(x, y):
    xn = x / np.linalg.norm(x, axis=-1, keepdims=True)
    yn = y / np.linalg.norm(y, axis=-1, keepdims=True)
    return np.clip(1 - xn @ yn.T, 0, 2)


def band(A, width=5.0, beta=2.0, alpha=0.7, penalty=1.0):
    S, T = A.shape
    A = A / A.sum(-1, keepdims=True)
    centres = alpha * (A * np.arange(T)).sum(-1) + (1 - alpha) * np.arange(S) * T / S
    widths = width + beta * -(np.where(A > 0, A * np.log(np.where(A > 0, A, 1)), 0)).sum(-1)
    return np.where(np.abs(np.arange(T)[None, :] - centres[:, None]) > widths[:, None], penalty, 0.0)


def cma_numpy(loss, ids_s, lab_s, ids_t, lab_t, E_s, E_t, h_s, h_t, W_s, W_t):
    """DSKD's cross-model attention for one example, from its formulas (per-example std over the loss
    positions)."""
    def p(name):
        module = getattr(loss.cma, name)
        return module.weight.detach().double().numpy(), module.bias.detach().double().numpy()

    ms, mt = lab_s != IGNORE_INDEX, lab_t != IGNORE_INDEX
    s_in, s_tgt = E_s[np.where(ms, ids_s, 0)], E_s[np.where(ms, lab_s, 0)]
    t_in, t_tgt = E_t[np.where(mt, ids_t, 0)], E_t[np.where(mt, lab_t, 0)]

    def std(x):
        return x[mt].std(ddof=1)

    t_index = np.concatenate([t_in, t_tgt], -1)
    key = t_index / std(t_index)
    Wt2s, bt2s = p("t2s")
    value = (h_t / std(h_t) + t_tgt / std(t_tgt)) @ Wt2s.T + bt2s
    Wq, bq = p("query")
    query = np.concatenate([s_in, s_tgt], -1) @ Wq.T + bq
    scores = query @ key.T / math.sqrt(2 * h_t.shape[-1]) + (1 - ms[:, None] * mt[None, :]) * -1e5
    A = np.exp(log_softmax(scores))
    Ws2t, bs2t = p("s2t")
    t2s_logits = (A @ value) @ W_s.T
    s2t_logits = np.exp(log_softmax(scores.T)) @ (h_s @ Ws2t.T + bs2t) @ W_t.T
    return A, t2s_logits, s2t_logits, ms, mt


def random_models(Ls=5, Lt=6, Vs=7, Vt=9, Ds=3, Dt=4):
    E_s, E_t = RNG.normal(size=(Vs, Ds)), RNG.normal(size=(Vt, Dt))
    W_s, W_t = RNG.normal(size=(Vs, Ds)), RNG.normal(size=(Vt, Dt))
    h_s, h_t = RNG.normal(size=(Ls, Ds)), RNG.normal(size=(Lt, Dt))
    z_s, z_t = RNG.normal(size=(Ls, Vs)), RNG.normal(size=(Lt, Vt)) * 2

    def side(E, W, h, z):
        embed = torch.nn.Embedding.from_pretrained(torch.tensor(E, dtype=torch.float32), freeze=False)
        return ModelOutputs(torch.tensor(z[None], dtype=torch.float32), torch.tensor(h[None], dtype=torch.float32),
                            embed, torch.tensor(W, dtype=torch.float32))

    return (E_s, E_t, W_s, W_t, h_s, h_t, z_s, z_t), side(E_s, W_s, h_s, z_s), side(E_t, W_t, h_t, z_t)


def test_dskd_equals_its_formulas():
    (E_s, E_t, W_s, W_t, h_s, h_t, z_s, z_t), student, teacher = random_models()
    ids_s, lab_s = np.array([1, 2, 3, 4, 5]), np.array([IGNORE_INDEX, 3, 4, 5, 6])
    ids_t, lab_t = np.array([0, 1, 2, 3, 4, 5]), np.array([IGNORE_INDEX, IGNORE_INDEX, 3, 4, 5, 8])
    batch = hand_batch([ids_s], [lab_s], [ids_t], [lab_t])
    torch.manual_seed(0)
    loss = get_loss("dskd", student_dim=3, teacher_dim=4)
    out = loss(batch, student, teacher)
    _, t2s, s2t, ms, mt = cma_numpy(loss, ids_s, lab_s, ids_t, lab_t, E_s, E_t, h_s, h_t, W_s, W_t)
    T = 2.0
    n = ms.sum()
    correct = (t2s.argmax(-1) == lab_s) & ms
    t2s_kd = kl(log_softmax(t2s / T), log_softmax(z_s / T))
    s2t_kd = kl(log_softmax(z_t / T), log_softmax(s2t / T))
    kd = (ce_numpy(t2s, lab_s).sum() + (t2s_kd * correct).sum() + s2t_kd[mt].sum()) / n
    expected = 0.5 * ce_numpy(z_s, lab_s).sum() / n + 0.5 * kd
    assert math.isclose(float(out.loss.detach()), expected, rel_tol=1e-4)


def test_dwa_equals_its_formulas_over_the_response_positions():
    (E_s, E_t, W_s, W_t, h_s, h_t, z_s, z_t), student, teacher = random_models(Ls=6, Lt=7)
    ids_s, lab_s = np.array([1, 2, 3, 4, 5, 6]), np.array([IGNORE_INDEX, IGNORE_INDEX, 3, 4, 5, IGNORE_INDEX])
    ids_t, lab_t = np.array([0, 1, 2, 3, 4, 5, 6]), np.array([IGNORE_INDEX, 7, 3, 4, 5, 8, IGNORE_INDEX])
    batch = hand_batch([ids_s], [lab_s], [ids_t], [lab_t])
    torch.manual_seed(0)
    loss = get_loss("dwa", student_dim=3, teacher_dim=4, band_width=0.5, band_beta=0.2)  # a band that bites
    out = loss(batch, student, teacher)
    A, t2s, s2t, ms, mt = cma_numpy(loss, ids_s, lab_s, ids_t, lab_t, E_s, E_t, h_s, h_t, W_s, W_t)
    T, lam = 2.0, 0.1
    n, n_t = ms.sum(), mt.sum()

    def entropy(z):
        lp = log_softmax(z)
        return -(np.exp(lp) * lp).sum(-1)

    w_s = entropy(z_s) * ms
    w_s = w_s * n / (w_s.sum() + 1e-9)
    c = np.clip(1 - entropy(z_t) / (math.log(z_t.shape[-1]) + 1e-9), 0, 1) * mt
    w_t = c * n_t / (c.sum() + 1e-9)
    gate = np.exp(log_softmax(t2s)).max(-1) * ms
    q, p = np.exp(log_softmax(z_s / T)), np.exp(log_softmax(t2s / T))
    srkl = (q * (np.log(q) - np.log((1 - lam) * p + lam * q))).sum(-1)
    s2t_kd = kl(log_softmax(z_t / T), log_softmax(s2t / T))
    kd = (ce_numpy(t2s, lab_s).sum() + (srkl * gate * w_s).sum() + (s2t_kd * w_t)[mt].sum()) / n
    # the DTW takes the response positions: student {2, 3, 4}, teacher {1, 2, 3, 4, 5} (vector 12's rule)
    ps, pt = np.flatnonzero(ms), np.flatnonzero(mt)
    assert ps.tolist() == [2, 3, 4] and pt.tolist() == [1, 2, 3, 4, 5]
    pen = band(A[np.ix_(ps, pt)], width=0.5, beta=0.2)
    assert 0 < pen.sum() < pen.size  # some cells are penalised, some not

    def div(x, y):
        return softdtw(cosine_cost(x, y) + pen, 2.0) - 0.5 * (softdtw(cosine_cost(x, x), 2.0)
                                                               + softdtw(cosine_cost(y, y), 2.0))

    Wt2s = loss.cma.t2s.weight.detach().double().numpy()
    bt2s = loss.cma.t2s.bias.detach().double().numpy()
    We = loss.dtw_embed_t2s.weight.detach().double().numpy()
    be = loss.dtw_embed_t2s.bias.detach().double().numpy()
    dtw = div(h_s[ps], h_t[pt] @ Wt2s.T + bt2s) + div(E_s[lab_s[ps]], E_t[lab_t[pt]] @ We.T + be)
    expected = 0.5 * ce_numpy(z_s, lab_s).sum() / n + 0.5 * kd + 0.2 * dtw / n
    assert math.isclose(float(out.loss.detach()), expected, rel_tol=1e-4)
    assert out.statistics["band_outside"] == (pen > 0).mean()
