"""mnv2-export --format tflite as a user runs it, checked in the LiteRT
interpreter (ai-edge-litert from PyPI, XNNPACK, 2 threads):

- float32 from Keras' ImageNet weights: LiteRT's probabilities on real photos
  within 1e-4 of mnv2-eval's, same top-1; the file's metadata (read with
  LiteRT's own generated schema reader) holds the preprocessing and the
  1000 class names, and its signature is serving_default(input -> logits);
- float32 from a digits checkpoint (width 0.5, 48x48), and from its
  TorchScript export: the same top-1 as mnv2-eval on every validation image;
- full-integer int8 from our int8 file, operator by operator: fed LiteRT's
  own input codes, every convolution, residual sum, pooling and the
  classifier of LiteRT's run is within one code step of the exact result of
  the int8 file's codes, steps and biases (our engine's arithmetic);
- end to end, for int8, uint8 and float32 input and output: the same top-1
  as our int8 engine wherever its answer falls under the documented claim,
  probabilities within 0.1. (Not within one step end to end: TFLite rounds a
  residual block's branch before the add, our engine rounds the sum once,
  and those codes then differ by one at a third of the positions; measured
  up to 11 logits steps apart, 0.07 in probability, on these photos.)
- bad input: one line, non-zero exit, nothing left behind.

usage: check_tflite.py BIN_DIR WORK_DIR PRETRAINED_DIR DIGITS_DIR
"""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from check_int8 import (KERAS_FILE, confident, prepare_photos,  # noqa: E402
                        probabilities_by_photo, tf_same_pad)

PROBABILITY_TOLERANCE = 1e-4
FAILURES = []


def check(condition, message):
    print(("ok   " if condition else "FAIL ") + message)
    if not condition:
        FAILURES.append(message)


def run(args):
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if result.returncode != 0:
        print(result.stdout[-3000:], result.stderr[-3000:])
        raise SystemExit(f"{args[0]} exited {result.returncode}")
    return result.stdout


class Lite:
    """A .tflite file in LiteRT, fed normalised NCHW float images."""

    def __init__(self, path):
        self.interpreter = Interpreter(model_path=str(path), num_threads=2)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]

    def logits(self, image):
        x = image.permute(0, 2, 3, 1).numpy()  # NHWC
        dtype = self.input["dtype"]
        if dtype != np.float32:
            step, zero = self.input["quantization"]
            info = np.iinfo(dtype)
            x = np.clip(np.round(x / step) + zero, info.min, info.max).astype(dtype)
        self.interpreter.set_tensor(self.input["index"], x)
        self.interpreter.invoke()
        y = self.interpreter.get_tensor(self.output["index"])
        if y.dtype != np.float32:
            step, zero = self.output["quantization"]
            y = (y.astype(np.float32) - zero) * step
        return torch.from_numpy(y.astype(np.float64))


def normalised(path, mean, std):
    pixels = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)
    return ((pixels.to(torch.float32) / 255.0 - mean) / std).unsqueeze(0)


def metadata_of(path):
    model = schema.Model.GetRootAs(Path(path).read_bytes(), 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() == b"mnv2_metadata":
            return json.loads(model.Buffers(entry.Buffer()).DataAsNumpy().tobytes())
    return None


def check_float_keras(bin_dir, work, keras, photos):
    model_file = work / "keras.tflite"
    print(run([bin_dir / "mnv2-export", "--weights", keras, "--format", "tflite",
               "--output", model_file]))
    run([bin_dir / "mnv2-eval", "--weights", keras, "--predict", photos, "--topk", "1000",
         "--json", work / "fp32.json"])
    ours = probabilities_by_photo(work / "fp32.json", 1000)
    meta = metadata_of(model_file)
    check(meta is not None and len(meta["class_names"]) == 1000 and meta["val_crop"] == 224
          and len(meta["mean"]) == 3, "the float file's metadata: preprocessing and 1000 names")
    lite = Lite(model_file)
    signature = lite.interpreter.get_signature_list()
    check(signature == {"serving_default": {"inputs": ["input"], "outputs": ["logits"]}},
          f"signature {signature}")
    mean = torch.tensor(meta["mean"]).view(3, 1, 1)
    std = torch.tensor(meta["std"]).view(3, 1, 1)
    for name, p in sorted(ours.items()):
        q = torch.softmax(lite.logits(normalised(photos / f"{name}.png", mean, std)), 1)[0]
        diff = float(np.abs(q.numpy() - p).max())
        check(diff <= PROBABILITY_TOLERANCE and q.argmax().item() == p.argmax(),
              f"float32 Keras, {name}: LiteRT vs mnv2-eval max |p - p_ours| {diff:.1e}, "
              f"top-1 {q.argmax().item()} vs {p.argmax()}")
    # Another input size, odd (every stride-2 layer's SAME pads 1 and 1).
    small = work / "photos97"
    small.mkdir(exist_ok=True)
    for name in ["chelsea", "coffee", "rocket"]:
        Image.open(photos / f"{name}.png").resize((97, 97), Image.BILINEAR).save(
            small / f"{name}.png")
    model_file = work / "keras97.tflite"
    run([bin_dir / "mnv2-export", "--weights", keras, "--format", "tflite", "--img-size", 97,
         "--output", model_file])
    run([bin_dir / "mnv2-eval", "--weights", keras, "--predict", small, "--topk", "1000",
         "--resize-size", 97, "--crop-size", 97, "--json", work / "fp32_97.json"])
    lite = Lite(model_file)
    for name, p in sorted(probabilities_by_photo(work / "fp32_97.json", 1000).items()):
        q = torch.softmax(lite.logits(normalised(small / f"{name}.png", mean, std)), 1)[0]
        diff = float(np.abs(q.numpy() - p).max())
        check(list(lite.input["shape"]) == [1, 97, 97, 3] and diff <= PROBABILITY_TOLERANCE
              and q.argmax().item() == p.argmax(),
              f"float32 Keras at 97x97, {name}: max |p - p_ours| {diff:.1e}")
    return mean, std


def check_float_digits(bin_dir, work, digits):
    run_dir = work / "digits_run"
    run([bin_dir / "mnv2-train", "--data", digits, "--output", run_dir, "--epochs", 3,
         "--width-mult", 0.5, "--img-size", 48, "--batch-size", 64, "--overwrite"])
    checkpoint = run_dir / "model_best.pth"
    scripted = work / "digits.torchscript.pt"
    run([bin_dir / "mnv2-export", "--weights", checkpoint, "--format", "torchscript",
         "--output", scripted])
    # The validation images at the model's input size, so that mnv2-eval's
    # resize and crop are the identity and both sides read the same pixels.
    size = json.loads((run_dir / "model_best.json").read_text())["val_crop"]
    val = work / "digits_val"
    for path in sorted((digits / "val").glob("*/*.png")):
        (val / path.parent.name).mkdir(parents=True, exist_ok=True)
        Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR).save(
            val / path.parent.name / path.name)
    run([bin_dir / "mnv2-eval", "--weights", checkpoint, "--predict", val, "--topk", "1",
         "--resize-size", size, "--crop-size", size, "--json", work / "digits.json"])
    ours = {Path(e["image"]).relative_to(val).as_posix(): e["top"][0]["class"]
            for e in json.loads((work / "digits.json").read_text())}
    for source, weights in [("checkpoint", checkpoint), ("TorchScript export", scripted)]:
        model_file = work / f"digits_{source.split()[0].lower()}.tflite"
        print(run([bin_dir / "mnv2-export", "--weights", weights, "--format", "tflite",
                   "--output", model_file]))
        meta = metadata_of(model_file)
        lite = Lite(model_file)
        check(list(lite.input["shape"]) == [1, size, size, 3],
              f"digits ({source}): input {list(lite.input['shape'])}")
        mean = torch.tensor(meta["mean"]).view(3, 1, 1)
        std = torch.tensor(meta["std"]).view(3, 1, 1)
        differ = []
        for relative, top1 in sorted(ours.items()):
            if lite.logits(normalised(val / relative, mean, std)).argmax().item() != top1:
                differ.append(relative)
        check(not differ, f"digits ({source}): LiteRT's top-1 = mnv2-eval's on "
              f"{len(ours) - len(differ)} of {len(ours)} validation images {differ[:5]}")
    # A frozen TorchScript file has its weights inlined in the graph.
    frozen = work / "digits.frozen.pt"
    run([bin_dir / "mnv2-export", "--weights", checkpoint, "--format", "torchscript",
         "--freeze", "--output", frozen])
    check_refused([bin_dir / "mnv2-export", "--weights", frozen, "--format", "tflite",
                   "--output", work / "frozen.tflite"], "did not write unfrozen",
                  "a frozen TorchScript file", work / "frozen.tflite")


def check_operators(model_file, state, image):
    """Each operator of LiteRT's int8 run against the exact result of the
    int8 file's arithmetic on the codes LiteRT fed it."""
    interpreter = Interpreter(model_path=str(model_file), num_threads=2,
                              experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    lite_input = interpreter.get_input_details()[0]
    step, _ = lite_input["quantization"]
    interpreter.set_tensor(lite_input["index"], np.clip(
        np.round(image.permute(0, 2, 3, 1).numpy() / step), -128, 127).astype(np.int8))
    interpreter.invoke()
    details = {d["name"]: d for d in interpreter.get_tensor_details()}

    def value(name):
        """The tensor's real values (NCHW float64) and its code step."""
        d = details[name]
        step, zero = d["quantization"]
        codes = torch.from_numpy(interpreter.get_tensor(d["index"]).astype(np.float64))
        real = (codes - zero) * step
        return (real.permute(0, 3, 1, 2) if real.dim() == 4 else real), step, zero

    def within_one_step(name, exact):
        got, step, zero = value(name)
        exact = exact.clamp((-128 - zero) * step, (127 - zero) * step)  # saturation
        return float((got - exact).abs().max()) / step

    residual = state["quantization.residual"].tolist()
    worst = 0.0
    previous, block_input, block, index = "input", "input", -1, 0
    n = 0
    while f"convs.{n}.codes" in state:
        b, stride, padding, same, groups, relu6 = state[f"convs.{n}.geometry"].tolist()
        if b != block:
            block, block_input, index = b, previous, 0
        x, x_step, _ = value(previous)
        w = state[f"convs.{n}.codes"].double()
        codes = x / x_step
        if same:
            codes = tf_same_pad(codes, w.shape[2], stride)
        y = (torch.nn.functional.conv2d(codes, w, None, stride, padding, 1, groups)
             * (state[f"convs.{n}.weight_scale"].double() * x_step).view(1, -1, 1, 1)
             + state[f"convs.{n}.bias"].double().view(1, -1, 1, 1))
        if relu6:
            y = y.clamp(0, 6)
        name = f"features.{b}.conv{index}"
        worst = max(worst, within_one_step(name + ".output", y))
        previous = name + ".output"
        last = f"convs.{n + 1}.codes" not in state or \
            state[f"convs.{n + 1}.geometry"][0].item() != b
        if residual[b] and last:
            total = value(previous)[0] + value(block_input)[0]
            worst = max(worst, within_one_step(name + ".sum", total))
            previous = name + ".sum"
        n, index = n + 1, index + 1
    pooled = value(previous)[0].mean((2, 3))
    worst = max(worst, within_one_step("pooled", pooled))
    # The classifier's weights are quantized for TFLite only (our engine
    # keeps them fp32): their rounding is the rest of the difference.
    logits = value("pooled")[0] @ state["classifier.weight"].double().T + \
        state["classifier.bias"].double()
    classifier = within_one_step("logits", logits)
    return worst, classifier


def check_int8(bin_dir, work, keras, photos, mean, std):
    int8_file = work / "keras_int8.pth"
    run([bin_dir / "mnv2-export", "--weights", keras, "--format", "int8",
         "--calibration-data", photos, "--output", int8_file])
    run([bin_dir / "mnv2-eval", "--weights", int8_file, "--predict", photos, "--topk", "1000",
         "--json", work / "int8.json"])
    engine = probabilities_by_photo(work / "int8.json", 1000)
    state = torch.load(int8_file, weights_only=True)
    check("quantization.logits_scale" in state, "the int8 file holds the logits' step")
    for io in ["int8", "uint8", "float32"]:
        model_file = work / f"keras_int8_{io}.tflite"
        print(run([bin_dir / "mnv2-export", "--weights", int8_file, "--format", "tflite",
                   "--tflite-io", io, "--output", model_file]))
        if io == "int8":
            for name in ["horse", "coffee"]:
                convs, classifier = check_operators(
                    model_file, state, normalised(photos / f"{name}.png", mean, std))
                check(convs <= 1 and classifier <= 2,
                      f"int8 operators, {name}: LiteRT within {convs:.2f} code steps of the "
                      f"int8 file's arithmetic (at most 1), the classifier within "
                      f"{classifier:.2f} (at most 2; its weights are rounded for TFLite)")
        lite = Lite(model_file)
        for name, p in sorted(engine.items()):
            q = torch.softmax(lite.logits(normalised(photos / f"{name}.png", mean, std)),
                              1)[0].numpy()
            covered, first, ratio = confident(p)
            diff = float(np.abs(q - p).max())
            check((q.argmax() == p.argmax() or not covered) and diff < 0.1,
                  f"int8 ({io} in and out), {name}: top-1 {q.argmax()} vs our engine's "
                  f"{p.argmax()} ({first:.3f}, {ratio:.2f}x the runner-up"
                  f"{'' if covered else ', under the claim'}), max |p - p_ours| {diff:.3f}")
    return int8_file


def check_refused(args, text, what, output):
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    lines = [line for line in result.stderr.splitlines() if line and "warning" not in line]
    check(result.returncode != 0 and len(lines) == 1 and text in lines[0]
          and not Path(output).exists() and not any(Path(output).parent.glob("*.tmp-*")),
          f"{what}: exit {result.returncode}, {lines}, nothing left")


def check_bad_inputs(bin_dir, work, keras, int8_file):
    export = [bin_dir / "mnv2-export", "--format", "tflite"]
    out = work / "refused.tflite"
    onnx = work / "model.onnx"
    onnx.write_bytes(b"\x08\x07\x12\x04test")
    check_refused(export + ["--weights", onnx, "--output", out], "ONNX",
                  "an ONNX file as weights", out)
    check_refused(export + ["--weights", keras, "--output", out, "--img-size", "2048"],
                  "--img-size must be in [16, 1024]", "a size it cannot represent", out)
    check_refused(export + ["--weights", keras, "--output", out, "--width-mult", "0.75"],
                  "does not match the weights' width", "a width the weights do not have", out)
    check_refused(export + ["--weights", keras, "--output", out, "--tflite-io", "uint8"],
                  "--tflite-io is for int8 weights", "--tflite-io on float weights", out)
    blocked = work / "no_such_folder" / "m.tflite"
    check_refused(export + ["--weights", int8_file, "--output", blocked],
                  "does not exist", "an unwritable output", blocked)


def main():
    bin_dir, work, pretrained, digits = (Path(a) for a in sys.argv[1:5])
    keras = pretrained / KERAS_FILE
    if not keras.exists():
        raise SystemExit(f"{keras} is missing: run scripts/get-pretrained.sh")
    photos = prepare_photos(work)
    mean, std = check_float_keras(bin_dir, work, keras, photos)
    int8_file = check_int8(bin_dir, work, keras, photos, mean, std)
    check_float_digits(bin_dir, work, digits)
    check_bad_inputs(bin_dir, work, keras, int8_file)
    if FAILURES:
        raise SystemExit(f"{len(FAILURES)} checks failed")


if __name__ == "__main__":
    main()
