"""Why the Trainer runs one large GEMM before it trains (``toolkit.train.threads.warm_blas``).

NumPy's OpenBLAS runs small single-thread GEMMs at about half speed until the process has
made one GEMM that is wide enough (here >= 384 columns); from then on every thread gets
the full speed. Each shape below is timed in a fresh process, cold and after the warm-up,
at one BLAS thread (as the engine runs it). Prints one JSON line per shape: GFLOP/s.

    uv run python bench/blas_warmup.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

SHAPES = [(64, 784, 128), (64, 128, 64), (784, 64, 128), (1600, 288, 64)]


def gflops(m: int, k: int, n: int, warm: bool) -> float:
    """Best-of-5 GFLOP/s of (m, k) @ (k, n) in float32 on one BLAS thread."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    with threadpool_limits(1):
        if warm:
            from toolkit.train.threads import warm_blas

            warm_blas()
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(100):
                a @ b
            best = min(best, (time.perf_counter() - started) / 100)
    return 2 * m * k * n / best / 1e9


def main() -> None:
    if len(sys.argv) == 5:  # a child: one shape, cold or warm
        m, k, n, warm = map(int, sys.argv[1:])
        print(gflops(m, k, n, bool(warm)))
        return
    for m, k, n in SHAPES:
        result = {"shape": f"({m}, {k}) @ ({k}, {n})"}
        for label, warm in (("cold", 0), ("warm", 1)):
            child = [sys.executable, __file__, str(m), str(k), str(n), str(warm)]
            out = subprocess.run(child, capture_output=True, text=True, check=True).stdout
            result[f"{label}_gflops"] = round(float(out), 1)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
