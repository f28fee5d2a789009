#!/usr/bin/env python3
"""PyTorch peer of the kit's latent cache (bench/latent_cache.ts), and the bench's data.

  make SHARDS N SEED [FORMAT]   write N JPEG (or FORMAT png) records (random sizes 300-520 x 260-480, smooth
                                random pictures + noise, captions the tiny tokenizer spells) in
                                4 img2dataset-style tars: key.jpg + key.txt
  export DIR ENCODER            write ENCODER's VAE encoder to DIR/vae_encoder/model.onnx
                                (torch.onnx.export; sample -> latent_parameters) + config.json
  run SHARDS ENCODER RES BATCH THREADS
                                the cache's work in PyTorch: read the tars, PIL decode, Resize(RES,
                                LANCZOS) + CenterCrop(RES) (torchvision's formulas on Pillow),
                                ToTensor + Normalize(0.5, 0.5), encode in batches of BATCH with
                                torch.no_grad(), the posterior's mean and std times 0.18215, and
                                the captions through the text encoder (77 tokens); prints one
                                JSON line: images, seconds, the first record's scaled NHWC mean

ENCODER is "tiny" (tests/fixtures/make_tiny_sd.py's VaeEncoder, built in that script's seed
order, so its weights are the fp32_scalar_t fixture's) or "sdlike" (diffusers' AutoencoderKL
Encoder layout scaled down: conv_in, per level one ResNet block (GroupNorm 32 + SiLU + 3x3 convs)
and a stride-2 downsample except the last, a mid block ResNet + single-head attention + ResNet,
GroupNorm + SiLU + conv_out to 2x4 channels, then quant_conv 1x1; channels 32, 64, 128, 128).
The text encoder is always the fixture's.

Needs python3-torch, python3-numpy, python3-pil (Debian).
"""

import importlib.util
import io
import json
import math
import os
import sys
import tarfile
import time

import numpy as np
import torch
from PIL import Image
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE_SCRIPT = os.path.join(HERE, "..", "tests", "fixtures", "make_tiny_sd.py")
CAPTIONS = ["a red circle", "a circle", "red circle", "a red red circle"]


def fixture():
    spec = importlib.util.spec_from_file_location("make_tiny_sd", FIXTURE_SCRIPT)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


def fixture_models():
    """The fp32_scalar_t fixture's tokenizer, text encoder and VAE encoder (its seed order)."""
    m = fixture()
    torch.manual_seed(m.SEED)
    vocab, _ = m.make_tokenizer()
    text = m.TextEncoder(len(vocab)).eval()
    m.UNet(True)
    m.VaeDecoder()
    enc = m.VaeEncoder(True).eval()
    return m, vocab, text, enc


class ResnetBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.norm1 = nn.GroupNorm(32, cin, eps=1e-6)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = nn.GroupNorm(32, cout, eps=1e-6)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x):
        h = self.conv1(torch.nn.functional.silu(self.norm1(x)))
        h = self.conv2(torch.nn.functional.silu(self.norm2(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.norm = nn.GroupNorm(32, c, eps=1e-6)
        self.q, self.k, self.v, self.o = (nn.Linear(c, c) for _ in range(4))

    def forward(self, x):
        n, c, h, w = x.shape
        s = self.norm(x).flatten(2).transpose(1, 2)
        a = torch.softmax(self.q(s) @ self.k(s).transpose(1, 2) / math.sqrt(c), dim=-1)
        return x + self.o(a @ self.v(s)).transpose(1, 2).reshape(n, c, h, w)


class SdLikeEncoder(nn.Module):
    def __init__(self, channels=(32, 64, 128, 128), latent=4):
        super().__init__()
        self.conv_in = nn.Conv2d(3, channels[0], 3, padding=1)
        blocks, cin = [], channels[0]
        for i, c in enumerate(channels):
            blocks.append(ResnetBlock(cin, c))
            if i < len(channels) - 1:
                blocks.append(nn.Conv2d(c, c, 3, stride=2))  # after diffusers' (0, 1, 0, 1) pad
            cin = c
        self.blocks = nn.ModuleList(blocks)
        self.mid = nn.ModuleList([ResnetBlock(cin, cin), Attention(cin), ResnetBlock(cin, cin)])
        self.norm_out = nn.GroupNorm(32, cin, eps=1e-6)
        self.conv_out = nn.Conv2d(cin, 2 * latent, 3, padding=1)
        self.quant_conv = nn.Conv2d(2 * latent, 2 * latent, 1)

    def forward(self, sample):
        h = self.conv_in(sample)
        for b in self.blocks:
            if isinstance(b, nn.Conv2d):
                h = b(torch.nn.functional.pad(h, (0, 1, 0, 1)))
            else:
                h = b(h)
        for b in self.mid:
            h = b(h)
        h = self.conv_out(torch.nn.functional.silu(self.norm_out(h)))
        return self.quant_conv(h)


def encoder(kind):
    if kind == "tiny":
        return fixture_models()[3]
    torch.manual_seed(7)
    return SdLikeEncoder().eval()


def make(shards, n, seed, fmt="jpg"):
    rng = np.random.default_rng(seed)
    os.makedirs(shards, exist_ok=True)
    per = math.ceil(n / 4)
    for s in range(4):
        with tarfile.open(os.path.join(shards, f"{s:05d}.tar"), "w") as tar:
            for j in range(s * per, min(n, (s + 1) * per)):
                w, h = int(rng.integers(300, 521)), int(rng.integers(260, 481))
                low = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
                pic = np.asarray(Image.fromarray(low).resize((w, h), Image.BILINEAR), np.float32)
                pic = np.clip(pic + rng.normal(0, 12, pic.shape), 0, 255).astype(np.uint8)
                buf = io.BytesIO()
                if fmt == "png":
                    Image.fromarray(pic).save(buf, format="PNG")
                else:
                    Image.fromarray(pic).save(buf, format="JPEG", quality=90)
                for name, data in ((f"{j:06d}.{fmt}", buf.getvalue()),
                                   (f"{j:06d}.txt", CAPTIONS[j % len(CAPTIONS)].encode())):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))


def export(out, kind):
    enc = encoder(kind)
    os.makedirs(os.path.join(out, "vae_encoder"), exist_ok=True)
    kw = {"dynamo": False} if "dynamo" in torch.onnx.export.__code__.co_varnames else {}
    with torch.no_grad():
        torch.onnx.export(
            enc, (torch.randn(1, 3, 64, 64),), os.path.join(out, "vae_encoder", "model.onnx"),
            input_names=["sample"], output_names=["latent_parameters"],
            dynamic_axes={"sample": {0: "batch_size", 2: "height", 3: "width"},
                          "latent_parameters": {0: "batch_size", 2: "height", 3: "width"}},
            opset_version=14, **kw,
        )
    with open(os.path.join(out, "vae_encoder", "config.json"), "w") as f:
        json.dump({"latent_channels": 4, "block_out_channels": [32, 32, 32, 32],
                   "scaling_factor": 0.18215}, f)


def records(shards):
    for name in sorted(os.listdir(shards)):
        if not name.endswith(".tar"):
            continue
        with tarfile.open(os.path.join(shards, name)) as tar:
            group = {}
            for m in tar.getmembers():
                key, ext = m.name.split(".", 1)
                group.setdefault(key, {})[ext] = tar.extractfile(m).read()
            for key in sorted(group):
                g = group[key]
                yield g.get("jpg", g.get("png")), g["txt"].decode().strip()


def square(img, size):
    w, h = img.size
    nw, nh = (size, int(size * h / w)) if w <= h else (int(size * w / h), size)
    img = img.resize((nw, nh), Image.LANCZOS)
    left, top = int(round((nw - size) / 2.0)), int(round((nh - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def run(shards, kind, res, batch, threads):
    torch.set_num_threads(threads)
    m, vocab, text, _ = fixture_models()
    enc = encoder(kind)
    t0 = time.perf_counter()
    n, first, pending, caps = 0, None, [], []

    def flush():
        nonlocal first, pending, caps
        x = torch.from_numpy(np.stack(pending))
        with torch.no_grad():
            p = enc(x)
            mean = p[:, :4] * 0.18215
            _std = torch.exp(0.5 * p[:, 4:].clamp(-30, 20)) * 0.18215
            ids = torch.tensor([m.encode(vocab, c.split()) for c in caps], dtype=torch.int32)
            text(ids)
        if first is None:
            first = mean[0].permute(1, 2, 0).reshape(-1)[:64].tolist()
        pending, caps = [], []

    for data, cap in records(shards):
        img = square(Image.open(io.BytesIO(data)).convert("RGB"), res)
        x = np.asarray(img, np.float32).transpose(2, 0, 1) / 255.0
        pending.append((x - 0.5) / 0.5)
        caps.append(cap)
        n += 1
        if len(pending) >= batch:
            flush()
    if pending:
        flush()
    print(json.dumps({"images": n, "seconds": time.perf_counter() - t0, "first_mean": first}))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "make":
        make(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), *sys.argv[5:6])
    elif cmd == "export":
        export(sys.argv[2], sys.argv[3])
    elif cmd == "run":
        run(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))
    else:
        sys.exit(f"unknown command {cmd}; see the docstring")
