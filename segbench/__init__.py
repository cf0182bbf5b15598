"""segbench: reproducible benchmark and paper replication for Mask R-CNN and U-Net."""

__version__ = "0.1.0"
