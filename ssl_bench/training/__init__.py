"""The training loop and everything around one run: preparation, the trainer, schedules,
evaluation, checkpoint selection, resume state, records and the method contract checks."""
