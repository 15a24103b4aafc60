"""Racy: one thread iterates a dict while another inserts into it."""

import threading

sessions = {f"user{i}": i for i in range(100)}


def login():
    for i in range(100, 200):
        sessions[f"user{i}"] = i  # inserts change the key set...


def audit():
    try:
        return sum(1 for _ in sessions)  # ...while this iterates it
    except RuntimeError as exc:  # "dictionary changed size during iteration", sometimes
        print("audit failed:", exc)
        return -1


t = threading.Thread(target=login)
t.start()
print("audited", audit() >= 100 or "(failed)")
t.join()
print("sessions:", len(sessions))
