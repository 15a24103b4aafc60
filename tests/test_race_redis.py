"""`mapsafe race` on programs that share state through RedisMap on a real server: its operations order threads."""

from __future__ import annotations

import pytest

from _race_harness import race, run_race
from _redis_server import start_or_fail


@pytest.fixture(scope="module")
def url():
    server = start_or_fail()
    yield server.url
    server.stop()


def program(url: str, body: str) -> str:
    """``body`` after opening map ``m`` (a fresh name per program) at ``url``; ``opener()`` opens another object."""
    return f"""
import operator, threading, time, uuid
from mapsafe.redis import RedisMap
NAME = "race-" + uuid.uuid4().hex
def opener():
    return RedisMap({url!r}, NAME)
m = opener()
data = {{}}
def wait_for(m, key):
    for _ in range(20000):
        if m.get(key):
            return
        time.sleep(0.001)
    raise SystemExit("never saw " + key)
{body}
m.clear()
"""


# Each program: a thread writes a plain dict, then publishes through the
# map; the main thread observes the publication, then reads the dict. The
# map's operation is the only thing ordering the two, so a detector that
# did not know RedisMap would report the dict accesses as a race.
ORDERED = {
    "store then get": """
def writer():
    data["x"] = 1
    m["ready"] = True
t = threading.Thread(target=writer); t.start()
wait_for(m, "ready")
print(data["x"])
t.join()
""",
    "through another RedisMap object of the same name": """
def writer():
    mine = opener()
    data["x"] = 1
    mine.store("ready", True)
    mine.close()
t = threading.Thread(target=writer); t.start()
wait_for(m, "ready")
print(data["x"])
t.join()
""",
    "merge then load": """
def writer():
    data["x"] = 1
    m.merge("ready", 1, operator.add)
t = threading.Thread(target=writer); t.start()
for _ in range(20000):
    value, found = m.load("ready")
    if found:
        break
    time.sleep(0.001)
print(data["x"], value)
t.join()
""",
    "a compute callback's writes, seen through the value it stored": """
def make(key, old):
    data["made"] = key
    return "done"
t = threading.Thread(target=lambda: m.compute("ready", make)); t.start()
wait_for(m, "ready")
print(data["made"])
t.join()
""",
    "compute_if_absent's factory, and a second caller who gets its value": """
def factory(key):
    data["made"] = key
    return 42
t = threading.Thread(target=lambda: m.compute_if_absent("ready", factory)); t.start()
wait_for(m, "ready")
print(m.compute_if_absent("ready", lambda key: 0), data["made"])
t.join()
""",
    "iteration: a range callback after the entry it observed": """
def writer():
    data["x"] = 1
    m["ready"] = True
t = threading.Thread(target=writer); t.start()
wait_for(m, "ready")
seen = []
m.range(lambda k, v: seen.append(data["x"]))
print(seen)
t.join()
""",
    "compare_and_swap as a handoff, both ways": """
m["turn"] = "a"
def other():
    for _ in range(20000):
        if m.compare_and_swap("turn", "b", "a-again"):
            break
        time.sleep(0.001)
    data["x"] = data["x"] + 1
    m["ready"] = True
t = threading.Thread(target=other); t.start()
data["x"] = 1
assert m.compare_and_swap("turn", "a", "b")
wait_for(m, "ready")
print(data["x"])
t.join()
""",
}


@pytest.mark.parametrize("body", ORDERED.values(), ids=ORDERED.keys())
def test_a_redismap_operation_orders_the_threads(url, body):
    src = program(url, body)
    plain = run_race(src, plain=True)
    run = race(src)
    assert plain.returncode == 0, plain.stderr
    assert run.races == [], run.races  # none at all: not in the program, nor in RedisMap or redis-py
    assert (run.returncode, run.stdout) == (0, plain.stdout)  # and the program ran as under plain python


# The controls: the same shapes with the dict access outside what the map
# orders. The detector must still report them.
RACY = {
    "written after publishing": """
def writer():
    m["ready"] = True
    data["x"] = 1
t = threading.Thread(target=writer); t.start()
wait_for(m, "ready")
time.sleep(0.05)  # not synchronisation: it only makes the real order repeatable
print(data.get("x"))
t.join()
""",
    "never observed through the map": """
def writer():
    data["x"] = 1
    m["ready"] = True
t = threading.Thread(target=writer); t.start()
time.sleep(0.2)  # not synchronisation: the thread has written by now, but nothing orders it
print(data.get("x"))
t.join()
""",
}


@pytest.mark.parametrize("name", RACY)
def test_accesses_the_map_does_not_order_are_still_races(url, name):
    run = race(program(url, RACY[name]))
    assert run.races, run.stderr
    assert {side["frames"][0]["file"].rsplit("/", 1)[-1] for r in run.races for side in (r["current"], r["previous"])
            if side["frames"]} == {"prog.py"}
