"""Preflight checks on the real pairs: every finding of `check llama3 gemma2` and `check gemma3 smollm2` backed by
an independent source (the Rust tokenizers' own encodes, GGUF headers, the published overlap figures, hand-derived
counts)."""

from __future__ import annotations

import json

import pytest

from ctkd_inspect.checks import (
    CHECK_KINDS,
    PROBE_TEXTS,
    SEVERITIES,
    Finding,
    check_pair,
    findings_to_json,
    has_errors,
    severity_counts,
)
from ctkd_inspect.errors import InputError


def _by_kind(findings: list[Finding]) -> dict[str, Finding]:
    out = {}
    for finding in findings:
        if finding.kind in ("vocab-size", "round-trip"):
            out[f"{finding.kind}:{finding.data['side']}"] = finding
        else:
            out[finding.kind] = finding
    return out


@pytest.fixture(scope="module")
def llama_gemma():
    return check_pair("llama3", "gemma2")


@pytest.fixture(scope="module")
def gemma_smol():
    return check_pair("gemma3", "smollm2")


def _pieces(tok, name: str, text: str) -> list[str]:
    """The raw vocabulary strings the Rust tokenizer gives, without special tokens."""
    return tok(name).backend_tokenizer.encode(text, add_special_tokens=False).tokens


def _covering_count(tok, name: str, text: str, position: int) -> int:
    encoding = tok(name).backend_tokenizer.encode(text, add_special_tokens=False)
    return sum(start <= position < end for start, end in encoding.offsets)


def _gguf(name: str) -> dict:
    from ctkd_inspect.sources.assets import asset_path
    from ctkd_inspect.sources.gguf import read_gguf_metadata
    from ctkd_inspect.sources.registry import ALIASES

    alias = ALIASES[name]
    return read_gguf_metadata(asset_path(alias.asset, alias.model_file))


# ---------------------------------------------------------------------------------------------------------------
# shape of the result


def test_every_check_reports_and_findings_are_json_ready(llama_gemma):
    kinds = {f.kind for f in llama_gemma}
    assert kinds == set(CHECK_KINDS) - {"data-alignment"}  # data-alignment needs texts
    for finding in llama_gemma:
        assert finding.severity in SEVERITIES
        assert finding.title and finding.detail and finding.example and finding.advice
    again = json.loads(json.dumps(findings_to_json(llama_gemma)))
    assert [f["kind"] for f in again] == [f.kind for f in llama_gemma]
    assert set(again[0]) == {"kind", "severity", "title", "detail", "example", "advice", "data"}
    assert severity_counts(llama_gemma) == {s: sum(f.severity == s for f in llama_gemma) for s in SEVERITIES}
    # most severe first
    ranks = [SEVERITIES.index(f.severity) for f in llama_gemma]
    assert ranks == sorted(ranks)


# ---------------------------------------------------------------------------------------------------------------
# llama3 × gemma2


def test_llama3_gemma2_bos(llama_gemma, tok):
    finding = _by_kind(llama_gemma)["bos-eos"]
    # both add one BOS and nothing at the end (the transformers call adds the same tokens)
    llama_ids = tok("llama3")("Hello world")["input_ids"]
    gemma_ids = tok("gemma2")("Hello world")["input_ids"]
    assert tok("llama3").convert_ids_to_tokens(llama_ids[:1]) == ["<|begin_of_text|>"]
    assert tok("gemma2").convert_ids_to_tokens(gemma_ids[:1]) == ["<bos>"]
    assert finding.severity == "info"
    assert finding.data["teacher"] == {"leading": ["<|begin_of_text|>"], "trailing": []}
    assert finding.data["student"] == {"leading": ["<bos>"], "trailing": []}
    assert "<|begin_of_text|> ↔ <bos>" in finding.advice


def test_llama3_gemma2_digits(llama_gemma, tok):
    finding = _by_kind(llama_gemma)["digit-runs"]
    assert _pieces(tok, "llama3", "12345") == ["123", "45"]
    assert _pieces(tok, "gemma2", "12345") == ["1", "2", "3", "4", "5"]
    assert finding.severity == "warning"
    assert finding.data["lengths"][5]["teacher"] == ["123", "45"]
    assert finding.data["lengths"][5]["student"] == ["1", "2", "3", "4", "5"]
    # Llama 3 groups up to three digits, Gemma 2 cuts every digit: every length but 1 is cut differently
    assert finding.data["lengths_cut_differently"] == list(range(2, 13))
    assert "[123][45]" in finding.example and "[1][2][3][4][5]" in finding.example


def test_llama3_gemma2_whitespace(llama_gemma, tok):
    finding = _by_kind(llama_gemma)["whitespace-runs"]
    # four spaces: Llama 3 keeps three and attaches one to the word, Gemma 2 has a four-space piece
    assert _pieces(tok, "llama3", "x    y") == ["x", "ĠĠĠ", "Ġy"]
    assert _pieces(tok, "gemma2", "x    y") == ["x", "▁▁▁▁", "y"]
    # one space: both attach it to the word
    assert _pieces(tok, "llama3", "x y") == ["x", "Ġy"] and _pieces(tok, "gemma2", "x y") == ["x", "▁y"]
    assert finding.severity == "warning"
    spaces = finding.data["lengths_cut_differently"]["space"]
    assert 4 in spaces and 1 not in spaces
    assert "[x][␣␣␣][␣y]" in finding.example and "[x][␣␣␣␣][y]" in finding.example


def test_llama3_gemma2_split_characters(llama_gemma, tok):
    finding = _by_kind(llama_gemma)["split-characters"]
    assert "🦙" in "".join(PROBE_TEXTS)
    # Llama 3 has no token for 🦙: three byte-level tokens; Gemma 2 has it whole
    assert _pieces(tok, "llama3", " 🦙") == ["ĠðŁ", "¦", "Ļ"]
    assert _pieces(tok, "gemma2", " 🦙") == ["▁", "🦙"]
    assert finding.severity == "warning"
    # every character reported as split on the Llama 3 side only is covered, somewhere in the probes, by several
    # Llama 3 tokens and by one Gemma 2 token (read from the Rust encodings' offsets)
    listed = finding.data["teacher_only_characters"]
    assert listed and finding.data["teacher_only"] >= sum(listed.values())
    for char in listed:
        assert any(_covering_count(tok, "llama3", text, p) > 1 and _covering_count(tok, "gemma2", text, p) == 1
                   for text in PROBE_TEXTS for p, c in enumerate(text) if c == char), char
    assert finding.data["student_only"] == 0  # Gemma 2's byte fallback never fires on the probes


def test_llama3_gemma2_round_trip(llama_gemma, tok):
    found = _by_kind(llama_gemma)
    for side, name in (("teacher", "llama3"), ("student", "gemma2")):
        finding = found[f"round-trip:{side}"]
        assert finding.severity == "info" and finding.data["changed"] == 0
        assert finding.data["texts"] == len(PROBE_TEXTS)
        # independently: transformers' decode of every probe gives the text back
        tokenizer = tok(name)
        for text in PROBE_TEXTS:
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            assert tokenizer.decode(ids, clean_up_tokenization_spaces=False) == text


def test_llama3_gemma2_special_tokens(llama_gemma, tok):
    finding = _by_kind(llama_gemma)["special-tokens"]
    pairs = {m["role"]: (m["teacher"], m["student"], m["teacher_id"], m["student_id"])
             for m in finding.data["suggested_mapping"]}
    # Llama 3's published ids (tokenizer.py of llama-models) and Gemma's 106/107 turn markers
    assert pairs["bos"] == ("<|begin_of_text|>", "<bos>", 128000, 2)
    assert pairs["turn_end"] == ("<|eot_id|>", "<end_of_turn>", 128009, 107)
    assert pairs["turn_start"] == ("<|start_header_id|>", "<start_of_turn>", 128006, 106)
    assert tok("gemma2").convert_tokens_to_ids(["<start_of_turn>", "<end_of_turn>"]) == [106, 107]
    # the header end marker is Llama 3's alone
    assert {"role": "header_end", "teacher": "<|end_header_id|>", "student": None} in finding.data["one_sided"]
    # chat templates: reported as the tokenizer objects carry them
    for side, name in (("teacher", "llama3"), ("student", "gemma2")):
        assert finding.data[side]["chat_template"] == (tok(name).chat_template or None)
    assert "<|eot_id|> ↔ <end_of_turn>" in finding.title


def test_llama3_gemma2_vocab_sizes(llama_gemma):
    found = _by_kind(llama_gemma)
    # the README's alias table: Llama 3 128256 (128000 + 256 specials), Gemma 2 256000
    assert found["vocab-size:teacher"].data["len"] == 128256 == found["vocab-size:teacher"].data["vocab_size"]
    assert found["vocab-size:student"].data["len"] == 256000
    assert found["vocab-size:teacher"].data["embedding_rows"] is None  # no model for these aliases
    assert found["vocab-size:teacher"].severity == "info"


def test_llama3_gemma2_overlap_figures(llama_gemma):
    finding = _by_kind(llama_gemma)["vocab-overlap"]
    # tokenkit's published byteified overlap and FuseLLM's marker replacement (the README's figures)
    assert finding.data["canonical"]["teacher_mapped"] == 85_699
    assert finding.data["reference"]["teacher_mapped"] == 65_728
    assert "85,699" in finding.title and "65,728" in finding.title


def test_llama3_gemma2_never_one_to_one(llama_gemma, tok):
    finding = _by_kind(llama_gemma)["never-1to1"]
    teacher = finding.data["teacher"]
    # 128256 ids minus 256 specials are mappable; 85,699 of them have an exact counterpart
    assert teacher["mappable"] == 128_000 and teacher["never"] == 128_000 - 85_699
    # Llama 3 cuts numbers into chunks of at most three digits and has every such chunk; Gemma 2 has no piece of
    # two or more ASCII digits, so all 100 + 1000 two- and three-digit Llama 3 tokens can never align 1:1
    vocab = tok("llama3").get_vocab()
    assert all(f"{n:02d}" in vocab for n in range(100)) and all(f"{n:03d}" in vocab for n in range(1000))
    assert not any(len(t) > 1 and all(c in "0123456789" for c in t) for t in vocab if len(t) > 3)
    assert not any(len(t) > 1 and all(c in "0123456789" for c in t) for t in tok("gemma2").get_vocab())
    assert teacher["multi_digit"] == 1100 and finding.data["student"]["multi_digit"] == 0
    assert finding.severity == "warning"


def test_llama3_gemma2_padding(llama_gemma, tok):
    finding = _by_kind(llama_gemma)["padding"]
    for side, name in (("teacher", "llama3"), ("student", "gemma2")):
        assert finding.data[side]["padding_side"] == tok(name).padding_side
        assert finding.data[side]["pad_token"] == tok(name).pad_token
    assert finding.data["teacher"]["pad_token"] == "<|finetune_right_pad_id|>"


def test_padding_is_the_same_with_the_light_tokenizers_the_commands_load(llama_gemma):
    from ctkd_inspect.sources import load_tokenizers

    light = _by_kind(check_pair(*load_tokenizers(["llama3", "gemma2"])))["padding"]
    assert light.to_dict() == _by_kind(llama_gemma)["padding"].to_dict()
    assert light.data["teacher"]["padding_side"] == light.data["student"]["padding_side"] == "right"
    assert "on the right" in light.example and "None" not in light.example


def test_padding_without_a_pad_token_says_so():
    from ctkd_inspect.sources import load_tokenizers

    finding = _by_kind(check_pair(*load_tokenizers(["llama3", "llama2"])))["padding"]
    # Llama 2's tokenizer declares no pad token
    assert finding.severity == "warning" and finding.data["student"]["pad_token"] is None
    assert finding.example == "llama3: pad <|finetune_right_pad_id|> on the right · llama2: no pad token on the right"
    assert "llama2 has no pad token" in finding.title


# ---------------------------------------------------------------------------------------------------------------
# gemma3 × smollm2


def test_gemma3_smollm2_bos_asymmetry_is_an_error(gemma_smol):
    finding = _by_kind(gemma_smol)["bos-eos"]
    # the GGUF headers: Gemma 3 adds BOS, SmolLM2 does not
    assert _gguf("gemma3")["tokenizer.ggml.add_bos_token"] is True
    assert _gguf("smollm2")["tokenizer.ggml.add_bos_token"] is False
    assert finding.severity == "error"
    assert finding.data["teacher"]["leading"] == ["<bos>"] and finding.data["student"]["leading"] == []
    assert has_errors(gemma_smol)
    assert gemma_smol[0].kind == "bos-eos"  # errors come first


def test_gemma3_smollm2_digits_alike(gemma_smol, tok):
    finding = _by_kind(gemma_smol)["digit-runs"]
    # SmolLM2's pre-tokenizer splits digits one by one (Digits(individual_digits=True)), like Gemma 3
    assert _pieces(tok, "smollm2", "123456789012") == list("123456789012")
    assert _pieces(tok, "gemma3", "123456789012") == list("123456789012")
    assert finding.severity == "info" and finding.data["lengths_cut_differently"] == []


def test_gemma3_smollm2_whitespace_and_split_characters(gemma_smol, tok):
    found = _by_kind(gemma_smol)
    assert _pieces(tok, "gemma3", "x    y") == ["x", "▁▁▁▁", "y"]
    assert _pieces(tok, "smollm2", "x    y") == ["x", "ĠĠĠ", "Ġy"]
    assert 4 in found["whitespace-runs"].data["lengths_cut_differently"]["space"]
    # "Å": one Gemma 3 piece, two byte-level tokens in SmolLM2
    assert _pieces(tok, "gemma3", "Å") == ["Å"] and _pieces(tok, "smollm2", "Å") == ["Ã", "ħ"]
    split = found["split-characters"]
    assert "Å" in "".join(PROBE_TEXTS)
    assert split.severity == "warning" and split.data["student_only"] > 0
    for char in split.data["student_only_characters"]:
        assert any(_covering_count(tok, "smollm2", text, p) > 1 and _covering_count(tok, "gemma3", text, p) == 1
                   for text in PROBE_TEXTS for p, c in enumerate(text) if c == char), char


def test_gemma3_smollm2_special_tokens_and_chat_template(gemma_smol):
    finding = _by_kind(gemma_smol)["special-tokens"]
    template = _gguf("smollm2")["tokenizer.chat_template"]
    assert finding.data["student"]["chat_template"] == template
    assert {"<|im_start|>", "<|im_end|>"} <= set(finding.data["student"]["template_markers"])
    pairs = {m["role"]: (m["teacher"], m["student"]) for m in finding.data["suggested_mapping"]}
    assert pairs["turn_start"] == ("<start_of_turn>", "<|im_start|>")
    assert pairs["turn_end"] == ("<end_of_turn>", "<|im_end|>")
    # Gemma 3's turn markers by id, from the GGUF's token list
    tokens = _gguf("gemma3")["tokenizer.ggml.tokens"]
    roles = finding.data["teacher"]["roles"]
    assert tokens[roles["turn_start"]["id"]] == "<start_of_turn>"
    assert tokens[roles["turn_end"]["id"]] == "<end_of_turn>"
    # SmolLM2 adds no BOS: Gemma 3's <bos> has no counterpart (SmolLM2 only declares <|im_start|>)
    assert {"role": "bos", "teacher": "<bos>", "student": None} in finding.data["one_sided"]


def test_gemma3_smollm2_embedding_rows(gemma_smol):
    found = _by_kind(gemma_smol)
    gemma, smol = found["vocab-size:teacher"].data, found["vocab-size:student"].data
    assert gemma["embedding_rows"] == 262_144 == gemma["len"]
    assert smol["embedding_rows"] == _gguf("smollm2")["llama.vocab_size"] == 49_152 == smol["len"]
    assert found["vocab-size:teacher"].severity == "info"


def test_gemma3_smollm2_pad_is_eos(gemma_smol):
    finding = _by_kind(gemma_smol)["padding"]
    header = _gguf("smollm2")
    assert header["tokenizer.ggml.padding_token_id"] == header["tokenizer.ggml.eos_token_id"]
    assert finding.severity == "warning" and finding.data["student"]["pad_is_eos"]
    assert finding.data["student"]["pad_token"] == "<|im_end|>"


# ---------------------------------------------------------------------------------------------------------------
# lossy tokenizers and data-driven findings


def test_bert_round_trip_is_an_error_against_a_lossless_side():
    findings = _by_kind(check_pair("bert", "llama3", ["Hello World", "naïve café", "plain"]))
    bert = findings["round-trip:teacher"]
    # BERT uncased lower-cases and strips accents; llama3 decodes every text back
    assert bert.severity == "error" and bert.data["changed"] == 2
    assert bert.data["transformations"] == {"case": 1, "accents": 1}
    assert "'Hello World' → 'hello world'" in bert.example
    assert findings["round-trip:student"].severity == "info"
    # BERT adds [CLS] and [SEP], llama3 only a BOS
    assert findings["bos-eos"].severity == "error"
    assert findings["bos-eos"].data["teacher"] == {"leading": ["[CLS]"], "trailing": ["[SEP]"]}


def test_data_driven_shares_are_computed_on_the_data():
    findings = _by_kind(check_pair("llama3", "gemma2", ["12345", "", "🦙 x"]))
    digits = findings["digit-runs"]
    # "12345" (5 characters) is all digit runs cut differently; "🦙 x" (3 characters) has none
    assert digits.data["data_characters"] == 8 and digits.data["data_digit_run_characters"] == 5
    split = findings["split-characters"]
    # 🦙 is split by llama3 only: 1 of 8 characters
    assert (split.data["teacher_only"], split.data["student_only"], split.data["characters"]) == (1, 0, 8)
    never = findings["never-1to1"]
    # llama3: [123][45] are never 1:1, its 3 tokens for "🦙 x" hold one byte pair (ðŁ) no Gemma piece has;
    # Gemma 2's single digits all exist in Llama 3, its 🦙 does not
    assert never.data["teacher"]["in_texts"] == {"tokens": 6, "never_1to1_tokens": 3, "share": 0.5}
    assert never.data["student"]["in_texts"]["never_1to1_tokens"] == 1
    assert findings["data-alignment"].data["failures"]["texts"] == 2  # the empty text is skipped


def test_bad_arguments():
    with pytest.raises(InputError, match="no non-empty text"):
        check_pair("llama3", "gemma2", ["", ""])
    with pytest.raises(InputError, match="limit"):
        check_pair("llama3", "gemma2", ["x"], limit=0)


def _gpt2_byte_decoder() -> dict[str, int]:
    """GPT-2's byte ↔ unicode alphabet (printable bytes stand for themselves, the rest are shifted past 255)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1))
    chars, shift = [], 0
    for b in range(256):
        if b in printable:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + shift))
            shift += 1
    return {c: b for b, c in enumerate(chars)}


def test_gemma3_smollm2_overlap_never_and_round_trip(gemma_smol, tok):
    import re

    found = _by_kind(gemma_smol)
    gemma, smol = tok("gemma3"), tok("smollm2")
    special = {"gemma3": {i for i, t in gemma.backend_tokenizer.get_added_tokens_decoder().items() if t.special},
               "smollm2": {i for i, t in smol.backend_tokenizer.get_added_tokens_decoder().items() if t.special}}
    special["gemma3"].discard(gemma.unk_token_id)
    special["smollm2"].discard(smol.unk_token_id)
    byte_piece = re.compile(r"^<0x([0-9A-F]{2})>$")
    decoder = _gpt2_byte_decoder()

    def gemma_bytes(token):  # SentencePiece: ▁ is a space, <0xNN> one byte
        match = byte_piece.match(token)
        return bytes([int(match.group(1), 16)]) if match else token.replace("▁", " ").encode()

    def smol_bytes(token):
        return bytes(decoder[c] for c in token) if all(c in decoder for c in token) else token.encode()

    g_vocab = {i: t for t, i in gemma.get_vocab().items() if i not in special["gemma3"]}
    s_vocab = {i: t for t, i in smol.get_vocab().items() if i not in special["smollm2"]}
    s_bytes = {smol_bytes(t) for t in s_vocab.values()}
    canonical = sum(gemma_bytes(t) in s_bytes for t in g_vocab.values())
    s_raw = set(s_vocab.values())
    reference = sum(t.replace("▁", "Ġ") in s_raw for t in g_vocab.values())  # FuseLLM's marker replacement
    overlap = found["vocab-overlap"].data
    assert overlap["canonical"]["teacher_mapped"] == canonical
    assert overlap["reference"]["teacher_mapped"] == reference
    never = found["never-1to1"].data["teacher"]
    assert never["mappable"] == len(g_vocab) and never["never"] == len(g_vocab) - canonical
    for side, tokenizer in (("teacher", gemma), ("student", smol)):
        finding = found[f"round-trip:{side}"]
        assert finding.severity == "info" and finding.data["changed"] == 0
        for text in PROBE_TEXTS:
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            assert tokenizer.decode(ids, clean_up_tokenization_spaces=False) == text
