"""A training-loop helper: checkpoints every N steps, metrics, a live EMA."""
from .ops import log_metrics, ema_update
from .state_dict import save_state_dict


class CheckpointLogger:
    """Save checkpoints of a run into pg_soup as it trains.

        logger = CheckpointLogger(conn, "run-1", every=100, ema_decay=0.99)
        for step in ...:
            ...
            logger.step(step, model, {"loss": loss.item()})

    step() logs the metrics of every step it is given (soup.log_metrics),
    saves the model's state_dict as checkpoint "<run>/step-<step>" every
    `every` steps (and at the step given as last=True), and, with
    ema_decay, folds each checkpoint into the EMA model "<run>/ema"
    (soup.ema_update).  Each save is its own transaction.
    """

    def __init__(self, conn, run, every, ema_decay=None, ema_model=None, prefix=None):
        if not (isinstance(every, int) and every > 0):
            raise ValueError("every must be a positive integer")
        self.conn = conn
        self.run = run
        self.every = every
        self.ema_decay = ema_decay
        self.ema_model = ema_model or ("%s/ema" % run if ema_decay is not None else None)
        self.prefix = prefix or run
        self.saved = []

    def name(self, step):
        return "%s/step-%d" % (self.prefix, step)

    def step(self, step, model, metrics=None, last=False):
        """Log metrics; save a checkpoint when due.  Returns its name or None."""
        if metrics:
            log_metrics(self.conn, self.run, step, metrics)
        if step % self.every != 0 and not last:
            return None
        sd = model.state_dict() if hasattr(model, "state_dict") else model
        name = self.name(step)
        save_state_dict(self.conn, sd, name, run=self.run, step=step)
        self.saved.append(name)
        if self.ema_decay is not None:
            ema_update(self.conn, self.ema_model, name, self.ema_decay)
        return name
