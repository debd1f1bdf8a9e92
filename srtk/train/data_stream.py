"""The resumable stream of training batches: a seeded, sharded order per epoch, addressed by (epoch, index) keys,
consumed batch by batch so that a resumed run continues mid-epoch with exactly the batches it had not seen."""

import os
from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from srtk.config.train import DataConfig
from srtk.data.datasets import PairedPatchDataset, resolve_dataset
from srtk.errors import ConfigError, SrtkError


class ShardedSampler(Sampler[tuple[int, int]]):
    """Each rank's share of a seeded per-epoch permutation, starting at a batch offset, as (epoch, index) keys.

    DistributedSampler's sharding (pad to a multiple of the world size, rank r takes every world-th index),
    plus the offset that lets a resumed run continue mid-epoch with exactly the batches it had not seen.
    """

    def __init__(self, length: int, *, seed: int, rank: int, world_size: int) -> None:
        self.length, self.seed, self.rank, self.world_size = length, seed, rank, world_size
        self.epoch, self.start = 0, 0

    def shard(self) -> list[int]:
        order = torch.randperm(self.length, generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist()
        padded = order + order[: (-self.length) % self.world_size]
        return padded[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter([(self.epoch, index) for index in self.shard()[self.start :]])

    def __len__(self) -> int:
        return len(self.shard()) - self.start


class EpochKeyedDataset(Dataset):
    """A PairedPatchDataset addressed by (epoch, index): the epoch travels with each key, so persistent
    workers (which keep their caches of decoded HR and generated LR images) never need a set_epoch call."""

    def __init__(self, dataset: PairedPatchDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Tensor]:
        epoch, index = key
        self.dataset.set_epoch(epoch)
        return self.dataset[index]


class BatchStream:
    """Endless batches, epoch after epoch; (epoch, batch) counts what has been consumed, for resuming."""

    def __init__(
        self,
        dataset: PairedPatchDataset,
        sampler: ShardedSampler,
        *,
        batch_size: int,
        num_workers: int,
        pin_memory: bool,
    ) -> None:
        self.sampler, self.batch_size = sampler, batch_size
        self.epoch, self.batch = 0, 0
        self.batches_per_epoch = len(sampler.shard()) // batch_size
        if self.batches_per_epoch == 0:
            raise ConfigError(
                f"{len(dataset)} training patches per epoch cannot fill one batch of {batch_size} per process: "
                f"lower data.batch_size or raise data.repeat"
            )
        # One loader for the whole run: its workers persist across epochs, and with them their image caches.
        self.loader = DataLoader(
            EpochKeyedDataset(dataset),
            batch_size=batch_size,
            sampler=sampler,
            num_workers=num_workers,
            pin_memory=pin_memory,
            drop_last=True,
            persistent_workers=num_workers > 0,
            # Its own generator: each iterator draws a worker seed, which must not come from the global RNG
            # (a resumed run starts an iterator mid-epoch; the uninterrupted run did not).
            generator=torch.Generator().manual_seed(sampler.seed),
        )
        self._iterator: Iterator[dict[str, Tensor]] | None = None

    def next(self) -> dict[str, Tensor]:
        if self.batch >= self.batches_per_epoch:
            self.epoch, self.batch = self.epoch + 1, 0
            self._iterator = None
        if self._iterator is None:
            self.sampler.epoch, self.sampler.start = self.epoch, self.batch * self.batch_size
            self._iterator = iter(self.loader)
        try:
            batch = next(self._iterator)
        except SrtkError as error:  # from a loader worker: its message carries the worker's whole traceback
            raise type(error)(_original_message(str(error))) from None
        self.batch += 1
        return batch

    def position(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batch": self.batch}

    def seek(self, position: dict[str, int]) -> None:
        self.epoch, self.batch = int(position["epoch"]), int(position["batch"])
        self._iterator = None


def training_stream(data: DataConfig, *, seed: int, rank: int, world_size: int, pin_memory: bool) -> BatchStream:
    """The batch stream of a run's training data, this rank's shard."""
    folders = [resolve_dataset(name, data.data_root) for name in data.train]
    dataset = PairedPatchDataset(
        folders,
        scale=data.scale,
        lr_patch_size=data.lr_patch_size,
        augment=data.augment,
        repeat=data.repeat,
        seed=seed,
        cache_dir=data.cache_dir,
        skip_unusable=data.skip_unusable_images,
    )
    sampler = ShardedSampler(len(dataset), seed=seed, rank=rank, world_size=world_size)
    return BatchStream(
        dataset,
        sampler,
        batch_size=data.batch_size,
        # More loader processes than cores only thrash (the patches are deterministic either way).
        num_workers=min(data.num_workers, len(os.sched_getaffinity(0))),
        pin_memory=pin_memory,
    )


def _original_message(text: str) -> str:
    """The one-line message of an SrtkError a DataLoader worker re-raised ("Caught ... Original Traceback ...
    srtk.errors.ImageReadError: MESSAGE"), or `text` as it is when it was raised in this process."""
    last = text.strip().splitlines()[-1] if text.strip() else text
    return last.split("Error: ", 1)[1] if "Original Traceback" in text and "Error: " in last else text
