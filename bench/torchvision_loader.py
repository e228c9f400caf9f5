#!/usr/bin/env python3
"""Throughput of torchvision's CIFAR-10 training pipeline, for comparison with
`crates/plain/mbls-data/examples/bench_loader.rs`.

ImageFolder(<train folder>) -> RandomCrop(32, padding=4) -> RandomHorizontalFlip() -> ToTensor()
-> Normalize(CIFAR-10 mean/std), DataLoader(batch_size=128, shuffle=True, drop_last=True,
num_workers=2, persistent_workers=False). A warm-up of a few batches (page cache, imports, worker
start-up) runs first; then whole epochs are timed (including the workers' start each epoch, which
torch's loader pays with persistent_workers off). Prints one RESULT line.

    bench/.venv/bin/python bench/torchvision_loader.py <train folder> [--epochs N] [--workers N]
"""

import argparse
import time

import torch
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

CIFAR10_MEAN = [0.4914, 0.4822, 0.4465]
CIFAR10_STD = [0.2023, 0.1994, 0.2010]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("root")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--warmup-batches", type=int, default=20)
    a = p.parse_args()

    torch.manual_seed(1)
    tf = transforms.Compose([
        transforms.RandomCrop(32, padding=4),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize(CIFAR10_MEAN, CIFAR10_STD),
    ])
    t0 = time.perf_counter()
    ds = datasets.ImageFolder(a.root, transform=tf)
    print(f"indexed {len(ds)} images of {len(ds.classes)} classes in "
          f"{time.perf_counter() - t0:.2f} s", flush=True)
    loader = DataLoader(ds, batch_size=128, shuffle=True, drop_last=True,
                        num_workers=a.workers, persistent_workers=False)

    checksum = 0.0
    for i, (x, y) in enumerate(loader):
        checksum += float(x[0, 0, 0, 0])
        if i + 1 >= a.warmup_batches:
            break

    t = time.perf_counter()
    images = 0
    for _ in range(a.epochs):
        for x, y in loader:
            images += x.shape[0]
            checksum += float(x[-1, -1, -1, -1])
    secs = time.perf_counter() - t
    print(f"RESULT impl=torchvision mode=decode workers={a.workers} epochs={a.epochs} "
          f"images={images} seconds={secs:.3f} images_per_s={images / secs:.1f} "
          f"checksum={checksum:.3f}", flush=True)


if __name__ == "__main__":
    main()
