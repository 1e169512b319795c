"""Tiny Hugging Face model folders built from a config (random weights, a 100-word vocabulary): no download.

A module with a unique name (not conftest) so test modules can import its helpers unambiguously.
"""

from __future__ import annotations

import inspect
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

WORDS = [
    "the", "a", "of", "to", "and", "is", "in", "it", "that", "for", "on", "with", "as", "be", "by", "this", "are",
    "from", "or", "an", "at", "file", "path", "module", "function", "class", "value", "data", "text", "list",
    "line", "model", "run", "test", "new", "old", "one", "two"
]
SENTENCES = [
    "the model is a function of the data",
    "this is a test of the text",
    "a path to a file",
    "one and two are in the list",
    "it is new",
    "the old class has a value for the test",
]


@dataclass(frozen=True)
class TinyModels:
    base: Path          # BertModel + tokenizer: feature-extraction
    sentence: Path      # base + sentence-transformers modules.json (mean pooling, Normalize)
    classifier: Path    # BertForSequenceClassification (3 labels) + tokenizer


def _tokenizer(vocab_file: Path):
    from transformers import BertTokenizerFast

    # transformers 5 takes the vocabulary as `vocab=` and silently ignores `vocab_file=` (every word
    # becomes [UNK]); transformers 4 takes `vocab_file=`.
    key = "vocab" if "vocab" in inspect.signature(BertTokenizerFast.__init__).parameters else "vocab_file"
    return BertTokenizerFast(**{key: str(vocab_file)})


def build_tiny_models(root: Path) -> TinyModels:
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    vocab += [f"w{i}" for i in range(100 - len(vocab))]
    root.mkdir(parents=True, exist_ok=True)
    vocab_file = root / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n")
    tokenizer = _tokenizer(vocab_file)
    assert tokenizer.tokenize("the model")[0] == "the", "the tiny tokenizer lost its vocabulary"
    config = dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                  max_position_embeddings=128)
    torch.manual_seed(0)
    base, sentence, classifier = root / "base", root / "sentence", root / "classifier"
    BertModel(BertConfig(**config)).save_pretrained(base)
    tokenizer.save_pretrained(base)
    shutil.copytree(base, sentence)
    (sentence / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))
    (sentence / "1_Pooling").mkdir()
    (sentence / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 32, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
         "pooling_mode_max_tokens": False}))
    BertForSequenceClassification(BertConfig(**config, num_labels=3)).save_pretrained(classifier)
    tokenizer.save_pretrained(classifier)
    return TinyModels(base, sentence, classifier)
