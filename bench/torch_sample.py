"""PyTorch eager peer of the kit's sampling loop, timed for bench/sample.ts.

The UNet is bench/torch_unet.py's (the kit's architecture layer for layer), built from the kit's
config and loaded with the kit's own weights, so both sides compute the same function: the
weights file is a safetensors file written by the kit (dotted diffusers names, tfjs layouts:
conv HWIO, linear [in, out]) and is mapped here onto torch_unet's module names and layouts
(conv OIHW, linear [out, in]). The same file holds the initial noise `x` ([batch, h, w, c],
NHWC as the kit's sampler state) and the text context `context` ([2 * batch, T, D]: the
unconditional rows, then the conditional ones).

The sampler is DPM-Solver++(2M) as lib/diffusion/dpmpp_2m.ts (diffusers'
DPMSolverMultistepScheduler defaults): "linspace" integer timesteps over steps + 1 points with
the last dropped, sigmas from a float64 scaled-linear beta schedule, data prediction, first order
on the first and the final step (to sigma 0), state in float64 with float32 model inputs.
Classifier-free guidance runs the unconditional and conditional halves as one batch and combines
them in float64, as lib/diffusion/guidance.ts.

Usage (Debian python3-torch; NOT the pyenv python on PATH):
  /usr/bin/python3 bench/torch_sample.py --job job.json --tensors in.safetensors \\
      --out latents.f32 --threads 2 --runs 3 --warmup 1
`job.json`: {"unet": <kit UnetConfig>, "schedule": {"num_train_timesteps", "beta_start",
"beta_end", "beta_schedule", "prediction_type"}, "steps", "guidance"}.
Prints one JSON object on stdout (params, timesteps, loop_ms per run, median, UNet-call ms);
writes the final latents of the last run to --out as raw little-endian float32, NHWC.
"""

import argparse
import json
import math
import os
import statistics
import struct
import sys
import time

import torch

sys.dont_write_bytecode = True  # no bench/__pycache__ in the working tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_unet import UNet  # noqa: E402  (same folder, after the path fix)


def read_safetensors(path):
    """name -> float32 tensor; only F32 entries (what the kit writes for this bench)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            sys.exit(f"torch_sample.py: {path}: tensor {name} is {info['dtype']}, expected F32")
        a, b = info["data_offsets"]
        out[name] = torch.frombuffer(bytearray(data[base + a : base + b]), dtype=torch.float32).reshape(
            info["shape"]
        )
    return out


def torch_config(u):
    """torch_unet's config dict from the kit's UnetConfig (camelCase JSON)."""
    if not u.get("useLinearProjection", False):
        sys.exit("torch_sample.py: torch_unet.py implements linear proj_in/proj_out only")
    ch = u["blockChannels"]
    heads = u.get("numHeads")
    if heads is None:
        sys.exit("torch_sample.py: the kit config must give numHeads (headDim is not mapped)")
    if u.get("transformerDepth", 1) != 1:
        sys.exit("torch_sample.py: torch_unet.py has one transformer block per spatial transformer")
    return dict(
        in_channels=u["inChannels"],
        out_channels=u["outChannels"],
        block_channels=ch,
        layers_per_block=u["layersPerBlock"],
        attention_levels=u["attentionLevels"],
        num_heads=heads,
        context_dim=u["contextDim"],
        groups=u["groupNormGroups"],
        time_embed_dim=u.get("timeEmbedDim") or 4 * ch[0],
    )


def kit_name_map(cfg):
    """torch_unet module prefix -> the kit's (diffusers') prefix."""
    n = len(cfg["block_channels"])
    lpb = cfg["layers_per_block"]
    att = cfg["attention_levels"]
    m = {
        "conv_in": "conv_in",
        "time_linear_1": "time_embedding.linear_1",
        "time_linear_2": "time_embedding.linear_2",
        "mid_res0": "mid_block.resnets.0",
        "mid_attn": "mid_block.attentions.0",
        "mid_res1": "mid_block.resnets.1",
        "conv_norm_out": "conv_norm_out",
        "conv_out": "conv_out",
    }
    for i in range(n):
        for j in range(lpb):
            r = i * lpb + j
            m[f"down_res.{r}"] = f"down_blocks.{i}.resnets.{j}"
            if att[i]:
                m[f"down_attn.{r}"] = f"down_blocks.{i}.attentions.{j}"
        if i < n - 1:
            m[f"downsamplers.{i}"] = f"down_blocks.{i}.downsamplers.0.conv"
    for u in range(n):
        i = n - 1 - u
        for j in range(lpb + 1):
            r = u * (lpb + 1) + j
            m[f"up_res.{r}"] = f"up_blocks.{u}.resnets.{j}"
            if att[i]:
                m[f"up_attn.{r}"] = f"up_blocks.{u}.attentions.{j}"
        if i > 0:
            m[f"upsamplers.{u}"] = f"up_blocks.{u}.upsamplers.0.conv"
    return m


def load_kit_weights(model, cfg, tensors):
    """Copy the kit's weights into `model`; every parameter must be matched, shapes checked."""
    prefixes = sorted(kit_name_map(cfg).items(), key=lambda kv: -len(kv[0]))
    state = {}
    used = set()
    for name, p in model.state_dict().items():
        kit = next((v + name[len(k) :] for k, v in prefixes if name.startswith(k + ".")), None)
        if kit is None:
            sys.exit(f"torch_sample.py: no kit name for torch parameter {name}")
        key = "unet." + kit
        if key not in tensors:
            sys.exit(f"torch_sample.py: weights file has no {key} (for torch {name})")
        w = tensors[key]
        if w.dim() == 4:
            w = w.permute(3, 2, 0, 1)  # HWIO -> OIHW
        elif w.dim() == 2:
            w = w.t()  # [in, out] -> [out, in]
        if tuple(w.shape) != tuple(p.shape):
            sys.exit(f"torch_sample.py: {key} maps to {name} {tuple(p.shape)}, got {tuple(w.shape)}")
        state[name] = w.contiguous()
        used.add(key)
    extra = sorted(k for k in tensors if k.startswith("unet.") and k not in used)
    if extra:
        sys.exit(f"torch_sample.py: kit weights not used by torch_unet: {', '.join(extra[:5])}")
    model.load_state_dict(state)


def make_sigmas(s):
    """sigma_t = sqrt((1 - abar_t) / abar_t) for t = 0..N-1, float64 as the kit's schedule."""
    n = s["num_train_timesteps"]
    b0, b1 = s["beta_start"], s["beta_end"]
    if s["beta_schedule"] == "scaled_linear":
        betas = [(math.sqrt(b0) + (math.sqrt(b1) - math.sqrt(b0)) * i / (n - 1)) ** 2 for i in range(n)]
    elif s["beta_schedule"] == "linear":
        betas = [b0 + (b1 - b0) * i / (n - 1) for i in range(n)]
    else:
        sys.exit(f"torch_sample.py: beta_schedule {s['beta_schedule']} is not implemented here")
    sig, prod = [], 1.0
    for b in betas:
        prod *= 1.0 - b
        sig.append(math.sqrt((1.0 - prod) / prod))
    return sig


def dpmpp_timesteps(steps, n_train):
    """diffusers' linspace spacing: round-half-even(linspace(0, N-1, steps+1))[::-1][:-1]."""
    step = (n_train - 1) / steps  # numpy's linspace: i * step + start
    pts = [i * step for i in range(steps + 1)]
    return [int(round(v)) for v in pts][::-1][:-1]  # Python's round is half-even, as numpy's


def alpha_sigma(sigma):
    a = 1.0 / math.sqrt(sigma * sigma + 1.0)
    return a, sigma * a


def sample_dpmpp_2m(model_fn, x, ts, sig_all, prediction_type):
    """DPM-Solver++(2M), float64 state; `model_fn(float32 x, t)` returns a float64 prediction."""
    sig = [sig_all[t] for t in ts] + [0.0]
    cur = x.double()
    prev_x0 = None
    lower = 0
    L = len(ts)
    for k, t in enumerate(ts):
        pred = model_fn(cur.float(), t)
        a_s, s_s = alpha_sigma(sig[k])
        x0 = (cur - s_s * pred) / a_s if prediction_type == "epsilon" else a_s * cur - s_s * pred
        a_t, s_t = alpha_sigma(sig[k + 1])
        lam_t = math.inf if s_t == 0 else math.log(a_t) - math.log(s_t)
        lam_s = math.log(a_s) - math.log(s_s)
        h = lam_t - lam_s
        phi = a_t * (math.exp(-h) - 1.0)
        ratio = s_t / s_s
        if lower < 1 or k == L - 1:
            nxt = ratio * cur - phi * x0
        else:
            a_p, s_p = alpha_sigma(sig[k - 1])
            r0 = (lam_s - (math.log(a_p) - math.log(s_p))) / h
            d1 = (x0 - prev_x0) / r0
            nxt = ratio * cur - phi * x0 - 0.5 * phi * d1
        cur, prev_x0 = nxt, x0
        lower = min(lower + 1, 2)
    return cur.float()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--job", required=True, help="JSON: unet config, schedule, steps, guidance")
    ap.add_argument("--tensors", required=True, help="safetensors: unet.* weights, x, context")
    ap.add_argument("--out", help="write the final latents (float32, NHWC) here")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3, help="timed sampling runs (median reported)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    args = ap.parse_args()
    if args.threads < 1 or args.runs < 1 or args.warmup < 0:
        sys.exit("torch_sample.py: --threads and --runs must be >= 1, --warmup >= 0")
    torch.set_num_threads(args.threads)

    with open(args.job) as f:
        job = json.load(f)
    cfg = torch_config(job["unet"])
    tensors = read_safetensors(args.tensors)
    model = UNet(cfg).eval()
    load_kit_weights(model, cfg, tensors)
    n_params = sum(p.numel() for p in model.parameters())

    x = tensors["x"].permute(0, 3, 1, 2).contiguous()  # NHWC -> NCHW
    context = tensors["context"]
    b = x.shape[0]
    if context.shape[0] != 2 * b:
        sys.exit(f"torch_sample.py: context has {context.shape[0]} rows, expected 2 x {b}")
    g = float(job["guidance"])
    sched = job["schedule"]
    ts = dpmpp_timesteps(int(job["steps"]), sched["num_train_timesteps"])
    sig_all = make_sigmas(sched)
    unet_ms = [0.0]

    def guided(xf, t):
        t0 = time.perf_counter()
        out = model(torch.cat([xf, xf]), torch.full((2 * b,), float(t)), context)
        unet_ms[0] += (time.perf_counter() - t0) * 1e3
        u, c = out[:b].double(), out[b:].double()
        # The kit combines in float64 and stores float32; the sampler then works in float64.
        return (u + g * (c - u)).float().double()

    loop_ms, unet_call_ms, z = [], [], None
    with torch.inference_mode():
        for i in range(args.warmup + args.runs):
            unet_ms[0] = 0.0
            t0 = time.perf_counter()
            z = sample_dpmpp_2m(guided, x, ts, sig_all, sched["prediction_type"])
            ms = (time.perf_counter() - t0) * 1e3
            if i >= args.warmup:
                loop_ms.append(ms)
                unet_call_ms.append(unet_ms[0])
    if args.out:
        with open(args.out, "wb") as f:
            f.write(z.permute(0, 2, 3, 1).contiguous().numpy().astype("<f4").tobytes())
    print(
        json.dumps(
            {
                "framework": "pytorch",
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "params": n_params,
                "batch": b,
                "timesteps": ts,
                "loop_ms": [round(v, 3) for v in loop_ms],
                "ms": statistics.median(loop_ms),
                "unet_ms": statistics.median(unet_call_ms),
                "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")},
            }
        )
    )


if __name__ == "__main__":
    main()
