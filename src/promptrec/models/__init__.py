"""Models: backbone (which BERT) + tuning (which parameters train) + LightningModule (how)."""
