"""Look Within or Beyond: PEFT vs full fine-tuning reproducibility workflow (logic package)."""

__version__ = "0.1.0"
