"""Batched Soft-DTW on the CPU: ours (numba) against pysdtw's numba path and tslearn's SoftDTWLossPyTorch.

Same inputs for everybody: B = 8 pairs of random N(0, 1)/√d sequences, L = 128 and 512, d = 64 and 768,
float32, γ = 1, squared Euclidean cost computed by matrix products (tslearn gets the same bmm distance function,
its default expand-based distance runs out of memory at L = 512, d = 768). Forward, and forward + backward
(gradient w.r.t. x). The script checks that all three give the same values (relative 1e-4, float32), then writes
benchmarks/results/softdtw_cpu.json with medians. Target (issue #4): at least parity with pysdtw's numba path on
forward + backward.

    python benchmarks/bench_softdtw_cpu.py [--repeats 5]

Needs the `bench` extra: pip install "ctkd-inspect[bench]" (pysdtw 0.0.5, tslearn).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
warnings.filterwarnings("ignore")

from common import machine_info  # noqa: E402


def median_time(function, repeats: int) -> float:
    function()  # warm-up: JIT compilation and allocator
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "softdtw_cpu.json")
    args = parser.parse_args()

    import torch

    from ctkd_inspect.batch.softdtw import pairwise_cost, soft_dtw_from_cost

    def bmm_sqeuclidean(x, y):  # the same matrix-product distance for every contender
        return pairwise_cost(x, y, "sqeuclidean")

    try:
        import pysdtw
        from tslearn.metrics import SoftDTWLossPyTorch
    except ImportError as exc:
        raise SystemExit(f"this benchmark needs the anchors: pip install 'ctkd-inspect[bench]' ({exc})") from exc

    torch.set_num_threads(torch.get_num_threads())
    anchors = {
        "pysdtw_numba": pysdtw.SoftDTW(gamma=1.0, dist_func=bmm_sqeuclidean, use_cuda=False),
        "tslearn_numba": SoftDTWLossPyTorch(gamma=1.0, dist_func=bmm_sqeuclidean),
    }

    def ours(x, y):
        return soft_dtw_from_cost(bmm_sqeuclidean(x, y), 1.0, backend="numba")

    rows = []
    for length in (128, 512):
        for dim in (64, 768):
            gen = torch.Generator().manual_seed(length + dim)
            x = (torch.randn(8, length, dim, generator=gen) / dim ** 0.5).requires_grad_(True)
            y = torch.randn(8, length, dim, generator=gen) / dim ** 0.5
            reference = ours(x, y).detach()
            row = {"B": 8, "L": length, "d": dim, "ms": {}}
            for name, function in [("ours_numba", ours), *anchors.items()]:
                values = function(x, y).detach()
                if not torch.allclose(values, reference, rtol=1e-4, atol=1e-3):
                    raise SystemExit(f"{name} disagrees with ours at L={length}, d={dim}: {values} vs {reference}")

                def forward(function=function, x=x, y=y):
                    with torch.no_grad():
                        function(x, y)

                def forward_backward(function=function, x=x, y=y):
                    x.grad = None
                    function(x, y).sum().backward()

                row["ms"][name] = {"forward": 1000 * median_time(forward, args.repeats),
                                   "forward_backward": 1000 * median_time(forward_backward, args.repeats)}
            ours_fb = row["ms"]["ours_numba"]["forward_backward"]
            row["speedup_forward_backward"] = {name: row["ms"][name]["forward_backward"] / ours_fb
                                               for name in anchors}
            rows.append(row)
            print(f"B=8 L={length:4d} d={dim:3d}  " + "  ".join(
                f"{name}: {t['forward']:7.1f} / {t['forward_backward']:7.1f} ms" for name, t in row["ms"].items()))
    parity = all(r["speedup_forward_backward"]["pysdtw_numba"] >= 1.0 for r in rows)
    result = {"benchmark": "batched soft-DTW on the CPU (forward / forward+backward, float32, gamma=1)",
              "rows": rows, "target": "parity with pysdtw's numba path on forward+backward",
              "target_met": parity, "machine": machine_info(("numpy", "numba", "torch", "pysdtw", "tslearn")),
              "date": time.strftime("%Y-%m-%d")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    for r in rows:
        s = r["speedup_forward_backward"]
        print(f"L={r['L']:4d} d={r['d']:3d}: ours vs pysdtw {s['pysdtw_numba']:.2f}×, vs tslearn "
              f"{s['tslearn_numba']:.2f}× (forward+backward)")
    print(f"parity with pysdtw on forward+backward: {parity}; written to {args.out}")


if __name__ == "__main__":
    main()
