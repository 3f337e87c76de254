"""One output, one label set: the rule, and how a run replaces an output's label set.

Every ``faces`` partition of an output has one ``p_<label>`` column per label of
``_ferbatch.json``, in its order; ``share_<label>`` columns of the report, ``ferbatch.load``'s
``emotion`` categories and the examples all rest on it. So:

* a run whose model has another label set (a ``--classes`` subset, FER+'s 8 classes) is
  refused on an output holding results, unless ``--overwrite`` is given **and** every video
  of the output with results is among the run's inputs: all of them are redone with the new
  model. Their old results are removed (:meth:`OutputStore.discard`) before the new manifest
  is written, so the output never holds two label sets, not even after a killed run (the
  videos not yet redone have no results then; the next run redoes them).
* Failed videos hold no results (no partitions), so they do not count.
* Readers (:func:`ferbatch.load`, ``ferbatch report``, ``examples/``) refuse an output whose
  partitions disagree with its label set (one written by an older ferbatch), naming the videos.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..text import short_list
from .schema import STATUS_FAILED

if TYPE_CHECKING:
    from .commit import OutputStore

log = logging.getLogger(__name__)

def videos_with_results(store: OutputStore) -> dict[str, str]:
    """``video_id → path`` of every committed video that has results (not ``failed``)."""
    return {row["video_id"]: row["path"] for row in store.status_rows()
            if row.get("status") != STATUS_FAILED}


def replace_label_set(store: OutputStore, old: list[str], new: list[str], overwrite: bool,
                      redo: Collection[str]) -> list[str]:
    """Check that this run may replace the label set ``old`` of ``store`` by ``new`` (module
    doc) and remove the old results; returns the ids removed. Raises :class:`ConfigError`."""
    held = videos_with_results(store)
    if not held:
        return []
    where = store.location.display()
    what = (f"{where} holds results of {len(held)} video(s) with the labels {old}, but this "
            f"model has {new}; an output holds one label set")
    if not overwrite:
        raise ConfigError(f"{what}: use another --out, or --overwrite with every video of "
                          f"{where} among the inputs (all of them are redone with this model)")
    redo_ids = set(redo)
    missing = sorted(path for vid, path in held.items() if vid not in redo_ids)
    if missing:
        raise ConfigError(f"{what}: --overwrite with another label set must redo every video "
                          f"of the output, but {len(missing)} of them are not among the inputs: "
                          f"{short_list(missing)}; add them to the inputs, or use another --out")
    log.warning("%s: the label set changes from %s to %s: removing the results of %d video(s) "
                "before they are redone", where, old, new, len(held))
    for video_id in sorted(held):
        store.discard(video_id)
    store.write_videos_table()
    return sorted(held)
