"""A pythonSoftIOC (EPICS base's own C server, rsrv) with one record of each kind.

Usage: python softioc_ioc.py PREFIX
Serve on the port in EPICS_CA_SERVER_PORT / EPICS_CAS_SERVER_PORT (set by the test).
Prints READY once iocInit returned, then serves until killed.
"""

import sys
import time

import numpy as np
from softioc import asyncio_dispatcher, builder, softioc

prefix = sys.argv[1]
# builder joins device and record names with ":", so "P:" + "AI" is "P:AI".
builder.SetDeviceName(prefix.rstrip(":"))

builder.aIn("AI", initial_value=1.5, EGU="mm", PREC=3, LOPR=-10, HOPR=10,
            HIHI=8, HIGH=6, LOW=-6, LOLO=-8, HHSV="MAJOR", HSV="MINOR", LSV="MINOR", LLSV="MAJOR")
builder.aOut("AO", initial_value=2.5, EGU="V", PREC=2, DRVL=-100, DRVH=100, LOPR=-100, HOPR=100)
builder.boolIn("BI", ZNAM="Off", ONAM="On", initial_value=1)
builder.boolOut("BO", ZNAM="Low", ONAM="High", initial_value=0)
builder.longIn("LI", initial_value=42, EGU="counts")
builder.longOut("LO", initial_value=7, DRVL=-1000, DRVH=1000)
builder.stringIn("SI", initial_value="hello")
builder.stringOut("SO", initial_value="world")
builder.mbbIn("MBBI", "zero", "one", "two", initial_value=1)
builder.mbbOut("MBBO", "red", "green", "blue", initial_value=2)
builder.WaveformOut("WF1", initial_value=np.array([3.25]))
builder.WaveformOut("WF1K", initial_value=np.arange(1000, dtype=np.float64))
builder.WaveformOut("WF1M", initial_value=np.arange(1_000_000, dtype=np.float64) * 0.5)
builder.WaveformOut("SHORTWF", initial_value=np.arange(100, dtype=np.int16))
builder.WaveformOut("FLOATWF", initial_value=np.arange(100, dtype=np.float32))
builder.WaveformOut("LONGWF", initial_value=np.arange(100, dtype=np.int32))
builder.WaveformOut("CHARWF", initial_value=np.frombuffer(b"pvloom\0", dtype=np.uint8), length=64)
counter = builder.longIn("COUNTER", initial_value=0)
for i in range(1000):
    builder.longIn(f"N{i}", initial_value=i)

dispatcher = asyncio_dispatcher.AsyncioDispatcher()
builder.LoadDatabase()
softioc.iocInit(dispatcher)
print("READY", flush=True)

n = 0
while True:
    time.sleep(0.1)
    n += 1
    counter.set(n)
