"""LoRA fine-tuning on the training strata (TRL, and the packed trainer)."""
