"""An instruction data set available offline, for real distillation runs: prompt/response records from three
pinned sources, built deterministically.

1. **OpenAI evals** (the ``instructions`` asset: 16 English prose sets of ``evals`` 3.0.1.post1, see
   :data:`~ctkd_inspect.sources.assets.EVALS_INSTRUCTION_SETS`). Each chat sample becomes ``"Instruction: {system}
   \\n{user}\\n\\nResponse: {ideal}"`` (the system and user messages joined; the first acceptable answer when there
   are several), kept when the whole text is English prose — at least 98% ASCII characters and at least 78% letters
   or spaces, 200 to 2500 characters — and the answer has at least 6 words; at most 40 per file, in file order.
   The prompt is the text up to ``"Response:"``, the response the rest (a space, then the answer).
2. **HumanEval** (164 problems, the same asset): the problem (signature and docstring) is the prompt, the canonical
   solution the response.
3. **llama.cpp's documentation** (the ``llama-cpp`` asset): English Markdown paragraphs of 200 to 1500 characters
   that pass the same prose filter, split at the sentence boundary nearest their middle: ``"Instruction: Continue
   this passage of the llama.cpp documentation.\\n{first half}\\n\\nResponse:"`` and the second half (at most
   ``max_docs`` paragraphs, in file order).

Every record is ``{"prompt", "response", "source"}`` (``source``: ``evals/<set>/<file>``, ``humaneval/<task id>``
or ``docs/<file>``). The order is the sources' order above, so the same arguments always give the same records.
"""

from __future__ import annotations

import gzip
import json
import os
import re
from pathlib import Path

__all__ = ["DOCS_INSTRUCTION", "docs_records", "evals_records", "humaneval_records", "instruction_dataset",
           "is_english_prose"]

DOCS_INSTRUCTION = "Instruction: Continue this passage of the llama.cpp documentation."
MIN_CHARS, MAX_CHARS = 200, 2500
PER_FILE = 40


def is_english_prose(text: str) -> bool:
    """At least 98% ASCII characters and at least 78% letters or spaces (the corpus filter)."""
    if not text:
        return False
    ascii_share = sum(ch.isascii() for ch in text) / len(text)
    letters = sum(ch.isalpha() or ch == " " for ch in text) / len(text)
    return ascii_share >= 0.98 and letters >= 0.78


def _evals_text(record: dict) -> tuple[str, str] | None:
    messages, ideal = record.get("input"), record.get("ideal")
    if isinstance(ideal, list):
        ideal = next((x for x in ideal if isinstance(x, str)), None)
    if not isinstance(messages, list) or not messages or not isinstance(ideal, str):
        return None

    def joined(role):
        return "\n".join(m["content"] for m in messages
                         if isinstance(m, dict) and m.get("role") == role and isinstance(m.get("content"), str))

    system, user = joined("system"), joined("user")
    return f"Instruction: {system}\n{user}\n\nResponse:", f" {ideal}"


def evals_records(root: Path | None = None) -> list[dict]:
    """The evals part (see the module docstring); fetches the ``instructions`` asset on first use."""
    from ..sources.assets import asset_path

    base = asset_path("instructions", "evals", root)
    out = []
    for path in sorted(base.rglob("*.jsonl")):
        kept = 0
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if kept >= PER_FILE:
                    break
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                pair = _evals_text(record) if isinstance(record, dict) else None
                if pair is None:
                    continue
                prompt, response = pair
                text = prompt + response
                if MIN_CHARS <= len(text) <= MAX_CHARS and is_english_prose(text) and len(response.split()) >= 6:
                    out.append({"prompt": prompt, "response": response,
                                "source": f"evals/{path.relative_to(base).as_posix()}"})
                    kept += 1
    return out


def humaneval_records(root: Path | None = None) -> list[dict]:
    """HumanEval's 164 problems as prompt (the problem) and response (the canonical solution)."""
    from ..sources.assets import asset_path

    path = asset_path("instructions", "humaneval/HumanEval.jsonl.gz", root)
    out = []
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                problem = json.loads(line)
                out.append({"prompt": problem["prompt"], "response": problem["canonical_solution"],
                            "source": f"humaneval/{problem['task_id']}"})
    return out


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`(\[])")


def docs_records(max_docs: int = 200, root: Path | None = None) -> list[dict]:
    """Continuation tasks from llama.cpp's Markdown documentation (see the module docstring)."""
    from ..sources.assets import asset_path

    base = asset_path("llama-cpp", "corpus", root) / "docs"
    out = []
    for path in sorted(base.rglob("*.md")):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for paragraph in text.split("\n\n"):
            paragraph = paragraph.strip()
            if not 200 <= len(paragraph) <= 1500 or paragraph.startswith(("```", "|", "#", "<")):
                continue
            if not is_english_prose(paragraph):
                continue
            cuts = [m.start() for m in _SENTENCE_END.finditer(paragraph)]
            if not cuts:
                continue
            cut = min(cuts, key=lambda c: abs(c - len(paragraph) / 2))
            first, second = paragraph[:cut], paragraph[cut:].lstrip()
            if len(first) < 60 or len(second) < 60:
                continue
            out.append({"prompt": f"{DOCS_INSTRUCTION}\n{first}\n\nResponse:", "response": f" {second}",
                        "source": f"docs/{path.relative_to(base).as_posix()}"})
            if len(out) >= max_docs:
                return out
    return out


def instruction_dataset(path: str | os.PathLike | None = None, *, sources: tuple[str, ...] = ("evals", "humaneval",
                        "docs"), max_docs: int = 200, root: Path | None = None) -> list[dict]:
    """The instruction data set (see the module docstring), optionally written to ``path`` as JSONL (atomically).

    Args:
        path: a ``.jsonl`` file to write (``None``: only return the records).
        sources: which parts to include, in this order: ``evals``, ``humaneval``, ``docs``.
        max_docs: most documentation paragraphs.
        root: the cache root (default: the configured cache).

    Returns:
        The records, ``{"prompt", "response", "source"}``; deterministic for given arguments.

    Raises:
        InputError: an unknown source.
        FetchError: an asset cannot be fetched.
    """
    from ..errors import InputError

    builders = {"evals": lambda: evals_records(root), "humaneval": lambda: humaneval_records(root),
                "docs": lambda: docs_records(max_docs, root)}
    unknown = [s for s in sources if s not in builders]
    if unknown:
        raise InputError(f"unknown instruction sources {unknown}; choose from {', '.join(builders)}")
    records = [record for name in sources for record in builders[name]()]
    if path is not None:
        from ..outputs import atomic_write_text

        atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return records
