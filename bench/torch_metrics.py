"""PyTorch implementations of the metric sets that `mbls-metrics` computes, for the
side-by-side benchmark (bench/compare.sh). Two versions of each:

- "reference": written the way the MbLS reference computes them (a masked reduction per bin,
  and per class and bin for classwise ECE; numpy interp for adaptive edges);
- "vectorised": the fastest straightforward PyTorch we could write (bucketize + bincount).

Classification set on N x C logits: ECE, adaptive ECE, classwise ECE, NLL, top-1, top-5,
Brier. Segmentation set on B x C x H x W: per-class intersection/union/areas (mIoU etc.) and
pixel-level NLL/ECE/AECE/CECE without ignore (255) and background pixels.

Prints one JSON line per (set, version) with the median seconds of --repeats runs.
"""
import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F

NB = 15


def synth(n, c, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, c, (n,), generator=g)
    logits = torch.rand(n, c, generator=g) * 6 - 3
    logits[torch.arange(n), labels] += 2.5
    return logits.contiguous(), labels


# ---------------------------------------------------------------- reference style
def ece_ref(conf, acc, lowers, uppers):
    ece = torch.zeros(1)
    for lo, hi in zip(lowers, uppers):
        in_bin = conf.gt(lo.item()) * conf.le(hi.item())
        prop = in_bin.float().mean()
        if prop.item() > 0:
            ece += torch.abs(conf[in_bin].mean() - acc[in_bin].float().mean()) * prop
    return ece.item()


def metrics_reference(logits, labels):
    edges = torch.linspace(0, 1, NB + 1)
    lowers, uppers = edges[:-1], edges[1:]
    p = F.softmax(logits, dim=1)
    conf, pred = torch.max(p, 1)
    acc = pred.eq(labels)
    out = {"ece": ece_ref(conf, acc, lowers, uppers)}
    npt = conf.numel()
    sorted_conf = np.sort(conf.numpy())
    aedges = np.interp(np.linspace(0, npt, NB + 1), np.arange(npt), sorted_conf)
    out["aece"] = ece_ref(conf, acc, torch.from_numpy(aedges[:-1]), torch.from_numpy(aedges[1:]))
    nclass = int(labels.max().item()) + 1
    sce = []
    for k in range(nclass):
        ck = p[:, k]
        lk = labels.eq(k)
        s = torch.zeros(1)
        for lo, hi in zip(lowers, uppers):
            in_bin = ck.gt(lo.item()) * ck.le(hi.item())
            prop = in_bin.float().mean()
            if prop.item() > 0:
                s += torch.abs(ck[in_bin].mean() - lk[in_bin].float().mean()) * prop
        sce.append(s)
    out["cece"] = torch.cat(sce).mean().item()
    out["nll"] = F.cross_entropy(logits, labels).item()
    top5 = p.topk(5, dim=1).indices
    out["acc"] = (top5[:, 0] == labels).float().mean().item()
    out["acc_5"] = (top5 == labels[:, None]).any(1).float().mean().item()
    out["brier"] = ((p - F.one_hot(labels, p.shape[1]).float()) ** 2).sum(1).mean().item()
    return out


# ---------------------------------------------------------------- vectorised
def binned_gap(values, hits, bins, nb, weights_n):
    valid = bins >= 0
    b = bins[valid]
    cnt = torch.bincount(b, minlength=nb).double()
    s = torch.bincount(b, weights=values[valid].double(), minlength=nb)
    h = torch.bincount(b, weights=hits[valid].double(), minlength=nb)
    nz = cnt > 0
    return (torch.abs(s[nz] / cnt[nz] - h[nz] / cnt[nz]) * cnt[nz] / weights_n).sum().item()


def metrics_vectorised(logits, labels):
    n, c = logits.shape
    edges = torch.linspace(0, 1, NB + 1)
    p = F.softmax(logits, dim=1)
    conf, pred = torch.max(p, 1)
    acc = pred.eq(labels)
    # (lower, upper]: bucketize with right=False gives the index of the first edge >= v
    b = torch.bucketize(conf, edges) - 1
    b[conf <= 0] = -1
    out = {"ece": binned_gap(conf, acc, b, NB, n)}
    sc, _ = torch.sort(conf)
    pos = torch.linspace(0, n, NB + 1, dtype=torch.float64)
    j = pos.floor().long().clamp(max=n - 1)
    j1 = (j + 1).clamp(max=n - 1)
    sc64 = sc.double()
    aedges = (sc64[j] + (sc64[j1] - sc64[j]) * (pos - j)).float()
    aedges[-1] = sc[-1]
    ab = torch.bucketize(conf, aedges) - 1
    ab[conf <= aedges[0]] = -1
    out["aece"] = binned_gap(conf, acc, ab, NB, n)
    pb = torch.bucketize(p, edges) - 1  # n x c
    valid = pb >= 0
    cls = torch.arange(c).expand(n, c)
    flat = (cls * NB + pb)[valid]
    cnt = torch.bincount(flat, minlength=c * NB).double().view(c, NB)
    s = torch.bincount(flat, weights=p[valid].double(), minlength=c * NB).view(c, NB)
    hit = (cls == labels[:, None])[valid].double()
    h = torch.bincount(flat, weights=hit, minlength=c * NB).view(c, NB)
    nclass = int(labels.max().item()) + 1
    gap = torch.where(cnt > 0, torch.abs(s / cnt.clamp(min=1) - h / cnt.clamp(min=1)) * cnt / n, torch.zeros(()))
    out["cece"] = gap[:nclass].sum(1).mean().item()
    out["nll"] = F.cross_entropy(logits, labels).item()
    top5 = p.topk(5, dim=1).indices
    out["acc"] = (top5[:, 0] == labels).float().mean().item()
    out["acc_5"] = (top5 == labels[:, None]).any(1).float().mean().item()
    out["brier"] = (p.pow(2).sum(1) - 2 * p.gather(1, labels[:, None]).squeeze(1) + 1).mean().item()
    return out


# ---------------------------------------------------------------- segmentation
def seg_set(logits, labels, calib):
    b, c, h, w = logits.shape
    pred = logits.argmax(1)
    mask = labels != 255
    pl, ll = pred[mask], labels[mask]
    inter = torch.bincount(ll[pl == ll], minlength=c)
    area_p = torch.bincount(pl, minlength=c)
    area_l = torch.bincount(ll, minlength=c)
    union = area_p + area_l - inter
    miou = (inter[1:].double() / (union[1:].double() + 1e-10)).mean().item()
    x = logits.permute(0, 2, 3, 1).reshape(-1, c)
    y = labels.reshape(-1)
    keep = (y != 255) & (y != 0)
    x, y = x[keep], y[keep]
    out = calib(x, y)
    out["miou"] = miou
    return out


def timeit(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--which", default="all", choices=["all", "classification", "segmentation"])
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument("--save", metavar="DIR", help="write the inputs as .npy for the Rust side")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    versions = [("vectorised", metrics_vectorised)]
    if not a.skip_reference:
        versions.insert(0, ("reference", metrics_reference))
    if a.which in ("all", "classification"):
        logits, labels = synth(a.n, a.classes)
        if a.save:
            np.save(f"{a.save}/cls_logits.npy", logits.numpy())
            np.save(f"{a.save}/cls_labels.npy", labels.numpy())
        for name, fn in versions:
            vals = fn(logits, labels)
            med, times = timeit(lambda: fn(logits, labels), a.repeats)
            print(json.dumps({"set": f"classification {a.n}x{a.classes}", "impl": f"pytorch-{name}",
                              "median_s": med, "runs": times, "threads": a.threads, "values": vals}), flush=True)
        del logits, labels
    if a.which in ("all", "segmentation"):
        b, c, h, w = 8, 21, 512, 512
        flat, lab = synth(b * h * w, c, seed=1)
        logits = flat.view(b, h, w, c).permute(0, 3, 1, 2).contiguous()
        labels = lab.view(b, h, w).clone()
        labels.view(-1)[3::10] = 255
        if a.save:
            np.save(f"{a.save}/seg_logits.npy", logits.numpy())
            np.save(f"{a.save}/seg_labels.npy", labels.numpy())
        for name, fn in versions:
            vals = seg_set(logits, labels, fn)
            med, times = timeit(lambda: seg_set(logits, labels, fn), a.repeats)
            print(json.dumps({"set": "segmentation 8x21x512x512", "impl": f"pytorch-{name}",
                              "median_s": med, "runs": times, "threads": a.threads, "values": vals}), flush=True)


if __name__ == "__main__":
    main()
