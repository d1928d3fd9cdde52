"""The one PyTorch training loop that every torch family runs (the MLP, the CNN, fine-tuning).

A ``Loop`` runs epochs of shuffled index batches. The family brings what is its own: the module,
the optimiser, ``batch_loss(index)`` (forward pass, augmentation, criterion for the rows
``index``) and ``validate()``. The loop does backward and the optimiser step, validates after
each epoch and emits its ``EpochEnded``. Everything else is a small ``Hook``, in the spirit of
skorch's callbacks:

- ``EarlyStop``: patience on the validation loss, the best epoch's weights restored at the end;
- ``StopOrBudget``: the stop flag cancels the fit, a spent time budget stops it early;
- ``StepEvents``: throttled ``StepEnded`` events;
- ``Schedule``: a learning-rate schedule stepped per batch or per epoch.

RNG policy, the same for every torch fit: run the module's construction and the loop inside
``seeded(seed, device)``. It forks torch's global RNG and seeds it with the job seed, so module
init and dropout are reproducible and the caller's global RNG is neither used nor changed; it
yields a ``torch.Generator`` seeded with the job seed for the batch order and anything the family
draws per batch (augmentation).

Messages are worded here once, so every family says the same thing when it stops.
"""

from __future__ import annotations

import math
import pickle
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from core.errors import RunError
from core.events import Callback, EpochEnded, Message, StopFlag, ignore
from core.models.base import EarlyStopping, StepThrottle, epoch_event, stop_message


@contextmanager
def reading_saved_model(folder: Path) -> Iterator[None]:
    """Loading a torch run's ``model.json`` + ``model.pt``: a missing or damaged file becomes one
    clear ``RunError`` (every torch family says the same)."""
    try:
        yield
    except FileNotFoundError as err:
        raise RunError(f"The run folder '{folder}' has no saved model ({Path(err.filename).name} is missing). "
                       "Train the model again.") from None
    except (ValueError, KeyError, TypeError, RuntimeError, OSError, EOFError, pickle.UnpicklingError) as err:
        raise RunError(f"The saved model in '{folder}' is damaged or from another program ({err}). "
                       "Train the model again.") from None


def warm_up() -> None:
    """Pay torch's lazy imports now: the first optimiser a process builds imports ``torch._dynamo``
    (3-4 s on 2 cores, measured), which would otherwise land inside the first torch fit — in the
    automatic contest, inside the MLP's first fold, where the budget counts it."""
    torch.optim.AdamW([torch.zeros(1, requires_grad=True)])


@contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[torch.Generator]:
    """Seed torch's global RNG (module init, dropout) inside a fork of it, restored on exit, and
    yield the fit's own generator (batch order, augmentation)."""
    accelerated = device.type != "cpu"
    with torch.random.fork_rng(devices=[device.index or 0] if accelerated else [],
                               device_type=device.type if accelerated else None):
        torch.manual_seed(seed)
        yield torch.Generator().manual_seed(seed)


class Batches:
    """Shuffled index batches over ``n_rows`` rows, on ``device``.

    Slices of ``batch_size`` (the last one shorter), or with ``even`` ``n_rows // batch_size``
    near-equal batches: no short last batch, which BatchNorm cannot train on when it is one row.
    """

    def __init__(self, n_rows: int, batch_size: int, device: torch.device, even: bool = False) -> None:
        self.n_rows, self.batch_size, self.device, self.even = n_rows, batch_size, device, even

    def __len__(self) -> int:
        if self.even:
            return max(1, self.n_rows // self.batch_size)
        return math.ceil(self.n_rows / self.batch_size)

    def shuffled(self, generator: torch.Generator) -> Sequence[torch.Tensor]:
        order = torch.randperm(self.n_rows, generator=generator).to(self.device)
        return torch.tensor_split(order, len(self)) if self.even else order.split(self.batch_size)


class RunningLoss:
    """The epoch's mean training loss so far. It stays on the device until ``float()`` reads it:
    once per epoch, and when a ``StepEnded`` is due (a sync per batch would slow the loop)."""

    __slots__ = ("total", "count")

    def __init__(self, device: torch.device) -> None:
        self.total = torch.zeros((), device=device)
        self.count = 0

    def add(self, loss: torch.Tensor, n_rows: int) -> None:
        self.total.add_(loss.detach(), alpha=n_rows)
        self.count += n_rows

    def __float__(self) -> float:
        return self.total.item() / max(self.count, 1)


class Hook:
    """One piece of training behaviour; a hook overrides only the moments it needs."""

    def before_epoch(self, loop: Loop) -> None:
        """After ``module.train()``: where a fine-tune would freeze or thaw its backbone."""

    def before_batch(self, loop: Loop) -> None:
        """Before each batch; ``loop.stop(...)`` here abandons the epoch."""

    def after_batch(self, loop: Loop) -> None:
        """After the optimiser step; ``loop.step`` counts it, ``loop.running`` holds its loss."""

    def after_epoch(self, loop: Loop, event: EpochEnded) -> None:
        """After validation and the epoch's event; ``loop.stop(...)`` here ends the fit."""

    def after_fit(self, loop: Loop) -> None:
        """Once, however the fit ended."""


class Loop:
    """One fit: the family's module, optimiser, batches, loss and validation, plus hooks.

    After ``run()``: ``epochs_run``, ``best_epoch`` (the epoch whose weights ``EarlyStop`` kept;
    0 when none finished), ``step``, ``history`` (the epochs' events), ``stopped_early``, ``cancelled``.
    """

    def __init__(self, module: nn.Module, optimizer: torch.optim.Optimizer, batches: Batches,
                 batch_loss: Callable[[torch.Tensor], torch.Tensor],
                 validate: Callable[[], tuple[float, dict[str, float]]], max_epochs: int, *,
                 generator: torch.Generator, hooks: Sequence[Hook] = (), emit: Callback = ignore) -> None:
        self.module, self.optimizer, self.batches = module, optimizer, batches
        self.batch_loss, self.validate = batch_loss, validate
        self.max_epochs, self.generator, self.hooks, self.emit = max_epochs, generator, hooks, emit
        self.total_steps = max_epochs * len(batches)
        self.epoch = self.step = self.epochs_run = self.best_epoch = 0
        self.history: list[EpochEnded] = []
        self.running = RunningLoss(batches.device)
        self.stopped_early = self.cancelled = False
        self._stopping = False

    def stop(self, message: Message, cancelled: bool = False) -> None:
        """End the fit, saying why: cancelled (the stop flag) or stopped early (anything else)."""
        self.cancelled, self.stopped_early, self._stopping = cancelled, not cancelled, True
        self.emit(message)

    def run(self) -> Loop:
        """Train until ``max_epochs`` or a hook stops the fit; leaves the module in eval mode."""
        started = time.perf_counter()
        for epoch in range(1, self.max_epochs + 1):
            self.epoch = epoch
            train_loss = self._train_epoch()
            if train_loss is None:
                break
            valid_loss, metrics = self.validate()
            self.epochs_run = epoch
            event = epoch_event(epoch, train_loss, valid_loss, started, metrics, self.max_epochs)
            self.history.append(event)
            self.emit(event)
            for hook in self.hooks:
                hook.after_epoch(self, event)
            if self._stopping:
                break
        for hook in self.hooks:
            hook.after_fit(self)
        self.optimizer.zero_grad(set_to_none=True)  # the fitted model carries no gradients
        self.module.eval()
        return self

    def _train_epoch(self) -> float | None:
        """One pass over the batches; the mean training loss, or None when a hook stopped it."""
        module, optimizer, hooks = self.module, self.optimizer, self.hooks
        module.train()
        for hook in hooks:
            hook.before_epoch(self)
        self.running = running = RunningLoss(self.batches.device)
        for index in self.batches.shuffled(self.generator):
            for hook in hooks:
                hook.before_batch(self)
            if self._stopping:
                return None
            loss = self.batch_loss(index)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            running.add(loss, len(index))
            self.step += 1
            for hook in hooks:
                hook.after_batch(self)
        return float(running)


def _kept(best_epoch: int) -> str:
    """What a stopped fit ends with, for its message."""
    if best_epoch:
        return f"Keeping the weights of epoch {best_epoch}, the best one."
    return "No epoch had finished, so the model is only partly trained."


class EarlyStop(Hook):
    """Patience on the validation loss (the training loss when there is no validation set, which
    ``validate`` reports as NaN). Snapshots the best epoch's weights and restores them at the end,
    however the fit ended. It never stops before epoch ``warmup_epochs + patience``: during a
    learning-rate warm-up the loss may not improve yet."""

    def __init__(self, patience: int, warmup_epochs: int = 0) -> None:
        self.patience, self.warmup_epochs = patience, warmup_epochs
        self._tracker = EarlyStopping(patience)
        self._best_state: dict[str, torch.Tensor] | None = None

    def after_epoch(self, loop: Loop, event: EpochEnded) -> None:
        monitored = event.train_loss if math.isnan(event.valid_loss) else event.valid_loss
        if self._tracker.improved(event.epoch, monitored):
            loop.best_epoch = event.epoch
            self._best_state = {k: v.detach().clone() for k, v in loop.module.state_dict().items()}
        if self._tracker.exhausted and self.warmup_epochs + self.patience <= event.epoch < loop.max_epochs:
            loop.stop(Message("info", f"Stopped early after epoch {event.epoch}: the validation loss had not "
                                      f"improved for {self.patience} epochs. {_kept(loop.best_epoch)}"))

    def after_fit(self, loop: Loop) -> None:
        if self._best_state is not None:
            loop.module.load_state_dict(self._best_state)


class StopOrBudget(Hook):
    """Before every batch: the stop flag set cancels the fit; more than ``time_budget`` seconds
    since ``started`` (a ``perf_counter`` reading; by default now) stops it early."""

    def __init__(self, stop: StopFlag | None, time_budget: float | None, started: float | None = None) -> None:
        self.flag, self.time_budget = stop, time_budget
        self.started = time.perf_counter() if started is None else started

    def before_batch(self, loop: Loop) -> None:
        cancelled = self.flag is not None and self.flag.is_set()
        if cancelled or (self.time_budget is not None and time.perf_counter() - self.started > self.time_budget):
            loop.stop(stop_message(cancelled, f"during epoch {loop.epoch}", _kept(loop.best_epoch), self.time_budget),
                      cancelled=cancelled)


class StepEvents(Hook):
    """A ``StepEnded`` after a batch, at most ``per_second`` a second; the running loss is read
    from the device only for the events actually sent."""

    def __init__(self, emit: Callback, per_second: float = 10.0) -> None:
        self._throttle = StepThrottle(emit, per_second)

    def after_batch(self, loop: Loop) -> None:
        self._throttle.step(loop.step, loop.epoch, loop.running, loop.total_steps)  # type: ignore[arg-type]


class Schedule(Hook):
    """A learning-rate schedule stepped after every batch (one-cycle) or every epoch; a plateau
    schedule steps on the epoch's validation loss."""

    def __init__(self, scheduler: torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau,
                 per: Literal["batch", "epoch"]) -> None:
        self.scheduler, self.per = scheduler, per

    def after_batch(self, loop: Loop) -> None:
        if self.per == "batch":
            self.scheduler.step()

    def after_epoch(self, loop: Loop, event: EpochEnded) -> None:
        if self.per != "epoch":
            return
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(event.valid_loss)
        else:
            self.scheduler.step()
