"""caproto's threading-client tutorial, run on pvloom: only the imports differ.

Start caproto's demo IOC in another shell, then run this script:

    python3 -m caproto.ioc_examples.random_walk
    python3 examples/python/ca_tutorial.py

(It finds the IOC the way caproto does, through the EPICS_CA_* environment
variables.) The tutorial's "Performance Note" steps (``bytes(res)``, ``res.header``,
``res.buffers``: caproto's raw wire buffers) have no pvloom equivalent and are left
out; every other step is here, in the tutorial's order. Instead of waiting "some
time" for subscription updates, the script waits until a few have arrived.
"""

import time

from pvloom.ca import Context  # was: from caproto.threading.client import Context

# Connect
ctx = Context()
x, dt = ctx.get_pvs('random_walk:x', 'random_walk:dt')
print(repr(dt))
print(repr(ctx))

# Read
res = dt.read()
print(res)
print(res.data)
print(res.metadata)
richer_res = dt.read(data_type='time')
print(richer_res.metadata)
print(richer_res.metadata.timestamp)
print(richer_res.metadata.stamp.as_datetime())  # a convenience method

# Write
print(dt.write([1]))
dt.write([1], wait=False)


def f(response):
    print('got a response:', response)


dt.write([1], wait=False, callback=f)

# Subscribe ("Monitor")
sub = x.subscribe()
responses = []


def f(sub, response):
    print('Received response from', sub.pv.name)
    responses.append(response)


token = sub.add_callback(f)
values = []


def g(sub, response):
    values.append(response.data[0])


print(sub.add_callback(g))


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


wait_for(lambda: len(responses) >= 3)  # "After some time has passed..."
print(len(responses))
print(values)
sub.remove_callback(token)
sub.clear()

# Batched Requests
pvs = [x, dt]
from functools import partial

results = {}


def stash_result(name, response):
    results[name] = response.data


from pvloom.ca import Batch  # was: from caproto.threading.client import Batch

with Batch() as b:
    for pv in pvs:
        b.read(pv, partial(stash_result, pv.name))
wait_for(lambda: len(results) == 2)
print(results)

# Go Idle
print(repr(x))
x.go_idle()
print(repr(x))
print(x.read())
print(repr(x))

# Canceling Searches
ctx.broadcaster.cancel('some typo-ed PV name, for example')

# Events Off and On
x.circuit_manager.events_off()
x.circuit_manager.events_on()

# Server Health Check
print(ctx.broadcaster.time_since_last_heard())
print(x.time_since_last_heard())

assert len(responses) >= 3 and len(values) >= 3, (responses, values)
assert set(results) == {'random_walk:x', 'random_walk:dt'}, results
assert results['random_walk:dt'][0] == 1.0
print("TUTORIAL OK")
