"""A scan with two top masters written with blissdata's own writer, shaped like BLISS's
`aloopscan` (a stepper chain and a timer chain appended to one AcquisitionChain):

- top master `subscan1ax` (LinearStepTriggerMaster on robx) -> timer `subscan1tmr` ->
  a diode controller and a Lima simulator: N1 points of axis:robx, subscan1tmr:elapsed_time,
  subscan1tmr:epoch, simulation_diode_sampling_controller:diode2, lima_simulator:image (u2 [3,4])
- top master `subscan2tmr` (SoftwareTimerMaster) -> an MCA simulator: N2 points of
  subscan2tmr:elapsed_time, subscan2tmr:epoch, simu1:realtime_det0, simu1:triggers_det0 (i8),
  simu1:spectrum_det0 (u4 [16])

The info is what BLISS publishes for such a chain: acquisition_chain per top master (top_master,
devices, master/scalars/spectra/images), devices with their channels and triggered devices,
channels with dim and unit, positioners, a curve plot of the first chain.

usage: bliss_subscans.py URL SESSION FILE NUMBER N1 N2
Prints "KEY <key>" once created and "DONE" once closed.
"""
import sys

import numpy as np
from blissdata.redis_engine.store import DataStore
from blissdata.streams.default import Stream

url, session, filename = sys.argv[1], sys.argv[2], sys.argv[3]
number, n1, n2 = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
ds = DataStore(url)
identity = {"name": "aloopscan", "number": number, "data_policy": "no_policy", "session": session, "path": filename}

DIODE = "simulation_diode_sampling_controller:diode2"
chain1 = {
    "top_master": "subscan1ax",
    "devices": ["subscan1ax", "subscan1tmr", "simulation_diode_sampling_controller", "lima_simulator"],
    "master": {"scalars": ["axis:robx"], "spectra": [], "images": []},
    "scalars": ["subscan1tmr:elapsed_time", "subscan1tmr:epoch", DIODE],
    "spectra": [],
    "images": ["lima_simulator:image"],
}
chain2 = {
    "top_master": "subscan2tmr",
    "devices": ["subscan2tmr", "simu1"],
    "master": {"scalars": ["subscan2tmr:elapsed_time", "subscan2tmr:epoch"], "spectra": [], "images": []},
    "scalars": ["simu1:realtime_det0", "simu1:triggers_det0"],
    "spectra": ["simu1:spectrum_det0"],
    "images": [],
}
devices = {
    "subscan1ax": {"name": "subscan1ax", "channels": ["axis:robx"], "triggered_devices": ["subscan1tmr"]},
    "subscan1tmr": {
        "name": "subscan1tmr",
        "channels": ["subscan1tmr:elapsed_time", "subscan1tmr:epoch"],
        "triggered_devices": ["simulation_diode_sampling_controller", "lima_simulator"],
    },
    "simulation_diode_sampling_controller": {"name": "simulation_diode_sampling_controller", "channels": [DIODE]},
    "lima_simulator": {"name": "lima_simulator", "channels": ["lima_simulator:image"], "type": "lima"},
    "subscan2tmr": {
        "name": "subscan2tmr",
        "channels": ["subscan2tmr:elapsed_time", "subscan2tmr:epoch"],
        "triggered_devices": ["simu1"],
    },
    "simu1": {
        "name": "simu1",
        "channels": ["simu1:realtime_det0", "simu1:triggers_det0", "simu1:spectrum_det0"],
        "type": "mca",
    },
}
channels = {
    "axis:robx": {"dim": 0, "unit": "mm", "display_name": "robx"},
    "subscan1tmr:elapsed_time": {"dim": 0, "unit": "s"},
    "subscan1tmr:epoch": {"dim": 0, "unit": "s"},
    DIODE: {"dim": 0},
    "lima_simulator:image": {"dim": 2},
    "subscan2tmr:elapsed_time": {"dim": 0, "unit": "s"},
    "subscan2tmr:epoch": {"dim": 0, "unit": "s"},
    "simu1:realtime_det0": {"dim": 0, "unit": "s"},
    "simu1:triggers_det0": {"dim": 0},
    "simu1:spectrum_det0": {"dim": 1},
}
info = {
    "title": f"aloopscan robx 0 1 {n1} 0.1 {n2} 0.5",
    "type": "aloopscan",
    "count_time": 0.1,
    "filename": filename,
    "scan_nb": number,
    "session_name": session,
    "save": True,
    "data_writer": "nexus",
    "start_time": "2026-12-03T06:00:00+00:00",
    "positioners": {
        "positioners_start": {"robx": 0.0, "roby": 1.25},
        "positioners_end": {"robx": 1.0, "roby": 1.25},
        "positioners_units": {"robx": "mm", "roby": "mm"},
    },
    "acquisition_chain": {"subscan1ax": chain1, "subscan2tmr": chain2},
    "devices": devices,
    "channels": channels,
    "plots": [{"kind": "curve-plot", "name": "plot", "items": [{"kind": "curve", "x": "axis:robx", "y": DIODE}]}],
}
scan = ds.create_scan(identity, info=info)
print("KEY", scan.key, flush=True)


def stream(name, dtype, shape=(), unit=None):
    extra = {"unit": unit} if unit else {}
    return scan.create_stream(Stream.make_definition(name, dtype, shape, info=extra))


robx = stream("axis:robx", "float64", unit="mm")
t1 = stream("subscan1tmr:elapsed_time", "float64", unit="s")
e1 = stream("subscan1tmr:epoch", "float64", unit="s")
diode = stream(DIODE, "float64")
image = stream("lima_simulator:image", "uint16", (3, 4))
t2 = stream("subscan2tmr:elapsed_time", "float64", unit="s")
e2 = stream("subscan2tmr:epoch", "float64", unit="s")
realtime = stream("simu1:realtime_det0", "float64", unit="s")
triggers = stream("simu1:triggers_det0", "int64")
spectrum = stream("simu1:spectrum_det0", "uint32", (16,))
scan.prepare()
scan.start()
# The two chains run in parallel in BLISS; interleave their points the same way.
for i in range(max(n1, n2)):
    if i < n1:
        robx.send(np.float64(i / max(n1 - 1, 1)))
        t1.send(np.float64(0.1 * i))
        e1.send(np.float64(1764741600.0 + 0.1 * i))
        diode.send(np.float64(10.0 * np.cos(i)))
        image.send((np.arange(12, dtype=np.uint16) + 1000 * i).reshape(3, 4))
    if i < n2:
        t2.send(np.float64(0.5 * i))
        e2.send(np.float64(1764741600.0 + 0.5 * i))
        realtime.send(np.float64(0.5 + 0.001 * i))
        triggers.send(np.int64(100 * i + 7))
        spectrum.send(np.arange(16, dtype=np.uint32) * (i + 1))
scan.stop()
scan.info["end_reason"] = "SUCCESS"
scan.info["end_time"] = "2026-12-03T06:00:05+00:00"
scan.close()
print("DONE", flush=True)
