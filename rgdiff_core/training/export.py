"""Export a training checkpoint as a shipped model: NAME.pt (EMA weights, no optimiser state),
NAME.json (provenance) and NAME_loss.csv (the loss curve)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..denoisers.checkpoints import atomic_save, load_checkpoint, weights_megabytes

__all__ = ["export_checkpoint"]


def export_checkpoint(
    checkpoint: str | os.PathLike,
    dest: str | os.PathLike,
    command: str | None = None,
    max_mb: float = 10.0,
) -> dict:
    """Write the EMA model of a training checkpoint to `dest` (NAME.pt, no optimiser state;
    weights as float16 only if float32 would exceed max_mb), plus NAME.json (config, command,
    steps, hardware, time, final loss) and NAME_loss.csv (step,loss). Returns the JSON dict."""
    ckpt = load_checkpoint(checkpoint, map_location="cpu")
    train_state = ckpt.pop("train", None) or {}
    dest = Path(dest)
    basis_mb = weights_megabytes(ckpt["basis_state"])
    half = weights_megabytes(ckpt["state_dict"]) + basis_mb > 0.95 * max_mb
    if half:
        ckpt["state_dict"] = {
            k: v.half() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()
        }
    if command is not None:
        ckpt["command"] = command
    atomic_save(ckpt, dest)
    losses = ckpt["loss_history"]
    tail = losses[-100:]
    meta = {
        "file": dest.name,
        "format": ckpt["format"],
        "version": ckpt["version"],
        "dataset": ckpt["dataset"],
        "size": ckpt["size"],
        "channels": ckpt["channels"],
        "basis": ckpt["basis_spec"],
        "prior": ckpt["prior_kind"],
        "order": ckpt["order"],
        "gamma_denoise": ckpt["gamma_denoise"],
        "gamma_noise": ckpt["gamma_noise"],
        "clip": ckpt["clip"],
        "softness_family": ckpt["softness_family"],
        "model_config": ckpt["model_config"],
        "parameters": sum(v.numel() for v in ckpt["state_dict"].values()),
        "weights_dtype": "float16" if half else "float32",
        "file_mb": round(dest.stat().st_size / 1e6, 3),
        "train_config": train_state.get("config"),
        "command": ckpt["command"],
        "steps": ckpt["steps"],
        "hardware": ckpt["hardware"],
        "time_s": ckpt["time_s"],
        "final_loss": sum(tail) / len(tail) if tail else None,
    }
    stem = dest.with_suffix("")
    json_path = stem.parent / (stem.name + ".json")
    json_path.write_text(json.dumps(meta, indent=2) + "\n")
    csv_path = stem.parent / (stem.name + "_loss.csv")
    csv_path.write_text("step,loss\n" + "".join(f"{i + 1},{x:.6g}\n" for i, x in enumerate(losses)))
    return meta
