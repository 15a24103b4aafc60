"""The lost-update counter of lost_update.py, fixed with a mapsafe map.

    python examples/quickstart.py
    mapsafe race examples/quickstart.py     # no race: exit status 0
"""

import operator
import threading

from mapsafe import SyncMap

hits = SyncMap()


def worker(n):
    for _ in range(n):
        hits.merge("total", 1, operator.add)  # atomic read-modify-write


threads = [threading.Thread(target=worker, args=(10_000,)) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(f"total: {hits['total']} (expected 40000)")
