"""Race-free: the same counter as lost_update.py, with every access under one lock."""

import threading

hits = {}
lock = threading.Lock()


def worker(n):
    for _ in range(n):
        with lock:
            hits["total"] = hits.get("total", 0) + 1


threads = [threading.Thread(target=worker, args=(10_000,)) for _ in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("total:", hits["total"], "(expected 20000)")
