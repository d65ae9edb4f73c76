"""The light ``rust`` backend tokenizes exactly like the transformers tokenizer built from the same cache entry.

Compared on the whole real corpus (1549 texts) for the tokenizers the front-ends use most, and on everything
else the engines and the vocabulary mappings read from a tokenizer.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from ctkd_inspect.errors import InputError
from ctkd_inspect.sources import RustTokenizer, load_tokenizer
from ctkd_inspect.text import tokenize, tokenize_corpus, tokenizer_profile
from ctkd_inspect.vocab import vocabulary

ALIASES = ["llama3", "gemma2", "gemma3", "smollm2", "bert", "llama2"]


@pytest.fixture(scope="module", params=ALIASES)
def pair(request):
    name = request.param
    return name, load_tokenizer(name, backend="rust"), load_tokenizer(name)


def test_the_backends_are_what_they_say(pair):
    name, light, heavy = pair
    from transformers import PreTrainedTokenizerFast

    assert isinstance(light, RustTokenizer) and not isinstance(light, PreTrainedTokenizerFast)
    assert isinstance(heavy, PreTrainedTokenizerFast)
    assert light.ctkd_source.alias == heavy.ctkd_source.alias == name
    assert light.is_fast and light.backend_tokenizer is not heavy.backend_tokenizer


def test_the_same_serialised_tokenizer(pair):
    _, light, heavy = pair
    assert light.backend_tokenizer.to_str() == heavy.backend_tokenizer.to_str()


def test_identical_ids_tokens_offsets_and_specials_on_the_corpus(pair, corpus):
    name, light, heavy = pair
    for add_special_tokens in (True, False):
        ours = tokenize_corpus(light, corpus, add_special_tokens=add_special_tokens)
        theirs = tokenize_corpus(heavy, corpus, add_special_tokens=add_special_tokens)
        assert ours.n_tokens == theirs.n_tokens > len(corpus)
        for field in ("bounds", "ids", "starts", "ends", "special"):
            assert np.array_equal(getattr(ours, field), getattr(theirs, field)), (name, field)
        assert all(ours[i].tokens == theirs[i].tokens for i in range(len(corpus)))
    # the transformers call itself, the reference users know
    sample = corpus[::50]
    expected = heavy(sample, return_offsets_mapping=True)
    got = light(sample, return_offsets_mapping=True)
    assert got["input_ids"] == expected["input_ids"]
    assert got["attention_mask"] == expected["attention_mask"]
    assert [list(map(tuple, o)) for o in got["offset_mapping"]] == [list(map(tuple, o))
                                                                    for o in expected["offset_mapping"]]
    text = "The café costs 3.50€ 🦙 — naïve\tcode: x+=1"
    assert light.encode(text) == heavy.encode(text)
    assert light(text)["input_ids"] == heavy(text)["input_ids"]


def test_identical_profile_tokenization_record_and_vocabulary(pair):
    name, light, heavy = pair
    assert tokenizer_profile(light) == tokenizer_profile(heavy)
    text = " Hello  wörld 🦙\n\tdef f(x): return 12345 [UNK] <unk>"
    assert tokenize(light, text).to_dict() == tokenize(heavy, text).to_dict()
    ours, theirs = vocabulary(light, name), vocabulary(heavy, name)
    assert ours.raw == theirs.raw and ours.canonical == theirs.canonical
    assert np.array_equal(ours.special, theirs.special) and ours.digest == theirs.digest


def test_identical_vocabulary_queries_and_special_tokens(pair):
    _, light, heavy = pair
    assert light.vocab_size == heavy.vocab_size and len(light) == len(heavy)
    vocab = light.get_vocab()
    assert vocab == heavy.get_vocab()
    ids = list(range(len(light)))
    assert light.convert_ids_to_tokens(ids) == heavy.convert_ids_to_tokens(ids)
    assert light.convert_ids_to_tokens(7) == heavy.convert_ids_to_tokens(7)
    assert light.convert_ids_to_tokens(ids[:300], skip_special_tokens=True) == heavy.convert_ids_to_tokens(
        ids[:300], skip_special_tokens=True)
    tokens = light.convert_ids_to_tokens(ids[::997])
    assert light.convert_tokens_to_ids([*tokens, "no such token ¤¤"]) == heavy.convert_tokens_to_ids(
        [*tokens, "no such token ¤¤"])
    for attribute in ("bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token"):
        assert getattr(light, attribute) == getattr(heavy, attribute), attribute
        assert getattr(light, attribute + "_id") == getattr(heavy, attribute + "_id"), attribute
    assert light.all_special_tokens == heavy.all_special_tokens
    assert light.all_special_ids == heavy.all_special_ids
    assert light.chat_template == heavy.chat_template
    assert light.padding_side == heavy.padding_side == "right"  # no alias config sets a side


def test_identical_decoding(pair, corpus):
    _, light, heavy = pair
    for text in [*corpus[:200:20], "naïve 🦙  x", "a\u200db"]:
        ids = heavy.encode(text)
        for skip in (False, True):
            assert light.decode(ids, skip_special_tokens=skip) == heavy.decode(ids, skip_special_tokens=skip)
    pieces = light.convert_ids_to_tokens(light.encode("The café costs 3.50€ 🦙"))
    assert light.convert_tokens_to_string(pieces) == heavy.convert_tokens_to_string(pieces)
    for index in range(0, len(light), max(1, len(light) // 400)):  # each token decoded alone, as CDM does
        assert light.decode([index]) == heavy.decode([index])
        assert light.convert_tokens_to_string([light.convert_ids_to_tokens(index)]) == \
            heavy.convert_tokens_to_string([heavy.convert_ids_to_tokens(index)])


def test_to_transformers_gives_the_same_tokenizer(corpus):
    light = load_tokenizer("smollm2", backend="rust")
    converted = light.to_transformers()
    assert converted.backend_tokenizer is not light.backend_tokenizer
    assert converted(corpus[:100])["input_ids"] == light(corpus[:100])["input_ids"]
    assert converted.all_special_ids == light.all_special_ids
    assert converted.chat_template == light.chat_template


def test_the_rust_backend_loads_an_alias_without_importing_transformers():
    code = ("import sys\n"
            "from ctkd_inspect.sources import load_tokenizer\n"
            "tok = load_tokenizer('llama3', backend='rust')\n"
            "assert tok.encode('hi') == [128000, 6151], tok.encode('hi')\n"
            "print(','.join(m for m in ('transformers', 'torch') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_a_padding_side_from_the_config_is_kept():
    from ctkd_inspect.sources.rust import settings_from_config

    assert settings_from_config({"padding_side": "left"})["padding_side"] == "left"
    assert settings_from_config({})["padding_side"] == "right"
    light = load_tokenizer("llama3", backend="rust")
    left = RustTokenizer(light.backend_tokenizer, padding_side="left", name_or_path=light.name_or_path)
    assert left.padding_side == "left" and left.to_transformers().padding_side == "left"


def test_an_unknown_backend_is_an_input_error():
    with pytest.raises(InputError, match="backend must be one of 'transformers', 'rust'"):
        load_tokenizer("llama3", backend="slow")


def test_paths_give_a_wrapped_transformers_tokenizer(tmp_path):
    heavy = load_tokenizer("gpt2")
    heavy.save_pretrained(str(tmp_path / "saved"))
    light = load_tokenizer(str(tmp_path / "saved"), backend="rust")
    assert isinstance(light, RustTokenizer)
    text = "Hello  wörld 🦙\n\tdef f(x): return 12345"
    assert light.encode(text) == heavy.encode(text)
    assert light.ctkd_source.kind == "path"


def test_load_tokenizers_keeps_the_order_and_shares_duplicates():
    from ctkd_inspect.sources import load_tokenizers

    first, second, again = load_tokenizers(["llama3", "gemma2", "llama3"])
    assert first is again and isinstance(second, RustTokenizer)
    assert first.ctkd_source.alias == "llama3" and second.ctkd_source.alias == "gemma2"
    text = "The café costs 3.50€ 🦙"
    assert first.encode(text) == load_tokenizer("llama3").encode(text)
    assert second.encode(text) == load_tokenizer("gemma2").encode(text)


def test_load_tokenizers_of_warm_entries_still_verifies_and_warns(private_cache):
    """Two warm entries load; a damaged one is reported (the warning reaches the caller) and rebuilt."""
    import ctkd_inspect.sources as sources
    from ctkd_inspect.sources import load_tokenizers, resolve_tokenizer
    from ctkd_inspect.sources.cache import CacheWarning

    root = private_cache("draive")
    expected = {name: resolve_tokenizer(name, cache_dir=root, backend="rust")[0].encode("Hello  wörld 🦙")
                for name in ("mistral", "mistral-v1")}
    path = root / "tokenizers" / "mistral-v1" / "tokenizer.json"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    sources._cached_resolve.cache_clear()
    with pytest.warns(CacheWarning, match="'mistral-v1'.*is damaged"):
        loaded = load_tokenizers(["mistral", "mistral-v1"], cache_dir=root)
    assert [tok.encode("Hello  wörld 🦙") for tok in loaded] == [expected["mistral"], expected["mistral-v1"]]


def test_load_tokenizers_converts_one_after_the_other_with_stages(private_cache):
    from ctkd_inspect.progress import reporting
    from ctkd_inspect.sources import load_tokenizers

    class Names:
        def __init__(self):
            self.started = []

        def start(self, stage):
            self.started.append(stage.name)

        def update(self, stage):
            pass

        def finish(self, stage):
            pass

    root = private_cache("draive")
    recorder = Names()
    with reporting(recorder):
        loaded = load_tokenizers(["mistral", "mistral-v1"], cache_dir=root)
    assert recorder.started == ["converting the mistral tokenizer", "converting the mistral-v1 tokenizer"]
    assert [t.ctkd_source.alias for t in loaded] == ["mistral", "mistral-v1"]


@pytest.mark.parametrize(("engine", "mode"), [("span", None), ("mined", "canonical"), ("mined", "reference")])
def test_alignments_are_identical_with_either_backend(engine, mode):
    from ctkd_inspect import align

    text = "The café costs 3.50€ 🦙 — naïve\tcode: x+=1\n  def f(): return 12345"
    options = {"mode": mode} if mode else {}
    light = align(load_tokenizer("llama3", backend="rust"), load_tokenizer("bert", backend="rust"), text,
                  engine=engine, **options)
    heavy = align(load_tokenizer("llama3"), load_tokenizer("bert"), text, engine=engine, **options)
    assert light.to_dict() == heavy.to_dict()
