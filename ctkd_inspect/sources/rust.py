"""A light tokenizer: the Rust ``tokenizers.Tokenizer`` with the part of the transformers interface ctkd-inspect uses.

Importing transformers takes about 0.8 s and its ``from_pretrained`` parses a ``tokenizer.json`` a second time in
Python; the command line, the TUI and the widgets need neither. :class:`RustTokenizer` wraps the Rust tokenizer
itself and answers what :func:`ctkd_inspect.text.tokenize`, :func:`ctkd_inspect.text.tokenizer_profile`, the
engines and :func:`ctkd_inspect.vocab.vocabulary` ask of a tokenizer, with the results a transformers
``PreTrainedTokenizerFast`` gives for the same ``tokenizer.json`` and ``tokenizer_config.json`` (the test suite
compares the two on a real corpus): ``backend_tokenizer``, ``get_vocab``, ``vocab_size``, ``len()``,
``convert_ids_to_tokens``, ``convert_tokens_to_ids``, ``convert_tokens_to_string``, ``decode``, ``encode``,
the special tokens (``bos_token``, ``unk_token_id``, ``all_special_ids``, ...), ``name_or_path`` and a small
``__call__``. :meth:`RustTokenizer.to_transformers` gives the full transformers object when one is needed.

Get one with ``ctkd_inspect.load_tokenizer(name, backend="rust")``.
"""

from __future__ import annotations

__all__ = ["SPECIAL_TOKEN_ATTRIBUTES", "RustTokenizer", "settings_from_config"]

#: The named special tokens of transformers (``SPECIAL_TOKENS_ATTRIBUTES``), in its order.
SPECIAL_TOKEN_ATTRIBUTES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token",
                            "mask_token")

# transformers' clean_up_tokenization (applied by decode only when a tokenizer's config asks for it)
_CLEAN_UP = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
             (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))


def _token_text(value) -> str | None:
    """A special token as written in a tokenizer_config.json: a string or an AddedToken object."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    return None


def settings_from_config(config: dict) -> dict:
    """The settings :class:`RustTokenizer` takes, from a ``tokenizer_config.json`` as transformers 5 writes it.

    Returns ``{"special_tokens": {attribute: token}, "extra_special_tokens": [token, ...],
    "clean_up_tokenization_spaces": bool, "padding_side": "right" | "left"}`` (transformers' default side is
    ``right``); named model-specific tokens (``extra_special_tokens`` given as a
    mapping, e.g. ``image_token``) join ``special_tokens`` after the standard ones, as transformers does.
    """
    special = {}
    for attribute in SPECIAL_TOKEN_ATTRIBUTES:
        token = _token_text(config.get(attribute))
        if token is not None:
            special[attribute] = token
    extras: list[str] = []
    declared = config.get("extra_special_tokens", config.get("additional_special_tokens"))
    if isinstance(declared, dict):
        for attribute, value in declared.items():
            token = _token_text(value)
            if token is not None:
                special[attribute] = token
    elif isinstance(declared, list):
        extras = [t for t in (_token_text(v) for v in declared) if t is not None]
    side = config.get("padding_side")
    return {"special_tokens": special, "extra_special_tokens": extras,
            "clean_up_tokenization_spaces": bool(config.get("clean_up_tokenization_spaces", False)),
            "padding_side": side if side in ("left", "right") else "right"}


class RustTokenizer:
    """A ``tokenizers.Tokenizer`` plus its special-token settings, behaving like the transformers fast tokenizer
    built from the same files for everything ctkd-inspect uses (see the module docstring).

    Args:
        backend: the Rust tokenizer (used as is, not copied).
        special_tokens: ``{"bos_token": "<bos>", "unk_token": ...}`` (attributes beyond the standard seven are
            model-specific named tokens, listed among the special tokens too).
        extra_special_tokens: further special tokens (transformers' ``extra_special_tokens`` list).
        name_or_path: where it was loaded from (a label, as transformers' ``name_or_path``).
        chat_template: the chat template text, if the tokenizer has one.
        clean_up_tokenization_spaces: whether :meth:`decode` removes spaces before punctuation by default
            (transformers' option; off unless the tokenizer's config turns it on).
        padding_side: where padding goes (``right``, transformers' default, unless the config says ``left``).
    """

    is_fast = True

    def __init__(self, backend, *, special_tokens: dict[str, str] | None = None,
                 extra_special_tokens: list[str] | tuple[str, ...] = (), name_or_path: str = "",
                 chat_template: str | None = None, clean_up_tokenization_spaces: bool = False,
                 padding_side: str = "right"):
        self._tokenizer = backend
        self.special_tokens_map = dict(special_tokens or {})
        self.extra_special_tokens = list(extra_special_tokens)
        self.name_or_path = name_or_path
        self.chat_template = chat_template
        self.clean_up_tokenization_spaces = clean_up_tokenization_spaces
        self.padding_side = padding_side

    # -- construction ------------------------------------------------------------------------------------------

    @classmethod
    def from_files(cls, tokenizer_json: bytes, config: dict | None = None, *, name_or_path: str = "",
                   chat_template: str | None = None) -> RustTokenizer:
        """Build from the bytes of a ``tokenizer.json`` and the parsed ``tokenizer_config.json`` (if any).

        Raises:
            Exception: the tokenizers library's own error when the bytes are not a tokenizer.
        """
        from tokenizers import Tokenizer

        settings = settings_from_config(config or {})
        template = chat_template if chat_template is not None else (config or {}).get("chat_template")
        return cls(Tokenizer.from_buffer(tokenizer_json), special_tokens=settings["special_tokens"],
                   extra_special_tokens=settings["extra_special_tokens"], name_or_path=name_or_path,
                   chat_template=template if isinstance(template, str) else None,
                   clean_up_tokenization_spaces=settings["clean_up_tokenization_spaces"],
                   padding_side=settings["padding_side"])

    @classmethod
    def from_transformers(cls, tokenizer) -> RustTokenizer:
        """Wrap a transformers fast tokenizer: the same Rust backend object, its special tokens and options."""
        special = {}
        for attribute in getattr(tokenizer, "SPECIAL_TOKENS_ATTRIBUTES", SPECIAL_TOKEN_ATTRIBUTES):
            value = getattr(tokenizer, attribute, None) if attribute.endswith("_token") else None
            if value is not None:
                special[attribute] = str(value)
        named = set(special.values())
        extras = [str(t) for t in tokenizer.all_special_tokens if str(t) not in named]
        return cls(tokenizer.backend_tokenizer, special_tokens=special, extra_special_tokens=extras,
                   name_or_path=str(getattr(tokenizer, "name_or_path", "") or ""),
                   chat_template=getattr(tokenizer, "chat_template", None),
                   clean_up_tokenization_spaces=bool(getattr(tokenizer, "clean_up_tokenization_spaces", False)),
                   padding_side=getattr(tokenizer, "padding_side", "right"))

    def to_transformers(self):
        """The equivalent ``transformers.PreTrainedTokenizerFast`` (imports transformers; shares no state)."""
        from tokenizers import Tokenizer
        from transformers import PreTrainedTokenizerFast

        kwargs = dict(self.special_tokens_map)
        if self.extra_special_tokens:
            kwargs["extra_special_tokens"] = list(self.extra_special_tokens)
        tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(self._tokenizer.to_str()),
                                      name_or_path=self.name_or_path,
                                      clean_up_tokenization_spaces=self.clean_up_tokenization_spaces,
                                      padding_side=self.padding_side, **kwargs)
        if self.chat_template:
            tok.chat_template = self.chat_template
        if hasattr(self, "ctkd_source"):
            tok.ctkd_source = self.ctkd_source
        return tok

    # -- the backend and the vocabulary -------------------------------------------------------------------------

    @property
    def backend_tokenizer(self):
        """The Rust ``tokenizers.Tokenizer``."""
        return self._tokenizer

    @property
    def vocab_size(self) -> int:
        """Size of the base vocabulary (without added tokens), as transformers reports it."""
        return self._tokenizer.get_vocab_size(with_added_tokens=False)

    def __len__(self) -> int:
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    def get_vocab(self) -> dict[str, int]:
        """Token → id for every token, added tokens included (a new dict each call: costly for big vocabularies)."""
        return self._tokenizer.get_vocab(with_added_tokens=True)

    @property
    def added_tokens_decoder(self) -> dict:
        """Id → ``tokenizers.AddedToken`` for the added tokens."""
        return self._tokenizer.get_added_tokens_decoder()

    def convert_ids_to_tokens(self, ids, skip_special_tokens: bool = False):
        """The vocabulary string of one id (``None`` when unknown) or of each id in a sequence."""
        if isinstance(ids, int):
            return self._tokenizer.id_to_token(ids)
        skip = set(self.all_special_ids) if skip_special_tokens else set()
        return [self._tokenizer.id_to_token(int(i)) for i in ids if int(i) not in skip]

    def convert_tokens_to_ids(self, tokens):
        """The id of one token or of each token; unknown tokens give the unknown token's id (``None`` without)."""
        if isinstance(tokens, str):
            return self._token_id(tokens)
        return [self._token_id(t) for t in tokens]

    def _token_id(self, token: str) -> int | None:
        index = self._tokenizer.token_to_id(token)
        return index if index is not None else self.unk_token_id

    # -- special tokens -------------------------------------------------------------------------------------------

    def __getattr__(self, name: str):
        # bos_token, eos_token, ... and their *_id, for the standard and the model-specific named tokens
        if name.startswith("__"):
            raise AttributeError(name)
        special = self.__dict__.get("special_tokens_map", {})
        if name in SPECIAL_TOKEN_ATTRIBUTES or name in special:
            return special.get(name)
        if name.endswith("_id") and (name[:-3] in SPECIAL_TOKEN_ATTRIBUTES or name[:-3] in special):
            token = special.get(name[:-3])
            return None if token is None else self._token_id(token)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    @property
    def all_special_tokens(self) -> list[str]:
        """The named special tokens, then the extra ones, each once (transformers' order)."""
        return list(dict.fromkeys([*self.special_tokens_map.values(), *self.extra_special_tokens]))

    @property
    def all_special_ids(self) -> list[int]:
        return [self._token_id(t) for t in self.all_special_tokens]

    # -- encoding and decoding ------------------------------------------------------------------------------------

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """The ids of one text."""
        return self._tokenizer.encode(text, add_special_tokens=add_special_tokens).ids

    def __call__(self, text, add_special_tokens: bool = True, return_offsets_mapping: bool = False) -> dict:
        """``{"input_ids", "attention_mask"[, "offset_mapping"]}`` for a text or a list of texts (no padding, no
        truncation: a subset of transformers' call)."""
        batch = not isinstance(text, str)
        encodings = (self._tokenizer.encode_batch(list(text), add_special_tokens=add_special_tokens) if batch
                     else [self._tokenizer.encode(text, add_special_tokens=add_special_tokens)])
        out = {"input_ids": [e.ids for e in encodings], "attention_mask": [e.attention_mask for e in encodings]}
        if return_offsets_mapping:
            out["offset_mapping"] = [e.offsets for e in encodings]
        return out if batch else {key: value[0] for key, value in out.items()}

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """Vocabulary strings joined back into text by the tokenizer's decoder (``" ".join`` without one)."""
        decoder = self._tokenizer.decoder
        return decoder.decode(tokens) if decoder is not None else " ".join(tokens)

    def decode(self, ids, skip_special_tokens: bool = False, clean_up_tokenization_spaces: bool | None = None) -> str:
        """Ids back to text, as transformers' ``decode`` does."""
        if isinstance(ids, int):
            ids = [ids]
        text = self._tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)
        clean = (self.clean_up_tokenization_spaces if clean_up_tokenization_spaces is None
                 else clean_up_tokenization_spaces)
        # transformers skips the clean-up for BPE models, where it would remove real spaces before punctuation
        if clean and type(self._tokenizer.model).__name__ != "BPE":
            for before, after in _CLEAN_UP:
                text = text.replace(before, after)
        return text

    def __repr__(self) -> str:
        return (f"RustTokenizer(name_or_path={self.name_or_path!r}, vocab_size={self.vocab_size}, "
                f"special_tokens={self.special_tokens_map})")

