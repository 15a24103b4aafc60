"""Race-free thread-per-task server loop: a thread per request, at most 8 in flight, each joined in turn."""

import sys
import threading

TASKS = int(sys.argv[1]) if len(sys.argv) > 1 else 4_000
stats = {}
lock = threading.Lock()


def handle(i):
    request = {"id": i, "path": f"/item/{i % 50}", "headers": {"n": str(i)}}
    response = {"status": 200, "length": len(request["path"])}
    with lock:
        stats[request["path"]] = stats.get(request["path"], 0) + response["length"]


in_flight = []
for i in range(TASKS):
    t = threading.Thread(target=handle, args=(i,))
    t.start()
    in_flight.append(t)
    if len(in_flight) >= 8:
        in_flight.pop(0).join()
for t in in_flight:
    t.join()
print(len(stats), sum(stats.values()))
