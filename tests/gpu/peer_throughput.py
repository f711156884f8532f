"""The GPU check's peer: torchvision's mobilenet_v2 in the machine's own
PyTorch, timed exactly as the C++ side times ours (CUDA events; the same
batches, AMP fp16, channels_last, cudnn.benchmark, warm-up and step counts).

Prints one line per measurement: `train <batch> <images/s>` or
`infer <batch> <images/s>`. Python is the reference here, never the product.
"""
import argparse

import torch
import torchvision


def timed(step, warmup, steps):
    for _ in range(warmup):
        step()
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(steps):
        step()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1000.0


def batch(size, classes=1000):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(size, 3, 224, 224, generator=g).cuda()
    y = torch.randint(0, classes, (size,), generator=g).cuda()
    return x.contiguous(memory_format=torch.channels_last), y


def train(size, warmup, steps):
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v2().cuda().to(memory_format=torch.channels_last)
    model.train()
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    optimizer = torch.optim.SGD([{"params": decay, "weight_decay": 4e-5},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=0.01, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda")
    loss_fn = torch.nn.CrossEntropyLoss()
    x, y = batch(size)

    def step():
        optimizer.zero_grad(set_to_none=False)
        with torch.autocast("cuda", dtype=torch.float16):
            loss = loss_fn(model(x).float(), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    return size * steps / timed(step, warmup, steps)


def infer(size, warmup, steps):
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v2().cuda().to(memory_format=torch.channels_last).eval()
    x, _ = batch(size)

    def step():
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16):
            model(x)

    return size * steps / timed(step, warmup, steps)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--train", default="", help="batch sizes, comma-separated")
    parser.add_argument("--infer", default="", help="batch sizes, comma-separated")
    parser.add_argument("--warmup", type=int, required=True)
    parser.add_argument("--train-steps", type=int, required=True)
    parser.add_argument("--infer-steps", type=int, required=True)
    args = parser.parse_args()
    torch.backends.cudnn.benchmark = True
    for size in filter(None, args.train.split(",")):
        print(f"train {size} {train(int(size), args.warmup, args.train_steps):.1f}", flush=True)
    for size in filter(None, args.infer.split(",")):
        steps = args.infer_steps * (8 if int(size) == 1 else 1)
        print(f"infer {size} {infer(int(size), args.warmup, steps):.1f}", flush=True)
    print(f"torch {torch.__version__} torchvision {torchvision.__version__} "
          f"cudnn {torch.backends.cudnn.version()}", flush=True)


if __name__ == "__main__":
    main()
