"""Batched Soft-DTW on the CPU: ours (numba) against pysdtw's numba path and tslearn's SoftDTWLossPyTorch.

Same inputs for everybody: B = 8 pairs of random N(0, 1)/√d sequences, L = 128 and 512, d = 64 and 768, float32,
γ = 1, squared Euclidean cost computed by matrix products (``pairwise_cost``; tslearn gets the same distance
function, its default expand-based distance runs out of memory at L = 512, d = 768). Forward (no grad), and
forward + backward (gradient w.r.t. x). Before timing, the script checks that all three agree on the values
(relative 1e-4) and on the gradients (absolute 1e-3, float32). Timing: one warm-up call each (JIT compilation),
then ``--repeats`` rounds in which every contender runs once, in turn (so a change of machine load during the run
hits all of them alike); medians per contender. Writes benchmarks/results/softdtw_cpu.json with the machine
record and the load average before and after. Target (issue #4): at least parity with pysdtw's numba path on
forward + backward.

    python benchmarks/bench_softdtw_cpu.py [--repeats 7]

Needs the `bench` extra: pip install "ctkd-inspect[bench]" (pysdtw 0.0.5, tslearn).
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


def interleaved_medians(functions: dict, repeats: int) -> dict:
    """Median seconds per function over ``repeats`` rounds, each round calling every function once in turn."""
    for function in functions.values():
        function()  # warm-up: JIT compilation, allocator
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
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

    gamma, batch = 1.0, 8
    contenders = {
        "ours_numba": lambda x, y: soft_dtw_from_cost(bmm_sqeuclidean(x, y), gamma, backend="numba"),
        "pysdtw_numba": pysdtw.SoftDTW(gamma=gamma, dist_func=bmm_sqeuclidean, use_cuda=False),
        "tslearn_numba": SoftDTWLossPyTorch(gamma=gamma, dist_func=bmm_sqeuclidean),
    }
    anchors = [name for name in contenders if name != "ours_numba"]
    load_before = os.getloadavg()
    rows = []
    for length in (128, 512):
        for dim in (64, 768):
            gen = torch.Generator().manual_seed(length + dim)
            x = (torch.randn(batch, length, dim, generator=gen) / dim ** 0.5).requires_grad_(True)
            y = torch.randn(batch, length, dim, generator=gen) / dim ** 0.5
            reference, reference_grad = None, None
            for name, function in contenders.items():
                x.grad = None
                values = function(x, y)
                values.sum().backward()
                if reference is None:
                    reference, reference_grad = values.detach(), x.grad.clone()
                elif not (torch.allclose(values.detach(), reference, rtol=1e-4, atol=1e-3)
                          and torch.allclose(x.grad, reference_grad, rtol=1e-3, atol=1e-3)):
                    raise SystemExit(f"{name} disagrees with ours at L={length}, d={dim}: values "
                                     f"{values.detach()[:3]} vs {reference[:3]}, gradient max difference "
                                     f"{(x.grad - reference_grad).abs().max().item():.2e}")

            def forward(function, x=x, y=y):
                def run():
                    with torch.no_grad():
                        function(x, y)
                return run

            def forward_backward(function, x=x, y=y):
                def run():
                    x.grad = None
                    function(x, y).sum().backward()
                return run

            fwd = interleaved_medians({name: forward(f) for name, f in contenders.items()}, args.repeats)
            fwd_bwd = interleaved_medians({name: forward_backward(f) for name, f in contenders.items()},
                                          args.repeats)
            row = {"B": batch, "L": length, "d": dim,
                   "ms": {name: {"forward": 1000 * fwd[name], "forward_backward": 1000 * fwd_bwd[name]}
                          for name in contenders}}
            ours = row["ms"]["ours_numba"]
            row["speedup"] = {name: {"forward": row["ms"][name]["forward"] / ours["forward"],
                                     "forward_backward": row["ms"][name]["forward_backward"]
                                     / ours["forward_backward"]} for name in anchors}
            row["ours_cells_per_s"] = {"forward": batch * length * length / fwd["ours_numba"],
                                       "forward_backward": batch * length * length / fwd_bwd["ours_numba"]}
            rows.append(row)
            print(f"B={batch} L={length:4d} d={dim:3d}  " + "  ".join(
                f"{name}: {t['forward']:7.1f} / {t['forward_backward']:7.1f} ms" for name, t in row["ms"].items()))
    parity = all(r["speedup"]["pysdtw_numba"]["forward_backward"] >= 1.0 for r in rows)
    result = {"benchmark": "batched soft-DTW on the CPU (forward / forward+backward w.r.t. x, float32, gamma=1, "
                           "matrix-product squared Euclidean cost)",
              "timing": f"median of {args.repeats} interleaved rounds after one warm-up call each",
              "rows": rows, "target": "parity with pysdtw's numba path on forward+backward",
              "target_met": parity,
              "machine": {**machine_info(("numpy", "numba", "torch", "pysdtw", "tslearn")),
                          "torch_threads": torch.get_num_threads(),
                          "load_average_before": load_before, "load_average_after": os.getloadavg()},
              "date": time.strftime("%Y-%m-%d")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    for r in rows:
        s = r["speedup"]
        print(f"L={r['L']:4d} d={r['d']:3d}: ours vs pysdtw {s['pysdtw_numba']['forward']:.2f}× / "
              f"{s['pysdtw_numba']['forward_backward']:.2f}×, vs tslearn {s['tslearn_numba']['forward']:.2f}× / "
              f"{s['tslearn_numba']['forward_backward']:.2f}× (forward / forward+backward)")
    print(f"parity with pysdtw on forward+backward: {parity}; load average {load_before} → {os.getloadavg()}; "
          f"written to {args.out}")


if __name__ == "__main__":
    main()
