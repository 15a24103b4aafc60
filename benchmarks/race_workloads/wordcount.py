"""Race-free threaded word count: 4 workers, a queue, a locked shared dict, ~1M dict operations."""

import queue
import sys
import threading

LINES = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
WORDS = [f"w{i}" for i in range(2_000)]
STOP = None

q = queue.Queue(maxsize=256)
totals = {}
totals_lock = threading.Lock()


def worker():
    local = {}
    while True:
        batch = q.get()
        if batch is STOP:
            break
        for line in batch:
            for word in line.split():
                local[word] = local.get(word, 0) + 1
    with totals_lock:
        for word, n in local.items():
            totals[word] = totals.get(word, 0) + n


def main():
    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    batch = []
    for i in range(LINES):
        batch.append(" ".join(WORDS[(i * 7 + j * 13) % len(WORDS)] for j in range(10)))
        if len(batch) == 100:
            q.put(batch)
            batch = []
    if batch:
        q.put(batch)
    for _ in threads:
        q.put(STOP)
    for t in threads:
        t.join()
    print(sum(totals.values()), len(totals))


main()
