"""Train the glyph classifier of the sample metrics (rgdiff_core/classifier.py) on the CPU.

    .venv/bin/python scripts/train_classifier.py            # writes assets/classifier/glyphs_cnn.*

Data: the glyphs training split at 32 x 32 (60 000 images, seed 0); held-out accuracy on the
whole test split (10 000, seed 1), which is never used to choose anything. Adam with a linear
warm-up and cosine decay, cross-entropy, minibatches drawn with replacement from a generator
seeded by --seed (which also seeds the initial weights). Deterministic for a given seed,
torch version and thread count (one intra-op thread by default: on a shared 2-core machine it
was also the fastest). Writes NAME.pt (the state dict, plain float32 tensors), NAME.json
(architecture, command, steps, time, accuracy, seed, SHA-256) and NAME.log (this log).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch
import torch.nn.functional as F

from rgdiff_core.classifier import CHANNELS, FEATURES, INPUT_SIZE, GlyphClassifier
from rgdiff_core.data import load_dataset
from rgdiff_core.glyphs import VERSION as GLYPHS_VERSION


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--out", type=Path, default=ROOT / "assets" / "classifier" / "glyphs_cnn.pt")
    return p.parse_args(argv)


def learning_rate(step: int, args: argparse.Namespace) -> float:
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = (step - args.warmup) / max(args.steps - args.warmup, 1)
    return args.lr * 0.5 * (1 + math.cos(math.pi * progress))


def accuracy(net: GlyphClassifier, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.inference_mode():
        pred = torch.cat([net(x[i : i + 1000]).argmax(1) for i in range(0, len(x), 1000)])
    return (pred == y).double().mean().item()


def train(args: argparse.Namespace, log) -> tuple[GlyphClassifier, dict]:
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(args.seed)  # the initial weights
    gen = torch.Generator().manual_seed(args.seed)  # the minibatches
    x, y = load_dataset("glyphs", INPUT_SIZE, split="train", labels=True)
    net = GlyphClassifier()
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    start, running = time.perf_counter(), []
    for step in range(args.steps):
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, args)
        idx = torch.randint(len(x), (args.batch,), generator=gen)
        logits = net(x[idx])
        loss = F.cross_entropy(logits, y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running.append((loss.item(), (logits.argmax(1) == y[idx]).float().mean().item()))
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            mean_loss = sum(r[0] for r in running) / len(running)
            mean_acc = sum(r[1] for r in running) / len(running)
            log(
                f"step {step + 1:5d}  loss {mean_loss:.4f}  batch acc {mean_acc:.4f}  "
                f"lr {learning_rate(step, args):.2e}  {time.perf_counter() - start:6.1f} s"
            )
            running = []
    train_time = time.perf_counter() - start
    net.eval()
    x_test, y_test = load_dataset("glyphs", INPUT_SIZE, split="test", labels=True)
    record = {
        "train_seconds": round(train_time, 1),
        "train_accuracy_first_10000": round(accuracy(net, x[:10000], y[:10000]), 4),
        "test_accuracy": round(accuracy(net, x_test, y_test), 4),
    }
    return net, record


def main(argv=None) -> None:
    args = parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []

    def log(msg: str) -> None:
        print(msg, flush=True)
        lines.append(msg)

    command = "python scripts/train_classifier.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    log(f"$ {command.strip()}")
    log(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{args.threads} thread(s)")  # fmt: skip
    net, record = train(args, log)
    state = {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}
    torch.save(state, args.out)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    n_params = sum(v.numel() for v in state.values())
    size = args.out.stat().st_size
    log(f"held-out (glyphs test, 10 000) accuracy {record['test_accuracy']:.4f}; "
        f"{n_params} parameters, {size} bytes, sha256 {digest[:16]}")  # fmt: skip
    info = {
        "architecture": {
            "class": "rgdiff_core.classifier.GlyphClassifier",
            "layers": f"3 x [conv3x3 pad 1 -> ReLU -> maxpool 2] with channels {list(CHANNELS)};"
            f" flatten -> linear {FEATURES} -> ReLU (features) -> linear 10",
            "input": f"(N, 1, {INPUT_SIZE}, {INPUT_SIZE}) in [-1, 1]; other sizes are resized"
            " bilinearly",
            "features": FEATURES,
            "parameters": n_params,
        },
        "data": "glyphs train split (60 000, seed 0) at 32 x 32; held out: glyphs test (10 000)",
        "glyphs_version": GLYPHS_VERSION,  # retrain when rgdiff_core.glyphs.VERSION changes
        "command": command.strip(),
        "steps": args.steps,
        "batch": args.batch,
        "lr": args.lr,
        "warmup": args.warmup,
        "optimizer": "Adam, linear warm-up then cosine decay to 0, cross-entropy",
        "seed": args.seed,
        "threads": args.threads,
        "torch": torch.__version__,
        "hardware": f"CPU ({platform.machine()}), {args.threads} thread(s), shared machine",
        **record,
        "bytes": size,
        "sha256": digest,
    }
    args.out.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    args.out.with_suffix(".log").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
