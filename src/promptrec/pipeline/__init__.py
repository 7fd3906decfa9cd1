"""Pipeline: the LightningDataModule (examples → prompts → cached tokens → batches) and the
LightningModule (a batch → scores → the task's loss and evaluation)."""
