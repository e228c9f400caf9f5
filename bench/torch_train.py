#!/usr/bin/env python3
"""PyTorch side of bench/compare_train.sh: one (or more) epochs of the MbLS reference's CIFAR-10
training flow (spec reference-behaviour.md 5.1, 6.1, 7), written here from the spec, on an
image-folder copy of CIFAR-10, timed per phase, plus the same amount of pure compute on a fixed
batch. Prints one `RESULT {json}` line.

    bench/.venv/bin/python bench/torch_train.py ROOT [--loss logit_margin|ce] [--channels-last]
        [--threads T] [--workers W] [--epochs N] [--seed S] [--max-batches B] [--warmup-steps K]

ROOT holds train/ and test/ with one sub-folder per class (JPEGs); only train/ is read (the
reference's trainval loaders: 10 % validation split of it; test/ is not used by the timed phases).

The flow (per the spec):
- Seeds: random, numpy and torch seeded with --seed (the reference's set_random_seed, seed 1).
- Split: indices 0..N-1 of ImageFolder(train/) (classes sorted, files sorted, as torchvision
  orders them); split = floor(0.1 N); np.random.seed(seed); np.random.shuffle(indices);
  validation = indices[:split], training = indices[split:].
- Train loader: ImageFolder(train/, RandomCrop(32, padding=4) -> RandomHorizontalFlip ->
  ToTensor -> Normalize(CIFAR-10)), SubsetRandomSampler(train indices) (= shuffle within the
  split), batch 128, drop_last=True (the reference's CIFAR-10 train loader drops the last
  partial batch, spec 5.1), num_workers=4, persistent_workers off (the torch default the
  reference uses, so the workers start again every epoch and that start is timed).
  pin_memory: the reference sets True, which only matters with a GPU; it is off here (CPU only,
  where torch would just warn and not pin).
- Validation loader: a second ImageFolder(train/, ToTensor -> Normalize),
  SubsetRandomSampler(validation indices), batch 128, drop_last=False.
- Model: the CIFAR ResNet of bench/torch_models.py; loss: bench/torch_losses.py (logit_margin =
  the reference's LogitMarginL1: CE + alpha * mean_{i,k} relu(max_j l_ij - l_ik - margin),
  margin 10, alpha 0.1; or ce); SGD lr 0.1, momentum 0.9, weight decay 5e-4 on all parameters;
  MultiStepLR([150, 250], 0.1) stepped once per epoch after validation; fp32.
- Training step: forward (train mode) -> loss -> zero_grad -> backward ->
  clip_grad_norm_(max_norm=2) -> step; the loss (.item(), weighted by batch size) and the
  number of correct top-1 predictions are accumulated per batch.
- Validation: eval mode, no_grad: forward, loss (the reference computes it), top-1 accuracy.

What is timed (time.perf_counter):
- train_seconds: from the first batch request of the epoch (iter(loader), which starts the
  workers) to the end of the last optimizer step, loader included.
- val_seconds: the whole validation pass, from iter(loader) to the last batch's accuracy.
- fixed_step_seconds: the sum over as many steps as the epoch had of one fixed-batch training
  step (128 random N(0,1) images, random labels; forward + loss + backward + clip + step), after
  2 untimed warm-up steps, on a fresh model made like the trained one; fixed_step_median_s is
  the median step.
- fixed_infer_seconds: the same for inference (eval, no_grad) over the validation epoch's batch
  sizes (the last one partial when the split is not a multiple of 128), after 2 warm-ups.
The timed epochs come first in the process and, by default (--warmup-steps 0), start cold, as
the mbls trainer's epoch 0 does; --warmup-steps K runs K steps first on a throw-away copy of the
model and optimizer (warming torch's caches without changing the trained model). The
fixed-batch measurements run after the epochs. With --epochs N > 1 the top-level times are
those of epoch 0 (the record compare_train.sh compares) and train_loss / val_acc those of the
last epoch; every epoch is in "epochs". peak_rss_kb is this process's peak RSS,
children_max_rss_kb the largest of the (finished) loader workers'.
--max-batches B (smoke tests only) stops each training and validation epoch after B batches.
"""
import argparse
import copy
import json
import os
import random
import resource
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, SubsetRandomSampler
from torchvision import datasets, transforms

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_losses import ce, logit_margin  # noqa: E402
from torch_models import MODELS, ResNetCifar  # noqa: E402

CIFAR10_MEAN = [0.4914, 0.4822, 0.4465]
CIFAR10_STD = [0.2023, 0.1994, 0.2010]
BATCH = 128


def seed_everything(seed):
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def loaders(root, seed, workers, val_split=0.1):
    norm = [transforms.ToTensor(), transforms.Normalize(CIFAR10_MEAN, CIFAR10_STD)]
    train_tf = transforms.Compose([transforms.RandomCrop(32, padding=4),
                                   transforms.RandomHorizontalFlip()] + norm)
    val_tf = transforms.Compose(norm)
    train_ds = datasets.ImageFolder(os.path.join(root, "train"), transform=train_tf)
    val_ds = datasets.ImageFolder(os.path.join(root, "train"), transform=val_tf)
    n = len(train_ds)
    indices = list(range(n))
    split = int(np.floor(val_split * n))
    np.random.seed(seed)
    np.random.shuffle(indices)
    train_idx, val_idx = indices[split:], indices[:split]
    common = dict(batch_size=BATCH, num_workers=workers, pin_memory=False)
    train_loader = DataLoader(train_ds, sampler=SubsetRandomSampler(train_idx), drop_last=True, **common)
    val_loader = DataLoader(val_ds, sampler=SubsetRandomSampler(val_idx), drop_last=False, **common)
    return train_loader, val_loader, len(train_ds.classes), len(train_idx), len(val_idx)


def make_model(name, classes, fmt, seed):
    torch.manual_seed(seed)
    return ResNetCifar(*MODELS[name], num_classes=classes).to(memory_format=fmt)


def make_optim(model):
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    return opt, torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[150, 250], gamma=0.1)


def train_step(model, opt, loss_fn, x, y):
    logits = model(x)
    loss = loss_fn(logits, y)
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=2)
    opt.step()
    return logits, loss


def train_epoch(model, opt, loss_fn, loader, fmt, max_batches):
    model.train()
    loss_sum, correct, seen, batches = 0.0, 0, 0, 0
    t = time.perf_counter()
    for x, y in loader:
        x = x.contiguous(memory_format=fmt)
        logits, loss = train_step(model, opt, loss_fn, x, y)
        bs = y.shape[0]
        loss_sum += loss.item() * bs
        correct += int((logits.detach().argmax(1) == y).sum())
        seen += bs
        batches += 1
        if max_batches and batches >= max_batches:
            break
    secs = time.perf_counter() - t
    return secs, seen, batches, loss_sum / max(seen, 1), correct / max(seen, 1)


def eval_epoch(model, loss_fn, loader, fmt, max_batches):
    model.eval()
    loss_sum, correct, seen, sizes = 0.0, 0, 0, []
    t = time.perf_counter()
    with torch.no_grad():
        for x, y in loader:
            x = x.contiguous(memory_format=fmt)
            logits = model(x)
            loss_sum += loss_fn(logits, y).item()  # the reference's meter: n = 1 per batch
            correct += int((logits.argmax(1) == y).sum())
            seen += y.shape[0]
            sizes.append(y.shape[0])
            if max_batches and len(sizes) >= max_batches:
                break
    secs = time.perf_counter() - t
    return secs, seen, sizes, loss_sum / max(len(sizes), 1), correct / max(seen, 1)


def fixed_compute(name, classes, fmt, seed, loss_fn, train_batches, val_sizes, warmup=2):
    model = make_model(name, classes, fmt, seed)
    opt, _ = make_optim(model)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(BATCH, 3, 32, 32, generator=g).contiguous(memory_format=fmt)
    y = torch.randint(0, classes, (BATCH,), generator=g)

    def step():
        t = time.perf_counter()
        _, loss = train_step(model, opt, loss_fn, x, y)
        loss.item()
        return time.perf_counter() - t

    def infer(bs):
        t = time.perf_counter()
        with torch.no_grad():
            model(x[:bs]).argmax(1).sum().item()
        return time.perf_counter() - t

    model.train()
    for _ in range(warmup):
        step()
    steps = [step() for _ in range(train_batches)]
    model.eval()
    for _ in range(warmup):
        infer(BATCH)
    infers = [infer(bs) for bs in val_sizes]
    med = lambda v: sorted(v)[len(v) // 2] if v else float("nan")  # noqa: E731
    return sum(steps), med(steps), sum(infers), med(infers)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("root", help="folder holding train/ (and test/), one sub-folder per class")
    p.add_argument("--model", default="resnet18_cifar", choices=sorted(MODELS))
    p.add_argument("--loss", default="logit_margin", choices=["logit_margin", "ce"])
    p.add_argument("--margin", type=float, default=10.0)
    p.add_argument("--alpha", type=float, default=0.1)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--warmup-steps", type=int, default=0,
                   help="untimed steps before epoch 0, on a throw-away copy of the model")
    p.add_argument("--max-batches", type=int, default=0, help="smoke tests: stop each epoch after B batches")
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    seed_everything(a.seed)
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    if a.loss == "ce":
        loss_fn = ce
    else:
        def loss_fn(x, y):
            return logit_margin(x, y, margin=a.margin, alpha=a.alpha)

    train_loader, val_loader, classes, n_train, n_val = loaders(a.root, a.seed, a.workers)
    model = make_model(a.model, classes, fmt, a.seed)
    opt, sched = make_optim(model)

    if a.warmup_steps:
        wm = copy.deepcopy(model)
        wo, _ = make_optim(wm)
        wm.train()
        g = torch.Generator().manual_seed(a.seed)  # not the global generator: same training
        gx = torch.randn(BATCH, 3, 32, 32, generator=g).contiguous(memory_format=fmt)
        gy = torch.randint(0, classes, (BATCH,), generator=g)
        for _ in range(a.warmup_steps):
            train_step(wm, wo, loss_fn, gx, gy)[1].item()
        del wm, wo

    epochs = []
    for epoch in range(a.epochs):
        tr_s, tr_n, tr_b, tr_loss, tr_acc = train_epoch(model, opt, loss_fn, train_loader, fmt, a.max_batches)
        va_s, va_n, va_sizes, va_loss, va_acc = eval_epoch(model, loss_fn, val_loader, fmt, a.max_batches)
        sched.step()
        e = dict(epoch=epoch, train_seconds=tr_s, train_images=tr_n, train_batches=tr_b,
                 train_loss=tr_loss, train_acc=tr_acc, val_seconds=va_s, val_images=va_n,
                 val_batches=len(va_sizes), val_loss=va_loss, val_acc=va_acc)
        epochs.append(e)
        print(f"epoch {epoch}: train {tr_n} images {tr_s:.2f} s loss {tr_loss:.4f} acc {tr_acc:.4f}; "
              f"val {va_n} images {va_s:.2f} s acc {va_acc:.4f}", file=sys.stderr, flush=True)
        if epoch == 0:
            first_val_sizes = va_sizes

    e0 = epochs[0]
    del model, opt, sched  # the fixed-batch runs use a fresh model; do not hold two
    fs, fs_med, fi, fi_med = fixed_compute(a.model, classes, fmt, a.seed, loss_fn,
                                           e0["train_batches"], first_val_sizes)
    ru_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ru_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out = {
        "impl": "pytorch", "torch": torch.__version__, "model": a.model, "loss": a.loss,
        "channels_last": a.channels_last, "threads": torch.get_num_threads(), "workers": a.workers,
        "batch": BATCH, "seed": a.seed, "epochs_run": a.epochs, "warmup_steps": a.warmup_steps,
        "split_train_images": n_train, "split_val_images": n_val,
        "train_images": e0["train_images"], "val_images": e0["val_images"],
        "train_batches": e0["train_batches"], "val_batches": e0["val_batches"],
        "train_seconds": e0["train_seconds"], "val_seconds": e0["val_seconds"],
        "train_images_per_s": e0["train_images"] / e0["train_seconds"],
        "val_images_per_s": e0["val_images"] / e0["val_seconds"] if e0["val_seconds"] > 0 else None,
        "fixed_step_seconds": fs, "fixed_step_median_s": fs_med,
        "fixed_infer_seconds": fi, "fixed_infer_median_s": fi_med,
        "pipeline_overhead_train": e0["train_seconds"] / fs,
        "pipeline_overhead_val": e0["val_seconds"] / fi if fi > 0 else None,
        "train_loss": epochs[-1]["train_loss"], "train_acc": epochs[-1]["train_acc"],
        "val_loss": epochs[-1]["val_loss"], "val_acc": epochs[-1]["val_acc"],
        "peak_rss_kb": ru_self, "children_max_rss_kb": ru_children,
        "epochs": epochs,
    }
    print("RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
