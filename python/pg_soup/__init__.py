"""pg_soup from Python: checkpoints in and out of PostgreSQL, merges, metrics.

Every function takes an open psycopg2 connection.  Writes run in one
transaction (commit=True commits it; commit=False keeps them inside the
caller's transaction under a savepoint), and every error is a SoupError
carrying the SQLSTATE.
"""
from .errors import SoupError
from .state_dict import save_state_dict, load_state_dict
from .ops import log_metrics, merge, merge_config, ema_update, delete_model
from .folders import import_directory, export_directory
from .training import CheckpointLogger

__version__ = "0.2.0"
__license__ = "PostgreSQL"

__all__ = ["SoupError", "save_state_dict", "load_state_dict", "log_metrics", "merge", "merge_config",
           "ema_update", "delete_model", "import_directory", "export_directory",
           "CheckpointLogger", "__version__"]
