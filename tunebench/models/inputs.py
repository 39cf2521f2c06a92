"""Records -> model inputs through the family's real processor, one batch at a time: token ids (the
answer in the family's chat format), per-token extras, image tensors, padded into a batch.

Nothing is encoded up front. A `Batched` set turns a list of record indices into that batch's
inputs when it is asked for, so a torch DataLoader runs the processor in its worker processes, a
few batches ahead of the model, and the pixel tensors held at once are those of the batches in
flight. Only the text's token ids are kept (a cache per question), never pixels.
"""

from __future__ import annotations

import ctypes
import io
from collections import Counter
from dataclasses import dataclass

import torch
from PIL import Image
from torch.utils.data import DataLoader

from ..data.records import InMemory
from .chat import answer_text, prompt_text

TEXT_KEYS = ("input_ids", "attention_mask")
PREFETCH = 2  # batches each DataLoader worker prepares ahead
NUM_WORKERS = 2  # DataLoader worker processes per job (models.<name>.num_workers)
M_MMAP_THRESHOLD, WORKER_MMAP_THRESHOLD = -3, 4 * 2**20  # glibc's mallopt parameter, and its value in workers


def target_text(record: dict) -> str:
    """What the model is taught to answer: the most common reference (VQA's 10 human answers),
    else the first one (the gold letter, the canonical caption)."""
    answers = record["answers"]
    if record["task_type"] == "vqa":
        return Counter(answers).most_common(1)[0][0]
    return answers[0]


def load_image(record: dict) -> Image.Image:
    return Image.open(io.BytesIO(record["image"])).convert("RGB")


@dataclass
class Sample:
    """One record encoded: token ids, the prompt length (loss starts after it), other per-token
    inputs some families need (Qwen2-VL's mm_token_type_ids), its image tensors as the processor made them."""

    input_ids: list[int]
    prompt_length: int
    token_inputs: dict[str, list[int]]
    images: dict[str, torch.Tensor]


def _split_images(batch, keys: list[str], n: int) -> list[dict[str, torch.Tensor]]:
    """One dict of image tensors per record. Most processors stack images on dim 0; Qwen2-VL
    concatenates every image's patches, counted by its (t, h, w) grid."""
    per_record = [{} for _ in range(n)]
    patches = batch["image_grid_thw"].prod(-1).tolist() if "image_grid_thw" in batch else None
    for key in keys:
        value = batch[key]
        if patches and key != "image_grid_thw" and value.shape[0] == sum(patches):
            pieces = value.split(patches)
        elif value.shape[0] == n:
            pieces = value.split(1)
        else:
            raise ValueError(f"processor output {key!r} of shape {tuple(value.shape)} does not split into {n} records")
        for record, piece in zip(per_record, pieces):
            record[key] = piece
    return per_record


class Encoder:
    """The model's real processor, run once per batch of records (its image work dominates). The
    answer is written in the family's chat format, end-of-turn token included."""

    def __init__(self, processor, with_targets: bool):
        self.processor, self.with_targets = processor, with_targets
        self._memo = {}  # per question (and image size): prompts, token ids, token counts

    def _cached(self, key: tuple, make):
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    # Rendering the chat template is slow and a set asks few distinct questions: once each.
    def prompt(self, question: str) -> str:
        return self._cached(("prompt", question), lambda: prompt_text(self.processor, question))

    def answer_ids(self, question: str, target: str) -> list[int]:
        return self._cached(("answer", question, target), lambda: self.processor.tokenizer(
            answer_text(self.processor, question, target), add_special_tokens=False)["input_ids"])

    def prompt_tokens(self, question: str) -> int:
        return self._cached(("prompt tokens", question), lambda: len(self.processor.tokenizer(
            self.prompt(question), add_special_tokens=False)["input_ids"]))

    def image_tokens(self, size: tuple[int, int]) -> int:
        """Tokens an image of this (height, width) adds to its placeholder, where the processor can
        tell from the size alone (else 0: lengths then count text only)."""
        return self._cached(("image tokens", size), lambda: self._count_image_tokens(size))

    def _count_image_tokens(self, size: tuple[int, int]) -> int:
        count = getattr(self.processor, "_get_num_multimodal_tokens", None)
        try:
            return count(image_sizes=[size])["num_image_tokens"][0] - 1 if count else 0
        except (TypeError, KeyError, AttributeError):  # settings its count does not find (VILA's: no crop_size)
            return 0

    def length(self, record: dict, size: tuple[int, int]) -> int:
        """A record's sequence length, from its text and its image's size: what batching by length sorts on."""
        answer = len(self.answer_ids(record["question"], target_text(record))) if self.with_targets else 0
        return self.prompt_tokens(record["question"]) + self.image_tokens(size) + answer

    def __call__(self, records: list[dict]) -> list[Sample]:
        batch = self.processor(images=[[load_image(r)] for r in records],
                               text=[self.prompt(r["question"]) for r in records],
                               return_tensors="pt", padding=True)
        shape = batch["input_ids"].shape
        per_token = [k for k in batch if k not in TEXT_KEYS and batch[k].shape == shape]
        images = _split_images(batch, [k for k in batch if k not in TEXT_KEYS and k not in per_token], len(records))
        samples = []
        for i, record in enumerate(records):
            keep = batch["attention_mask"][i].bool()
            prompt = batch["input_ids"][i][keep].tolist()
            answer = self.answer_ids(record["question"], target_text(record)) if self.with_targets else []
            samples.append(Sample(prompt + answer, len(prompt),
                                  {k: batch[k][i][keep].tolist() + [0] * len(answer) for k in per_token}, images[i]))
        return samples


def image_batch(samples: list[Sample]) -> dict[str, torch.Tensor]:
    """The records' image tensors concatenated; where their shapes differ (a varying number of image
    crops) zero-padded, which these models read as padding."""
    batch = {}
    for key in samples[0].images:
        parts = [s.images[key] for s in samples]
        shape = [max(sizes) for sizes in zip(*(p.shape[1:] for p in parts))]
        padded = [torch.nn.functional.pad(p, [x for dim in reversed(range(1, p.dim()))
                                                for x in (0, shape[dim - 1] - p.shape[dim])]) for p in parts]
        batch[key] = torch.cat(padded)
    return batch


def padded(samples: list[Sample], pad_id: int, side: str) -> dict[str, torch.Tensor]:
    """Token inputs padded to the longest sequence of these records only (never a global length)."""
    width = max(len(s.input_ids) for s in samples)
    keys = ["input_ids", "attention_mask", *samples[0].token_inputs]
    batch = {k: torch.zeros((len(samples), width), dtype=torch.long) for k in keys}
    batch["input_ids"].fill_(pad_id)
    for row, sample in enumerate(samples):
        n = len(sample.input_ids)
        cols = slice(0, n) if side == "right" else slice(width - n, width)
        batch["input_ids"][row, cols] = torch.tensor(sample.input_ids)
        batch["attention_mask"][row, cols] = 1
        for key, values in sample.token_inputs.items():
            batch[key][row, cols] = torch.tensor(values)
    return batch


def collate(samples: list[Sample], pad_id: int) -> dict:
    """Right-padded batch with labels only on answer tokens (prompt, image and padding masked)."""
    batch = padded(samples, pad_id, side="right")
    labels = torch.full_like(batch["input_ids"], -100)
    for row, sample in enumerate(samples):
        start, end = sample.prompt_length, len(sample.input_ids)
        labels[row, start:end] = batch["input_ids"][row, start:end]
    return {**batch, "labels": labels, **image_batch(samples)}


def _worker_heap(_worker_id: int) -> None:
    """A worker allocates and frees an image's buffers (megabytes) per record. glibc then raises its
    mmap threshold to their size and serves them from a heap that fragments, so the worker's memory
    grows with every batch it makes (+20% over 8x the records, measured by bench/memory.py); a fixed
    threshold returns every buffer of 4 MB or more to the system when it is freed."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, WORKER_MMAP_THRESHOLD)
    except (OSError, AttributeError):
        pass  # not glibc: its allocator's own policy


class Batched:
    """Batches made when asked for: item `indices` (a list of record indices) is those records'
    model inputs. With targets: right-padded, with labels (training); without: left-padded prompts
    (generation: every answer starts at the same column). `records`: a record set of
    tunebench.data.records, or a list of records."""

    def __init__(self, records, processor, with_targets: bool):
        self.records = InMemory(records) if isinstance(records, list) else records
        self.encoder = Encoder(processor, with_targets)
        self.pad_id = processor.tokenizer.pad_token_id

    def __len__(self) -> int:
        return len(self.records)

    def samples(self, indices: list[int]) -> list[Sample]:
        return self.encoder([self.records[i] for i in indices])

    def __getitem__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        samples = self.samples(indices)
        if self.encoder.with_targets:
            return collate(samples, self.pad_id)
        return padded(samples, self.pad_id, side="left") | image_batch(samples)

    def lengths(self) -> list[int]:
        return [self.encoder.length(t, s) for t, s in zip(self.records.texts, self.records.sizes)]

    def loader(self, index_lists: list[list[int]], num_workers: int, seed: int = 0) -> DataLoader:
        """The batches of `index_lists`, in order, prepared by `num_workers` processes (0: here).
        Its own generator: making a loader must not draw from the training's random stream."""
        # Forked workers: the family processors (loading.image_only's classes, made at run time) do
        # not pickle, which spawn and forkserver (Python 3.14's default) need.
        return DataLoader(self, sampler=index_lists, batch_size=None, num_workers=num_workers,
                          multiprocessing_context="fork" if num_workers else None,
                          prefetch_factor=PREFETCH if num_workers else None,
                          pin_memory=torch.cuda.is_available(), generator=torch.Generator().manual_seed(seed),
                          worker_init_fn=_worker_heap)
