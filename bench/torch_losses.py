"""PyTorch side of the loss benchmark (bench/compare_losses.sh): forward + backward time of CE,
MbLS (logit_margin), focal, FLSD-53 (focal_adaptive), MMCE, label smoothing, ECP
(penalty_ent), the L1 penalty and Brier, written as the MbLS reference computes them (FLSD-53 chooses gamma in a Python loop over samples, as the reference does),
on 2 threads. Prints one JSON line per (loss, shape).
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F


def flatten(x, y):
    if x.dim() > 2:
        x = x.view(x.size(0), x.size(1), -1).transpose(1, 2).contiguous().view(-1, x.size(1))
    return x, y.view(-1)


def ce(x, y):
    x, y = flatten(x, y)
    return F.cross_entropy(x, y)


def logit_margin(x, y, margin=10.0, alpha=0.1):
    x, y = flatten(x, y)
    loss_ce = F.cross_entropy(x, y)
    mx = x.max(dim=1).values.unsqueeze(1).repeat(1, x.shape[1])
    loss_margin = F.relu(mx - x - margin).mean()
    return loss_ce + alpha * loss_margin


def focal(x, y, gamma=3.0):
    x, y = flatten(x, y)
    logpt = F.log_softmax(x, dim=1).gather(1, y.view(-1, 1)).view(-1)
    pt = logpt.exp()
    return (-1 * (1 - pt) ** gamma * logpt).mean()


def focal_adaptive(x, y, gamma=3.0):
    x, y = flatten(x, y)
    logpt = F.log_softmax(x, dim=1).gather(1, y.view(-1, 1)).view(-1)
    pt = logpt.exp()
    gammas = []
    for i in range(pt.shape[0]):  # the reference's per-sample loop
        p = pt[i].item()
        gammas.append(gamma if p >= 0.5 else (5.0 if p < 0.2 else 3.0))
    g = torch.tensor(gammas)
    return (-1 * (1 - pt) ** g * logpt).mean()


def mmce(x, y, lamda=1.0):
    x, y = flatten(x, y)
    p = F.softmax(x, dim=1)
    r, pred = torch.max(p, 1)
    c = torch.where(pred.eq(y), torch.ones_like(r), torch.zeros_like(r))
    cr = c - r
    dot = torch.mm(cr.unsqueeze(1), cr.unsqueeze(0))
    tiled = r.unsqueeze(1).repeat(1, r.shape[0]).unsqueeze(2)
    pairs = torch.cat([tiled, tiled.permute(1, 0, 2)], dim=2)
    kernel = torch.exp(-1.0 * torch.abs(pairs[:, :, 0] - pairs[:, :, 1]) / 0.4)
    return F.cross_entropy(x, y) + lamda * torch.sum(dot * kernel) / torch.tensor(float(r.shape[0])) ** 2


def mmce_weighted(x, y, lamda=1.0):
    x, y = flatten(x, y)
    p = F.softmax(x, dim=1)
    r, pred = torch.max(p, 1)
    correct = torch.where(pred.eq(y), torch.ones_like(r), torch.zeros_like(r))
    k = int(correct.sum().item())
    kp = r.shape[0] - k
    cond = 1.0 if (k > 0 and kp > 0) else 0.0
    if cond == 0.0:  # the reference's fallback sizes
        k, kp = min(2, r.shape[0]), max(r.shape[0] - 2, 0)
    correct_prob, _ = torch.topk(r * correct, k)
    incorrect_prob, _ = torch.topk(r * (1 - correct), kp)

    def kernel(a, b):
        return torch.exp(-1.0 * torch.abs(a.unsqueeze(1) - b.unsqueeze(0)) / 0.4)

    cc = (kernel(correct_prob, correct_prob) * torch.mm((1 - correct_prob).unsqueeze(1), (1 - correct_prob).unsqueeze(0))).mean()
    ii = (kernel(incorrect_prob, incorrect_prob) * torch.mm(incorrect_prob.unsqueeze(1), incorrect_prob.unsqueeze(0))).mean()
    ci = (kernel(correct_prob, incorrect_prob) * torch.mm((1 - correct_prob).unsqueeze(1), incorrect_prob.unsqueeze(0))).mean()
    m, n = correct.sum(), (1 - correct).sum()
    mmd = cc / (m * m + 1e-5) + ii / (n * n + 1e-5) - 2 * ci / (m * n + 1e-5)
    penalty = torch.clamp(torch.sqrt(mmd + 1e-10) * cond, min=0.0)
    return F.cross_entropy(x, y) + lamda * penalty


def ls(x, y, alpha=0.05):
    x, y = flatten(x, y)
    logp = F.log_softmax(x, dim=-1)
    nll = -logp.gather(dim=-1, index=y.unsqueeze(1)).squeeze(1)
    smooth = -logp.mean(dim=-1)
    return ((1 - alpha) * nll + alpha * smooth).mean()


def penalty_ent(x, y, alpha=0.1):
    x, y = flatten(x, y)
    loss_ce = F.cross_entropy(x, y)
    p = torch.clamp(F.log_softmax(x, dim=1).exp(), 1e-10, 1 - 1e-10)
    loss_ent = (-p * torch.log(p)).mean()
    return loss_ce - alpha * loss_ent


def penalty_l1(x, y, alpha=1.0):
    x, y = flatten(x, y)
    loss_ce = F.cross_entropy(x, y)
    p = F.softmax(x, dim=1)
    loss_l1 = (p - 1.0 / x.shape[1]).abs().sum() / x.shape[0]
    return loss_ce + alpha * loss_l1


def brier(x, y):
    x, y = flatten(x, y)
    onehot = torch.zeros_like(x).scatter_(1, y.view(-1, 1), 1)
    p = F.softmax(x, dim=1)
    return ((onehot - p) ** 2).sum() / x.shape[0]


LOSSES = {"ce": ce, "logit_margin": logit_margin, "focal": focal, "focal_adaptive": focal_adaptive, "mmce": mmce, "mmce_weighted": mmce_weighted,
          "ls": ls, "penalty_ent": penalty_ent, "penalty_l1": penalty_l1, "brier": brier}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    for label, shape in (("128x10", (128, 10)), ("64x200", (64, 200)), ("8x21x512x512", (8, 21, 512, 512))):
        dense = len(shape) > 2
        logits = torch.randn(*shape) * 3
        targets = torch.randint(0, shape[1], (shape[0],) + tuple(shape[2:]))
        reps = max(a.repeats // 4, 3) if dense else a.repeats
        for name, fn in LOSSES.items():
            if dense and name.startswith("mmce"):
                continue  # O(N^2) in the number of pixels
            r = 1 if (dense and name == "focal_adaptive") else reps  # its Python loop takes long
            tc, tl = [], []

            def one(f):
                x = logits.detach().requires_grad_(True)
                t = time.perf_counter()
                f(x, targets).backward()
                x.grad.sum().item()
                return time.perf_counter() - t

            for i in range(r + (0 if r == 1 else 2)):
                if i % 2 == 0:
                    t_ce = one(ce)
                    t_fn = one(fn)
                else:
                    t_fn = one(fn)
                    t_ce = one(ce)
                if r == 1 or i >= 2:
                    tc.append(t_ce)
                    tl.append(t_fn)
            tc.sort()
            tl.sort()
            mc, ml = tc[len(tc) // 2], tl[len(tl) // 2]
            print(json.dumps({"impl": "pytorch", "loss": name, "shape": label, "threads": torch.get_num_threads(),
                              "median_s": ml, "ce_median_s": mc, "vs_ce": ml / mc}), flush=True)

if __name__ == "__main__":
    main()
