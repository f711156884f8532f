"""Shared helpers of the benchmark drivers (Python is only the peer and the
harness here; what is measured for us is our C++ code)."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build"
# Our programs' start-up allocator settings (src/common/runtime.cpp), given
# to the Python peers so that they are fair.
FAIR_TUNABLES = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=1073741824"
# LD_PRELOAD'ed by --no-amx (bench/no_amx.cpp).
NO_AMX = BUILD / "bench" / "libmnv2-bench-no-amx.so"


def rerun_with_fair_allocator():
    """Re-executes the calling script under FAIR_TUNABLES unless it already is."""
    if os.environ.get("GLIBC_TUNABLES") != FAIR_TUNABLES:
        os.execve(sys.executable, [sys.executable, *sys.argv],
                  {**os.environ, "GLIBC_TUNABLES": FAIR_TUNABLES})


def amx_withheld():
    return str(NO_AMX) in os.environ.get("LD_PRELOAD", "").split(":")


def withhold_amx():
    """Re-executes the calling script (and so every program it starts) with
    AMX refused to every oneDNN, ours and the peers' (bench/no_amx.cpp):
    an AMX host measured as a CPU with AVX-512 VNNI and BF16 only. Checks
    that the refusal took."""
    if not amx_withheld():
        if not NO_AMX.exists():
            sys.exit(f"{NO_AMX} is missing: build the project first")
        preload = ":".join(filter(None, [str(NO_AMX), os.environ.get("LD_PRELOAD")]))
        os.execve(sys.executable, [sys.executable, *sys.argv],
                  {**os.environ, "LD_PRELOAD": preload})
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    arch_prctl, request_permission, tile_data = 158, 0x1023, 18
    if libc.syscall(arch_prctl, request_permission, tile_data) != -1:
        sys.exit("--no-amx: the AMX permission request was not refused")


def torchvision_training_step(batch, size, threads, channels_last, compiled=False,
                              bf16=False):
    """torchvision's MobileNetV2 1.0 training step as a plain Python loop runs
    it (SGD momentum 0.9, weight decay 4e-5, cross entropy, random data), the
    peer of `mnv2-bench train-step`; `compiled`: the model under
    torch.compile (forward and backward compiled, Inductor's C++ kernels);
    `bf16`: the forward and the loss under CPU autocast to bf16, as
    `mnv2-bench train-step --amp-dtype bf16`.
    Returned warmed up by two steps (the compilation happens there)."""
    import torch
    import torchvision
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    format_ = torch.channels_last if channels_last else torch.contiguous_format
    model = torchvision.models.mobilenet_v2(num_classes=1000).train().to(memory_format=format_)
    forward = torch.compile(model) if compiled else model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=4e-5)
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=format_)
    y = torch.randint(0, 1000, (batch,))

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(forward(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(2):
        step()
    return step


def run_json(args):
    out = subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def print_table(title, header, rows):
    print(title)
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    for row in [header, *rows]:
        print("  " + "  ".join(str(x).rjust(w) for x, w in zip(row, widths)))


def write_json(path, data):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {path}")


def photo_folder(out, copies=24, longest=500):
    """Real photographs (scikit-image's samples), resized (longest side about
    `longest` pixels: 500 is ImageNet's typical size, 4000 a phone's) and
    re-encoded as JPEG into an ImageFolder of two classes."""
    from PIL import Image, ImageOps
    from skimage import data
    out = Path(out)
    if (out / ".complete").exists():
        return out
    names = ["astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "cat"]
    photos = []
    for name in names:
        try:
            photos.append(Image.fromarray(getattr(data, name)()).convert("RGB"))
        except Exception:
            pass
    for i in range(copies):
        for j, photo in enumerate(photos):
            w, h = photo.size
            scale = longest / max(w, h) * (0.8 + 0.05 * (i % 8))
            image = photo.resize((int(w * scale), int(h * scale)), Image.BILINEAR)
            if i % 2:
                image = ImageOps.mirror(image)
            target = out / f"class{j % 2}" / f"{names[j]}_{i:03d}.jpg"
            target.parent.mkdir(parents=True, exist_ok=True)
            image.save(target, quality=90)
    (out / ".complete").write_text("ok")
    return out


def host_label():
    """The CPU model and the instruction-set flags that matter for speed."""
    model, flags = "unknown CPU", set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name") and model == "unknown CPU":
            model = line.split(":", 1)[1].strip()
        elif line.startswith("flags") and not flags:
            flags = set(line.split(":", 1)[1].split())
    wanted = ["avx2", "avx512f", "avx512_bf16", "amx_bf16"]
    present = [f for f in wanted if f in flags] or ["no AVX2"]
    import os
    if amx_withheld():
        present = [f"{f} withheld" if f.startswith("amx") else f for f in present]
    caps = [f"{v}={os.environ[v]}" for v in ISA_CAPS if os.environ.get(v)]
    capped = f"; capped by {', '.join(caps)}" if caps else ""
    return f"{model} ({', '.join(present)}; {os.cpu_count()} cores{capped})"


# The variables that cap the instruction sets oneDNN, ATen and MKL use, on
# both sides of a run (an AVX-512 host measured as an AVX2 one, say).
ISA_CAPS = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS")


def isa_capped_below_16bit_floats():
    """Whether the caps keep oneDNN or ATen from bf16 arithmetic, as
    models/util/cpu_features.cpp reads them: bf16 is then emulated."""
    import os
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if isa:
        return not (isa == "ALL" or isa.startswith(("AVX512_CORE_BF16", "AVX512_CORE_FP16",
                                                    "AVX512_CORE_AMX", "AVX10")))
    return os.environ.get("ATEN_CPU_CAPABILITY") in ("default", "avx2")
