"""EPICS base's own IOC running an iocsh startup script, as softIoc does.

epicscorelibs ships base's libraries (libCom, libdbCore, libdbRecStd) but no softIoc
executable, so this is softIoc's start through ctypes: load base.dbd, register record
and device support, then base's own iocsh runs the script (its iocInit starts rsrv).
`softIoc_registerRecordDeviceDriver` is a command only a built softIoc has; it is
registered here as a no-op so a real-world st.cmd runs as under softIoc.

Usage: python base_iocsh.py st.cmd      (in the IOC's directory)
Serves on EPICS_CA_SERVER_PORT; prints SCRIPT-DONE <status> when the script returned,
then, as softIoc's shell, runs the commands stdin sends (each acknowledged with a
"CMD-DONE <command>" line once it ran), and serves until killed.
"""

import ctypes
import sys
import time

from epicscorelibs.ioc import (DEFAULT_DBD_PATH, Com, dbLoadDatabase, iocshRegisterCommon, pdbbase,
                               registerRecordDeviceDriver)


class IocshArg(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("type", ctypes.c_int)]


class IocshFuncDef(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("nargs", ctypes.c_int),
                ("arg", ctypes.POINTER(ctypes.POINTER(IocshArg))), ("usage", ctypes.c_char_p)]


CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_void_p)

iocshRegisterCommon()
if dbLoadDatabase(b"base.dbd", DEFAULT_DBD_PATH.encode(), None):
    sys.exit("base.dbd did not load")
if registerRecordDeviceDriver(pdbbase):
    sys.exit("record and device support did not register")

# Kept alive for the life of the process: iocsh holds pointers to them.
ARG = IocshArg(b"pdbbase", 2)  # iocshArgString
ARGS = (ctypes.POINTER(IocshArg) * 1)(ctypes.pointer(ARG))
DEF = IocshFuncDef(b"softIoc_registerRecordDeviceDriver", 1, ARGS, b"already registered\n")
NOOP = CALLBACK(lambda args: None)
Com.iocshRegister.argtypes = [ctypes.POINTER(IocshFuncDef), CALLBACK]
Com.iocshRegister.restype = None
Com.iocshRegister(ctypes.byref(DEF), NOOP)

Com.iocsh.argtypes = [ctypes.c_char_p]
Com.iocsh.restype = ctypes.c_int
status = Com.iocsh(sys.argv[1].encode())
sys.stdout.flush()
sys.stderr.flush()
print("SCRIPT-DONE", status, flush=True)
Com.iocshCmd.argtypes = [ctypes.c_char_p]
Com.iocshCmd.restype = ctypes.c_int
libc = ctypes.CDLL(None)
for line in sys.stdin:
    command = line.strip()
    Com.iocshCmd(command.encode())
    libc.fflush(None)  # iocsh prints through C's stdio
    print("CMD-DONE", command, flush=True)
while True:
    time.sleep(1)
