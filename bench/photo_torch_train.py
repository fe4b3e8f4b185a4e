#!/usr/bin/python3
"""The photo codec's training step in PyTorch, for a throughput side-by-side
with `aec-train --arch photo` (issue: "training throughput >= PyTorch's on the
same network").

    photo_torch_train.py [--n 96] [--m 128] [--batch 8] [--crop 128] [--steps 40]
                         [--threads 2] [--data DIR]

The same network as include/aec/photo.h (mbt2018-mean, Minnen et al. 2018):
g_a 4 x conv 5x5 stride 2 with GDN between, g_s 4 x transposed conv with
inverse GDN, h_a conv 3x3 / leaky ReLU / conv 5x5 s2 / leaky ReLU / conv 5x5
s2, h_s transposed 5x5 s2 / leaky ReLU / transposed 5x5 s2 (M -> 3M/2) /
leaky ReLU / conv 3x3 (-> 2M), 6 gain vectors; the same step as
src/train/photo_train.c: y = g_a(x) * gain, z~ = h_a(y) + u, (sigma, mu) =
h_s(z~), bits = Gaussian(y + u | mu, sigma) + factorized logistic(z~), y^ =
round(y - mu) + mu straight through, x^ = g_s(y^ / gain), loss = lambda *
255^2 * MSE + bpp, gradient clipping at norm 1, Adam. GDN's beta and gamma are
reparametrized as CompressAI does.

Crops come from --data (random 128-px crops of the photos, decoded once into
memory before timing), or random pixels without it. Timing covers only the
steps after 5 warm-up steps: forward, backward, clipping and Adam. Prints one
JSON line: steps per second and crops per second.
"""
import argparse, json, math, os, random, sys, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class GDN(nn.Module):
    def __init__(self, c, inverse=False):
        super().__init__()
        self.inverse = inverse
        self.pedestal = 2.0 ** -36
        self.beta = nn.Parameter(torch.sqrt(torch.ones(c) + self.pedestal))
        self.gamma = nn.Parameter(torch.sqrt(0.1 * torch.eye(c) + self.pedestal))

    def forward(self, x):
        beta = torch.clamp(self.beta, min=math.sqrt(1e-6 + self.pedestal)) ** 2 - self.pedestal
        gamma = torch.clamp(self.gamma, min=math.sqrt(self.pedestal)) ** 2 - self.pedestal
        c = x.shape[1]
        norm = F.conv2d(x * x, gamma.view(c, c, 1, 1), beta)
        norm = torch.sqrt(norm)
        return x * norm if self.inverse else x / norm


def conv(cin, cout, k=5, s=2):
    return nn.Conv2d(cin, cout, k, stride=s, padding=k // 2)


def deconv(cin, cout, k=5, s=2):
    return nn.ConvTranspose2d(cin, cout, k, stride=s, padding=k // 2, output_padding=s - 1)


class Photo(nn.Module):
    def __init__(self, n, m, levels):
        super().__init__()
        self.g_a = nn.Sequential(conv(3, n), GDN(n), conv(n, n), GDN(n), conv(n, n), GDN(n),
                                 conv(n, m))
        self.g_s = nn.Sequential(deconv(m, n), GDN(n, True), deconv(n, n), GDN(n, True),
                                 deconv(n, n), GDN(n, True), deconv(n, 3))
        self.h_a = nn.Sequential(conv(m, n, 3, 1), nn.LeakyReLU(0.01), conv(n, n),
                                 nn.LeakyReLU(0.01), conv(n, n))
        self.h_s = nn.Sequential(deconv(n, m), nn.LeakyReLU(0.01), deconv(m, m * 3 // 2),
                                 nn.LeakyReLU(0.01), conv(m * 3 // 2, 2 * m, 3, 1))
        self.gain = nn.Parameter(torch.ones(levels, m))
        self.inv_gain = nn.Parameter(torch.ones(levels, m))
        self.z_loc = nn.Parameter(torch.zeros(n))
        self.z_log_scale = nn.Parameter(torch.zeros(n))
        self.m = m

    def forward(self, x, level):
        y = self.g_a(x) * self.gain[level].view(1, -1, 1, 1)
        z = self.h_a(y)
        z_t = z + torch.empty_like(z).uniform_(-0.5, 0.5)
        ms = self.h_s(z_t)
        sigma = torch.clamp(ms[:, : self.m], min=0.11)
        mu = ms[:, self.m:]
        y_t = y + torch.empty_like(y).uniform_(-0.5, 0.5)
        g = torch.distributions.Normal(mu, sigma)
        ly = torch.clamp(g.cdf(y_t + 0.5) - g.cdf(y_t - 0.5), min=1e-9)
        loc = self.z_loc.view(1, -1, 1, 1)
        scale = torch.exp(self.z_log_scale).view(1, -1, 1, 1)
        lz = torch.clamp(torch.sigmoid((z_t + 0.5 - loc) / scale) -
                         torch.sigmoid((z_t - 0.5 - loc) / scale), min=1e-9)
        bits = -(torch.log2(ly).sum() + torch.log2(lz).sum())
        y_hat = (torch.round(y - mu) - (y - mu)).detach() + y
        x_hat = self.g_s(y_hat * self.inv_gain[level].view(1, -1, 1, 1))
        return x_hat, bits


def load_crops(folder, crop, count, rng):
    from PIL import Image
    files = sorted(f for f in os.listdir(folder) if f.lower().endswith((".jpg", ".jpeg", ".png")))
    out = []
    for f in files:
        if len(out) == count:
            break
        im = np.asarray(Image.open(os.path.join(folder, f)).convert("RGB"))
        h, w = im.shape[:2]
        if h < crop or w < crop:
            continue
        y, x = rng.randrange(h - crop + 1), rng.randrange(w - crop + 1)
        out.append(im[y:y + crop, x:x + crop].transpose(2, 0, 1).astype(np.float32) / 255.0)
    return torch.from_numpy(np.stack(out))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=96)
    ap.add_argument("--m", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--data", default="")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    rng = random.Random(1)
    lambdas = [0.0018, 0.0035, 0.0067, 0.013, 0.025, 0.0483]
    model = Photo(args.n, args.m, len(lambdas))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    pool = (load_crops(args.data, args.crop, 256, rng) if args.data else
            torch.rand(256, 3, args.crop, args.crop))
    warm, t0 = 5, None
    for step in range(warm + args.steps):
        if step == warm:
            t0 = time.perf_counter()
        idx = torch.randint(0, pool.shape[0], (args.batch,))
        x = pool[idx]
        level = rng.randrange(len(lambdas))
        x_hat, bits = model(x, level)
        loss = lambdas[level] * 255.0 ** 2 * F.mse_loss(x_hat, x) + bits / x[:, 0].numel()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    dt = time.perf_counter() - t0
    print(json.dumps({"framework": "pytorch " + torch.__version__, "threads": args.threads,
                      "n": args.n, "m": args.m, "batch": args.batch, "crop": args.crop,
                      "params": sum(p.numel() for p in model.parameters()),
                      "steps": args.steps, "seconds": round(dt, 3),
                      "steps_per_s": round(args.steps / dt, 3),
                      "crops_per_s": round(args.steps * args.batch / dt, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
