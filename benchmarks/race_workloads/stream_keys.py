"""Race-free stream of 1M distinct keys through a 16-entry dict shared by 2 threads under a lock."""

import sys
import threading

KEYS = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
window = {}
lock = threading.Lock()


def stream(start):
    for key in range(start, KEYS, 2):
        with lock:
            window[key] = key
            if len(window) > 16:
                del window[next(iter(window))]


threads = [threading.Thread(target=stream, args=(s,)) for s in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(len(window))
