"""Batched Soft-DTW on a GPU: ours (Triton, one launch per direction) against pysdtw's numba-CUDA kernels.

Workload (issue #4): B = 64 pairs, L = 512, d = 768, float32, γ = 1, squared Euclidean cost by matrix
products for both; forward + backward (gradient w.r.t. x), timed with CUDA events after warm-up (JIT
compilation excluded), median of repeats. Also times our torch anti-diagonal fallback on the same device, and
reports cells per second. The values of ours and pysdtw must agree (relative 1e-4). Targets: ≥ 10× pysdtw and
≤ 1 ms on an H100-class GPU. Writes benchmarks/results/softdtw_gpu.json with the device name.

    python benchmarks/bench_softdtw_gpu.py [--repeats 20]

Exits with a message (status 0) when no CUDA device is present. Needs triton and, for the anchor, pysdtw
(`pip install "ctkd-inspect[gpu,bench]"`).
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


def cuda_time(function, repeats: int) -> float:
    import torch

    for _ in range(3):  # warm-up: compilation, autotuning, allocator
        function()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        function()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--length", type=int, default=512)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "softdtw_gpu.json")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: the GPU benchmark needs one (CPU results: benchmarks/bench_softdtw_cpu.py)")
        return
    from ctkd_inspect.batch.softdtw import pairwise_cost, soft_dtw_from_cost

    def bmm_sqeuclidean(x, y):  # the same matrix-product distance for every contender
        return pairwise_cost(x, y, "sqeuclidean")

    device = torch.device("cuda")
    gen = torch.Generator(device=device).manual_seed(0)
    B, L, d = args.batch, args.length, args.dim
    x = (torch.randn(B, L, d, device=device, generator=gen) / d ** 0.5).requires_grad_(True)
    y = torch.randn(B, L, d, device=device, generator=gen) / d ** 0.5

    contenders = {
        "ours_triton": lambda: soft_dtw_from_cost(bmm_sqeuclidean(x, y), 1.0, backend="triton"),
        "ours_torch_loop": lambda: soft_dtw_from_cost(bmm_sqeuclidean(x, y), 1.0, backend="torch"),
    }
    try:
        import pysdtw

        anchor = pysdtw.SoftDTW(gamma=1.0, dist_func=bmm_sqeuclidean, use_cuda=True)
        contenders["pysdtw_cuda"] = lambda: anchor(x, y)
    except ImportError:
        print("pysdtw is not installed: timing ours only (pip install pysdtw==0.0.5)")
    reference = contenders["ours_triton"]().detach()
    rows = {}
    for name, function in contenders.items():
        values = function().detach()
        if not torch.allclose(values, reference, rtol=1e-4, atol=1e-3):
            raise SystemExit(f"{name} disagrees with ours: {values[:4]} vs {reference[:4]}")

        def forward(function=function):
            with torch.no_grad():
                function()

        def forward_backward(function=function):
            x.grad = None
            function().sum().backward()

        rows[name] = {"forward_ms": cuda_time(forward, args.repeats),
                      "forward_backward_ms": cuda_time(forward_backward, args.repeats)}
        cells = B * L * L
        rows[name]["forward_backward_cells_per_s"] = 2 * cells / (rows[name]["forward_backward_ms"] / 1000)
        print(f"{name:16s} forward {rows[name]['forward_ms']:8.3f} ms   forward+backward "
              f"{rows[name]['forward_backward_ms']:8.3f} ms")
    ours = rows["ours_triton"]["forward_backward_ms"]
    result = {"benchmark": f"soft-DTW on GPU, B={B}, L={L}, d={d}, float32, gamma=1", "rows": rows,
              "targets": {"speedup_vs_pysdtw": 10, "forward_backward_ms": 1.0},
              "machine": machine_info(("torch", "triton", "pysdtw")), "date": time.strftime("%Y-%m-%d")}
    if "pysdtw_cuda" in rows:
        result["speedup_vs_pysdtw"] = rows["pysdtw_cuda"]["forward_backward_ms"] / ours
    result["target_met"] = ours <= 1.0 and result.get("speedup_vs_pysdtw", 0) >= 10
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"device {result['machine'].get('gpu')}; written to {args.out}")


if __name__ == "__main__":
    main()
