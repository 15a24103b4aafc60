"""Race-free fan-out: a thread pool builds per-task dicts; results merged after result()."""

import sys
from concurrent.futures import ThreadPoolExecutor

TASKS = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000


def task(i):
    record = {"id": i, "fields": {}}
    for j in range(50):
        record["fields"][f"f{j}"] = (i * j) % 97
    return record


merged = {}
with ThreadPoolExecutor(max_workers=4) as pool:
    futures = [pool.submit(task, i) for i in range(TASKS)]
    for f in futures:
        r = f.result()
        merged[r["id"]] = sum(r["fields"].values())
print(len(merged), sum(merged.values()))
