"""ferbatch: facial-emotion timelines for folders of video, written to Parquet."""

__version__ = "0.1.0"
