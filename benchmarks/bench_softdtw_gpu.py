"""Batched Soft-DTW on a GPU: ours (Triton, one launch per direction) against pysdtw's numba-CUDA kernels.

Workload (issue #4): B = 64 pairs, L = 512, d = 768, float32, γ = 1, squared Euclidean cost by matrix products
(``pairwise_cost``) for every contender. Two measurements:

- **end to end**: cost + soft-DTW forward, and forward + backward (gradient w.r.t. x, through the cost);
- **DP only**: the soft-DTW recursion on a precomputed cost matrix (forward, and forward + E backward), which is
  where the contenders differ; reported in cells per second as well.

Contenders: ours with the Triton kernels, ours with the torch anti-diagonal loop (fewer repeats: it launches
about 25 kernels per anti-diagonal), and pysdtw 0.0.5 (numba CUDA; its failure, e.g. no numba CUDA support for
the device, is recorded instead of stopping the run). Before timing, the values (relative 1e-4) and gradients
(absolute 1e-3) of every contender must agree with ours. Timing uses CUDA events around each call after three
warm-up calls (JIT compilation excluded), median of ``--repeats``. Targets: ≥ 10× pysdtw and ≤ 1 ms forward +
backward end to end on an H100-class GPU. Writes benchmarks/results/softdtw_gpu.json with the device name.

    python benchmarks/bench_softdtw_gpu.py [--repeats 20] [--batch 64 --length 512 --dim 768]

Exits with a message (status 0) when no CUDA device is present or triton does not import. ``--device cpu`` is a
self-check of this script on CPU tensors (Triton's interpreter, set up by the script; tiny sizes only, timings
meaningless). Needs triton and, for the anchor, pysdtw (``pip install "ctkd-inspect[gpu,bench]"``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
warnings.filterwarnings("ignore")

from common import machine_info  # noqa: E402


def device_time(function, repeats: int, device) -> float:
    """Median milliseconds of ``function`` after 3 warm-up calls: CUDA events on a GPU, a wall clock otherwise."""
    import torch

    for _ in range(3):  # warm-up: compilation, allocator
        function()
    times = []
    if device.type == "cuda":
        torch.cuda.synchronize()
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            function()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
    else:
        for _ in range(repeats):
            begin = time.perf_counter()
            function()
            times.append(1000 * (time.perf_counter() - begin))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--length", type=int, default=512)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                        help="cpu: self-check of the script in Triton's interpreter (tiny sizes)")
    parser.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/softdtw_gpu.json "
                        "(the cpu self-check writes nothing unless --out is given)")
    args = parser.parse_args()
    if args.device == "cpu":
        os.environ["TRITON_INTERPRET"] = "1"  # before the kernels are compiled (first import of the module)

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: the GPU benchmark needs one (CPU results: benchmarks/bench_softdtw_cpu.py)")
        return
    try:
        import triton  # noqa: F401
    except ImportError:
        print("triton is not installed: the GPU benchmark needs it (pip install 'ctkd-inspect[gpu]')")
        return
    from ctkd_inspect.batch.softdtw import pairwise_cost, soft_dtw_from_cost

    device = torch.device(args.device)
    gen = torch.Generator(device=device).manual_seed(0)
    B, L, d, gamma = args.batch, args.length, args.dim, 1.0
    x = (torch.randn(B, L, d, device=device, generator=gen) / d ** 0.5).requires_grad_(True)
    y = torch.randn(B, L, d, device=device, generator=gen) / d ** 0.5
    C = pairwise_cost(x, y).detach().requires_grad_(True)  # for the DP-only measurements

    def bmm_sqeuclidean(a, b):  # the same matrix-product distance for every contender
        return pairwise_cost(a, b, "sqeuclidean")

    # each contender: (end to end f(x, y), DP only g(C)); both return the (B,) values
    contenders = {
        "ours_triton": (lambda a, b: soft_dtw_from_cost(bmm_sqeuclidean(a, b), gamma, backend="triton"),
                        lambda c: soft_dtw_from_cost(c, gamma, backend="triton")),
        "ours_torch_loop": (lambda a, b: soft_dtw_from_cost(bmm_sqeuclidean(a, b), gamma, backend="torch"),
                            lambda c: soft_dtw_from_cost(c, gamma, backend="torch")),
    }
    failures = {}
    try:
        import pysdtw

        # on the CPU self-check pysdtw runs its numba CPU path, which exercises the same code of this script
        use_cuda = device.type == "cuda"
        pysdtw_end_to_end = pysdtw.SoftDTW(gamma=gamma, dist_func=bmm_sqeuclidean, use_cuda=use_cuda)
        # pysdtw takes a distance function, not a cost matrix: hand it the precomputed C for the DP-only run
        pysdtw_dp = pysdtw.SoftDTW(gamma=gamma, dist_func=lambda a, b: C, use_cuda=use_cuda)
        contenders["pysdtw_cuda" if use_cuda else "pysdtw_cpu"] = (
            pysdtw_end_to_end, lambda c, anchor=pysdtw_dp: anchor(x.detach(), y))
    except ImportError:
        print("pysdtw is not installed: timing ours only (pip install pysdtw==0.0.5)")

    def run_checked(name, functions):
        """Values and gradients of one contender, or None (recorded) when it fails on this device."""
        end_to_end, dp_only = functions
        try:
            x.grad = None
            C.grad = None
            values = end_to_end(x, y)
            values.sum().backward()
            dp_values = dp_only(C)
            dp_values.sum().backward()
            return values.detach(), x.grad.clone(), dp_values.detach(), C.grad.clone()
        except Exception as error:  # an anchor that cannot run here (numba CUDA support) is reported, not fatal
            if name.startswith("ours"):
                raise
            failures[name] = f"{type(error).__name__}: {error}"
            print(f"{name} failed on this device: {failures[name]}")
            return None

    reference = run_checked("ours_triton", contenders["ours_triton"])
    for name in list(contenders)[1:]:
        got = run_checked(name, contenders[name])
        if got is None:
            del contenders[name]
            continue
        names = ("values", "x gradient", "DP values", "C gradient")
        for label, ours, theirs in zip(names, reference, got):
            tolerance = {"rtol": 1e-4, "atol": 1e-3} if "values" in label else {"rtol": 1e-3, "atol": 1e-3}
            if not torch.allclose(theirs, ours, **tolerance):
                raise SystemExit(f"{name} disagrees with ours on the {label}: max difference "
                                 f"{(theirs - ours).abs().max().item():.3e}")

    rows = {}
    cells = B * L * L
    for name, (end_to_end, dp_only) in contenders.items():
        repeats = max(3, args.repeats // 5) if name == "ours_torch_loop" else args.repeats

        def forward(f=end_to_end):
            with torch.no_grad():
                f(x, y)

        def forward_backward(f=end_to_end):
            x.grad = None
            f(x, y).sum().backward()

        def dp_forward(g=dp_only):
            with torch.no_grad():
                g(C)

        def dp_forward_backward(g=dp_only):
            C.grad = None
            g(C).sum().backward()

        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        row = {"forward_ms": device_time(forward, repeats, device),
               "forward_backward_ms": device_time(forward_backward, repeats, device),
               "dp_forward_ms": device_time(dp_forward, repeats, device),
               "dp_forward_backward_ms": device_time(dp_forward_backward, repeats, device),
               "repeats": repeats}
        row["dp_forward_cells_per_s"] = cells / (row["dp_forward_ms"] / 1000)
        row["dp_forward_backward_cells_per_s"] = 2 * cells / (row["dp_forward_backward_ms"] / 1000)
        if device.type == "cuda":
            row["peak_memory_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
        rows[name] = row
        print(f"{name:16s} end to end: forward {row['forward_ms']:9.3f} ms, forward+backward "
              f"{row['forward_backward_ms']:9.3f} ms | DP only: forward {row['dp_forward_ms']:9.3f} ms, "
              f"forward+backward {row['dp_forward_backward_ms']:9.3f} ms")
    ours = rows["ours_triton"]["forward_backward_ms"]
    result = {"benchmark": f"soft-DTW on GPU, B={B}, L={L}, d={d}, float32, gamma={gamma}", "rows": rows,
              "timing": "CUDA events, median after 3 warm-up calls" if device.type == "cuda"
              else "CPU self-check in Triton's interpreter (not a benchmark)",
              "failures": failures, "targets": {"speedup_vs_pysdtw": 10, "forward_backward_ms": 1.0},
              "machine": machine_info(("torch", "triton", "numba", "pysdtw")), "date": time.strftime("%Y-%m-%d")}
    if "pysdtw_cuda" in rows:
        result["speedup_vs_pysdtw"] = {
            key: rows["pysdtw_cuda"][key] / rows["ours_triton"][key]
            for key in ("forward_ms", "forward_backward_ms", "dp_forward_ms", "dp_forward_backward_ms")}
        print("speedup vs pysdtw: " + ", ".join(f"{k[:-3]} {v:.1f}×" for k, v in result["speedup_vs_pysdtw"].items()))
    result["target_met"] = ours <= 1.0 and result.get("speedup_vs_pysdtw", {}).get("forward_backward_ms", 0) >= 10
    out = args.out or (HERE / "results" / "softdtw_gpu.json" if device.type == "cuda" else None)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"device {result['machine'].get('gpu', args.device)}; target met: {result['target_met']}"
          + (f"; written to {out}" if out is not None else ""))


if __name__ == "__main__":
    main()
