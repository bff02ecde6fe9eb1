"""Shrinks a training config to a few steps for tests (shared by the training tests)."""


def shrink(config, *, num_steps, eval_every_steps, eval_batch_size, warmup_steps):
  """Small batches, `num_steps` steps, no progress bar: enough to exercise the whole loop."""
  config.train.batch_size = 32
  config.train.eval_batch_size = eval_batch_size
  config.train.num_steps = num_steps
  config.train.eval_every_steps = eval_every_steps
  config.train.log_every_steps = 1
  config.train.progress_bar = False
  config.optim.warmup_steps = warmup_steps
  return config
