"""NeXus HDF5 from BLISS scans and from pvloom's own streams.

* :class:`SessionWriter` — the session writer service on a blissdata Redis: every new
  scan of a session (or of all sessions) written as NeXus, one :class:`ScanWriter` each.
* :class:`ScanWriter` — one scan: a Subscriber (``state`` INIT/ON/OFF/FAULT, ``start``,
  ``stop(wait, timeout)``, ``kill``, ``join``, ``done``, ``duration``) whose listener reads
  Redis while its consumer writes HDF5; a scan that sends nothing for ``end_timeout``
  seconds is closed and marked (``end_reason`` FAILURE), never left ON.
* :class:`Recording` — CA PVs and LDMS sets (``"HOST:PORT/SET"``) recorded into one scan,
  the same layout, optionally published to Redis as a blissdata scan.

Files are written in SWMR mode: ``h5py.File(path, "r", swmr=True)`` follows a running
scan (``dataset.refresh()``). Every blocking call releases the GIL.
"""

from ._pvloom import Recording, ScanWriter, SessionWriter

__all__ = ["Recording", "ScanWriter", "SessionWriter"]
