"""The shared torch training loop on a tiny network: restore-best, stopping (flag, budget,
patience, warm-up), the RNG policy, throttled step events and the schedule hook."""

from __future__ import annotations

import threading
import types

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import core.models.base as base
import core.models.torch_loop as torch_loop
from core.events import EpochEnded, Message, StepEnded
from core.models.torch_loop import (
    Batches,
    EarlyStop,
    Hook,
    Loop,
    RunningLoss,
    Schedule,
    StepEvents,
    StopOrBudget,
    seeded,
)

CPU = torch.device("cpu")
N_ROWS, BATCH = 40, 10  # four batches an epoch


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    X = torch.linspace(-1, 1, N_ROWS * 3).reshape(N_ROWS, 3)
    return X, X @ torch.tensor([[1.0], [-2.0], [0.5]])


def fit(hooks=(), valid=None, epochs=5, seed=0, schedule=None, events=None, seen=None) -> Loop:
    """A seeded fit of a small MLP (with dropout) on a linear target. ``valid`` scripts the
    validation losses; ``schedule`` is (scheduler factory, per); ``seen`` collects batch indexes."""
    X, y = _data()
    with seeded(seed, CPU) as generator:
        module = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 1))
        optimizer = torch.optim.SGD(module.parameters(), lr=0.05)
        scripted = iter(valid) if valid is not None else None

        def batch_loss(index):
            if seen is not None:
                seen.append(index)
            return F.mse_loss(module(X[index]), y[index])

        def validate():
            if scripted is not None:
                return next(scripted), {}
            with torch.inference_mode():
                return float(F.mse_loss(module(X), y)), {}

        extra = [Schedule(schedule[0](optimizer), per=schedule[1])] if schedule else []
        return Loop(module, optimizer, Batches(N_ROWS, BATCH, CPU), batch_loss, validate, epochs,
                    generator=generator, hooks=[*hooks, *extra],
                    emit=events.append if events is not None else (lambda e: None)).run()


class Snapshots(Hook):
    """The weights at the end of every epoch."""

    def __init__(self) -> None:
        self.states: list[dict[str, torch.Tensor]] = []

    def after_epoch(self, loop, event) -> None:
        self.states.append({k: v.clone() for k, v in loop.module.state_dict().items()})


def assert_weights(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    for name, value in module.state_dict().items():
        torch.testing.assert_close(value, state[name], rtol=0, atol=0)


def messages(events) -> list[Message]:
    return [e for e in events if isinstance(e, Message)]


# ---------------------------------------------------------------------------------- early stopping


def test_early_stop_restores_the_best_epochs_weights_not_the_last():
    snapshots, events = Snapshots(), []
    loop = fit([snapshots, EarlyStop(patience=2)], valid=[3.0, 1.0, 2.0, 4.0, 5.0], events=events)
    assert loop.stopped_early and not loop.cancelled
    assert loop.epochs_run == 4 and loop.best_epoch == 2
    assert_weights(loop.module, snapshots.states[1])
    assert not torch.equal(snapshots.states[1]["0.weight"], snapshots.states[3]["0.weight"])
    assert [m.text for m in messages(events)] == [
        "Stopped early after epoch 4: the validation loss had not improved for 2 epochs. "
        "Keeping the weights of epoch 2, the best one."]
    assert isinstance(events[-1], Message)  # after the last epoch's event


def test_early_stop_waits_for_the_warm_up():
    rising = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert fit([EarlyStop(patience=1)], valid=rising, epochs=6).epochs_run == 2
    loop = fit([EarlyStop(patience=1, warmup_epochs=3)], valid=rising, epochs=6)
    assert loop.stopped_early and loop.epochs_run == 4 and loop.best_epoch == 1


def test_patience_running_out_at_the_last_epoch_is_not_an_early_stop():
    events = []
    loop = fit([EarlyStop(patience=2)], valid=[1.0, 2.0, 3.0], epochs=3, events=events)
    assert not loop.stopped_early and loop.epochs_run == 3 and not messages(events)


def test_without_a_validation_set_the_training_loss_is_monitored():
    loop = fit([EarlyStop(patience=2)], valid=[float("nan")] * 30, epochs=30)
    train = [e.train_loss for e in loop.history]
    assert loop.best_epoch > 1 and train[loop.best_epoch - 1] == pytest.approx(min(train), rel=1e-3)


# ---------------------------------------------------------------------------------- stopping


def test_stop_flag_mid_epoch_cancels_and_keeps_the_best_weights():
    flag, snapshots, events = threading.Event(), Snapshots(), []

    class SetFlag(Hook):
        def after_batch(self, loop):
            if loop.epoch == 3 and loop.step == 2 * 4 + 2:
                flag.set()

    loop = fit([snapshots, EarlyStop(patience=5), StopOrBudget(flag, None), SetFlag()],
               valid=[1.0, 2.0, 3.0], events=events)
    assert loop.cancelled and not loop.stopped_early
    assert loop.epochs_run == 2 and loop.step == 10 and loop.best_epoch == 1
    assert_weights(loop.module, snapshots.states[0])  # not the half-trained epoch 3
    assert [(m.level, m.text) for m in messages(events)] == [
        ("warning", "Stopped on request during epoch 3. Keeping the weights of epoch 1, the best one.")]
    assert sum(isinstance(e, EpochEnded) for e in events) == 2


def test_time_budget_stops_early_with_a_message(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(torch_loop, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))

    class Tick(Hook):
        def after_batch(self, loop):
            clock[0] += 1.0

    events = []
    loop = fit([EarlyStop(patience=5), StopOrBudget(None, 5.5, started=0.0), Tick()], events=events)
    assert loop.stopped_early and not loop.cancelled
    assert loop.epochs_run == 1 and loop.step == 6  # batches start at t = 0…5; at t = 6 the budget is spent
    assert [(m.level, m.text) for m in messages(events)] == [
        ("info", "Stopped during epoch 2: the time budget of 5.5 s was spent. "
                 "Keeping the weights of epoch 1, the best one.")]


def test_a_budget_spent_before_the_first_batch_says_the_model_is_untrained():
    events = []
    loop = fit([EarlyStop(patience=5), StopOrBudget(None, 0.0, started=0.0)], events=events)
    assert loop.stopped_early and loop.epochs_run == 0 and loop.step == 0 and loop.best_epoch == 0
    assert messages(events)[0].text.endswith("No epoch had finished, so the model is only partly trained.")


def test_the_stop_flag_wins_over_a_spent_budget():
    flag = threading.Event()
    flag.set()
    loop = fit([StopOrBudget(flag, 0.0, started=0.0)])
    assert loop.cancelled and not loop.stopped_early


# ---------------------------------------------------------------------------------- randomness


def test_same_seed_same_weights_another_seed_differs():
    first = fit(seed=1).module.state_dict()
    torch.manual_seed(99)  # the job seed decides, not torch's global state
    assert_weights(fit(seed=1).module, first)
    assert not torch.equal(fit(seed=2).module.state_dict()["0.weight"], first["0.weight"])


def test_a_fit_leaves_torchs_global_rng_untouched():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fit(epochs=2)
    torch.testing.assert_close(torch.rand(3), expected)


def test_batch_order_comes_from_the_fits_own_generator():
    seen = []
    fit(seed=7, epochs=1, seen=seen)
    torch.testing.assert_close(torch.cat(seen), torch.randperm(N_ROWS, generator=torch.Generator().manual_seed(7)))


# ---------------------------------------------------------------------------------- events


def test_step_events_are_throttled_and_read_the_loss_only_when_sent(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(base, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    reads = []
    monkeypatch.setattr(RunningLoss, "__float__", lambda self: reads.append(1) or self.total.item() / self.count)

    class Tick(Hook):
        def before_batch(self, loop):
            clock[0] += 0.25

    events = []
    fit([Tick(), StepEvents(events.append, per_second=2.0)], epochs=3, events=events)
    steps = [e for e in events if isinstance(e, StepEnded)]
    assert [s.step for s in steps] == [1, 3, 5, 7, 9, 11]  # one every 0.5 s, a batch every 0.25 s
    assert all(s.total_steps == 12 and s.epoch == (s.step - 1) // 4 + 1 for s in steps)
    assert len(reads) == len(steps) + 3  # plus one read per epoch, for its event


def test_each_epoch_emits_its_event_and_the_fit_ends_in_eval_mode_without_gradients():
    events = []
    loop = fit(epochs=3, events=events)
    epochs = [e for e in events if isinstance(e, EpochEnded)]
    assert [e.epoch for e in epochs] == [1, 2, 3] and epochs == loop.history
    assert all(e.max_epochs == 3 for e in epochs)
    assert not loop.module.training and all(p.grad is None for p in loop.module.parameters())


def test_before_epoch_runs_after_train_mode_so_a_part_can_stay_frozen():
    """A fine-tune keeps its backbone's BatchNorm statistics by putting it back in eval mode."""
    X, y = _data()
    net = nn.Sequential(nn.BatchNorm1d(3), nn.Linear(3, 1))
    frozen = net[0].running_mean.clone()

    class Freeze(Hook):
        def before_epoch(self, loop):
            assert loop.module.training
            loop.module[0].eval()

    with seeded(0, CPU) as generator:
        optimizer = torch.optim.SGD(net[1].parameters(), lr=0.05)
        Loop(net, optimizer, Batches(N_ROWS, BATCH, CPU), lambda i: F.mse_loss(net(X[i]), y[i]),
             lambda: (0.0, {}), 2, generator=generator, hooks=[Freeze()]).run()
    torch.testing.assert_close(net[0].running_mean, frozen)


# ---------------------------------------------------------------------------------- schedule


def test_a_per_batch_schedule_steps_after_every_batch():
    loop = fit(epochs=3, schedule=(lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda n: 0.5 ** n), "batch"))
    assert loop.optimizer.param_groups[0]["lr"] == pytest.approx(0.05 * 0.5 ** 12)


def test_a_per_epoch_schedule_steps_once_an_epoch():
    loop = fit(epochs=3, schedule=(lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda n: 0.5 ** n), "epoch"))
    assert loop.optimizer.param_groups[0]["lr"] == pytest.approx(0.05 * 0.5 ** 3)


def test_a_plateau_schedule_steps_on_the_validation_loss():
    seen = []

    class Recording(torch.optim.lr_scheduler.ReduceLROnPlateau):
        def step(self, metrics):
            seen.append(metrics)
            super().step(metrics)

    loop = fit(epochs=4, valid=[1.0, 2.0, 3.0, 4.0],
               schedule=(lambda opt: Recording(opt, factor=0.5, patience=1), "epoch"))
    assert seen == [1.0, 2.0, 3.0, 4.0]
    assert loop.optimizer.param_groups[0]["lr"] == pytest.approx(0.025)  # one cut: two epochs without gain


# ---------------------------------------------------------------------------------- batches


def test_batches_are_slices_or_even_splits_of_one_permutation():
    generator = torch.Generator().manual_seed(0)
    sliced = Batches(10, 4, CPU).shuffled(generator)
    assert [len(b) for b in sliced] == [4, 4, 2] and len(Batches(10, 4, CPU)) == 3
    even = Batches(10, 4, CPU, even=True).shuffled(generator)
    assert [len(b) for b in even] == [5, 5] and len(Batches(10, 4, CPU, even=True)) == 2
    for batches in (sliced, even):
        assert sorted(torch.cat(batches).tolist()) == list(range(10))
    assert len(Batches(3, 4, CPU, even=True)) == 1  # fewer rows than a batch: one batch of them all
