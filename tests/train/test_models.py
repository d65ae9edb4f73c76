"""Models of a run: a model that does not belong to its tokenizer is refused before any training; the teacher is
frozen and never receives a gradient; LoRA trains only the adapters; the final student (tied embeddings too)
loads back with the trained weights."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from ctkd_inspect.errors import ModelError

from .conftest import run_cli, write_config


def test_a_model_that_does_not_match_its_tokenizer_is_refused_before_training(tiny, data_file, tmp_path):
    # GPT-2's tokenizer (50,257 ids) for a model with Llama 2's 32,000 rows
    rows = write_config(tmp_path / "rows.yaml", tiny, data_file, student=str(tiny["teacher"]),
                        output_dir=str(tmp_path / "rows"))
    result = run_cli("distill", "--config", str(rows))
    assert result.exit_code == 3
    assert "32,000 embedding rows but its tokenizer has 50,257 ids" in result.stderr
    assert not (tmp_path / "rows" / "checkpoints").exists()
    # enough rows, but other tokens: GPT-2's model folder with Llama 2's tokenizer named as the teacher's
    vocab = write_config(tmp_path / "vocab.yaml", tiny, data_file, teacher=str(tiny["student"]),
                         output_dir=str(tmp_path / "vocab"))
    result = run_cli("distill", "--config", str(vocab))
    assert result.exit_code == 3
    assert "the teacher" in result.stderr and "does not belong to this tokenizer" in result.stderr
    assert not (tmp_path / "vocab" / "checkpoints").exists()


def test_check_model_fits_directly(tiny, tok):
    from ctkd_inspect.train.models import check_model_fits, load_causal_lm

    model, source = load_causal_lm(str(tiny["student"]))
    check_model_fits(model, source, tok("gpt2"), "student")
    with pytest.raises(ModelError, match="does not belong"):
        check_model_fits(model, source, tok("llama2"), "student")


def test_the_teacher_is_frozen_and_never_receives_a_gradient(tiny, tok):
    from ctkd_inspect.losses import Collator, PairBuilder, TokenizerPair, get_loss
    from ctkd_inspect.train.models import freeze, load_causal_lm
    from ctkd_inspect.train.runner import _module_class

    from .conftest import PAIRS

    teacher = freeze(load_causal_lm(str(tiny["teacher"]))[0])
    student = load_causal_lm(str(tiny["student"]))[0]
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    pair = TokenizerPair(tok("llama2"), tok("gpt2"))
    builder = PairBuilder(pair, max_length=40)
    batch = Collator(builder)(builder.build_many(PAIRS[:3]))
    module = _module_class()(student, get_loss("dskd", student_model=student, teacher_model=teacher))
    assert not teacher.training and all(not p.requires_grad for p in teacher.parameters())
    # the teacher is not part of the trained module: not in its parameters, its state dict or DDP
    assert not {id(p) for p in teacher.parameters()} & {id(p) for p in module.parameters()}
    assert not any(key.startswith("teacher") for key in module.state_dict())
    per_example, out = module(batch, teacher)
    (per_example * out.positions).sum().backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert student.get_output_embeddings().weight.grad.abs().sum() > 0
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=0.1)
    optimizer.step()
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())


def test_lora_trains_only_the_adapters(tiny, data_file, tmp_path):
    config = write_config(tmp_path / "run.yaml", tiny, data_file, lora=True, lora_r=4, max_steps=2, save_steps=2,
                          save_final_model=True, learning_rate=0.05)
    result = run_cli("distill", "--config", str(config), "-q")
    assert result.exit_code == 0, result.output
    original = load_file(tiny["student"] / "model.safetensors")
    saved = load_file(tmp_path / "run" / "checkpoints" / "checkpoint-2" / "model.safetensors")
    prefix = "student.base_model.model."
    base = {k[len(prefix):].replace(".base_layer", ""): v for k, v in saved.items()
            if k.startswith(prefix) and "lora_" not in k}
    assert set(original) <= set(base)
    assert all(torch.equal(original[k], base[k]) for k in original)  # every base weight as it was
    lora_b = [v for k, v in saved.items() if "lora_B" in k]
    assert lora_b and any(v.abs().sum() > 0 for v in lora_b)  # the adapters (initialised at 0) were trained
    final = tmp_path / "run" / "final" / "student"
    assert (final / "adapter_config.json").is_file() and (final / "adapter_model.safetensors").is_file()
    assert (final / "tokenizer.json").is_file()


def test_the_final_student_loads_back_with_its_trained_weights_also_with_tied_embeddings(tiny, data_file,
                                                                                         tmp_path):
    from transformers import AutoModelForCausalLM

    from ctkd_inspect.train.models import tiny_model

    tied = tiny_model(tmp_path / "tied", "gpt2", tie_embeddings=True, seed=5)
    config = write_config(tmp_path / "run.yaml", tiny, data_file, student=str(tied), loss="dskd", max_steps=2,
                          save_steps=1, save_final_model=True)
    result = run_cli("distill", "--config", str(config), "-q")
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    model = AutoModelForCausalLM.from_pretrained(run / "final" / "student")
    assert model.get_input_embeddings().weight.data_ptr() == model.get_output_embeddings().weight.data_ptr()
    saved = load_file(run / "checkpoints" / "checkpoint-2" / "model.safetensors")
    state = model.state_dict()
    for key, value in saved.items():
        if key.startswith("student.") and key[8:] in state:
            assert torch.equal(state[key[8:]], value), key
    assert not torch.equal(load_file(tied / "model.safetensors")["model.embed_tokens.weight"],
                           state["model.embed_tokens.weight"])
    projectors = torch.load(run / "final" / "loss.pt")
    assert set(projectors) == {k[5:] for k in saved if k.startswith("loss.")}
