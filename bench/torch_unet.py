"""PyTorch twin of the kit's `UNET_PRESETS.small` UNet, timed for one training step.

The architecture mirrors lib/models/unet.ts + lib/models/transformer2d.ts + lib/nn/*
(diffusers' UNet2DConditionModel layout) layer for layer, so the parameter count is identical
(bench/train_step.ts asserts it):
  - timestep embedding: dim = channels[0], cos first (flip_sin_to_cos), freq shift 0, then
    Linear-SiLU-Linear to `time_embed` width
  - ResnetBlock2D: GroupNorm(eps 1e-5)-SiLU-conv3x3, + Linear(SiLU(temb)) per channel,
    GroupNorm-SiLU-conv3x3, 1x1 conv shortcut when channels change; no dropout, no output scale
  - Transformer2D: GroupNorm(eps 1e-6), linear proj_in, [LayerNorm + self-attn, LayerNorm +
    cross-attn (q/k/v without bias, to_out with bias), LayerNorm + GEGLU(tanh GELU) + Linear],
    linear proj_out, residual
  - stride-2 3x3 conv downsamplers, nearest-2x + conv3x3 upsamplers, skip concatenation
One step = forward + MSE loss against a random target + backward + AdamW (weight decay 0.01 on
tensors of rank >= 2 only, as the kit's AdamW). Layout is NCHW (PyTorch's native one).

Usage (Debian python3-torch; NOT the pyenv python on PATH):
  /usr/bin/python3 bench/torch_unet.py --batch 32 --steps 5 --warmup 2 --threads 2
Prints one JSON object on stdout: {"params", "ms_per_step", "times_ms", ...}.
"""

import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# The kit's UNET_PRESETS.small.
SMALL = dict(
    in_channels=4,
    out_channels=4,
    block_channels=[32, 64, 96],
    layers_per_block=1,
    attention_levels=[False, True, True],
    num_heads=4,
    context_dim=64,
    groups=16,
    time_embed_dim=128,
)


def timestep_embedding(t, dim, max_period=10000.0):
    """cos-first sinusoidal embedding, frequencies exp(-ln(P) i / half) (shift 0)."""
    half = dim // 2
    i = torch.arange(half, dtype=torch.float32, device=t.device)
    freqs = torch.exp(-math.log(max_period) * i / half)
    ang = t.float()[:, None] * freqs[None, :]
    emb = torch.cat([torch.cos(ang), torch.sin(ang)], dim=1)
    if dim % 2 == 1:
        emb = F.pad(emb, (0, 1))
    return emb


class ResnetBlock(nn.Module):
    def __init__(self, cin, cout, temb, groups):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=1e-5)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb, cout)
        self.norm2 = nn.GroupNorm(groups, cout, eps=1e-5)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        skip = self.conv_shortcut(x) if self.conv_shortcut is not None else x
        return skip + h


class Attention(nn.Module):
    def __init__(self, query_dim, heads, head_dim, context_dim=None):
        super().__init__()
        inner = heads * head_dim
        kv = context_dim or query_dim
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(kv, inner, bias=False)
        self.to_v = nn.Linear(kv, inner, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(inner, query_dim)])

    def forward(self, x, context=None):
        src = x if context is None else context
        b, tq, _ = x.shape
        tk = src.shape[1]
        h = self.heads
        q = self.to_q(x).view(b, tq, h, -1).transpose(1, 2)
        k = self.to_k(src).view(b, tk, h, -1).transpose(1, 2)
        v = self.to_v(src).view(b, tk, h, -1).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(q.shape[-1]))
        out = torch.matmul(scores.softmax(-1), v)  # [b, h, tq, d]
        out = out.transpose(1, 2).reshape(b, tq, -1)
        return self.to_out[0](out)


class GEGLU(nn.Module):
    def __init__(self, dim_in, dim_out):
        super().__init__()
        self.proj = nn.Linear(dim_in, 2 * dim_out)

    def forward(self, x):
        hidden, gate = self.proj(x).chunk(2, dim=-1)
        return hidden * F.gelu(gate, approximate="tanh")


class FeedForward(nn.Module):
    def __init__(self, dim, mult=4):
        super().__init__()
        # Index 1 is dropout in diffusers (no parameters); keep the indices of the names.
        self.net = nn.ModuleList([GEGLU(dim, dim * mult), nn.Identity(), nn.Linear(dim * mult, dim)])

    def forward(self, x):
        return self.net[2](self.net[0](x))


class TransformerBlock(nn.Module):
    def __init__(self, dim, heads, head_dim, context_dim):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.attn1 = Attention(dim, heads, head_dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.attn2 = Attention(dim, heads, head_dim, context_dim)
        self.norm3 = nn.LayerNorm(dim, eps=1e-5)
        self.ff = FeedForward(dim)

    def forward(self, h, context):
        h = h + self.attn1(self.norm1(h))
        h = h + self.attn2(self.norm2(h), context)
        return h + self.ff(self.norm3(h))


class Transformer2D(nn.Module):
    def __init__(self, channels, heads, context_dim, groups):
        super().__init__()
        head_dim = channels // heads
        inner = heads * head_dim
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, inner)
        self.transformer_blocks = nn.ModuleList(
            [TransformerBlock(inner, heads, head_dim, context_dim)]
        )
        self.proj_out = nn.Linear(inner, channels)

    def forward(self, x, context):
        b, c, hh, ww = x.shape
        h = self.norm(x).permute(0, 2, 3, 1).reshape(b, hh * ww, c)
        h = self.proj_in(h)
        for blk in self.transformer_blocks:
            h = blk(h, context)
        h = self.proj_out(h).reshape(b, hh, ww, c).permute(0, 3, 1, 2)
        return h + x


class UNet(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        ch = cfg["block_channels"]
        n = len(ch)
        temb = cfg["time_embed_dim"]
        g = cfg["groups"]
        lpb = cfg["layers_per_block"]
        att = cfg["attention_levels"]
        heads = cfg["num_heads"]
        ctx = cfg["context_dim"]
        self.cfg = cfg
        self.conv_in = nn.Conv2d(cfg["in_channels"], ch[0], 3, padding=1)
        self.time_linear_1 = nn.Linear(ch[0], temb)
        self.time_linear_2 = nn.Linear(temb, temb)
        self.down_res = nn.ModuleList()
        self.down_attn = nn.ModuleList()
        self.downsamplers = nn.ModuleList()
        skips = [ch[0]]
        prev = ch[0]
        for i in range(n):
            for _ in range(lpb):
                self.down_res.append(ResnetBlock(prev, ch[i], temb, g))
                prev = ch[i]
                self.down_attn.append(Transformer2D(ch[i], heads, ctx, g) if att[i] else nn.Identity())
                skips.append(ch[i])
            if i < n - 1:
                self.downsamplers.append(nn.Conv2d(ch[i], ch[i], 3, stride=2, padding=1))
                skips.append(ch[i])
        mid = ch[-1]
        self.mid_res0 = ResnetBlock(mid, mid, temb, g)
        self.mid_attn = Transformer2D(mid, heads, ctx, g)
        self.mid_res1 = ResnetBlock(mid, mid, temb, g)
        self.up_res = nn.ModuleList()
        self.up_attn = nn.ModuleList()
        self.upsamplers = nn.ModuleList()
        prev = mid
        for u in range(n):
            i = n - 1 - u
            for _ in range(lpb + 1):
                self.up_res.append(ResnetBlock(prev + skips.pop(), ch[i], temb, g))
                prev = ch[i]
                self.up_attn.append(Transformer2D(ch[i], heads, ctx, g) if att[i] else nn.Identity())
            if i > 0:
                self.upsamplers.append(nn.Conv2d(ch[i], ch[i], 3, padding=1))
        self.conv_norm_out = nn.GroupNorm(g, ch[0], eps=1e-5)
        self.conv_out = nn.Conv2d(ch[0], cfg["out_channels"], 3, padding=1)

    def forward(self, x, t, context):
        cfg = self.cfg
        ch = cfg["block_channels"]
        n = len(ch)
        lpb = cfg["layers_per_block"]
        att = cfg["attention_levels"]
        temb = self.time_linear_2(F.silu(self.time_linear_1(timestep_embedding(t, ch[0]))))

        def attn(mod, h):
            return mod(h, context) if isinstance(mod, Transformer2D) else h

        h = self.conv_in(x)
        skips = [h]
        r = 0
        for i in range(n):
            for _ in range(lpb):
                h = attn(self.down_attn[r], self.down_res[r](h, temb))
                r += 1
                skips.append(h)
            if i < n - 1:
                h = self.downsamplers[i](h)
                skips.append(h)
        h = self.mid_res1(self.mid_attn(self.mid_res0(h, temb), context), temb)
        r = 0
        for u in range(n):
            i = n - 1 - u
            for _ in range(lpb + 1):
                h = torch.cat([h, skips.pop()], dim=1)
                h = self.up_res[r](h, temb)
                if att[i]:
                    h = self.up_attn[r](h, context)
                r += 1
            if i > 0:
                h = F.interpolate(h, scale_factor=2.0, mode="nearest")
                h = self.upsamplers[u](h)
        return self.conv_out(F.silu(self.conv_norm_out(h)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=5, help="timed steps (median reported)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=8, help="latent height = width")
    ap.add_argument("--tokens", type=int, default=24, help="text context length")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (the peer of the kit's webgpu)")
    args = ap.parse_args()
    for name in ("batch", "steps", "threads", "size", "tokens"):
        if getattr(args, name) < 1:
            sys.exit(f"torch_unet.py: --{name} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        sys.exit(f"torch_unet.py: --warmup must be >= 0, got {args.warmup}")

    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("torch_unet.py: --device cuda but this torch sees no CUDA device")
    dev = torch.device(args.device)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cfg = SMALL
    model = UNet(cfg).to(dev)
    n_params = sum(p.numel() for p in model.parameters())
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
        lr=1e-4,
    )
    b, s = args.batch, args.size
    x = torch.randn(b, cfg["in_channels"], s, s).to(dev)
    target = torch.randn(b, cfg["out_channels"], s, s).to(dev)
    t = (torch.rand(b) * 999).to(dev)
    context = torch.randn(b, args.tokens, cfg["context_dim"]).to(dev)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(model(x, t, context), target)
        loss.backward()
        opt.step()
        # .item() waits for the device, so a CUDA step is timed to its end.
        return loss.item()

    losses = []
    for _ in range(args.warmup):
        losses.append(step())
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        losses.append(step())
        times.append((time.perf_counter() - t0) * 1e3)
    print(
        json.dumps(
            {
                "framework": "pytorch",
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "device": args.device
                + (f" ({torch.cuda.get_device_name(0)})" if args.device == "cuda" else ""),
                "params": n_params,
                "batch": b,
                "ms_per_step": statistics.median(times),
                "times_ms": [round(v, 3) for v in times],
                "losses": losses,
                "blas": torch.__config__.show().count("BLAS_INFO=open") and "openblas" or "other",
                "mkldnn": torch.backends.mkldnn.is_available(),
                "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")},
            }
        )
    )


if __name__ == "__main__":
    main()
