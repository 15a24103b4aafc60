"""Race-free memo cache: 4 threads, check-then-act done right (under one lock)."""

import sys
import threading

N = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
cache = {}
lock = threading.Lock()


def fib_mod(n):
    a, b = 0, 1
    for _ in range(n % 50):
        a, b = b, (a + b) % 1_000_003
    return a


def worker(seed):
    hits = 0
    for i in range(N):
        key = (i * 31 + seed) % 5_000
        with lock:
            if key in cache:
                hits += cache[key] > -1
            else:
                cache[key] = fib_mod(key)
    return hits


results = []
threads = [threading.Thread(target=lambda s=s: results.append(worker(s))) for s in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(sum(results), len(cache))
