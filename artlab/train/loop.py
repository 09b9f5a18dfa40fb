"""The training loop: cross-entropy, Adam or SGD, an optional scheduler, early stopping on validation loss.

It takes the model, the batches and the forward function explicitly, so the same loop trains on images (finetune,
scratch) or on cached outputs of the frozen part (partial, transfer: the CPU path). The best-validation weights are
what comes back. A resume file, written atomically after every epoch, lets a killed run pick up where it stopped.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import nn

from artlab.io import atomic_save
from artlab.model.classifier import Classifier, train_mode, trained_state
from artlab.progress import Progress
from artlab.train.accel import NONE, Accel
from artlab.train.config import TrainConfig
from artlab.train.distributed import SINGLE, World

Batches = Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]]


@dataclasses.dataclass
class FitResult:
    history: list[dict]
    best_state: dict[str, torch.Tensor]
    best_epoch: int
    stopped_early: bool
    seconds: float


@dataclasses.dataclass
class LoopState:
    """What the loop carries from epoch to epoch, and what a resume file holds beside the weights and optimiser."""
    epoch: int = 0
    history: list[dict] = dataclasses.field(default_factory=list)
    best_loss: float = math.inf
    best_epoch: int = 0
    since_best: int = 0
    best_state: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.learning_rate, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig):
    if cfg.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step_size, gamma=cfg.gamma)
    if cfg.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=cfg.gamma,
                                                          patience=cfg.plateau_patience)
    return None


def run_epoch(forward, batches, criterion, device, opt=None, progress: Progress | None = None,
              world: World = SINGLE, accel: Accel = NONE) -> tuple[float, float]:
    """One pass; trains when ``opt`` is given. Returns (mean loss, accuracy); under torchrun, training batches are
    shards of global batches and the figures are the global ones. ``accel``: autocast and channels_last on a GPU."""
    total, loss_sum, correct = 0, 0.0, 0
    sharded = world.distributed and opt is not None
    for x, y in batches():
        x, y = accel.inputs(x.to(device, non_blocking=True).float()), y.to(device, non_blocking=True)
        with torch.set_grad_enabled(opt is not None), accel.context(device):
            logits = forward(x)
            if sharded:
                loss, batch_loss, n = _share_of_global_loss(logits, y, criterion, world)
            else:
                loss = criterion(logits, y)
                batch_loss, n = float(loss.detach()), len(y)
        if opt is not None:
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        total += n
        loss_sum += batch_loss * n
        correct += int((logits.argmax(1) == y).sum())
        if progress:
            progress.advance(n)
    if sharded:
        correct = int(world.sum([correct])[0])
    return loss_sum / max(total, 1), correct / max(total, 1)


def _share_of_global_loss(logits, y, criterion: nn.CrossEntropyLoss, world: World):
    """(what this process backpropagates, the global batch's mean loss, the global batch's size).

    DDP averages gradients over the processes, so each backpropagates (the sum of its paintings' losses) x processes
    / (the global batch's total weight): the average is then the gradient of the global batch's (class-weighted)
    mean loss, whatever the shard sizes, as on one process."""
    weight = criterion.weight
    summed = nn.functional.cross_entropy(logits, y, weight=weight, reduction="sum")
    mine = float(weight[y].sum()) if weight is not None else float(len(y))
    total_loss, total_weight, n = world.sum([float(summed.detach()), mine, float(len(y))])
    return summed * world.size / total_weight, total_loss / total_weight, int(n)


def fit(model: Classifier, forward: Callable, train_batches: Batches, val_batches: Batches, n_train: int,
        cfg: TrainConfig, device: torch.device, criterion: nn.Module, progress: Progress,
        resume_file: Path | None = None, world: World = SINGLE, train_forward: Callable | None = None,
        accel: Accel = NONE) -> FitResult:
    """Train with early stopping. Under torchrun, ``train_batches`` yields this process's shards of each batch and
    ``train_forward`` is ``forward`` through DDP (artlab.train.distributed); validation runs whole on every process."""
    train_forward = train_forward or forward
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(params, cfg)
    sched = make_scheduler(opt, cfg)
    state = LoopState(best_state=trained_state(model, cfg.method))
    if resume_file is not None and resume_file.is_file():
        state = _restore(resume_file, model, opt, sched)
        progress.message(f"resuming after epoch {state.epoch}")
    stopped = False
    while state.epoch < cfg.epochs and not stopped:
        epoch, t0 = state.epoch + 1, time.perf_counter()
        torch.manual_seed(cfg.seed * 1000 + epoch)  # shuffling and dropout replay identically after a resume
        progress.stage(f"epoch {epoch}/{cfg.epochs}", n_train)
        train_mode(model, cfg.method)
        tr_loss, tr_acc = run_epoch(train_forward, train_batches, criterion, device, opt, progress, world, accel)
        world.share_buffers(model)
        model.eval()
        va_loss, va_acc = run_epoch(forward, val_batches, criterion, device, accel=accel)
        if world.distributed:  # one number everywhere: a GPU's last-bit noise must not let processes stop apart
            va_loss, va_acc = (v / world.size for v in world.sum([va_loss, va_acc]))
        lr = opt.param_groups[0]["lr"]
        if sched is not None:
            sched.step(va_loss) if cfg.scheduler == "plateau" else sched.step()
        improved = va_loss < state.best_loss - 1e-7
        if improved:
            state.best_loss, state.best_epoch, state.since_best = va_loss, epoch, 0
            state.best_state = trained_state(model, cfg.method)
        else:
            state.since_best += 1
        state.seconds += time.perf_counter() - t0
        state.history.append({"epoch": epoch, "train_loss": tr_loss, "train_accuracy": tr_acc, "val_loss": va_loss,
                                 "val_accuracy": va_acc, "lr": lr, "best": improved,
                                 "seconds": time.perf_counter() - t0})
        state.epoch = epoch
        stopped = state.since_best >= cfg.patience
        # Rank 0 alone writes; before reporting, so a callback that raises (Ctrl-C, an app rerun) loses nothing.
        if resume_file is not None and world.main:
            _checkpoint(resume_file, state, model, opt, sched, cfg.method)
        progress.message(f"epoch {epoch}: train loss {tr_loss:.3f} acc {tr_acc:.3f} | val loss {va_loss:.3f} "
                         f"acc {va_acc:.3f}{' *' if improved else ''}")
    progress.done()
    if not cfg.restore_best:  # the recipe cross-validation measured: a fixed number of epochs, the last weights kept
        state.best_state, state.best_epoch = trained_state(model, cfg.method), state.epoch
    return FitResult(state.history, state.best_state, state.best_epoch,
                     stopped_early=stopped and state.epoch < cfg.epochs, seconds=state.seconds)


def _checkpoint(path: Path, state: LoopState, model, opt, sched, method: str) -> None:
    blob = dict(vars(state), model=trained_state(model, method), optimizer=opt.state_dict(),
                scheduler=sched.state_dict() if sched is not None else None)
    atomic_save(path, lambda tmp: torch.save(blob, tmp))


def _restore(path: Path, model, opt, sched) -> LoopState:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(blob.pop("model"), strict=False)
    opt.load_state_dict(blob.pop("optimizer"))
    sched_state = blob.pop("scheduler")
    if sched is not None and sched_state is not None:
        sched.load_state_dict(sched_state)
    blob["best_state"] = copy.deepcopy(blob["best_state"])
    return LoopState(**blob)
