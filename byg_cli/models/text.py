"""Text encoders for FLUX: CLIP (pooled vector) + T5 (token sequence), loaded from local folders,
and the offline word-level tokenizers that tiny models use."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import torch

from byg_cli.models.base import Cond

# </s> gets id 3: transformers' CLIP pools at the highest token id when eos_token_id == 2 (a legacy path), and at
# the first eos token otherwise, which is what we want.
SPECIAL_TOKENS = ("<pad>", "<s>", "<unk>", "</s>")
# The words of the tiny models' tokenizers when a recipe or test gives no corpus of its own.
DEFAULT_CORPUS = (
    "a red green blue yellow purple orange white black circle square triangle on background with",
    "make the shape change turn it into colour color replace add remove outlined filled style",
    "photo of cat dog sofa in forest canopy three parrots under",
)


def build_word_tokenizer(corpus: Iterable[str], max_length: int, add_bos: bool):
    """A lowercase word-level tokenizer built offline with the `tokenizers` library, wrapped for transformers.

    Every sentence ends with </s> (CLIP pools at that token; T5 expects it); with add_bos it starts with <s>.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(list(corpus), trainers.WordLevelTrainer(special_tokens=list(SPECIAL_TOKENS)))
    ids = {t: tok.token_to_id(t) for t in SPECIAL_TOKENS}
    single = ("<s> $A </s>" if add_bos else "$A </s>")
    tok.post_processor = processors.TemplateProcessing(
        single=single, special_tokens=[("<s>", ids["<s>"]), ("</s>", ids["</s>"])])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
        bos_token="<s>" if add_bos else None, model_max_length=max_length)


def build_clip_tokenizer(corpus: Iterable[str], max_length: int):
    """A small transformers CLIPTokenizer (the class FLUX.1-dev's `tokenizer` folder names), built offline: BPE over
    the corpus's lowercase words with CLIP's end-of-word suffix, one merge chain per word; the specials come last,
    as in CLIP's vocabulary (<|endoftext|> has the highest id and pads)."""
    import re

    from transformers import CLIPTokenizer

    words = sorted({w for line in corpus for w in re.findall(r"[a-z]+", line.lower())})
    chars = sorted({c for w in words for c in w} | set("abcdefghijklmnopqrstuvwxyz"))
    vocab: dict[str, int] = {}
    for token in chars + [c + "</w>" for c in chars]:
        vocab.setdefault(token, len(vocab))
    merges: list[tuple[str, str]] = []
    for word in words:
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        current = pieces[0]
        for piece in pieces[1:]:
            if current + piece not in vocab:
                merges.append((current, piece))
                vocab[current + piece] = len(vocab)
            current += piece
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=max_length)


def build_t5_tokenizer(corpus: Iterable[str], max_length: int):
    """A small transformers T5TokenizerFast (FLUX.1-dev's `tokenizer_2` class), built offline: a Unigram model whose
    pieces are the corpus's words ("▁word") with single characters as the fallback."""
    from transformers import T5TokenizerFast

    words = sorted({w for line in corpus for w in line.split()})
    chars = sorted({c for w in words for c in w} | set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [("▁" + w, -1.0) for w in words] + [(c, -10.0) for c in chars]
    return T5TokenizerFast(vocab=pieces, extra_ids=0, model_max_length=max_length)


class FluxTextEncoder(torch.nn.Module):
    """Encodes prompts exactly as diffusers' FLUX pipelines do: CLIP pooled output (padded to its max length)
    and T5 last hidden states (padded to `max_sequence_length`)."""

    def __init__(self, tokenizer, clip, tokenizer_2, t5, max_sequence_length: int | None = None):
        super().__init__()
        self.tokenizer, self.tokenizer_2 = tokenizer, tokenizer_2
        self.clip, self.t5 = clip, t5
        self.clip_length = int(min(tokenizer.model_max_length, clip.config.max_position_embeddings))
        self.max_sequence_length = int(max_sequence_length or min(tokenizer_2.model_max_length, 512))

    @classmethod
    def load(cls, root: Path, dtype: torch.dtype = torch.float32, max_sequence_length: int | None = None):
        from transformers import AutoTokenizer, CLIPTextModel, T5EncoderModel

        return cls(AutoTokenizer.from_pretrained(root / "tokenizer"),
                   CLIPTextModel.from_pretrained(root / "text_encoder", dtype=dtype),
                   AutoTokenizer.from_pretrained(root / "tokenizer_2"),
                   T5EncoderModel.from_pretrained(root / "text_encoder_2", dtype=dtype),
                   max_sequence_length)

    def save(self, root: Path) -> None:
        self.tokenizer.save_pretrained(root / "tokenizer")
        self.clip.save_pretrained(root / "text_encoder")
        self.tokenizer_2.save_pretrained(root / "tokenizer_2")
        self.t5.save_pretrained(root / "text_encoder_2")

    @property
    def device(self) -> torch.device:
        return next(self.t5.parameters()).device

    def forward(self, prompts: list[str]) -> Cond:
        dev = self.device
        ids = self.tokenizer(prompts, padding="max_length", max_length=self.clip_length, truncation=True,
                             return_tensors="pt").input_ids.to(dev)
        pooled = self.clip(ids, output_hidden_states=False).pooler_output
        ids2 = self.tokenizer_2(prompts, padding="max_length", max_length=self.max_sequence_length,
                                truncation=True, return_tensors="pt").input_ids.to(dev)
        embeds = self.t5(ids2, output_hidden_states=False)[0]
        return Cond(embeds=embeds, pooled=pooled)
