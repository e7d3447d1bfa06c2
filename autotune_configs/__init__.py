"""Kernel configs as data (JSON, one file per target family); installed as ``triton_convt.autotune_configs``."""
