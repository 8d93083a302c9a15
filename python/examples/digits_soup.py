#!/usr/bin/python3
"""Train a small network, keep its checkpoints in pg_soup, soup them.

A 64-128-10 MLP on scikit-learn's digits data (1,797 8x8 images, shipped
with Debian's python3-sklearn) is first trained from scratch (the shared
"pre-trained" start), then fine-tuned four times with different seeds,
learning rates and weight decay, as the Model Soups paper does.  Every run
logs its metrics and saves a checkpoint every 40 steps through
pg_soup.CheckpointLogger, which also keeps an EMA model current with
soup.ema_update.  The database then makes the soups:

  uniform soup   soup.merge(..., 'avg', <final checkpoint of every run>)
  greedy soup    ingredients by validation accuracy, each kept only if the
                 soup's validation accuracy does not drop (Wortsman et al.)
  LAWA           soup.merge(..., 'lawa', params => {run, k}) of one run
  EMA            the EMA model the logger kept

and the script loads each back with pg_soup.load_state_dict and prints
validation and test accuracies beside the ingredients'.

    python3 python/examples/digits_soup.py [DSN]

The connection comes from DSN or libpq's environment (PGHOST, ...).  The
models it writes are named digits/...; a second run replaces them.
"""
import sys

import numpy as np
import psycopg2
import torch
from sklearn.datasets import load_digits

import pg_soup

STEPS_PRE, STEPS_FT, EVERY, BATCH = 300, 240, 40, 64
INGREDIENTS = [  # (seed, learning rate, weight decay)
    (1, 0.05, 0.0), (2, 0.03, 1e-4), (3, 0.08, 0.0), (4, 0.04, 5e-4)]


def data():
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32)
    y = torch.tensor(y)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    tr, va, te = perm[:1100], perm[1100:1450], perm[1450:]
    return (x[tr], y[tr]), (x[va], y[va]), (x[te], y[te])


def net():
    return torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))


def accuracy(model, xy):
    with torch.no_grad():
        return (model(xy[0]).argmax(1) == xy[1]).float().mean().item()


def train(model, train_xy, val_xy, steps, lr, wd, seed, logger=None, step0=0):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=wd)
    for s in range(1, steps + 1):
        idx = torch.randint(0, len(train_xy[1]), (BATCH,), generator=g)
        loss = torch.nn.functional.cross_entropy(model(train_xy[0][idx]), train_xy[1][idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if logger is not None:
            metrics = {"loss": loss.item()}
            if s % EVERY == 0 or s == steps:
                metrics["val_acc"] = accuracy(model, val_xy)
            logger.step(step0 + s, model, metrics, last=(s == steps))


def loaded(conn, name):
    m = net()
    m.load_state_dict(pg_soup.load_state_dict(conn, name))
    return m


def main(argv):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    conn = psycopg2.connect(argv[1] if len(argv) > 1 else "")
    with conn.cursor() as cur:
        cur.execute("DELETE FROM soup.models WHERE name LIKE 'digits/%'")
        cur.execute("DELETE FROM soup.runs WHERE name LIKE 'digits/%'")
    conn.commit()
    train_xy, val_xy, test_xy = data()

    base = net()
    train(base, train_xy, val_xy, STEPS_PRE, 0.05, 0.0, seed=0)
    pg_soup.save_state_dict(conn, base.state_dict(), "digits/base", run="digits/base", step=STEPS_PRE)

    rows, finals = [], []
    for seed, lr, wd in INGREDIENTS:
        run = "digits/ft-%d" % seed
        model = loaded(conn, "digits/base")
        logger = pg_soup.CheckpointLogger(conn, run, every=EVERY, ema_decay=0.8)
        train(model, train_xy, val_xy, STEPS_FT, lr, wd, seed, logger)
        final = logger.saved[-1]
        finals.append(final)
        rows.append(("ingredient " + final, accuracy(model, val_xy), accuracy(model, test_xy)))
    ema_name = "digits/ft-1/ema"
    rows.append(("EMA of digits/ft-1 (decay 0.8)",
                 accuracy(loaded(conn, ema_name), val_xy), accuracy(loaded(conn, ema_name), test_xy)))

    pg_soup.merge(conn, "digits/uniform", "avg", finals)
    pg_soup.merge(conn, "digits/lawa-ft-1", "lawa", None, run="digits/ft-1", k=4)

    # greedy soup: best ingredient first, keep each that does not hurt validation
    order = sorted(finals, key=lambda n: -accuracy(loaded(conn, n), val_xy))
    chosen, best = [order[0]], accuracy(loaded(conn, order[0]), val_xy)
    for cand in order[1:]:
        pg_soup.merge(conn, "digits/greedy-try", "avg", chosen + [cand], replace=True)
        acc = accuracy(loaded(conn, "digits/greedy-try"), val_xy)
        if acc >= best:
            chosen, best = chosen + [cand], acc
    pg_soup.merge(conn, "digits/greedy", "avg", chosen)
    pg_soup.delete_model(conn, "digits/greedy-try")

    for name, label in (("digits/uniform", "uniform soup of %d" % len(finals)),
                        ("digits/greedy", "greedy soup of %d" % len(chosen)),
                        ("digits/lawa-ft-1", "LAWA of digits/ft-1, k=4")):
        m = loaded(conn, name)
        rows.append((label, accuracy(m, val_xy), accuracy(m, test_xy)))

    print("%-42s %8s %8s" % ("model", "val acc", "test acc"))
    for name, va, te in rows:
        print("%-42s %8.4f %8.4f" % (name, va, te))
    ing = [r[2] for r in rows if r[0].startswith("ingredient")]
    for label in ("uniform", "greedy"):
        soup = [r for r in rows if r[0].startswith(label)][0][2]
        print("%s soup, test: %+.4f vs the mean ingredient, %+.4f vs the best"
              % (label, soup - sum(ing) / len(ing), soup - max(ing)))
    conn.close()


if __name__ == "__main__":
    main(sys.argv)
