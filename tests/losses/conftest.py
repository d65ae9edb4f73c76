"""Fixtures of the loss tests: a real tokenizer pair (Llama 2 → GPT-2, the pair of SeDi's main table, both
offline aliases) and examples built once per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def pair():
    from ctkd_inspect.losses import TokenizerPair

    return TokenizerPair("llama2", "gpt2")


@pytest.fixture(scope="session")
def reference_pair():
    from ctkd_inspect.losses import TokenizerPair

    return TokenizerPair("llama2", "gpt2", mode="reference")


@pytest.fixture(scope="session")
def builder(pair):
    from ctkd_inspect.losses import PairBuilder

    return PairBuilder(pair, max_length=96)


@pytest.fixture(scope="session")
def examples(builder):
    from .helpers import EXAMPLES

    return builder.build_many(EXAMPLES)
