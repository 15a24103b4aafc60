"""Racy: a check-then-act cache; the `in` test and the store are not one step."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

cache = {}
computed = []
computed_lock = threading.Lock()


def expensive(key):
    time.sleep(0.01)  # the expensive part; it also lets the pool start all its threads
    with computed_lock:
        computed.append(key)
    return key * 2


def lookup(key):
    if key not in cache:  # check...
        cache[key] = expensive(key)  # ...then act: two threads can both miss
    return cache[key]


with ThreadPoolExecutor(max_workers=4) as pool:
    results = list(pool.map(lookup, [1, 2, 3, 1, 2, 3] * 4))
print("results:", sorted(set(results)))
