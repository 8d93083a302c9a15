"""Plots of runs and fits, drawn from the database with matplotlib.

Each function queries the database, fits with pg_soup's own SQL functions
(the numbers in the picture are the numbers SQL gives), draws, saves PNG or
SVG (by the file name's extension) and returns what it claims: the fitted
values, and the labels written into the figure.
"""
import math

from ._db import reading
from .errors import SoupError, INVALID_PARAMETER_VALUE


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")                 # files only; no display needed
    matplotlib.rcParams["svg.fonttype"] = "none"   # text stays text in SVG
    import matplotlib.pyplot as plt
    return plt


def _save(fig, out):
    if not out.lower().endswith((".png", ".svg")):
        raise SoupError("plots are written as .png or .svg, not %s" % out,
                        INVALID_PARAMETER_VALUE)
    fig.savefig(out, dpi=110, bbox_inches="tight")


def _g(x):
    return "%.6g" % x


# ---- (a) a run's metric against steps, checkpoints marked ----

def plot_run(conn, run, metric, out, title=None):
    with reading(conn) as cur:
        cur.execute("SELECT step, value FROM soup.metrics WHERE run = %s AND name = %s "
                    "ORDER BY step", (run, metric))
        points = cur.fetchall()
        cur.execute("SELECT m.name, m.step, v.value FROM soup.models m "
                    "LEFT JOIN soup.metrics v ON v.run = m.run AND v.step = m.step AND v.name = %s "
                    "WHERE m.run = %s AND m.step IS NOT NULL AND m.kind = 'checkpoint' "
                    "ORDER BY m.step, m.name", (metric, run))
        ckpts = cur.fetchall()
    if not points:
        raise SoupError('run "%s" has no values of metric "%s"' % (run, metric), "42704")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([p[0] for p in points], [p[1] for p in points], lw=1.2, label=metric)
    marked = [(s, v) for _, s, v in ckpts if v is not None]
    if marked:
        ax.plot([s for s, _ in marked], [v for _, v in marked], "o", ms=5,
                label="checkpoints (%d)" % len(ckpts))
    for _, s, v in ckpts:
        if v is None:
            ax.axvline(s, color="0.8", lw=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel(metric)
    ax.set_title(title or "%s: %s" % (run, metric))
    ax.legend()
    _save(fig, out)
    plt.close(fig)
    return {"run": run, "metric": metric, "points": len(points),
            "checkpoints": [{"model": n, "step": s, "value": v} for n, s, v in ckpts]}


# ---- (b) critical batch size: steps against examples, per target ----

def cbs_points_from_runs(cur, runs_like, metric, targets, higher_is_better=False):
    """(label, batch, steps): for every run matching runs_like with a batch
    size, the steps it took to reach each target (soup.steps_to_target)."""
    rows = []
    for target in targets:
        cur.execute("SELECT %s::text, r.batch_size::float8, "
                    "soup.steps_to_target(r.name, %s, %s, 0, %s)::float8 "
                    "FROM soup.runs r WHERE r.name LIKE %s AND r.batch_size IS NOT NULL",
                    ("%s %s" % (metric, _g(target)), metric, target, higher_is_better,
                     runs_like))
        rows += [r for r in cur.fetchall() if r[2] is not None]
    return rows


def plot_cbs(conn, out, query=None, runs=None, metric=None, targets=(), b0=256.0,
             title=None):
    """Steps S against examples E = B S for each series, with the fitted
    hyperbola S = S_min + E_min / B (soup.critical_batch_size).  The points
    come from `query` (columns: label, batch size, steps) or from runs
    (soup.runs.batch_size and soup.steps_to_target of metric at each target)."""
    with reading(conn) as cur:
        if query is not None:
            cur.execute("SELECT q.* FROM (%s) q" % query)
            rows = [(str(r[0]), float(r[1]), float(r[2])) for r in cur.fetchall()]
        elif runs is not None and metric is not None and targets:
            rows = cbs_points_from_runs(cur, runs, metric, targets)
        else:
            raise SoupError("plot_cbs needs query=, or runs=, metric= and targets=",
                            INVALID_PARAMETER_VALUE)
        if not rows:
            raise SoupError("no (label, batch, steps) points to plot", "02000")
        labels = list(dict.fromkeys(r[0] for r in rows))
        fits = []
        for label in labels:
            pts = [(b, s) for l, b, s in rows if l == label]
            cur.execute("SELECT (f).s_min, (f).e_min, (f).b_crit, (f).n, soup.cbs((f).s_min, (f).e_min, %s) "
                        "FROM (SELECT soup.critical_batch_size(b, s) AS f "
                        "FROM unnest(%s::float8[], %s::float8[]) x(b, s)) q",
                        (b0, [p[0] for p in pts], [p[1] for p in pts]))
            s_min, e_min, b_crit, n, cbs = cur.fetchone()
            fits.append({"label": label, "points": pts, "s_min": s_min, "e_min": e_min,
                         "b_crit": b_crit, "cbs": cbs, "n": n})
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for i, f in enumerate(fits):
        color = "C%d" % (i % 10)
        ex = [b * s for b, s in f["points"]]
        st = [s for _, s in f["points"]]
        ax.plot(ex, st, "o", color=color)
        if f["s_min"] is None:
            f["legend"] = "%s: no fit" % f["label"]
            continue
        bs = sorted(b for b, _ in f["points"])
        grid = [bs[0] * (bs[-1] / bs[0]) ** (k / 99.0) for k in range(100)] if bs[0] > 0 else bs
        ax.plot([b * (f["s_min"] + f["e_min"] / b) for b in grid],
                [f["s_min"] + f["e_min"] / b for b in grid], "-", color=color, lw=1)
        f["legend"] = "%s: S_min=%s, E_min=%s, CBS=%s" % (
            f["label"], _g(f["s_min"]), _g(f["e_min"]), _g(f["cbs"]))
        ax.plot([], [], "o-", color=color, label=f["legend"])
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("examples E = B x S")
    ax.set_ylabel("steps S")
    ax.set_title(title or "Critical batch size: S = S_min + E_min / B (CBS at b0=%s)" % _g(b0))
    ax.legend(fontsize=8)
    _save(fig, out)
    plt.close(fig)
    return {"fits": fits, "b0": b0}


# ---- (c) Chinchilla: loss against compute, fitted law, frontier ----

def plot_chinchilla(conn, out, query=None, runs=None, metric="loss", title=None,
                    budget=None):
    """Loss against compute C = 6 N D for every point (query: columns n, d,
    loss; or the runs matching `runs` with params, tokens and the last value
    of `metric`), the fitted L(N, D) = E + A/N^alpha + B/D^beta
    (soup.fit_chinchilla) along each model size, and the compute-optimal
    frontier (soup.compute_optimal)."""
    with reading(conn) as cur:
        if query is not None:
            src = "SELECT q.* FROM (%s) q" % query
            args = ()
        elif runs is not None:
            src = ("SELECT r.params::float8, r.tokens::float8, "
                   "(SELECT m.value FROM soup.metrics m WHERE m.run = r.name AND m.name = %s "
                   " ORDER BY m.step DESC LIMIT 1) FROM soup.runs r "
                   "WHERE r.name LIKE %s AND r.params IS NOT NULL AND r.tokens IS NOT NULL")
            args = (metric, runs)
        else:
            raise SoupError("plot_chinchilla needs query= or runs=", INVALID_PARAMETER_VALUE)
        cur.execute(src, args)
        pts = [(float(n), float(d), float(l)) for n, d, l in cur.fetchall() if l is not None]
        if not pts:
            raise SoupError("no (n, d, loss) points to plot", "02000")
        cur.execute("SELECT soup.fit_chinchilla(n, d, l)::text FROM unnest(%s::float8[], "
                    "%s::float8[], %s::float8[]) x(n, d, l)",
                    ([p[0] for p in pts], [p[1] for p in pts], [p[2] for p in pts]))
        fit_text = cur.fetchone()[0]
        cur.execute("SELECT (f).e, (f).a, (f).b, (f).alpha, (f).beta, (f).n FROM "
                    "(SELECT %s::soup.chinchilla_fit AS f) q", (fit_text,))
        e, a, b, alpha, beta, n = cur.fetchone()
        cs = sorted(6 * p[0] * p[1] for p in pts)
        lo, hi = math.log10(cs[0]), math.log10(cs[-1])
        grid = [10 ** (lo + (hi - lo) * k / 79.0) for k in range(80)]
        cur.execute("SELECT c, o.n_opt, o.d_opt, soup.chinchilla_loss(%s::soup.chinchilla_fit, o.n_opt, o.d_opt) "
                    "FROM unnest(%s::float8[]) c, LATERAL soup.compute_optimal(%s::soup.chinchilla_fit, c) o",
                    (fit_text, grid, fit_text))
        frontier = cur.fetchall()
        budget_opt = None
        if budget is not None:
            cur.execute("SELECT o.n_opt, o.d_opt FROM soup.compute_optimal(%s::soup.chinchilla_fit, %s) o",
                        (fit_text, budget))
            budget_opt = cur.fetchone()
    fit = {"e": e, "a": a, "b": b, "alpha": alpha, "beta": beta, "n": n}
    law = "L = %s + %s/N^%s + %s/D^%s" % (_g(e), _g(a), _g(alpha), _g(b), _g(beta))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5.5))
    sc = ax.scatter([6 * p[0] * p[1] for p in pts], [p[2] for p in pts],
                    c=[math.log10(p[0]) for p in pts], cmap="viridis", s=14)
    fig.colorbar(sc, ax=ax, label="log10 N (parameters)")
    sizes = sorted({p[0] for p in pts})
    d_lo, d_hi = min(p[1] for p in pts), max(p[1] for p in pts)
    for nn in [sizes[int(k * (len(sizes) - 1) / 4)] for k in range(5)] if len(sizes) > 1 else sizes:
        # along a fixed N, over the token counts the data covers
        ds = [d_lo * (d_hi / d_lo) ** (k / 59.0) for k in range(60)] if d_lo > 0 else [d_hi]
        ax.plot([6 * nn * d for d in ds], [e + a / nn ** alpha + b / d ** beta for d in ds],
                color="0.6", lw=0.8)
    ax.plot([f[0] for f in frontier], [f[3] for f in frontier], "r-", lw=2,
            label="compute-optimal frontier")
    ax.plot([], [], "-", color="0.6", label="fit along fixed N: " + law)
    labels = [law]
    if budget_opt is not None:
        lab = "C=%s: N_opt=%s, D_opt=%s" % (_g(budget), _g(budget_opt[0]), _g(budget_opt[1]))
        ax.plot([], [], " ", label=lab)
        labels.append(lab)
        fit["n_opt"], fit["d_opt"] = budget_opt
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training compute C = 6 N D (FLOP)")
    ax.set_ylabel("loss")
    ax.set_title(title or "Chinchilla fit")
    ax.legend(fontsize=8)
    _save(fig, out)
    plt.close(fig)
    return {"fit": fit, "labels": labels, "points": len(pts),
            "frontier": [(c, n_, d_) for c, n_, d_, _ in frontier]}
