#!/usr/bin/env python3
"""Per-window CPU speed of every way autounet can run a trained network: the candidates of issue 17.

For one trained fold (``--results RESULTS/DATASET --configuration C --fold F``), a batch of random
windows of the plan's patch is pushed through the network ``--repeats`` times (after one warm-up
call) by each candidate, and the median seconds per call are printed with the ratio against
torch float32, and the argmax agreement with torch float32 on those windows:

- ``torch_fp32``: what ``--no-amp`` runs; ``torch_fp32_cl``: the same in channels-last layout;
- ``torch_bf16_cl``: the network cast to bfloat16, channels-last (the default on CPUs with native bf16);
- ``torch_autocast_bf16``: bfloat16 autocast around the float32 network (what autounet ran before);
- ``torch_compile``: ``torch.compile`` (inductor) of the float32 network, compile time reported apart;
- ``ort``: ONNX Runtime, float32; ``ort_nospin``: the same with its idle threads not spinning;
- ``openvino_f32`` and ``openvino_bf16``: OpenVINO with each precision hint.

``--batches 1 2`` sets the windows per call, ``--threads 2`` the intra-op threads (torch, ONNX
Runtime and OpenVINO alike). Run it on a quiet machine; it writes ``--out`` (JSON) if given.

    python benchmarks/bench_backends.py --results /tmp/ws/results/Dataset900_Example -c 3d_fullres
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from autounet.inference.runtimes import open_session
from autounet.model.onnx_export import network_onnx
from autounet.model.trained import load_trained_model
from autounet.workspace import ResultsPaths


def _median_seconds(run: Callable[[], object], repeats: int) -> float:
    run()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _torch(network: torch.nn.Module, x: np.ndarray, dtype: torch.dtype, channels_last: bool,
           autocast: bool = False) -> Callable[[], np.ndarray]:
    layout = (torch.channels_last_3d if x.ndim == 5 else torch.channels_last) if channels_last else torch.contiguous_format
    net = network.to(dtype).to(memory_format=layout)
    t = torch.from_numpy(x).to(dtype).contiguous(memory_format=layout)

    def run() -> np.ndarray:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            return net(t).float().numpy()

    return run


def _ort_nospin(model: bytes, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"image": x})[0]


def candidates(model, fold: str, x: np.ndarray, threads: int, compile_too: bool) -> dict[str, tuple]:
    """name -> (function, set-up seconds) for every candidate."""
    def fresh() -> torch.nn.Module:
        net = model.network(torch.device("cpu"))
        net.load_state_dict(model.fold_weights[fold])
        return net.eval()

    out: dict[str, tuple] = {}
    out["torch_fp32"] = (_torch(fresh(), x, torch.float32, False), 0.0)
    out["torch_fp32_cl"] = (_torch(fresh(), x, torch.float32, True), 0.0)
    out["torch_bf16_cl"] = (_torch(fresh(), x, torch.bfloat16, True), 0.0)
    out["torch_autocast_bf16"] = (_torch(fresh(), x, torch.float32, False, autocast=True), 0.0)
    if compile_too:
        t0 = time.perf_counter()
        compiled = torch.compile(fresh())
        run = _torch(compiled, x, torch.float32, False)
        run()
        out["torch_compile"] = (run, time.perf_counter() - t0)
    t0 = time.perf_counter()
    onnx_bytes = network_onnx(fresh(), model.stage)
    export_s = time.perf_counter() - t0
    for name, make in (("ort", lambda: open_session(onnx_bytes, "onnxruntime", threads=threads)),
                       ("ort_nospin", lambda: _ort_nospin(onnx_bytes, threads)),
                       ("openvino_f32", lambda: open_session(onnx_bytes, "openvino", False, threads)),
                       ("openvino_bf16", lambda: open_session(onnx_bytes, "openvino", True, threads))):
        try:
            t0 = time.perf_counter()
            session = make()
            out[name] = ((lambda s=session: s(x)), export_s + time.perf_counter() - t0)
        except Exception as e:  # noqa: BLE001 -- a missing runtime is reported, the others measured
            print(f"{name}: skipped ({type(e).__name__}: {e})")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, required=True, help="a dataset's results folder")
    ap.add_argument("-c", "--configuration", default="3d_fullres")
    ap.add_argument("-f", "--fold", default="0")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile (slow to compile)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_trained_model(ResultsPaths(args.results), args.configuration, [args.fold])
    stage = model.stage
    print(f"{args.configuration} fold {args.fold}: patch {stage.patch_size}, features "
          f"{stage.network.features_per_stage}, {args.threads} thread(s)")
    rows = []
    for batch in args.batches:
        x = np.random.default_rng(0).normal(0, 1, (batch, stage.network.input_channels, *stage.patch_size))
        x = x.astype(np.float32)
        runs = candidates(model, args.fold, x, args.threads, not args.no_compile)
        reference = runs["torch_fp32"][0]().argmax(1)
        base = None
        for name, (run, setup_s) in runs.items():
            seconds = _median_seconds(run, args.repeats)
            base = base or seconds
            agree = float((run().argmax(1) == reference).mean())
            rows.append({"batch": batch, "candidate": name, "s_per_call": seconds, "speedup": base / seconds,
                         "setup_s": setup_s, "argmax_agreement": agree})
            print(f"batch {batch}  {name:20s} {seconds * 1000:8.1f} ms/call  {base / seconds:5.2f}x  "
                  f"set-up {setup_s:5.1f} s  argmax agreement {agree:.5f}")
    if args.out is not None:
        args.out.write_text(json.dumps({"configuration": args.configuration, "patch": list(stage.patch_size),
                                        "threads": args.threads, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
