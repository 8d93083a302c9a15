"""python3 -m pg_soup: plots from the database, and the version.

    python3 -m pg_soup plot run --run R --metric loss -o run.png
    python3 -m pg_soup plot cbs --query "SELECT model, batch, steps FROM t" -o cbs.svg
    python3 -m pg_soup plot cbs --runs 'sweep-%%' --metric val_loss --target 3.4 -o cbs.png
    python3 -m pg_soup plot chinchilla --query "SELECT n, d, loss FROM t" -o chin.svg
    python3 -m pg_soup plot chinchilla --runs 'scale-%%' --metric loss --budget 1e23 -o chin.png

The connection comes from --dsn or libpq's environment (PGHOST, PGDATABASE,
...).  What each plot claims (its fitted values) is printed as JSON.
"""
import argparse
import json
import sys

from . import __version__
from .errors import SoupError


def _parser():
    p = argparse.ArgumentParser(prog="python3 -m pg_soup", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version="pg_soup " + __version__)
    sub = p.add_subparsers(dest="command", required=True)
    plot = sub.add_parser("plot", help="draw a run or a fit to a .png or .svg file")
    kinds = plot.add_subparsers(dest="kind", required=True)

    def common(k):
        k.add_argument("-o", "--out", required=True, help="output file, .png or .svg")
        k.add_argument("--dsn", default="", help="libpq connection string (default: environment)")
        k.add_argument("--title")

    run = kinds.add_parser("run", help="a run's metric against steps, checkpoints marked")
    run.add_argument("--run", required=True)
    run.add_argument("--metric", required=True)
    common(run)
    cbs = kinds.add_parser("cbs", help="critical batch size: steps against examples, fitted")
    cbs.add_argument("--query", help="SQL giving label, batch size, steps")
    cbs.add_argument("--runs", help="LIKE pattern of runs (with batch_size) to use")
    cbs.add_argument("--metric", help="metric for soup.steps_to_target")
    cbs.add_argument("--target", type=float, action="append", default=[],
                     help="target value (repeat for several)")
    cbs.add_argument("--b0", type=float, default=256.0, help="base batch of the CBS rule")
    common(cbs)
    chin = kinds.add_parser("chinchilla", help="loss against compute, L(N, D) fit, frontier")
    chin.add_argument("--query", help="SQL giving n, d, loss")
    chin.add_argument("--runs", help="LIKE pattern of runs (with params, tokens) to use")
    chin.add_argument("--metric", default="loss", help="the runs' final metric (default loss)")
    chin.add_argument("--budget", type=float, help="also mark the compute-optimal N, D here")
    common(chin)
    return p


def main(argv=None):
    args = _parser().parse_args(argv)
    import psycopg2
    from . import plots
    try:
        conn = psycopg2.connect(args.dsn)
    except psycopg2.Error as e:
        print("pg_soup: could not connect: %s" % str(e).strip(), file=sys.stderr)
        return 2
    try:
        if args.kind == "run":
            res = plots.plot_run(conn, args.run, args.metric, args.out, args.title)
        elif args.kind == "cbs":
            res = plots.plot_cbs(conn, args.out, args.query, args.runs, args.metric,
                                 args.target, args.b0, args.title)
            for f in res["fits"]:
                f.pop("points", None)
        else:
            res = plots.plot_chinchilla(conn, args.out, args.query, args.runs, args.metric,
                                        args.title, args.budget)
            res.pop("frontier", None)
    except SoupError as e:
        print("pg_soup: %s" % e, file=sys.stderr)
        return 1
    finally:
        conn.close()
    res["out"] = args.out
    print(json.dumps(res, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
