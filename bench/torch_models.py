"""PyTorch side of bench/compare_models.sh: training-step and inference throughput of the
CIFAR-style ResNets (3x3 stem, no max-pool, avg_pool 4, fc), written here from the reference's
description, batch 128, SGD (momentum 0.9, weight decay 5e-4), cross-entropy, fixed random input.

    python bench/torch_models.py MODEL [--steps N] [--batch B] [--threads T] [--channels-last]
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Basic(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride):
        super().__init__()
        out = planes * 4
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != out:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, out, 1, stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x):
        o = F.relu(self.bn1(self.conv1(x)))
        o = F.relu(self.bn2(self.conv2(o)))
        o = self.bn3(self.conv3(o))
        return F.relu(o + self.shortcut(x))


class ResNetCifar(nn.Module):
    def __init__(self, block, depths, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        cin, layers = 64, []
        for i, n in enumerate(depths):
            planes = 64 << i
            blocks = []
            for b in range(n):
                blocks.append(block(cin, planes, 2 if i > 0 and b == 0 else 1))
                cin = planes * block.expansion
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(F.avg_pool2d(x, 4), 1))


MODELS = {
    "resnet18_cifar": (Basic, [2, 2, 2, 2]),
    "resnet34_cifar": (Basic, [3, 4, 6, 3]),
    "resnet50_cifar": (Bottleneck, [3, 4, 6, 3]),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", choices=sorted(MODELS))
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--only", choices=["train_step", "inference"])
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = ResNetCifar(*MODELS[a.model])
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(a.batch, 3, 32, 32).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (a.batch,))

    def step():
        t = time.perf_counter()
        model.train()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()
        return time.perf_counter() - t

    def infer():
        t = time.perf_counter()
        model.eval()
        with torch.no_grad():
            model(x).sum().item()
        return time.perf_counter() - t

    tag = {"impl": "pytorch", "model": a.model, "batch": a.batch, "threads": a.threads,
           "channels_last": a.channels_last}
    for what, fn in (("train_step", step), ("inference", infer)):
        if a.only and a.only != what:
            continue
        fn()
        ts = sorted(fn() for _ in range(a.steps))
        m = ts[len(ts) // 2]
        print(json.dumps({**tag, "measure": what, "median_s": m, "images_per_s": a.batch / m}), flush=True)


if __name__ == "__main__":
    main()
