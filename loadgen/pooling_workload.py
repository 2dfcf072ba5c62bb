"""The workloads of the pooling APIs (embeddings, rerank): seeded, endless RequestSpec streams.

Embeddings: each request carries `batch_size` inputs (RequestSpec.inputs). Rerank: each
request is one query (RequestSpec.prompt) and `documents` documents (RequestSpec.inputs).
Every text's length is drawn from the same input-length distribution as generation runs use
(`--input-len`, a preset's input table); with `texts` (a dataset's prompts) the texts are
taken in order, cycling, and have no target length.

input_tokens_expected is what the workload aims the server to count, in whitespace words
(exact on the built-in simulator): embeddings, the sum over the batch; rerank, the sum over
the pairs a reranker scores (query + document, once per document, as llama.cpp and vLLM
count them). Special tokens a real server adds per input or pair are the server's to report.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from loadgen.lengths import LengthDist
from loadgen.prompts import synth_text
from loadgen.spec import RequestSpec

__all__ = ["POOLING_SHAPES", "PoolingWorkload", "dataset_texts"]

# The request shapes (loadgen.apis ApiInfo.shape) this module builds.
POOLING_SHAPES = ("embeddings", "rerank")

_BATCH = 1024  # lengths drawn per numpy call


@dataclass(frozen=True, slots=True)
class PoolingWorkload:
    shape: str  # "embeddings" | "rerank"
    input_len: LengthDist | None  # None: `texts` gives every text
    batch_size: int = 1  # embeddings: inputs per request
    documents: int = 8  # rerank: documents per query
    seed: int = 0
    texts: tuple[str, ...] | None = None  # a dataset's texts, used in order (cycling)

    def __post_init__(self) -> None:
        if self.shape not in POOLING_SHAPES:
            raise ValueError(f"pooling shape must be one of {POOLING_SHAPES}, got {self.shape!r}")
        if self.batch_size < 1 or self.documents < 1:
            raise ValueError("--batch-size and --documents must be >= 1")
        if self.texts is not None and not self.texts:
            raise ValueError("the dataset has no texts to send")
        if self.texts is None and self.input_len is None:
            raise ValueError("a pooling workload needs an input length or texts")

    @property
    def texts_per_request(self) -> int:
        """Texts drawn per request: the batch, or the query and its documents."""
        return self.batch_size if self.shape == "embeddings" else 1 + self.documents

    def describe(self) -> dict[str, Any]:
        desc: dict[str, Any] = {"pooling": self.shape}
        if self.shape == "embeddings":
            desc["batch_size"] = self.batch_size
        else:
            desc["documents"] = self.documents
        if self.texts is None and self.input_len is not None:
            desc["input_len"] = self.input_len.describe()
        return desc

    def specs(self) -> Iterator[RequestSpec]:
        """Request 0, 1, 2, ... forever; the same seed gives the same sequence."""
        index = 0
        for texts, lengths in self._groups():
            yield self._spec(index, texts, lengths)
            index += 1

    def _groups(self) -> Iterator[tuple[list[str], list[int] | None]]:
        """The texts of each request in turn, with their target lengths (None: a dataset)."""
        k = self.texts_per_request
        if self.texts is not None:
            pool, at = self.texts, 0
            while True:
                yield [pool[(at + i) % len(pool)] for i in range(k)], None
                at = (at + k) % len(pool)
        assert self.input_len is not None
        len_ss, text_ss = np.random.SeedSequence(self.seed).spawn(2)
        len_rng, text_rng = np.random.default_rng(len_ss), np.random.default_rng(text_ss)
        while True:
            lengths = self.input_len.sample(len_rng, _BATCH * k).tolist()
            for start in range(0, len(lengths), k):
                group = [int(n) for n in lengths[start : start + k]]
                yield [synth_text(max(1, n), text_rng) for n in group], group

    def _spec(self, index: int, texts: list[str], lengths: list[int] | None) -> RequestSpec:
        if self.shape == "embeddings":
            expected = sum(max(1, n) for n in lengths) if lengths is not None else None
            return RequestSpec(
                index=index,
                inputs=tuple(texts),
                max_tokens=0,
                input_tokens_expected=expected,
            )
        query, documents = texts[0], tuple(texts[1:])
        expected = None
        if lengths is not None:
            q = max(1, lengths[0])
            expected = sum(q + max(1, n) for n in lengths[1:])
        return RequestSpec(
            index=index,
            prompt=query,
            inputs=documents,
            max_tokens=0,
            input_tokens_expected=expected,
        )


def dataset_texts(prompts: Sequence[str | None], messages: Sequence[Any]) -> tuple[str, ...]:
    """The texts of a dataset's items: each prompt, else its messages' texts joined."""
    out: list[str] = []
    for prompt, msgs in zip(prompts, messages, strict=True):
        if prompt is None:
            prompt = " ".join(str(m.get("content", "")) for m in msgs or ())
        if prompt.strip():
            out.append(prompt)
    return tuple(out)
