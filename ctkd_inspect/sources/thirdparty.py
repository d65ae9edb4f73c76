"""Keep third-party libraries from drawing on the user's terminal while ctkd-inspect calls them.

transformers, huggingface_hub and tqdm print progress bars (``Converting and de-quantizing GGUF tensors...:
37%|███▋ | 100/272``, ``Loading weights``) and advisories on stderr, whatever the front-end; a command whose stderr
is a log file or a pipe then fills it with carriage-return garbage. :func:`quiet_transformers` turns them off for
the calls inside it, routes the progress bars into one of our :mod:`ctkd_inspect.progress` stages when given one
(so the front-end draws them its own way), and restores every setting afterwards, so a library user's own use of
transformers is unaffected.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

from ..progress import Stage

__all__ = ["StageBar", "quiet_transformers"]

# Warnings raised from these packages' modules are advisories about our calls (deprecations, "PyTorch was not
# found", tokenizer class notes), not something a user of ctkd-inspect can act on.
_NOISY_MODULES = r"(transformers|huggingface_hub|accelerate|torch|tokenizers|gguf)(\..*)?$"


class StageBar:
    """Enough of tqdm's interface for the loops of transformers: it advances a progress stage instead of drawing.

    Each bar takes over the stage while it runs (its total, its count and its description as the stage's detail);
    without a stage it only iterates.
    """

    def __init__(self, iterable=None, *args, stage: Stage | None = None, total=None, desc: str | None = None,
                 **kwargs):
        self.iterable = iterable
        if total is None and iterable is not None:
            with contextlib.suppress(TypeError):
                total = len(iterable)
        self.total = total
        self.n = 0
        self.desc = desc or ""
        self._stage = stage
        if stage is not None:
            stage.update(completed=0, total=total, detail=self.desc.rstrip(". "))

    def __iter__(self):
        for item in self.iterable if self.iterable is not None else ():
            yield item
            self.update(1)

    def __len__(self) -> int:
        return int(self.total or 0)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def update(self, n: float = 1) -> None:
        self.n += n
        if self._stage is not None:
            self._stage.update(completed=self.n)

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""
        if self._stage is not None:
            self._stage.update(detail=self.desc.rstrip(". "))

    def reset(self, total=None) -> None:
        self.n = 0
        if total is not None:
            self.total = total
        if self._stage is not None:
            self._stage.update(completed=0, total=total)

    def close(self) -> None:
        pass

    def __getattr__(self, name: str):
        # set_postfix, refresh, clear, unpause, ...: nothing to draw
        if name.startswith("__"):
            raise AttributeError(name)
        return lambda *args, **kwargs: None


@contextlib.contextmanager
def quiet_transformers(into: Stage | None = None, *, gguf: bool = False) -> Iterator[None]:
    """Silence transformers' (and huggingface_hub's) advisories and progress bars for the calls inside the block.

    Args:
        into: a progress stage that the libraries' progress bars advance instead of drawing (``None``: dropped).
        gguf: also capture the bar of transformers' GGUF de-quantisation (``from_pretrained(..., gguf_file=...)``),
            which uses tqdm directly rather than transformers' switchable bars; imports that module (torch).

    Settings are restored on exit, whatever happens inside.
    """
    with contextlib.ExitStack() as stack:
        stack.enter_context(warnings.catch_warnings())
        warnings.filterwarnings("ignore", module=_NOISY_MODULES)
        try:
            from transformers.utils import logging as hf_logging
        except ImportError:  # pragma: no cover - transformers is a dependency
            yield
            return
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        stack.callback(hf_logging.set_verbosity, verbosity)

        def bar(*args, **kwargs):
            return StageBar(*args, stage=into, **kwargs)

        if hasattr(hf_logging, "set_tqdm_hook"):
            previous = hf_logging.set_tqdm_hook(lambda factory, args, kwargs: bar(*args, **kwargs))
            stack.callback(hf_logging.set_tqdm_hook, previous)
        elif hf_logging.is_progress_bar_enabled():  # older transformers: no hook, so no capture, only silence
            hf_logging.disable_progress_bar()
            stack.callback(hf_logging.enable_progress_bar)
        with contextlib.suppress(ImportError):
            from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

            if not are_progress_bars_disabled():
                disable_progress_bars()
                stack.callback(enable_progress_bars)
        if gguf:
            module = None
            with contextlib.suppress(Exception):  # needs torch; without it the model load fails with its message
                import transformers.modeling_gguf_pytorch_utils as module
            if module is not None and hasattr(module, "tqdm"):
                original = module.tqdm
                module.tqdm = bar
                stack.callback(setattr, module, "tqdm", original)
        yield

