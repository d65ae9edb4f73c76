"""One root exception with a subclass per domain; the CLI maps each to an exit code.

Every message is written for a person: it says what went wrong and what to do next. The CLI prints the message
on stderr, never a traceback, and exits with :func:`exit_code_for`.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of the ``ctkd-inspect`` command."""

    OK = 0
    RUNTIME = 1
    USAGE = 2
    UNRESOLVED = 3  # a tokenizer or model could not be resolved or loaded
    DIFFERENT = 4  # `diff --check`: the two alignments differ (like `git diff --exit-code`)
    FINDINGS = 5  # `check --strict`: at least one error-level finding
    INTERRUPTED = 130


class CtkdError(Exception):
    """Root of every error this package raises on purpose."""

    exit_code: ExitCode = ExitCode.RUNTIME


class InputError(CtkdError, ValueError):
    """The user's input (text, option, array) cannot be used as given."""

    exit_code = ExitCode.USAGE


class InputTypeError(InputError, TypeError):
    """An argument of a public function has the wrong type (the message names the argument). Both an
    :class:`InputError` and a ``TypeError``, so code written against either keeps working."""


class TokenizerNotFound(CtkdError, LookupError):
    """A tokenizer name is neither a path, a cached entry, an alias nor a reachable hub id."""

    exit_code = ExitCode.UNRESOLVED

    def __init__(self, message: str, suggestions: list[str] | None = None):
        super().__init__(message)
        self.suggestions = list(suggestions or [])


class TokenizerLoadError(CtkdError):
    """A tokenizer source was found but could not be turned into a working tokenizer (corrupt file, ...)."""

    exit_code = ExitCode.UNRESOLVED


class TokenizerCapabilityError(TokenizerLoadError):
    """The tokenizer loads but lacks something the toolkit needs, such as character offsets."""


class FetchError(CtkdError):
    """Downloading an offline asset from the package registry failed (unreachable, bad checksum, ...)."""

    exit_code = ExitCode.UNRESOLVED


class EngineError(CtkdError):
    """An alignment engine cannot run with the inputs and options it was given."""

    exit_code = ExitCode.USAGE


class MemoryBudgetError(EngineError):
    """A quadratic step (DTW, Soft-DTW) would need more memory than its budget; raised before it allocates.

    ``estimate`` and ``budget`` are in bytes; the message names both and the ways out (chunking, a larger
    ``--max-memory``, the span engine). Exit code 2, like every engine error.
    """

    def __init__(self, message: str, estimate: int = 0, budget: int = 0):
        super().__init__(message)
        self.estimate = estimate
        self.budget = budget


class ModelError(CtkdError):
    """A model could not be loaded or does not fit its tokenizer."""

    exit_code = ExitCode.UNRESOLVED


class OutputError(CtkdError):
    """An output file cannot be written where asked (missing or read-only folder, unknown extension, an existing
    file without ``--overwrite``). Raised before any computation starts."""

    exit_code = ExitCode.USAGE


class OutputWriteError(OutputError, OSError):
    """Writing an output file failed part-way (disk full, a folder turned read-only, an I/O error). The write was
    atomic, so any previous file at that path is unchanged and no partial file is left; the message says why and
    what to do. A runtime failure rather than a usage error: exit code 1. Also an :class:`OSError`, so code that
    tolerates failed writes (caches) keeps catching it."""

    exit_code = ExitCode.RUNTIME


class MissingExtraError(CtkdError, ImportError):
    """An optional dependency (an "extra") that the requested feature needs is not installed."""

    exit_code = ExitCode.RUNTIME

    def __init__(self, message: str, extra: str = "", modules: list[str] | None = None):
        super().__init__(message)
        self.extra = extra
        self.modules = list(modules or [])


def exit_code_for(exc: BaseException) -> int:
    """The process exit code for an exception reaching the CLI."""
    if isinstance(exc, KeyboardInterrupt):
        return int(ExitCode.INTERRUPTED)
    if isinstance(exc, CtkdError):
        return int(exc.exit_code)
    return int(ExitCode.RUNTIME)
