#!/usr/bin/python3
"""The reference experiment in PyTorch, for a side-by-side with aec-train.

Same model (Flatten, BatchNorm1d(momentum 0.01, eps 1e-3), Linear 6912->3456 ReLU,
Linear 3456->1728 ReLU, BatchNorm1d, Linear 1728->3456 ReLU, Linear 3456->6912
Sigmoid), Glorot-uniform init, Adam(lr, betas 0.9/0.999, eps 1e-7), MSE, the same
files (first --limit by sorted path), the same train/validation split as
aec-train (its splitmix64 Fisher-Yates shuffle, replayed here), images resized
to 48x48 with an antialiasing filter. Prints one JSON object per epoch.
Timing covers the training steps of each epoch (as aec-train's "seconds").
"""
import argparse, json, os, sys, time

import numpy as np
import torch
from PIL import Image

MASK = (1 << 64) - 1


def splitmix(state):
    state = (state + 0x9E3779B97F4A7C15) & MASK
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return state, z ^ (z >> 31)


def shuffle(a, state):
    for i in range(len(a), 1, -1):
        state, r = splitmix(state)
        j = r % i
        a[i - 1], a[j] = a[j], a[i - 1]
    return state


def list_files(root):
    out = []
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        out += [os.path.join(dirpath, f) for f in files if not f.startswith(".")]
    return sorted(out)


def load(paths, size):
    x = np.empty((len(paths), 3, size, size), dtype=np.uint8)
    for i, p in enumerate(paths):
        im = Image.open(p).convert("RGB").resize((size, size), Image.BICUBIC, reducing_gap=None)
        x[i] = np.asarray(im).transpose(2, 0, 1)
    return x


def model(size):
    d = 3 * size * size
    m = torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.BatchNorm1d(d, eps=1e-3, momentum=0.01),
        torch.nn.Linear(d, d // 2), torch.nn.ReLU(),
        torch.nn.Linear(d // 2, d // 4), torch.nn.ReLU(),
        torch.nn.BatchNorm1d(d // 4, eps=1e-3, momentum=0.01),
        torch.nn.Linear(d // 4, d // 2), torch.nn.ReLU(),
        torch.nn.Linear(d // 2, d), torch.nn.Sigmoid(),
        torch.nn.Unflatten(1, (3, size, size)))
    for layer in m:
        if isinstance(layer, torch.nn.Linear):
            torch.nn.init.xavier_uniform_(layer.weight)
            torch.nn.init.zeros_(layer.bias)
    return m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--limit", type=int, default=8192)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=0.001)
    ap.add_argument("--val", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=48)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    paths = list_files(a.data)[: a.limit]
    t0 = time.time()
    data = load(paths, a.size)
    print(f"loaded {len(paths)} images in {time.time() - t0:.1f} s", file=sys.stderr)
    order = list(range(len(paths)))
    state = shuffle(order, a.seed)
    nval = int(len(order) * a.val)
    train_idx, val_idx = order[: len(order) - nval], order[len(order) - nval:]
    x_val = torch.from_numpy(data[val_idx]).float() / 255.0
    m = model(a.size)
    opt = torch.optim.Adam(m.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-7)
    loss_fn = torch.nn.MSELoss()
    for epoch in range(1, a.epochs + 1):
        state = shuffle(train_idx, state)
        m.train()
        t0 = time.time()
        total = 0.0
        for s in range(0, len(train_idx), a.batch):
            xb = torch.from_numpy(data[train_idx[s:s + a.batch]]).float() / 255.0
            opt.zero_grad()
            loss = loss_fn(m(xb), xb)
            loss.backward()
            opt.step()
            total += loss.item() * xb.shape[0]
        secs = time.time() - t0
        m.eval()
        with torch.no_grad():
            val = float(((m(x_val) - x_val) ** 2).mean())
        print(json.dumps({"epoch": epoch, "loss": total / len(train_idx), "val_mse": val,
                          "seconds": round(secs, 3),
                          "images_per_s": round(len(train_idx) / secs, 1)}), flush=True)


if __name__ == "__main__":
    main()
