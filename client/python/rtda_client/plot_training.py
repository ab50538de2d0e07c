#!/usr/bin/env python3
"""The learning curve of a surrogate checkpoint written by `rtda train`: training loss
(normalised MSE) and validation 12-hour RMSE (K) per evaluation, next to persistence.

    python3 -m rtda_client.plot_training vit.h5 --out docs/plots/surrogate/training.png
"""
import argparse

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--out", required=True)
    ap.add_argument("--eval-every", type=int, default=None,
                    help="steps between evaluations (default: from the stored configuration)")
    a = ap.parse_args(argv)
    with h5py.File(a.checkpoint, "r") as f:
        t = f["training"]
        loss = t["train_loss"][()]
        val = t["val_rmse_K"][()]
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in t.attrs.items()}
    every = a.eval_every
    if every is None:
        every = 250
        for line in str(attrs.get("rtda_config", "")).splitlines():
            if line.strip().startswith("eval_every"):
                every = int(line.split("=")[1])
    steps = [every * (i + 1) for i in range(len(val))]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    ax[0].plot(steps, loss, "o-")
    ax[0].set_xlabel("step")
    ax[0].set_ylabel("training loss (normalised MSE)")
    ax[0].set_yscale("log")
    ax[1].plot(steps, val, "o-", label="ViT, validation run")
    if "persistence_rmse_K" in attrs:
        ax[1].axhline(float(attrs["persistence_rmse_K"]), color="gray", ls="--",
                      label="persistence")
    ax[1].set_xlabel("step")
    ax[1].set_ylabel("12-hour forecast RMSE (K)")
    ax[1].legend()
    fig.suptitle(f"{a.checkpoint}: {attrs.get('data', '')} -> {attrs.get('validation', '')}")
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
