"""greensed around a plain PyTorch training loop (docs/library.md).

A tiny classifier on synthetic tensors, trained by an ordinary loop; greensed
measures each epoch's energy, writes the run log and stops the loop with its
policies. Then the study tools read the run like one of greensed's own::

    python examples/plain_loop.py --run-dir runs/plain --meter auto
    greensed report runs/plain --metric val_f1 --out report/plain
    greensed replay runs/plain --metric val_f1 --policy plateau:patience=2
    greensed status runs/plain --metric val_f1
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch
from torch import nn

import greensed


def synthetic_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two noisy Gaussian classes in 16 dimensions."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 16, generator=g) + 0.08 * (2 * y[:, None] - 1)
    return x, y.float()


def f1_score(logits: torch.Tensor, y: torch.Tensor) -> float:
    pred = logits > 0
    tp = (pred & (y > 0.5)).sum().item()
    fp, fn = (pred & (y < 0.5)).sum().item(), (~pred & (y > 0.5)).sum().item()
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def main(run_dir: str, *, meter: str | greensed.Meter = "auto", epochs: int = 30,
         stop: Sequence[str] = ("plateau:patience=3,min_delta=0.002", "budget:kwh=0.01"),
         batch_size: int = 32, seed: int = 0) -> greensed.Summary:
    torch.manual_seed(seed)
    x, y = synthetic_data(2048, seed)
    x_val, y_val = synthetic_data(512, seed + 1)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 1))
    lr = 0.01
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = nn.BCEWithLogitsLoss()
    # The policies of `greensed replay --policy`, watching the loop's own metric.
    policy = greensed.make_policy(stop, metric="val_f1", max_epochs=epochs)
    steps = 0
    with greensed.EnergyMonitor(meter) as monitor, greensed.RunRecorder(
            run_dir, metric="val_f1", policy=policy, max_epochs=epochs, batch_size=batch_size,
            seed=seed, recipe="plain-loop", trainer="examples/plain_loop.py",
            stop=stop, monitor=monitor) as run:
        for epoch in range(1, epochs + 1):
            with monitor.window() as window:  # the epoch: training and validation
                model.train()
                total = 0.0
                for i in torch.randperm(len(x)).split(batch_size):
                    opt.zero_grad()
                    loss = loss_fn(model(x[i]).squeeze(1), y[i])
                    loss.backward()
                    opt.step()
                    total, steps = total + loss.item(), steps + 1
                model.eval()
                with torch.no_grad():
                    val_f1 = f1_score(model(x_val).squeeze(1), y_val)
            n_batches = -(-len(x) // batch_size)
            record = run.add(epoch, {"val_f1": val_f1}, window.reading,
                             loss=total / n_batches, steps=steps, lr=lr)
            kwh = record.energy_kwh
            print(f"epoch {epoch}: val_f1 {val_f1:.3f}, "
                  + (f"{kwh * 1000:.3f} Wh" if kwh is not None else record.energy_status))
            decision = run.decide()
            if decision.stop:
                print(f"stop: {decision.reason}")
                break
    assert run.summary is not None
    return run.summary


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", default="runs/plain-loop")
    ap.add_argument("--meter", default="auto", help="as greensed train --meter")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--stop", action="append", default=None,
                    help="a policy spec as greensed replay --policy; repeatable")
    args = ap.parse_args()
    summary = main(args.run_dir, meter=args.meter, epochs=args.epochs,
                   **({"stop": args.stop} if args.stop else {}))
    print(f"{args.run_dir}: {summary.status.value}, {summary.epochs} epochs, "
          f"best val_f1 {summary.best_value} at epoch {summary.best_epoch}")
