"""The packet loop of the PyAV backend: demux packet by packet, skip damaged ones, always
drain the decoder (see :mod:`ferbatch.decode.pyav` for the pitfalls each step handles).

:class:`PacketReader` is a mixin of :class:`~ferbatch.decode.pyav.PyAVStream`; it reads the
stream's attributes listed below. When the video stream's own duration is unknown and the
file holds other streams, it demuxes them too (their packets are not decoded) and records
where the file's data ends (:attr:`data_end_s`), so a file cut short is noticed even when
another stream hides it (:meth:`~ferbatch.decode.damage.DamageLog.check_complete`).
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction

import av

from .av_util import AV_ERRORS as _AV_ERRORS
from .damage import DamageLog
from .timing import container_duration


class PacketReader:
    """Demuxing and decoding of one video stream with damage bookkeeping (a mixin)."""

    _container: av.container.InputContainer | None
    _stream: av.video.stream.VideoStream
    _damage: DamageLog
    _stop_pts: int | None
    _flushed: bool
    _last_t: float
    frames_decoded: int
    #: demux every stream, recording where the file's data ends (set before decoding)
    watch_other_streams: bool = False
    #: absolute seconds (pts × time base) where the last packet of any stream / of the video
    #: stream ends, with :attr:`watch_other_streams`
    data_end_s: float | None = None
    video_end_s: float | None = None

    def _note_data_end(self, packet: av.Packet) -> None:
        if packet.pts is None or not packet.time_base:
            return
        end = float((packet.pts + (packet.duration or 0)) * Fraction(packet.time_base))
        if self.data_end_s is None or end > self.data_end_s:
            self.data_end_s = end
        if packet.stream.index == self._stream.index and (self.video_end_s is None
                                                         or end > self.video_end_s):
            self.video_end_s = end

    def _hidden_cut_s(self) -> float | None:
        """With :attr:`watch_other_streams`: the container's duration when the file's data
        stops well before it (max(0.5 s, 2 %)) *and* the video ran to where the data stops,
        i.e. the video was cut with the file; else ``None`` (a video that simply ends before
        the audio is not cut)."""
        container = self._container
        if not self.watch_other_streams or container is None or not container.duration:
            return None
        if self.data_end_s is None or self.video_end_s is None:
            return None
        duration = container_duration(container)
        end = (container.start_time or 0) / av.time_base + duration
        slack = max(0.5, 0.02 * duration)
        if self.data_end_s < end - slack and self.video_end_s >= self.data_end_s - slack:
            return duration
        return None

    def _decode_packets(self, skip_until_pts: int | None = None) -> Iterator[av.VideoFrame]:
        """Demux and decode packet by packet, skipping damaged ones; always drain the decoder.

        ``skip_until_pts``: after a seek, packets before the one with that pts are not decoded.
        Demuxing stops at the packet whose pts is ``self._stop_pts`` (a span's end keyframe).
        """
        assert self._container is not None
        stream = self._stream
        held = None  # a packet the demuxer flagged corrupt, kept until we know what follows
        demux = self._container.demux() if self.watch_other_streams else self._container.demux(stream)
        while True:
            try:
                packet = next(demux)
            except StopIteration:
                break
            except _AV_ERRORS as exc:  # the container itself is damaged here
                self._damage.stop(exc, self._where(), " while reading the file")
                break
            if packet.stream.index != stream.index:
                if packet.size:
                    self._note_data_end(packet)
                continue
            if self.watch_other_streams and packet.size:
                self._note_data_end(packet)
            if skip_until_pts is not None:
                if packet.pts != skip_until_pts or packet.size == 0:
                    continue
                skip_until_pts = None
            if self._stop_pts is not None and packet.pts == self._stop_pts and packet.size:
                if held is not None:  # a span ends here: whatever came before is not its tail
                    yield from self._decode(held)
                    held = None
                break
            # PyAV ends demuxing with an empty, timestamp-less packet that drains the decoder.
            # Other empty packets (AVI "dropped frame" chunks) must not reach the decoder: an
            # empty packet is FFmpeg's end-of-stream signal and would end decoding early.
            is_flush = packet.size == 0 and packet.pts is None and packet.dts is None
            if packet.size == 0 and not is_flush:
                continue
            if held is not None:
                if is_flush:
                    self._damage.tail_cut = True
                else:
                    yield from self._decode(held)
                held = None
            if packet.is_corrupt and not is_flush:
                held = packet
                continue
            if is_flush:
                self._flushed = True
            yield from self._decode(packet)
            if self._damage.exhausted:
                self._damage.stop(None, self._where())
                break
        if held is not None:
            self._damage.tail_cut = True
        if not self._flushed:
            self._flushed = True
            yield from self._decode(None)

    def _decode(self, packet: av.Packet | None) -> Iterator[av.VideoFrame]:
        try:
            decoded = self._stream.decode(packet)
        except av.error.EOFError:
            return  # decoder already drained
        except _AV_ERRORS as exc:
            self._damage.note(exc, "decoding", self._where())
            return
        if packet is not None and packet.size:
            self._damage.good_packet()
        yield from decoded

    # ------------------------------------------------------------------ error reporting
    def _where(self) -> str:
        return f"frame {self.frames_decoded} (t={self._last_t:.2f} s)"

