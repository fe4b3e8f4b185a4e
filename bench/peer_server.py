#!/usr/bin/python3
"""The peer service for bench/serve_bench.sh: what a Python user would write
instead of aecd. FastAPI + uvicorn + PyTorch, serving the same weights, read
from our safetensors model file.

    /usr/bin/python3 bench/peer_server.py MODEL [--port N] [--port-file FILE]
                                         [--threads 2] [--host 127.0.0.1]

Debian packages: python3-fastapi python3-uvicorn python3-torch python3-numpy
python3-pil (and, optionally, python3-uvloop python3-httptools: uvicorn's
"standard" extras, used when present).

The model file is parsed here with struct/json/numpy (no safetensors package):
the "aec.layers" metadata becomes the equivalent torch nn.Sequential, the
"{i}.weight/bias/running_mean/running_var" tensors its state_dict, in eval
mode. Encoder = layers 0..aec.latent, decoder = the rest.

Endpoints (the same paths and JSON shapes as aecd's):
  POST /encode   raw image bytes -> {"model","dim","dtype","latent":[...]}
  POST /decode   JSON {"latent":[...]} -> PNG at the model's input size
  POST /anomaly  raw image bytes -> {"model","score","mse",...} (score = the
                 raw reconstruction MSE; no calibration)
  GET  /healthz  {"status":"ok","in_flight":N} (N: model requests in progress)
Images: PIL decodes, alpha is composited over white, then RGB (or L for a
1-channel model), resized to the model input with PIL's antialiasing bicubic
filter when the size differs, planar CHW / 255.

One uvicorn worker process (workers=1). The endpoints are `async def` that
hand the blocking work (decode, torch, PNG) to Starlette's thread pool, the
usual FastAPI pattern; torch.set_num_threads(--threads) bounds each
inference's intra-op threads. No batching. The access log is off by default
(--access-log turns it on). Listens on loopback by default; --port 0 picks a
free port, written to --port-file once the server is accepting.
"""
import argparse
import asyncio
import hashlib
import io
import json
import os
import socket
import struct
import sys

import numpy as np
import torch
from PIL import Image

DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "F64": np.float64}


def read_safetensors(path):
    """-> (tensors: {name: np.ndarray}, metadata: {str: str}, raw file bytes)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {}) or {}
    base = 8 + n
    tensors = {}
    for name, t in header.items():
        if t["dtype"] not in DTYPES:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {t['dtype']}")
        b, e = t["data_offsets"]
        arr = np.frombuffer(raw, dtype=DTYPES[t["dtype"]], count=(e - b) // np.dtype(DTYPES[t["dtype"]]).itemsize,
                            offset=base + b)
        tensors[name] = arr.reshape(t["shape"]).copy()
    return tensors, meta, raw


def build_sequential(layers, in_shape):
    """aec.layers (list of dicts) -> torch nn.Sequential; in_shape = (c, h, w)."""
    mods = []
    flat = False
    for i, l in enumerate(layers):
        t = l["type"]
        if t == "flatten":
            mods.append(torch.nn.Flatten())
            flat = True
        elif t == "unflatten":
            mods.append(torch.nn.Unflatten(1, tuple(l["shape"])))
            flat = False
        elif t == "linear":
            mods.append(torch.nn.Linear(l["in"], l["out"]))
        elif t == "batchnorm":
            bn = torch.nn.BatchNorm1d if flat else torch.nn.BatchNorm2d
            mods.append(bn(l["features"], eps=l.get("eps", 1e-5), momentum=l.get("momentum", 0.1)))
        elif t == "relu":
            mods.append(torch.nn.ReLU())
        elif t == "sigmoid":
            mods.append(torch.nn.Sigmoid())
        elif t == "conv2d":
            mods.append(torch.nn.Conv2d(l["in"], l["out"], l["kernel"], stride=l.get("stride", 1),
                                        padding=l.get("padding", 0)))
        elif t == "conv_transpose2d":
            mods.append(torch.nn.ConvTranspose2d(l["in"], l["out"], l["kernel"],
                                                 stride=l.get("stride", 1),
                                                 padding=l.get("padding", 0),
                                                 output_padding=l.get("output_padding", 0)))
        else:
            raise ValueError(f"layer {i}: unknown type {t!r}")
    return torch.nn.Sequential(*mods)


class Model:
    def __init__(self, path):
        tensors, meta, raw = read_safetensors(path)
        self.layers = json.loads(meta["aec.layers"])
        self.latent_index = int(meta["aec.latent"])
        inp = json.loads(meta["aec.input"])
        self.c, self.h, self.w = inp["channels"], inp["height"], inp["width"]
        self.id = "peer-" + hashlib.blake2b(raw, digest_size=8).hexdigest()
        self.net = build_sequential(self.layers, (self.c, self.h, self.w))
        state = {k: torch.from_numpy(v.astype(np.float32) if v.dtype == np.float16 else v)
                 for k, v in tensors.items() if not k.startswith("aec.")}
        for k, v in list(state.items()):
            if k.endswith("num_batches_tracked"):
                state[k] = v.reshape(())
        missing, unexpected = self.net.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise ValueError(f"{path}: missing tensors {missing}, unexpected {unexpected}")
        self.net.eval()
        self.encoder = self.net[:self.latent_index + 1]
        self.decoder = self.net[self.latent_index + 1:]
        with torch.inference_mode():
            z = self.encoder(torch.zeros(1, self.c, self.h, self.w))
        self.latent_shape = tuple(z.shape[1:])
        self.latent_dim = int(z[0].numel())

    def tensor(self, data):
        """Image bytes -> [1, c, h, w] float tensor in [0, 1]."""
        im = Image.open(io.BytesIO(data))
        im.load()
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            im = im.convert("RGBA")
            bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(bg, im)
        im = im.convert("L" if self.c == 1 else "RGB")
        if im.size != (self.w, self.h):
            im = im.resize((self.w, self.h), Image.BICUBIC, reducing_gap=None)
        a = np.asarray(im, dtype=np.float32) / 255.0
        a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
        return torch.from_numpy(np.ascontiguousarray(a)).unsqueeze(0)

    def encode(self, data):
        with torch.inference_mode():
            z = self.encoder(self.tensor(data))
        return {"model": self.id, "dim": self.latent_dim, "dtype": "f32",
                "latent": z.reshape(-1).tolist()}

    def decode(self, latent):
        z = torch.tensor(latent, dtype=torch.float32).reshape((1,) + self.latent_shape)
        with torch.inference_mode():
            y = self.decoder(z)[0]
        a = (y.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).numpy()
        im = Image.fromarray(a[0] if self.c == 1 else a.transpose(1, 2, 0))
        out = io.BytesIO()
        im.save(out, format="PNG")
        return out.getvalue()

    def anomaly(self, data):
        x = self.tensor(data)
        with torch.inference_mode():
            mse = float(torch.mean((self.net(x) - x) ** 2))
        return {"model": self.id, "score": mse, "mse": mse, "baseline_mse": None,
                "threshold": None, "anomalous": None, "percentile": None,
                "normalized": None, "calibrated": False}


def make_app(model):
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.responses import JSONResponse, Response
    from starlette.concurrency import run_in_threadpool

    app = FastAPI(title="aec peer (FastAPI + PyTorch)")

    def bad(status, code, msg):
        return JSONResponse({"error": {"code": code, "message": msg}}, status_code=status)

    # Requests whose work has not finished (a client that hangs up does not
    # stop the thread-pool work); serve_bench.sh waits for 0 between loads.
    state = {"in_flight": 0}

    async def work(fn, *args):
        state["in_flight"] += 1
        try:
            return await run_in_threadpool(fn, *args)
        finally:
            state["in_flight"] -= 1

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok", "in_flight": state["in_flight"]}

    @app.post("/encode")
    async def encode(request: Request):
        data = await request.body()
        if not data:
            return bad(400, "empty_body", "send the image bytes as the body")
        try:
            return await work(model.encode, data)
        except (OSError, ValueError) as e:  # PIL's UnidentifiedImageError is an OSError
            return bad(415, "invalid_image", f"not a readable image: {e}")

    @app.post("/anomaly")
    async def anomaly(request: Request):
        data = await request.body()
        if not data:
            return bad(400, "empty_body", "send the image bytes as the body")
        try:
            return await work(model.anomaly, data)
        except (OSError, ValueError) as e:
            return bad(415, "invalid_image", f"not a readable image: {e}")

    @app.post("/decode")
    async def decode(request: Request):
        try:
            body = json.loads(await request.body())
            latent = body["latent"]
            if not isinstance(latent, list) or len(latent) != model.latent_dim:
                raise ValueError(f"\"latent\" must be a list of {model.latent_dim} numbers")
        except (ValueError, KeyError, TypeError) as e:
            return bad(422, "invalid_latent", str(e))
        png = await work(model.decode, latent)
        return Response(png, media_type="image/png")

    return app


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8081, help="0 picks a free port")
    ap.add_argument("--port-file", help="write the bound port here once accepting")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("PEER_THREADS", "2")),
                    help="torch.set_num_threads (default 2, or $PEER_THREADS)")
    ap.add_argument("--access-log", action="store_true")
    args = ap.parse_args()

    import uvicorn

    torch.set_num_threads(args.threads)
    model = Model(args.model)
    app = make_app(model)

    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    port = sock.getsockname()[1]

    @app.on_event("startup")
    async def announce():
        if args.port_file:
            tmp = args.port_file + ".tmp"
            with open(tmp, "w") as f:
                f.write(f"{port}\n")
            os.replace(tmp, args.port_file)
        print(f"peer: model {args.model} ({model.id}), input {model.c}x{model.h}x{model.w}, "
              f"latent {model.latent_dim} {list(model.latent_shape)}, torch {torch.__version__} "
              f"threads {torch.get_num_threads()}, listening on {args.host}:{port} "
              f"(uvicorn {uvicorn.__version__}, 1 worker, loop {config.loop}, http {config.http})",
              file=sys.stderr, flush=True)

    config = uvicorn.Config(app, workers=1, log_level="warning", access_log=args.access_log,
                            loop="auto", http="auto")
    # What "auto" resolves to: uvloop / httptools when installed (uvicorn[standard]).
    try:
        import uvloop  # noqa: F401
        config.loop = "uvloop"
    except ImportError:
        config.loop = "asyncio"
    try:
        import httptools  # noqa: F401
        config.http = "httptools"
    except ImportError:
        config.http = "h11"
    server = uvicorn.Server(config)
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
