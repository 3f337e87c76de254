"""Split one long video into time segments that separate workers analyse, then merge them.

Plan (:func:`plan_segments`): one cheap demux pass over the video's packets, no decoding. Every
packet's pts gives, once sorted, each frame's global ``frame_index`` and ``timestamp_s`` (the
same formula the decoder uses, so it holds on variable frame rate too). The video is cut at
*clean* keyframes only: a keyframe packet that every packet before it (in decode order) precedes
in time and every packet after it follows, so "the packets from this keyframe to the next cut"
are exactly "the frames with pts in [cut, next cut)" and decode from that keyframe alone
(open-GOP leading pictures and edit-list discards rule a keyframe out). Cuts land near equal
frame counts, about ``segment_s`` seconds apart; a video shorter than twice ``segment_s``, or
whose packets are not clean (missing or repeated pts, corrupt packets, no usable keyframe), is
not split and runs whole as before. The frame sampler's state at each cut (``--fps`` is
time-based and stateful) is computed in the plan, so a segment keeps exactly the frames a run
over the whole video keeps.

Segments (:func:`process_segment`): a worker seeks to the segment's keyframe and runs the usual
pipeline (:func:`ferbatch.pipeline.process_video`) over its frames, so frames stay where they are
decoded; only the segment's Arrow tables (rows, not pixels) go back. A segment other than the
first also analyses a *warm-up* before its start: the sampled frames of the last
``--track-gap`` seconds (from the first sampled frame after the last one more than ``max_gap_s``
before the cut). Every track the tracker of a whole-video run still remembers at the cut was
seen in that window, so the segment's tracker starts the cut in the same state, up to the
numbering of its ids. Warm-up rows are used for re-linking and then dropped.

Merge (:func:`merge_segments`): segments are taken in order. On every warm-up frame the
segment's detections are matched (IoU >= 0.5) to the rows already merged for that frame; a local
id takes the global id of its detection on the latest warm-up frame where it was seen (each
global id once). Other local ids get new global ids in order of first appearance, as a
whole-video tracker would hand them out. The merged video is committed once, atomically, by
:meth:`ferbatch.output.commit.OutputStore.commit`, with the same ``videos.parquet`` row as an unsplit run
(``processing_s`` is the worker time summed over the segments and the merge).

Boundary behaviour: the rows are identical to an unsplit run (floats to rounding, as between
any two runs with different batch sizes), except in one case: within the warm-up window before
a cut, a whole-video run also remembers tracks last seen *before* the window, and if such a
stale track, rather than a track of the window, would have taken a detection (two tracks
competing for one face), ids after the cut can differ from the unsplit run. A face that is
unseen for the whole warm-up window had expired by the cut in the unsplit run too, so it gets a
new id either way. A segment that does not decode as planned (damage, a plan/decoder
disagreement, a file changed meanwhile) makes the driver redo the whole video unsplit, so damaged
or truncated files get exactly the unsplit result.
"""

from .merge import LINK_IOU, merge_segments, open_segment, process_segment
from .plan import SegmentPlan, header_duration, plan_segments

__all__ = ["LINK_IOU", "SegmentPlan", "header_duration", "merge_segments", "open_segment",
           "plan_segments", "process_segment"]
