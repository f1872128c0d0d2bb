"""Checkpoints of a self-play run, written without pickle and swapped in atomically.

``OUT/checkpoints/round-NNNNNN/`` holds the adapter (peft's safetensors), the optimiser's tensors
(``optimizer.safetensors``) and its scalars (``optimizer.json``), the replay (``replay.json``)
and the run state (``state.json``: round, curriculum, update count, elapsed time). A checkpoint
is written to a hidden directory and renamed into place, so a crash leaves either the whole
checkpoint or none. Every random choice of a round derives from the run seed and the round
number, so the RNG needs no saving: a resumed run replays the interrupted round exactly.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from openberry.fileio import write_text_atomic

__all__ = ["checkpoints", "load_checkpoint", "save_checkpoint"]

PREFIX = "round-"


def checkpoints(out: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run directory, oldest first."""
    root = out / "checkpoints"
    if not root.is_dir():
        return []
    found = []
    for d in root.iterdir():
        if d.name.startswith(PREFIX) and (d / "state.json").is_file():
            found.append((int(d.name[len(PREFIX) :]), d))
    return sorted(found)


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, Any], dict]:
    state = optimizer.state_dict()
    tensors, scalars = {}, {"param_groups": state["param_groups"], "state": {}}
    for pid, slots in state["state"].items():
        for key, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"{pid}.{key}"] = value.detach().contiguous().clone()
            else:
                scalars["state"].setdefault(str(pid), {})[key] = value
    return tensors, scalars


def save_checkpoint(
    out: Path,
    round_: int,
    model: Any,
    optimizer: torch.optim.Optimizer,
    replay: Any,
    state: dict[str, Any],
    keep: int,
) -> Path:
    """Write the checkpoint of the run after `round_` rounds; keep the newest `keep`."""
    root = out / "checkpoints"
    final = root / f"{PREFIX}{round_:06d}"
    tmp = root / f".tmp-{PREFIX}{round_:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(str(tmp / "adapter"))
    tensors, scalars = _optimizer_tensors(optimizer)
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    (tmp / "optimizer.json").write_text(json.dumps(scalars), encoding="utf-8")
    replay.save(tmp / "replay.json")
    write_text_atomic(tmp / "state.json", json.dumps(state, indent=1) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for _, old in checkpoints(out)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(
    path: Path, model: Any, optimizer: torch.optim.Optimizer, replay_cls: Any
) -> tuple[Any, dict[str, Any]]:
    """Load a checkpoint into `model` (adapter weights) and `optimizer`; returns the replay
    and the run state."""
    from peft import set_peft_model_state_dict

    weights = load_file(str(path / "adapter" / "adapter_model.safetensors"))
    set_peft_model_state_dict(model, weights)
    scalars = json.loads((path / "optimizer.json").read_text(encoding="utf-8"))
    tensors = load_file(str(path / "optimizer.safetensors"))
    state: dict[Any, dict[str, Any]] = {}
    for key, value in tensors.items():
        pid, slot = key.split(".", 1)
        state.setdefault(int(pid), {})[slot] = value
    for pid, slots in scalars["state"].items():
        state.setdefault(int(pid), {}).update(slots)
    optimizer.load_state_dict({"state": state, "param_groups": scalars["param_groups"]})
    replay = replay_cls.load(path / "replay.json")
    return replay, json.loads((path / "state.json").read_text(encoding="utf-8"))
