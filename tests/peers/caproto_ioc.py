"""A caproto IOC covering every native type, read-only and flooding PVs.

Usage: python caproto_ioc.py PREFIX
Port from EPICS_CAS_SERVER_PORT; interfaces from EPICS_CAS_INTF_ADDR_LIST.
Prints READY when serving.
"""

import asyncio
import os
import sys

from caproto import ChannelType
from caproto.server import PVGroup, pvproperty, run


class Everything(PVGroup):
    double = pvproperty(value=3.5, units="mm", precision=3, upper_ctrl_limit=100.0, lower_ctrl_limit=-100.0)
    float = pvproperty(value=1.25, dtype=ChannelType.FLOAT)
    long = pvproperty(value=42, dtype=ChannelType.LONG)
    int = pvproperty(value=7, dtype=ChannelType.INT)
    char = pvproperty(value=b"pvloom", dtype=ChannelType.CHAR, max_length=64)
    string = pvproperty(value="hello", dtype=ChannelType.STRING)
    enum = pvproperty(value="green", enum_strings=["red", "green", "blue"], dtype=ChannelType.ENUM)
    array1k = pvproperty(value=[float(i) for i in range(1000)], dtype=ChannelType.DOUBLE)
    array1m = pvproperty(value=[0.5 * i for i in range(1_000_000)], dtype=ChannelType.DOUBLE)
    readonly = pvproperty(value=1.0, read_only=True)
    flood = pvproperty(value=0.0)
    flood_rate = pvproperty(value=0.0, doc="updates per second posted to flood (0: off)")

    @flood.startup
    async def flood(self, instance, async_lib):
        n = 0
        while True:
            rate = self.flood_rate.value
            if rate <= 0:
                await async_lib.library.sleep(0.05)
                continue
            batch = max(1, int(rate / 100))
            for _ in range(batch):
                n += 1
                await instance.write(float(n))
            await async_lib.library.sleep(0.01)


if __name__ == "__main__":
    prefix = sys.argv[1]
    ioc = Everything(prefix=prefix)
    print("READY", flush=True)
    run(ioc.pvdb, module_name="caproto.asyncio.server",
        interfaces=os.environ.get("EPICS_CAS_INTF_ADDR_LIST", "127.0.0.1").split())
