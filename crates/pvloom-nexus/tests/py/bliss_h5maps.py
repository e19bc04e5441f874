"""A scan published with blissdata whose info carries `h5maps`, as BLISS 2.4 publishes it:
a mapping of the file built with blissdata's own h5map models (every item and value kind), set before PREPARED and
regenerated before the end (end_time, end_reason, end positions added; a value and an
attribute changed; a dataset removed).

usage: bliss_h5maps.py URL SESSION FILE NUMBER NPOINTS EXPECT_OUT [wait|nofilename|samestreams|bad:CASE]
Writes EXPECT_OUT (JSON: the begin and end mappings, and every stream's points) and prints
"KEY <key>". With `wait`: "SENT" once every point is sent, then waits for a line on stdin
before ending the scan. With `nofilename`: the info names the file only as h5maps' key.
With `samestreams`: the end mapping leaves the stream datasets' attributes as they were.
With `bad:CASE`: the info carries a malformed mapping instead
(CASE: ragged, stream, type), written as raw JSON since blissdata's models refuse it.
"""
import base64
import json
import os
import sys
import time

import numpy as np
from blissdata.h5map import (
    Compound,
    Dataset,
    ExternalBinaryDataset,
    ExternalBinaryFile,
    ExternalLink,
    Group,
    Inline,
    InlineBase64,
    InlineRaw,
    SoftLink,
    SpaceSelection,
    Stream as MapStream,
    VirtualDataset,
    VirtualSource,
)
from blissdata.redis_engine.store import DataStore
from blissdata.streams.default import Stream

url, session, filename, number, npoints, out = sys.argv[1:7]
number, npoints = int(number), int(npoints)
mode = sys.argv[7] if len(sys.argv) > 7 else ""
entry = f"{number}.1"
e = f"/{entry}"

# Raw bytes an external binary dataset points at: an 8-byte header, then 2x3 int32.
ext_file = os.path.join(os.path.dirname(filename), f"raw_{number}.bin")
with open(ext_file, "wb") as f:
    f.write(b"HEADER!!" + np.arange(6, dtype="<i4").tobytes())


def nx(cls, children, **attrs):
    return Group(attributes={"NX_class": InlineRaw(cls), **attrs}, children=children)


def mapping(end: bool) -> Group:
    positioners = {"sy": Dataset(value=InlineRaw(0.0), attributes={"units": InlineRaw("mm")}), "sz": InlineRaw(2.5)}
    children = {
        "title": InlineRaw(f"ascan sy 0 1 {npoints - 1} 0.01"),
        "start_time": InlineRaw("2026-12-03T05:00:00+00:00"),
        "npoints": Dataset(value=InlineRaw(npoints), attributes={"comment": InlineRaw("points asked for")}),
        "count_time": InlineRaw(0.02 if end else 0.01),
        "flags": InlineRaw([True, False, True]),
        "matrix": InlineRaw([[1, 2, 3], [4, 5, 6]]),
        "mixed": InlineRaw([1, 2.5]),
        "gain": Dataset(value=Inline(dtype="float32", value=1.5), attributes={"units": InlineRaw("dB")}),
        "small": Inline(dtype="int8", value=[1, -2, 3]),
        "half": Inline(dtype="float16", value=0.5),
        "cplx": Inline(dtype="complex64", value=[1, "(1+2j)"]),
        "notanumber": Inline(dtype="float64", value="nan"),
        "yes": Inline(dtype="bool", value=True),
        "blob": InlineBase64(dtype=">u2", shape=[2, 3], value=base64.b64encode(np.arange(6, dtype=">u2").tobytes())),
        "bytes1d": InlineBase64(dtype="|u1", value=base64.b64encode(bytes([1, 2, 3, 250]))),
        "raw_ext": ExternalBinaryDataset(
            dtype="<i4", shape=[2, 3], files=[ExternalBinaryFile(name=ext_file, offset=8, size=24)],
            attributes={"origin": InlineRaw("detector")},
        ),
        "table": Dataset(
            value=Compound(columns=[("a", InlineRaw([1, 2])), ("b", Inline(dtype="float32", value=[1.5, 2.5])),
                                    ("c", InlineRaw(["x", "yz"]))]),
            attributes={"row": Compound(columns=[("i", InlineRaw(7)), ("f", InlineRaw(0.5))])},
        ),
        "longdouble": Inline(dtype="float128", value=[1.0, -2.5]),
        "cplx256": Inline(dtype="complex256", value="(1+2j)"),
        "ld_b64": InlineBase64(dtype="<f16", value=base64.b64encode(np.array([3.25], dtype="<f16").tobytes())),
        # Virtual datasets over `matrix` (this file: "."): its rows one after the other, and
        # every other element of its first row (blisswriter 3.0.0 does not write these).
        "vds": VirtualDataset(
            dtype="<i8", shape=[6], attributes={"kind": InlineRaw("rows")},
            virtual_sources=[
                VirtualSource(vspace=SpaceSelection(start=[3 * r], count=[3]), src_file=".", src_dataset=f"{e}/matrix",
                              src_space=SpaceSelection(start=[r, 0], count=[1, 3]))
                for r in range(2)
            ],
        ),
        "vds_strided": VirtualDataset(
            dtype="<i8", shape=[2],
            virtual_sources=[VirtualSource(vspace=SpaceSelection(start=[0], count=[2]), src_file=".",
                                           src_dataset=f"{e}/matrix",
                                           src_space=SpaceSelection(start=[0, 0], stride=[1, 2], count=[1, 2]))],
        ),
        "instrument": nx("NXinstrument", {
            "name": InlineRaw(session),
            "sy": nx("NXpositioner", {"value": Dataset(value=MapStream(stream="axis:sy"),
                                                       attributes={"units": InlineRaw("mm")})}),
            "diode": nx("NXdetector", {"data": Dataset(
                value=MapStream(stream="diode:diode"),
                attributes={"interpretation": InlineRaw("scalar"),
                            **({"units": InlineRaw("counts")} if end and mode != "samestreams" else {})},
            )}),
            "lima": nx("NXdetector", {"image": Dataset(value=MapStream(stream="lima:image"),
                                                       attributes={"interpretation": InlineRaw("image")})}),
            "mca": nx("NXdetector", {"spectrum": MapStream(stream="mca:spectrum")}),
            "positioners_start": nx("NXcollection", positioners),
            **({"positioners_end": nx("NXcollection", {"sy": InlineRaw(1.0), "sz": InlineRaw(2.5)})} if end else {}),
        }),
        "measurement": nx("NXcollection", {
            "sy": SoftLink(target_path=f"{e}/instrument/sy/value"),
            "diode": SoftLink(target_path=f"{e}/instrument/diode/data"),
            # One stream in two places.
            "sy_copy": MapStream(stream="axis:sy"),
        }),
        "plot": nx("NXdata", {
            "sy": SoftLink(target_path=f"{e}/instrument/sy/value"),
            "diode": SoftLink(target_path=f"{e}/instrument/diode/data"),
        }, signal=InlineRaw("diode"), axes=InlineRaw(["sy"]), sy_indices=Inline(dtype="int32", value=0)),
        "elsewhere": ExternalLink(target_file="other.h5", target_path="/data"),
    }
    if not end:
        children["names"] = InlineRaw(["a", "bb", "ccc"])
    else:
        children["end_time"] = InlineRaw("2026-12-03T05:00:10+00:00")
        children["end_reason"] = InlineRaw("SUCCESS")
    entry_attrs = {"default": InlineRaw("plot")}
    if end:
        entry_attrs["end_mark"] = InlineRaw(1)
    return Group(
        attributes={"NX_class": InlineRaw("NXroot"), "creator": InlineRaw("blissdata h5map test"),
                    "default": InlineRaw(entry)},
        children={entry: Group(attributes={"NX_class": InlineRaw("NXentry"), **entry_attrs}, children=children)},
    )


def dump(m: Group) -> dict:
    return m.model_dump(mode="json")


def bad(case: str) -> dict:
    m = dump(mapping(False))
    kids = m["children"][entry]["children"]
    if case == "ragged":
        kids["matrix"] = [[1, 2], [3]]
    elif case == "stream":
        kids["instrument"]["children"]["ghost"] = {"type": "stream", "stream": "no:such"}
    elif case == "type":
        kids["weird"] = {"type": "zarr_array", "value": 1}
    return m


ds = DataStore(url)
identity = {"name": "ascan", "number": number, "data_policy": "no_policy", "session": session, "path": filename}
info = {"title": f"ascan sy 0 1 {npoints - 1} 0.01", "npoints": npoints, "filename": filename, "scan_nb": number,
        "session_name": session}
if mode == "nofilename":
    del info["filename"]
scan = ds.create_scan(identity, info=info)
sy = scan.create_stream(Stream.make_definition("axis:sy", "float64", ()))
diode = scan.create_stream(Stream.make_definition("diode:diode", "float64"))
image = scan.create_stream(Stream.make_definition("lima:image", "uint16", (4, 5)))
mca = scan.create_stream(Stream.make_definition("mca:spectrum", "float32", (-1,)))
# Not in the mapping: not written.
extra = scan.create_stream(Stream.make_definition("extra:unmapped", "float64"))
begin = bad(mode[4:]) if mode.startswith("bad:") else dump(mapping(False))
scan.info["h5maps"] = {filename: begin}
scan.prepare()
print("KEY", scan.key, flush=True)
scan.start()
points = {"axis:sy": [], "diode:diode": [], "lima:image": [], "mca:spectrum": []}
for i in range(npoints):
    values = {
        "axis:sy": 0.1 * i,
        "diode:diode": 100.0 * np.sin(i),
        "lima:image": ((np.arange(20) + 100 * i) % 65536).astype(np.uint16).reshape(4, 5),
        "mca:spectrum": np.arange(1 + i % 4, dtype=np.float32) + i,
    }
    sy.send(np.float64(values["axis:sy"]))
    diode.send(np.float64(values["diode:diode"]))
    image.send(values["lima:image"])
    mca.send(values["mca:spectrum"])
    extra.send(np.float64(i))
    for k, v in values.items():
        points[k].append(np.asarray(v).tolist())
    if mode == "wait":
        time.sleep(0.03)
end = dump(mapping(True))
with open(out, "w") as f:
    dtypes = {"axis:sy": "<f8", "diode:diode": "<f8", "lima:image": "<u2", "mca:spectrum": "<f4"}
    virtual = {f"{e}/vds": [1, 2, 3, 4, 5, 6], f"{e}/vds_strided": [1, 3]}
    json.dump({"begin": begin, "end": end, "streams": points, "dtypes": dtypes, "virtual": virtual, "entry": entry}, f)
if mode == "wait":
    for s in (sy, diode, image, mca, extra):
        s.join()
    print("SENT", flush=True)
    sys.stdin.readline()
scan.stop()
scan.info["end_reason"] = "SUCCESS"
if not mode.startswith("bad:"):
    scan.info["h5maps"] = {filename: end}
scan.close()
print("DONE", flush=True)
