"""Reference Frechet distance for bench/fid.ts: pytorch-fid's formula with scipy.linalg.sqrtm.

Usage: /usr/bin/python3 bench/fid_scipy.py <raw float64 file> <d>
The file holds mu1 (d), mu2 (d), sigma1 (d*d), sigma2 (d*d), little-endian float64, row-major.
Prints one JSON line: {"ms": ..., "fid": ..., "eps_fallback": bool, "scipy": ..., "numpy": ...}.
"""
import json
import sys
import time

import numpy as np
import scipy
from scipy import linalg


def frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    # pytorch-fid (src/pytorch_fid/fid_score.py) calculate_frechet_distance, same steps.
    diff = mu1 - mu2
    covmean, _ = linalg.sqrtm(sigma1.dot(sigma2), disp=False)
    fallback = False
    if not np.isfinite(covmean).all():
        fallback = True
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)), fallback


def main():
    path, d = sys.argv[1], int(sys.argv[2])
    raw = np.fromfile(path, dtype="<f8")
    if raw.size != 2 * d + 2 * d * d:
        raise SystemExit(f"{path}: {raw.size} values, expected {2 * d + 2 * d * d} for d={d}")
    mu1, mu2 = raw[:d], raw[d:2 * d]
    s1 = raw[2 * d:2 * d + d * d].reshape(d, d)
    s2 = raw[2 * d + d * d:].reshape(d, d)
    t0 = time.perf_counter()
    fid, fallback = frechet_distance(mu1, s1, mu2, s2)
    ms = (time.perf_counter() - t0) * 1000
    print(json.dumps({"ms": ms, "fid": fid, "eps_fallback": fallback,
                      "scipy": scipy.__version__, "numpy": np.__version__}))


if __name__ == "__main__":
    main()
