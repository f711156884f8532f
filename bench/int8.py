"""INT8 benchmark, side by side in one run: our int8 engine (mnv2-export
--format int8, then mnv2-eval --benchmark) against our fp32 engine; onnxruntime
and OpenVINO on our QDQ ONNX export of the same int8 file, on our fp32 ONNX,
and onnxruntime on that fp32 export quantized by onnxruntime itself
(quantize_static: QDQ, per-channel, MinMax, opset 13, calibrated on the same
photos). Keras' ImageNet MobileNetV2 1.0/224. Our int8 engine splits a batch
among its threads; OpenVINO runs both ways: one request on all threads (its
default latency hint) and, labelled, one stream per thread with the batch
split among them (its THROUGHPUT hint).
Ours also runs with oneDNN capped to AVX2, as a CPU without VNNI runs it.
Then, where it is built, mnv2-bench-openvino runs ours and OpenVINO's C++
runtime on the same files in one process, in interleaved pairs (a shared
VM's speed swings between the separate runs above), and prints the median
per-pair ratio.

Accuracy: on the embedded digits (a trained checkpoint, --digits WEIGHTS),
val top-1 of int8 vs fp32; on Keras' weights, top-1 agreement with fp32 and
the mean KL divergence on the calibration photos.

Fair peers: same threads, our start-up allocator settings (GLIBC_TUNABLES);
each system measured once per round, best of the rounds kept.

--no-amx refuses AMX to every oneDNN in the run, ours and the peers'
(bench/no_amx.cpp): an AMX host measured as a CPU with AVX-512 VNNI only.

Usage: python bench/int8.py [--threads 2] [--rounds 2] [--digits runs/digits/model_best.pth]
                            [--no-amx]
"""
import argparse
import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

from common import (BUILD, ROOT, host_label, print_table, rerun_with_fair_allocator,
                    withhold_amx, write_json)
from inference import measure_python
KERAS = Path.home() / ".cache/mnv2/weights/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5"
PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "horse.png",
          "motorcycle_left.png", "motorcycle_right.png", "hubble_deep_field.jpg",
          "retina.jpg", "ihc.png", "color.png", "logo.png"]


def run(args, env=None):
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}).stdout


def ours(weights, args, work, env=None):
    out = work / "bench.json"
    run([BUILD / "apps" / "mnv2-eval", "--weights", weights, "--benchmark", "--batch-size",
         args.batch, "--iterations", args.iterations, "--threads", args.threads,
         "--amp-dtype", "fp32", "--json", out], env)
    case = [c for c in json.loads(out.read_text())["cases"] if c["channels_last"]][0]
    return case["batch1_p50_ms"], case["images_per_second"]


def photo_folder(work):
    import skimage
    folder = work / "photos"
    folder.mkdir(parents=True, exist_ok=True)
    for name in PHOTOS:
        image = Image.open(Path(skimage.__file__).parent / "data" / name).convert("RGB")
        image.resize((224, 224), Image.BILINEAR).save(folder / (Path(name).stem + ".png"))
    return folder


def keras_inputs(folder):
    return [(np.asarray(Image.open(p), dtype=np.float32)[None].transpose(0, 3, 1, 2)
             / 127.5 - 1).astype(np.float32) for p in sorted(folder.glob("*.png"))]


def agreement(work, folder, int8_file):
    probabilities = {}
    for name, weights in [("fp32", KERAS), ("int8", int8_file)]:
        out = work / f"{name}.json"
        run([BUILD / "apps" / "mnv2-eval", "--weights", weights, "--predict", folder,
             "--topk", "1000", "--json", out])
        p = {}
        for entry in json.loads(out.read_text()):
            v = np.zeros(1000)
            for top in entry["top"]:
                v[top["class"]] = top["probability"]
            p[Path(entry["image"]).stem] = v
        probabilities[name] = p
    names = sorted(probabilities["fp32"])
    same = sum(probabilities["fp32"][n].argmax() == probabilities["int8"][n].argmax()
               for n in names)
    kl = np.mean([np.sum(probabilities["fp32"][n] * np.log(
        np.maximum(probabilities["fp32"][n], 1e-12) / np.maximum(probabilities["int8"][n], 1e-12)))
        for n in names])
    # The documented claim's photos (docs/inference.md, tests/oracle/check_int8.py):
    # fp32's top-1 at least 30% and at least 1.5x the runner-up.
    def is_confident(p):
        first, second = np.sort(p)[-2:][::-1]
        return first >= 0.3 and first >= 1.5 * second
    confident = [n for n in names if is_confident(probabilities["fp32"][n])]
    same_confident = sum(probabilities["fp32"][n].argmax() == probabilities["int8"][n].argmax()
                         for n in confident)
    return {"photos": len(names), "same_top1": int(same), "mean_kl": float(kl),
            "confident_photos": len(confident), "confident_same_top1": int(same_confident)}


def digits_accuracy(weights, work):
    digits = ROOT / "data" / "digits"
    int8 = work / "digits_int8.pth"
    run([BUILD / "apps" / "mnv2-export", "--weights", weights, "--format", "int8",
         "--calibration-data", digits / "train", "--output", int8])
    top1 = {}
    for name, w in [("fp32", weights), ("int8", int8)]:
        out = run([BUILD / "apps" / "mnv2-eval", "--weights", w, "--data", digits / "val"])
        top1[name] = float(re.search(r"top-1 ([0-9.]+)%", out).group(1))
    return top1


def side_by_side(int8_file, qdq_file, args):
    """Ours and OpenVINO in one process, interleaved (bench/openvino_int8.cpp)."""
    program = BUILD / "bench" / "mnv2-bench-openvino"
    if not program.exists():
        print(f"{program} is not built (no openvino wheel in the build's MNV2_PYTHON): "
              "no in-process pairs")
        return None
    result = json.loads(run([program, "--int8", int8_file, "--onnx", qdq_file,
                             "--threads", args.threads, "--batch", args.batch]))
    rows = [[f"b{b['batch']}", f"{b['ours_median_ms']:.2f}", f"{b['openvino_median_ms']:.2f}",
             f"{b['speed_ratio_median']:.2f}x ({b['speed_ratio_min']:.2f}-"
             f"{b['speed_ratio_max']:.2f})"] for b in result["batches"]]
    print_table(f"ours int8 and OpenVINO on our QDQ ONNX in one process, {result['pairs']} "
                f"interleaved pairs of {result['block']} calls",
                ["batch", "ours ms", "OpenVINO ms", "ours speed / OpenVINO's, median (range)"],
                rows)
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--digits", help="a trained digits checkpoint (the main job's)")
    parser.add_argument("--out", default="bench-results/int8.json")
    parser.add_argument("--no-amx", action="store_true",
                        help="every system without AMX: a VNNI CPU on an AMX host")
    args = parser.parse_args()
    if args.no_amx:
        withhold_amx()
    rerun_with_fair_allocator()
    work = BUILD / "bench" / "int8"
    work.mkdir(parents=True, exist_ok=True)
    folder = photo_folder(work)
    int8_file = work / "keras_int8.pth"
    print(run([BUILD / "apps" / "mnv2-export", "--weights", KERAS, "--format", "int8",
               "--calibration-data", folder, "--calibration-batch", "4", "--output", int8_file]))
    run([BUILD / "apps" / "mnv2-export", "--weights", KERAS, "--format", "onnx",
         "--output", work / "fp32.onnx"])
    run([BUILD / "apps" / "mnv2-export", "--weights", int8_file, "--format", "onnx",
         "--output", work / "ours_qdq.onnx"])

    import onnx
    import onnxruntime
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)
    converted = onnx.version_converter.convert_version(onnx.load(work / "fp32.onnx"), 13)
    onnx.save(converted, work / "fp32_opset13.onnx")

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{"input": x} for x in keras_inputs(folder)])

        def get_next(self):
            return next(self.items, None)
    quantize_static(str(work / "fp32_opset13.onnx"), str(work / "ort_int8.onnx"), Reader(),
                    quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = args.threads
    sessions = {name: onnxruntime.InferenceSession(str(work / f), options,
                                                   providers=["CPUExecutionProvider"])
                for name, f in [("fp32", "fp32.onnx"), ("int8", "ort_int8.onnx"),
                                ("ours_qdq", "ours_qdq.onnx")]}
    import openvino
    core = openvino.Core()
    core.set_property("CPU", {"INFERENCE_NUM_THREADS": args.threads})
    # OpenVINO computes in bf16 by default where the CPU has it: f32 asked.
    vino = {name: core.compile_model(str(work / f), "CPU",
                                     {"INFERENCE_PRECISION_HINT": "f32"})
            for name, f in [("fp32", "fp32.onnx"), ("ours_qdq", "ours_qdq.onnx")]}
    # OpenVINO's own way to split a batch among the cores, as our int8
    # engine does: one stream per thread, the batch as one request each.
    streams = core.compile_model(str(work / "ours_qdq.onnx"), "CPU",
                                 {"INFERENCE_PRECISION_HINT": "f32",
                                  "PERFORMANCE_HINT": "THROUGHPUT",
                                  "NUM_STREAMS": args.threads})
    requests = openvino.AsyncInferQueue(streams, args.threads)

    def vino_streams(x):
        for part in np.array_split(x, min(args.threads, len(x))):
            requests.start_async({0: part})
        requests.wait_all()

    avx2 = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
    systems = {
        "ours int8": lambda: ours(int8_file, args, work),
        "ours fp32": lambda: ours(KERAS, args, work),
        "ours int8, oneDNN capped to AVX2": lambda: ours(int8_file, args, work, avx2),
        "ours fp32, oneDNN capped to AVX2": lambda: ours(KERAS, args, work, avx2),
        "onnxruntime on our QDQ ONNX": lambda: measure_python(
            lambda x: sessions["ours_qdq"].run(None, {"input": x}), args.batch, args.iterations),
        "onnxruntime int8 (its own QDQ of our ONNX)": lambda: measure_python(
            lambda x: sessions["int8"].run(None, {"input": x}), args.batch, args.iterations),
        "OpenVINO on our QDQ ONNX": lambda: measure_python(
            lambda x: vino["ours_qdq"](x), args.batch, args.iterations),
        f"OpenVINO on our QDQ ONNX, THROUGHPUT hint ({args.threads} streams, the batch "
        f"as {args.threads} requests)": lambda: measure_python(
            vino_streams, args.batch, args.iterations),
        "OpenVINO fp32 (our ONNX)": lambda: measure_python(
            lambda x: vino["fp32"](x), args.batch, args.iterations),
        "onnxruntime fp32 (our ONNX)": lambda: measure_python(
            lambda x: sessions["fp32"].run(None, {"input": x}), args.batch, args.iterations),
    }
    best = {}
    for _ in range(args.rounds):
        for name, measure in systems.items():
            latency, rate = measure()
            old = best.get(name, (float("inf"), 0))
            best[name] = (min(old[0], latency), max(old[1], rate))
    base = best["ours fp32"]
    rows = [[name, f"{b1:.2f}", f"{rate:.1f}", f"{rate / base[1]:.2f}x"]
            for name, (b1, rate) in best.items()]
    print_table(f"int8 vs fp32 on {host_label()}, {args.threads} threads, 224x224",
                ["system", "b1 p50 ms", f"b{args.batch} img/s", "vs ours fp32"], rows)
    in_process = side_by_side(int8_file, work / "ours_qdq.onnx", args)
    accuracy = {"keras_photos": agreement(work, folder, int8_file)}
    if args.digits:
        accuracy["digits_val_top1"] = digits_accuracy(args.digits, work)
    print(json.dumps(accuracy, indent=1))
    write_json(Path(__file__).parent / args.out, {
        "host": host_label(), "threads": args.threads, "batch": args.batch,
        "onnxruntime": onnxruntime.__version__, "openvino": openvino.__version__,
        "systems": {k: {"batch1_p50_ms": v[0], "images_per_second": v[1]}
                    for k, v in best.items()},
        "ours_and_openvino_in_one_process": in_process,
        "accuracy": accuracy})


if __name__ == "__main__":
    main()
