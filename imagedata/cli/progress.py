"""The progress bar of the commands that move image data (verify, migrate-from-glance): sizes
and speeds in binary units (MiB, MiB/s), as their summaries and the docs give them."""
from __future__ import annotations

from rich.filesize import pick_unit_and_suffix
from rich.progress import BarColumn, DownloadColumn, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text

BINARY_UNITS = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB"]


class BinarySpeedColumn(ProgressColumn):
    """The transfer speed in KiB/s, MiB/s... (rich's own column is decimal only)."""

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text("?", style="progress.data.speed")
        unit, suffix = pick_unit_and_suffix(int(speed), BINARY_UNITS, 1024)
        return Text(f"{speed / unit:.1f} {suffix}/s", style="progress.data.speed")


def transfer_columns(time_left: bool = False) -> tuple:
    """Description, bar, bytes done of total, speed (and the time left)."""
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(binary_units=True), BinarySpeedColumn())
    return columns + (TimeRemainingColumn(),) if time_left else columns
