"""Datasets: readers of the on-disk formats, presets with each dataset's facts, the datamodule."""
