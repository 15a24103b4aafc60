"""Racy: two threads increment a shared counter dict without a lock (lost updates)."""

import threading

hits = {}


def worker(n):
    for _ in range(n):
        hits["total"] = hits.get("total", 0) + 1  # read, then write: not atomic


threads = [threading.Thread(target=worker, args=(10_000,)) for _ in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("total:", hits["total"], "(expected 20000)")
