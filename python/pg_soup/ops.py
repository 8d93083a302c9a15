"""Thin layers over pg_soup's SQL functions."""
import json
import math
import numbers

from ._db import transaction
from .errors import SoupError, INVALID_PARAMETER_VALUE


def log_metrics(conn, run, step, metrics, tokens=None, commit=True):
    """Log one step's metrics ({name: number}) of a run (soup.log_metrics:
    the run row is made on first use; logging a step again overwrites it).
    Returns the number of values stored."""
    if not isinstance(metrics, dict):
        raise SoupError("metrics must be a dict of names to numbers", INVALID_PARAMETER_VALUE)
    clean = {}
    for k, v in metrics.items():
        if hasattr(v, "item"):            # numpy and torch scalars
            v = v.item()
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise SoupError('metric "%s" is not a number: %r' % (k, v), INVALID_PARAMETER_VALUE)
        if not math.isfinite(v):
            # JSON has no NaN or infinity, and a NaN loss is worth stopping for
            raise SoupError('metric "%s" is %r, not a finite number' % (k, v),
                            INVALID_PARAMETER_VALUE)
        clean[str(k)] = float(v)
    with transaction(conn, commit) as cur:
        cur.execute("SELECT soup.log_metrics(%s, %s, %s::jsonb, %s)",
                    (run, step, json.dumps(clean, allow_nan=False), tokens))
        return cur.fetchone()[0]


def merge(conn, target, method, models, weights=None, base=None, commit=True, **params):
    """soup.merge(target, method, models, weights, base, params): writes the
    merged model in one transaction and returns its id.  params are the
    method's parameters (density=0.5, t=0.3, fishers=[...], replace=True...)."""
    if models is not None:
        models = list(models)
    if weights is not None:
        weights = [float(w) for w in weights]
    with transaction(conn, commit) as cur:
        cur.execute("SELECT soup.merge(%s, %s, %s::text[], %s::float8[], %s, %s::jsonb)",
                    (target, method, models, weights, base, json.dumps(params)))
        return cur.fetchone()[0]


def ema_update(conn, ema_model, new_model, decay, commit=True):
    """Fold checkpoint new_model into the EMA model (made on first use)."""
    with transaction(conn, commit) as cur:
        cur.execute("SELECT soup.ema_update(%s, %s, %s)", (ema_model, new_model, float(decay)))
        return cur.fetchone()[0]


def delete_model(conn, model, commit=True):
    """Delete a model with its tensors, chunks and files; True if it existed."""
    with transaction(conn, commit) as cur:
        cur.execute("DELETE FROM soup.models WHERE name = %s", (model,))
        return cur.rowcount > 0


def merge_config(conn, target, config, commit=True):
    """soup.merge_config: a mergekit configuration (a dict, or the path of a
    YAML file when PyYAML is installed) with pg_soup model names.  Returns
    the new model's id."""
    if isinstance(config, str):
        try:
            import yaml
        except ImportError:
            raise SoupError("reading a YAML config needs PyYAML (Debian's python3-yaml); "
                            "pass the config as a dict", INVALID_PARAMETER_VALUE) from None
        with open(config) as f:
            config = yaml.safe_load(f)
    if not isinstance(config, dict):
        raise SoupError("a merge config is a mapping (mergekit's YAML schema)",
                        INVALID_PARAMETER_VALUE)
    with transaction(conn, commit) as cur:
        cur.execute("SELECT soup.merge_config(%s, %s::jsonb)", (target, json.dumps(config)))
        return cur.fetchone()[0]
