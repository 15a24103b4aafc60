/* _speedups: the C core, the maps' hot paths and the RWLock in C (_pycore.py is the same in Python).
 *
 * Each map type here is the base of one map (SyncCore of SyncMap, LockedCore
 * of LockedMap, ShardedCore of ShardedMap): it holds the fields its hot paths
 * read, and implements those paths: reads, stores, `del`, `in`, `len`, and
 * (SyncCore, and ShardedCore without caches or stats) the single-key
 * compound operations, callbacks included (see "the compound operations'
 * C paths"). Every other map path (stats, caches, recursive-update errors,
 * calls the C paths do not take) is Python in the subclass or in MapBase,
 * which these functions call back into by name or through super().
 * MapLock is the maps' write lock, which the C paths take without a call.
 * RWCore is the whole of an RWLock's state machine, waits included, and
 * ProfiledRLock is the contention-counting lock of maps with stats=True.
 *
 * Fields are set once, by _core_init, and a second _core_init raises, so
 * reading a field needs no lock. Each core's "ready" field (the one its hot
 * paths test against NULL) is stored last with release ordering and loaded
 * with acquire ordering (LOAD_READY/STORE_READY), so even a thread that gets
 * hold of an object before its __init__ returns sees all fields or none.
 *
 * Exception safety. A signal handler's exception (Ctrl-C, SIGTERM ->
 * sys.exit) can only surface where Python code runs or where a wait is
 * interruptible. Between taking a lock and being inside the protected part,
 * and in every release, this file runs no Python code, so no lock is ever
 * left held. The two interruptible waits (a contended mutex, an RWLock
 * waiter's own lock) are handled on the spot: the state is restored and the
 * wake-up passed on before the exception is raised (see rw_wait_locked).
 *
 * Free-threaded CPython: the module declares Py_MOD_GIL_NOT_USED. The only
 * operations treated as atomic are single dict operations (PyDict_*), which
 * lock the dict internally on free-threaded builds. Dict reads use
 * PyDict_GetItemRef there (a strong reference: a borrowed one could be
 * freed by a concurrent store). Everything else runs holding the map's
 * lock, exactly as the Python core does; counters that other threads read
 * without the lock use relaxed atomic loads and stores.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <structmember.h>

/* Names of the Python methods the fast paths fall back on; interned once. */
static PyObject *str_check_not_computing; /* MapBase._check_not_computing(key) */
static PyObject *str_delitem;             /* MapBase._delitem(key) */
static PyObject *str_get_slow;            /* the map's get when the fast one does not apply */
static PyObject *str_contains_slow;       /* ShardedMap's `in` for caches */
static PyObject *str_len_slow;            /* ShardedMap's len() for caches */
static PyObject *str_hit_slow;            /* Cache._hit_slow(key), when a hit is not a plain one */
static PyObject *str_miss;                /* CachedFunction._miss(key, *args, **kwargs) */
static PyObject *str_call_slow;           /* CachedFunction._call_slow(*args, **kwargs): keys made in Python */
static PyObject *str_bind;                /* CachedFunction._bind(instance): a method's first use by one */
static PyObject *str_wait_readable;       /* RWLock._wait_readable_locked() */
static PyObject *str_wait_writable;       /* RWLock._wait_writable_locked() */

/* -- helpers ----------------------------------------------------------------- */

#ifdef Py_GIL_DISABLED
#define LOAD_READY(field) ((PyObject *)_Py_atomic_load_ptr_acquire(&(field)))
#define STORE_READY(field, value) _Py_atomic_store_ptr_release(&(field), (value))
#else
/* With the GIL, no other thread runs while _core_init does. */
#define LOAD_READY(field) (field)
#define STORE_READY(field, value) ((field) = (value))
#endif

/* _core_init's check-then-store runs in the object's critical section
 * (free-threaded builds; on 3.13 with the GIL it costs nothing). */
#if PY_VERSION_HEX >= 0x030D0000
#define BEGIN_INIT(self) Py_BEGIN_CRITICAL_SECTION(self)
#define END_INIT() Py_END_CRITICAL_SECTION()
#else
#define BEGIN_INIT(self) {
#define END_INIT() }
#endif

/* One dict lookup: 1 and a new reference in *value if found, 0 if absent, -1 on error. */
static inline int
dict_lookup(PyObject *d, PyObject *key, PyObject **value)
{
#if PY_VERSION_HEX >= 0x030D0000
    return PyDict_GetItemRef(d, key, value);
#else
    /* With the GIL held, the borrowed reference cannot be freed before we
     * take our own. */
    PyObject *v = PyDict_GetItemWithError(d, key);
    if (v != NULL) {
        *value = Py_NewRef(v);
        return 1;
    }
    *value = NULL;
    return PyErr_Occurred() ? -1 : 0;
#endif
}

/* KeyError(key), also for a tuple key (which PyErr_SetObject would unpack). */
static void
set_key_error(PyObject *key)
{
    PyObject *args = PyTuple_Pack(1, key);
    if (args != NULL) {
        PyErr_SetObject(PyExc_KeyError, args);
        Py_DECREF(args);
    }
}

static int
not_initialised(PyObject *self)
{
    PyErr_Format(PyExc_RuntimeError,
                 "%s object is not initialised (its __init__ did not run, or the garbage collector cleared it)",
                 Py_TYPE(self)->tp_name);
    return -1;
}

static int
call_noargs(PyObject *fn)
{
    PyObject *r = PyObject_CallNoArgs(fn);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

static int
call_method_onearg(PyObject *self, PyObject *name, PyObject *arg)
{
    PyObject *r = PyObject_CallMethodOneArg(self, name, arg);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* Call release() after the locked part; if both raised, raise release's
 * error with the first as its __context__, as `finally: release()` does. */
static int
release_chaining_error(PyObject *release, int status)
{
    if (status == 0)
        return call_noargs(release);
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *first = PyErr_GetRaisedException();
    if (call_noargs(release) < 0) {
        PyObject *later = PyErr_GetRaisedException();
        if (later != first)
            PyException_SetContext(later, first); /* steals first */
        else
            Py_DECREF(first);
        PyErr_SetRaisedException(later);
    }
    else {
        PyErr_SetRaisedException(first);
    }
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (call_noargs(release) < 0)
        _PyErr_ChainExceptions(type, value, tb); /* steals all three */
    else
        PyErr_Restore(type, value, tb);
#endif
    return -1;
}

/* RecursiveUpdateError if this thread's compute callback is computing key
 * (MapBase._check_not_computing says so); called holding key's section.
 * `computing` may change meanwhile for keys of other sections, so each
 * look at it is one atomic dict operation. */
static int
check_computing(PyObject *self, PyObject *computing, PyObject *key)
{
    if (PyDict_Size(computing) == 0)
        return 0;
    int busy = PyDict_Contains(computing, key);
    if (busy < 0 || (busy && call_method_onearg(self, str_check_not_computing, key) < 0))
        return -1;
    return 0;
}

/* m[k] = v, called holding the lock that guards writes of key: first
 * RecursiveUpdateError if this thread's compute callback is computing key,
 * then the store, into d, or through put(key, value) when put is not None
 * (a cache shard's put_locked, which returns what it replaced or evicted).
 * *old gets a new reference to the value replaced (or NULL), for the caller
 * to drop after releasing the lock: its __del__ may use the map. */
static int
store_locked(PyObject *self, PyObject *computing, PyObject *d, PyObject *put, PyObject *key, PyObject *value,
             PyObject **old)
{
    *old = NULL;
    if (check_computing(self, computing, key) < 0)
        return -1;
    if (put == Py_None) {
        if (dict_lookup(d, key, old) < 0)
            return -1;
        return PyDict_SetItem(d, key, value);
    }
    *old = PyObject_CallFunctionObjArgs(put, key, value, NULL);
    return *old == NULL ? -1 : 0;
}

/* TypeError "<what> must be <expected>, not <type>" unless ok. */
static int
check_arg(int ok, const char *what, const char *expected, PyObject *obj)
{
    if (!ok) {
        PyErr_Format(PyExc_TypeError, "%s must be %s, not %.100s", what, expected, Py_TYPE(obj)->tp_name);
        return -1;
    }
    return 0;
}

/* Exactly a dict: the fast paths bypass a subclass's __getitem__/__missing__. */
#define check_dict(what, obj) check_arg(PyDict_CheckExact(obj), what, "a dict", obj)
#define check_callable(what, obj) check_arg(PyCallable_Check(obj), what, "callable", obj)
/* A bool, not any object: its truth test could run Python code, which
 * could call _core_init again between check_fresh and the stores. */
#define check_bool(what, obj) check_arg(PyBool_Check(obj), what, "a bool", obj)

static int
check_nargs(Py_ssize_t nargs, Py_ssize_t want)
{
    if (nargs != want) {
        PyErr_Format(PyExc_TypeError, "_core_init expected %zd arguments, got %zd", want, nargs);
        return -1;
    }
    return 0;
}

static int
check_fresh(PyObject *self, PyObject *field)
{
    if (field != NULL) {
        PyErr_Format(PyExc_RuntimeError, "%s object is already initialised", Py_TYPE(self)->tp_name);
        return -1;
    }
    return 0;
}

/* `key, default=None` of get(). */
static int
get_args(PyObject *const *args, Py_ssize_t nargs, PyObject **key, PyObject **dflt)
{
    if (nargs < 1 || nargs > 2) {
        PyErr_Format(PyExc_TypeError, "get expected 1 or 2 arguments, got %zd", nargs);
        return -1;
    }
    *key = args[0];
    *dflt = nargs == 2 ? args[1] : Py_None;
    return 0;
}

/* GC support. Each core lists the offsets of its PyObject * fields, and
 * traverse, clear and dealloc walk that list. Instances of a heap type own
 * a reference to it, which dealloc drops (subtype_dealloc leaves that to
 * the heap-type base, which these types are). */
static int
visit_fields(PyObject *self, const Py_ssize_t *offsets, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    for (; *offsets >= 0; offsets++) {
        PyObject **field = (PyObject **)((char *)self + *offsets);
        Py_VISIT(*field);
    }
    return 0;
}

static void
clear_fields(PyObject *self, const Py_ssize_t *offsets)
{
    for (; *offsets >= 0; offsets++) {
        PyObject **field = (PyObject **)((char *)self + *offsets);
        Py_CLEAR(*field);
    }
}

#define CORE_GC(prefix, ...)                                                  \
    static const Py_ssize_t prefix##_fields[] = {__VA_ARGS__, -1};            \
    static int prefix##_traverse(PyObject *self, visitproc visit, void *arg)  \
    {                                                                         \
        return visit_fields(self, prefix##_fields, visit, arg);               \
    }                                                                         \
    static int prefix##_clear(PyObject *self)                                 \
    {                                                                         \
        clear_fields(self, prefix##_fields);                                  \
        return 0;                                                             \
    }                                                                         \
    static void prefix##_dealloc(PyObject *self)                              \
    {                                                                         \
        PyTypeObject *tp = Py_TYPE(self);                                     \
        PyObject_GC_UnTrack(self);                                            \
        clear_fields(self, prefix##_fields);                                  \
        tp->tp_free(self);                                                    \
        Py_DECREF(tp);                                                        \
    }

/* -- saved exceptions, time, relaxed counters, fault points ----------------------- */

/* The first exception of a clean-up that must finish anyway; later ones are
 * dropped (a second Ctrl-C while the first is being handled). */
typedef struct {
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *exc;
#else
    PyObject *type, *value, *tb;
#endif
} saved_error;

static void
save_error(saved_error *s)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *exc = PyErr_GetRaisedException();
    if (s->exc == NULL)
        s->exc = exc;
    else
        Py_XDECREF(exc);
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (s->type == NULL) {
        s->type = type;
        s->value = value;
        s->tb = tb;
    }
    else {
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
    }
#endif
}

static int
has_saved_error(saved_error *s)
{
#if PY_VERSION_HEX >= 0x030C0000
    return s->exc != NULL;
#else
    return s->type != NULL;
#endif
}

/* Raise the saved exception, if any: -1 if there was one. */
static int
restore_error(saved_error *s)
{
    if (!has_saved_error(s))
        return 0;
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(s->exc);
    s->exc = NULL;
#else
    PyErr_Restore(s->type, s->value, s->tb);
    s->type = s->value = s->tb = NULL;
#endif
    return -1;
}

static int64_t
now_ns(void)
{
#if PY_VERSION_HEX >= 0x030D0000
    PyTime_t t = 0;
    (void)PyTime_PerfCounterRaw(&t);
    return (int64_t)t;
#else
    return (int64_t)_PyTime_GetPerfCounter();
#endif
}

/* Counters written by one thread at a time (the lock holder) and read by any. */
#ifdef Py_GIL_DISABLED
#define LOAD_SSIZE(field) _Py_atomic_load_ssize_relaxed(&(field))
#define STORE_SSIZE(field, value) _Py_atomic_store_ssize_relaxed(&(field), (value))
#define LOAD_I64(field) _Py_atomic_load_int64_relaxed(&(field))
#define STORE_I64(field, value) _Py_atomic_store_int64_relaxed(&(field), (value))
#else
#define LOAD_SSIZE(field) (field)
#define STORE_SSIZE(field, value) ((field) = (value))
#define LOAD_I64(field) (field)
#define STORE_I64(field, value) ((field) = (value))
#endif

/* MAPSAFE_FAULTS=1 at import: FAULT(name) calls mapsafe._faults.point(name),
 * which may raise. Otherwise it is one test of a static. */
static int faults_enabled;
static PyObject *faults_point; /* mapsafe._faults.point, when enabled */

static int
fault_point(const char *name)
{
    PyObject *arg = PyUnicode_FromString(name);
    if (arg == NULL)
        return -1;
    PyObject *r = PyObject_CallOneArg(faults_point, arg);
    Py_DECREF(arg);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

#define FAULT(name) (faults_enabled ? fault_point(name) : 0)

/* -- thread tokens ------------------------------------------------------------------ */

/* What identifies a thread to an RWLock and to the compute family: a weak
 * reference to a Token that the thread's own state dict keeps alive. Unlike
 * an ident it is never reused, and a dead thread's is recognisable (the
 * reference is dead). Token holds the reference it hands out. */
typedef struct {
    PyObject_HEAD
    PyObject *weakreflist;
    PyObject *ref; /* a weak reference to this token; set once */
} Token;

static PyObject *token_type;   /* the Token type (a static: tokens are looked up by key, never type-checked) */
static PyObject *str_token_key; /* the key of the token in each thread's state dict */

static void
token_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    Token *t = (Token *)self;
    if (t->weakreflist != NULL)
        PyObject_ClearWeakRefs(self);
    Py_CLEAR(t->ref);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyMemberDef token_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(Token, weakreflist), READONLY},
    {NULL},
};

static PyType_Slot token_slots[] = {
    {Py_tp_doc, "A thread's identity for mapsafe's locks; lives exactly as long as the thread."},
    {Py_tp_dealloc, token_dealloc},
    {Py_tp_members, token_members},
    {0, NULL},
};

static PyType_Spec token_spec = {"mapsafe._speedups.Token", sizeof(Token), 0, Py_TPFLAGS_DEFAULT, token_slots};

/* This thread's token (a new reference to the weak reference), or NULL. */
static PyObject *
get_token(void)
{
    PyObject *tsdict = PyThreadState_GetDict(); /* borrowed; this thread's own */
    if (tsdict == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "mapsafe: this thread has no state dict");
        return NULL;
    }
    PyObject *token;
    int found = dict_lookup(tsdict, str_token_key, &token);
    if (found < 0)
        return NULL;
    if (found) {
        PyObject *ref = Py_NewRef(((Token *)token)->ref);
        Py_DECREF(token);
        return ref;
    }
    token = PyObject_CallNoArgs(token_type);
    if (token == NULL)
        return NULL;
    PyObject *ref = PyWeakref_NewRef(token, NULL);
    if (ref == NULL) {
        Py_DECREF(token);
        return NULL;
    }
    ((Token *)token)->ref = Py_NewRef(ref); /* before it is published */
    if (PyDict_SetItem(tsdict, str_token_key, token) < 0) {
        Py_DECREF(ref);
        Py_DECREF(token);
        return NULL;
    }
    Py_DECREF(token); /* the state dict keeps it alive until the thread ends */
    return ref;
}

static PyObject *
thread_token(PyObject *module, PyObject *unused)
{
    return get_token();
}

/* 1 if the token's thread has ended. */
static int
token_dead(PyObject *ref)
{
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *obj;
    int alive = PyWeakref_GetRef(ref, &obj);
    Py_XDECREF(obj);
    if (alive < 0) {
        PyErr_Clear();
        return 0;
    }
    return !alive;
#else
    return PyWeakref_GetObject(ref) == Py_None;
#endif
}

/* -- ProfiledRLock ------------------------------------------------------------------ */

/* A reentrant lock that counts acquisitions, contended ones and time waited.
 * The counting happens in C right after the raw acquire succeeds, so no
 * Python code (and so no signal handler) runs between taking the lock and
 * returning it taken. The counters are written only by the holder. */
typedef struct {
    PyObject_HEAD
    PyObject *raw;         /* the RLock itself; set once */
    PyObject *raw_acquire; /* raw.acquire; set once */
    PyObject *raw_release; /* raw.release; set once */
    Py_ssize_t acquisitions; /* successful acquisitions; written holding raw */
    Py_ssize_t contended;    /* acquisitions that had to wait, and condition waits; written holding raw */
    int64_t wait_ns;         /* total time waited; written holding raw */
} ProfiledRLock;

CORE_GC(prof, offsetof(ProfiledRLock, raw), offsetof(ProfiledRLock, raw_acquire), offsetof(ProfiledRLock, raw_release))

static PyObject *rlock_type; /* threading.RLock's C type, what ProfiledRLock wraps */

static PyObject *
prof_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *raw = NULL;
    static char *kwlist[] = {"raw", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:ProfiledRLock", kwlist, &raw))
        return NULL;
    if (raw == NULL || raw == Py_None)
        raw = PyObject_CallNoArgs(rlock_type);
    else if (Py_TYPE(raw) != (PyTypeObject *)rlock_type) {
        PyErr_Format(PyExc_TypeError, "raw must be a threading.RLock, not %.100s", Py_TYPE(raw)->tp_name);
        return NULL;
    }
    else
        Py_INCREF(raw);
    if (raw == NULL)
        return NULL;
    ProfiledRLock *self = (ProfiledRLock *)type->tp_alloc(type, 0);
    if (self == NULL) {
        Py_DECREF(raw);
        return NULL;
    }
    self->raw = raw;
    self->raw_acquire = PyObject_GetAttrString(raw, "acquire");
    self->raw_release = PyObject_GetAttrString(raw, "release");
    if (self->raw_acquire == NULL || self->raw_release == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static void
prof_count(ProfiledRLock *self, int contended, int64_t waited)
{
    STORE_SSIZE(self->acquisitions, LOAD_SSIZE(self->acquisitions) + 1);
    if (contended) {
        STORE_SSIZE(self->contended, LOAD_SSIZE(self->contended) + 1);
        STORE_I64(self->wait_ns, LOAD_I64(self->wait_ns) + waited);
    }
}

/* 1 acquired, 0 not (non-blocking or timed out), -1 error (not acquired). */
static int
prof_acquire_impl(ProfiledRLock *self, int blocking, PyObject *timeout)
{
    PyObject *r = PyObject_CallOneArg(self->raw_acquire, Py_False);
    if (r == NULL)
        return -1;
    int got = r == Py_True;
    Py_DECREF(r);
    if (got) {
        prof_count(self, 0, 0);
        return 1;
    }
    if (!blocking)
        return 0;
    int64_t start = now_ns();
    r = PyObject_CallFunctionObjArgs(self->raw_acquire, Py_True, timeout, NULL);
    if (r == NULL)
        return -1;
    got = r == Py_True;
    Py_DECREF(r);
    if (got)
        prof_count(self, 1, now_ns() - start);
    return got;
}

static int
parse_acquire_args(PyObject *args, PyObject *kwds, const char *fname, int *blocking, PyObject **timeout)
{
    static char *kwlist[] = {"blocking", "timeout", NULL};
    PyObject *b = Py_True, *t = NULL;
    char fmt[64];
    PyOS_snprintf(fmt, sizeof fmt, "|OO:%s", fname);
    if (!PyArg_ParseTupleAndKeywords(args, kwds, fmt, kwlist, &b, &t))
        return -1;
    int truth = PyObject_IsTrue(b);
    if (truth < 0)
        return -1;
    *blocking = truth;
    *timeout = t;
    return 0;
}

/* A timeout as seconds in *seconds, < 0 for none; -1 (with an exception) on
 * error. Every double is a timeout: -2 means none, as any negative does. */
static int
timeout_seconds(PyObject *timeout, double *seconds)
{
    *seconds = -1;
    if (timeout == NULL || timeout == Py_None)
        return 0;
    *seconds = PyFloat_AsDouble(timeout);
    return *seconds == -1 && PyErr_Occurred() ? -1 : 0;
}

static PyObject *
prof_acquire(ProfiledRLock *self, PyObject *args, PyObject *kwds)
{
    int blocking;
    PyObject *timeout;
    if (parse_acquire_args(args, kwds, "acquire", &blocking, &timeout) < 0)
        return NULL;
    PyObject *t = timeout == NULL ? PyFloat_FromDouble(-1) : Py_NewRef(timeout);
    if (t == NULL)
        return NULL;
    int got = prof_acquire_impl(self, blocking, t);
    Py_DECREF(t);
    if (got < 0)
        return NULL;
    return PyBool_FromLong(got);
}

static PyObject *minus_one; /* the float -1.0: "no timeout" */

static PyObject *
prof_enter(ProfiledRLock *self, PyObject *unused)
{
    if (prof_acquire_impl(self, 1, minus_one) < 0)
        return NULL;
    return Py_NewRef(self);
}

static PyObject *
prof_release(ProfiledRLock *self, PyObject *unused)
{
    return PyObject_CallNoArgs(self->raw_release);
}

static PyObject *
prof_exit(ProfiledRLock *self, PyObject *const *args, Py_ssize_t nargs)
{
    return PyObject_CallNoArgs(self->raw_release);
}

static PyObject *
prof_is_owned(ProfiledRLock *self, PyObject *unused)
{
    return PyObject_CallMethod(self->raw, "_is_owned", NULL);
}

static PyObject *
prof_add_wait(ProfiledRLock *self, PyObject *seconds)
{
    double s = PyFloat_AsDouble(seconds);
    if (s == -1 && PyErr_Occurred())
        return NULL;
    STORE_SSIZE(self->contended, LOAD_SSIZE(self->contended) + 1);
    STORE_I64(self->wait_ns, LOAD_I64(self->wait_ns) + (int64_t)(s * 1e9));
    Py_RETURN_NONE;
}

static PyObject *
prof_get_acquisitions(ProfiledRLock *self, void *unused)
{
    return PyLong_FromSsize_t(LOAD_SSIZE(self->acquisitions));
}

static PyObject *
prof_get_contended(ProfiledRLock *self, void *unused)
{
    return PyLong_FromSsize_t(LOAD_SSIZE(self->contended));
}

static PyObject *
prof_get_wait_seconds(ProfiledRLock *self, void *unused)
{
    return PyFloat_FromDouble((double)LOAD_I64(self->wait_ns) / 1e9);
}

static PyObject *
prof_as_dict(ProfiledRLock *self, PyObject *unused)
{
    return Py_BuildValue("{s:n,s:n,s:d}", "acquisitions", LOAD_SSIZE(self->acquisitions), "contended",
                         LOAD_SSIZE(self->contended), "wait_seconds", (double)LOAD_I64(self->wait_ns) / 1e9);
}

static PyGetSetDef prof_getset[] = {
    {"acquisitions", (getter)prof_get_acquisitions, NULL, "successful acquisitions"},
    {"contended", (getter)prof_get_contended, NULL, "acquisitions (and condition waits) that had to wait"},
    {"wait_seconds", (getter)prof_get_wait_seconds, NULL, "total time spent waiting"},
    {NULL},
};

static PyMemberDef prof_members[] = {
    {"_raw", T_OBJECT_EX, offsetof(ProfiledRLock, raw), READONLY, "the RLock itself"},
    {NULL},
};

static PyObject *prof_recursion_count(ProfiledRLock *self, PyObject *unused);
static PyObject *str_recursion_count;

static PyMethodDef prof_methods[] = {
    {"_recursion_count", (PyCFunction)prof_recursion_count, METH_NOARGS, NULL},
    {"acquire", (PyCFunction)(void (*)(void))prof_acquire, METH_VARARGS | METH_KEYWORDS,
     "acquire($self, /, blocking=True, timeout=-1)\n--\n\nTake the lock, counting whether that waited."},
    {"release", (PyCFunction)prof_release, METH_NOARGS, "release($self, /)\n--\n\nRelease one hold."},
    {"__enter__", (PyCFunction)prof_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))prof_exit, METH_FASTCALL, NULL},
    {"_is_owned", (PyCFunction)prof_is_owned, METH_NOARGS, NULL},
    {"add_wait", (PyCFunction)prof_add_wait, METH_O,
     "add_wait($self, seconds, /)\n--\n\nCount a wait that happened while the lock was held."},
    {"as_dict", (PyCFunction)prof_as_dict, METH_NOARGS, "as_dict($self, /)\n--\n\nThe counters."},
    {NULL},
};

static PyType_Slot prof_slots[] = {
    {Py_tp_doc, "ProfiledRLock(raw=None)\n--\n\nA reentrant lock that counts acquisitions, contended ones "
                "and time waited (what stats=True maps lock with)."},
    {Py_tp_new, prof_new},
    {Py_tp_traverse, prof_traverse},
    {Py_tp_clear, prof_clear},
    {Py_tp_dealloc, prof_dealloc},
    {Py_tp_members, prof_members},
    {Py_tp_getset, prof_getset},
    {Py_tp_methods, prof_methods},
    {0, NULL},
};

static PyType_Spec prof_spec = {
    "mapsafe._speedups.ProfiledRLock", sizeof(ProfiledRLock), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    prof_slots,
};

/* -- MapLock: the maps' reentrant write lock ---------------------------------------- */

/* What SyncMap and ShardedMap write under (stats=False), in place of
 * threading.RLock: the same methods, so Python code uses it the same way,
 * and the C paths below take and release it without a Python call
 * (maplock_take): a free lock costs one try of its mutex.
 *
 * A contended acquire waits with the GIL released and is interruptible:
 * a signal handler's exception (Ctrl-C) ends the wait with the lock not
 * taken, as threading's locks do. The hold depth is only touched by the
 * holder; `owner` is read by every thread that tries the lock (it only
 * ever equals the reader's own ident if the reader stored it), so it is
 * read and written with relaxed atomics on free-threaded builds. */
typedef struct {
    PyObject_HEAD
    PyThread_type_lock lk; /* the mutex: held while owner != 0 */
    uintptr_t owner;       /* ident of the holding thread, or 0; written by the holder only */
    Py_ssize_t count;      /* hold depth; read and written by the holder only */
    PyObject *weakreflist;
} MapLock;

#define MAPLOCK_SPINS 200 /* tries before a contended acquire parks (free-threaded builds) */

static inline void
cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static PyTypeObject *maplock_type; /* process-wide, like token_type: the C paths test for it */

#ifdef Py_GIL_DISABLED
#define LOAD_OWNER(field) _Py_atomic_load_uintptr_relaxed(&(field))
#define STORE_OWNER(field, value) _Py_atomic_store_uintptr_relaxed(&(field), (value))
#else
#define LOAD_OWNER(field) (field)
#define STORE_OWNER(field, value) ((field) = (value))
#endif

/* Whether the calling thread holds the lock. */
static inline int
maplock_mine(MapLock *self)
{
    return LOAD_OWNER(self->owner) == (uintptr_t)PyThread_get_thread_ident();
}

static PyObject *
maplock_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    if (PyTuple_GET_SIZE(args) != 0 || (kwds != NULL && PyDict_GET_SIZE(kwds) != 0)) {
        PyErr_SetString(PyExc_TypeError, "MapLock() takes no arguments");
        return NULL;
    }
    MapLock *self = (MapLock *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->lk = PyThread_allocate_lock();
    if (self->lk == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
}

static void
maplock_dealloc(MapLock *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    if (self->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    if (self->lk != NULL) {
        if (self->owner != 0)
            PyThread_release_lock(self->lk); /* nobody else can hold a reference, so nobody waits */
        PyThread_free_lock(self->lk);
    }
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

/* Wait for lk, with the GIL released, for timeout_us microseconds (-1:
 * forever). Signal handlers run on each interruption; if one raises, the
 * wait ends: PY_LOCK_INTR with the exception set. */
static PyLockStatus
maplock_wait(PyThread_type_lock lk, PY_TIMEOUT_T timeout_us)
{
    int64_t deadline = timeout_us > 0 ? now_ns() + (int64_t)timeout_us * 1000 : 0;
    for (;;) {
        PyLockStatus r;
        Py_BEGIN_ALLOW_THREADS
        r = PyThread_acquire_lock_timed(lk, timeout_us, 1);
        Py_END_ALLOW_THREADS
        if (r != PY_LOCK_INTR)
            return r;
        if (Py_MakePendingCalls() < 0)
            return PY_LOCK_INTR;
        if (timeout_us > 0) {
            timeout_us = (PY_TIMEOUT_T)((deadline - now_ns()) / 1000);
            if (timeout_us <= 0)
                return PyThread_acquire_lock_timed(lk, 0, 0);
        }
    }
}

/* Take the lock: 1 taken, 0 not (not blocking, or timed out), -1 error
 * (interrupted, or the depth would overflow), with nothing taken. */
static int
maplock_acquire_impl(MapLock *self, int blocking, PY_TIMEOUT_T timeout_us)
{
    uintptr_t me = (uintptr_t)PyThread_get_thread_ident();
    if (LOAD_OWNER(self->owner) == me) {
        if (self->count == PY_SSIZE_T_MAX) {
            PyErr_SetString(PyExc_OverflowError, "MapLock held too many times");
            return -1;
        }
        self->count++;
        return 1;
    }
    PyLockStatus r = PyThread_acquire_lock_timed(self->lk, 0, 0);
#ifdef Py_GIL_DISABLED
    /* Without the GIL the holder is running on another core, and the maps'
     * C paths hold the lock for well under a microsecond: a short spin
     * takes it far sooner than parking and waking would. With the GIL the
     * holder cannot run while this thread spins, so there is no spin. */
    for (int spin = 0; r != PY_LOCK_ACQUIRED && blocking && spin < MAPLOCK_SPINS; spin++) {
        cpu_relax();
        r = PyThread_acquire_lock_timed(self->lk, 0, 0);
    }
#endif
    if (r != PY_LOCK_ACQUIRED) {
        if (!blocking || timeout_us == 0)
            return 0;
        r = maplock_wait(self->lk, timeout_us);
        if (r == PY_LOCK_INTR)
            return -1;
        if (r != PY_LOCK_ACQUIRED)
            return 0;
    }
    STORE_OWNER(self->owner, me);
    self->count = 1;
    return 1;
}

static int
maplock_release_impl(MapLock *self)
{
    if (!maplock_mine(self)) {
        PyErr_SetString(PyExc_RuntimeError, "cannot release un-acquired lock");
        return -1;
    }
    if (--self->count == 0) {
        STORE_OWNER(self->owner, 0);
        PyThread_release_lock(self->lk);
    }
    return 0;
}

/* The C paths' take of a map's lock: inline for a MapLock, else (a
 * ProfiledRLock, for maps with stats=True) its bound acquire. The give is
 * give_chaining_error (or give_one). */
static inline int
maplock_take(PyObject *lock, PyObject *acquire)
{
    if (Py_IS_TYPE(lock, maplock_type))
        return maplock_acquire_impl((MapLock *)lock, 1, -1) == 1 ? 0 : -1;
    return call_noargs(acquire);
}

static PyObject *
maplock_acquire(MapLock *self, PyObject *args, PyObject *kwds)
{
    int blocking;
    PyObject *timeout;
    if (parse_acquire_args(args, kwds, "acquire", &blocking, &timeout) < 0)
        return NULL;
    double seconds;
    if (timeout_seconds(timeout, &seconds) < 0)
        return NULL;
    if (!blocking && seconds != -1) {
        PyErr_SetString(PyExc_ValueError, "can't specify a timeout for a non-blocking call");
        return NULL;
    }
    if (seconds < 0 && seconds != -1) {
        PyErr_SetString(PyExc_ValueError, "timeout value must be a non-negative number");
        return NULL;
    }
    PY_TIMEOUT_T us = -1;
    if (seconds >= 0) {
        if (seconds * 1e6 > (double)PY_TIMEOUT_MAX) {
            PyErr_SetString(PyExc_OverflowError, "timeout value is too large");
            return NULL;
        }
        us = (PY_TIMEOUT_T)(seconds * 1e6);
        if (us == 0 && seconds > 0)
            us = 1;
    }
    int got = maplock_acquire_impl(self, blocking, us);
    if (got < 0)
        return NULL;
    return PyBool_FromLong(got);
}

static PyObject *
maplock_enter(MapLock *self, PyObject *unused)
{
    if (maplock_acquire_impl(self, 1, -1) < 0)
        return NULL;
    Py_RETURN_TRUE;
}

static PyObject *
maplock_release(MapLock *self, PyObject *unused)
{
    if (maplock_release_impl(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
maplock_exit(MapLock *self, PyObject *const *args, Py_ssize_t nargs)
{
    return maplock_release(self, NULL);
}

static PyObject *
maplock_is_owned(MapLock *self, PyObject *unused)
{
    return PyBool_FromLong(maplock_mine(self));
}

static PyObject *
maplock_recursion_count(MapLock *self, PyObject *unused)
{
    return PyLong_FromSsize_t(maplock_mine(self) ? self->count : 0);
}

static PyObject *
maplock_locked(MapLock *self, PyObject *unused)
{
    return PyBool_FromLong(LOAD_OWNER(self->owner) != 0);
}

/* threading.Condition's protocol: give up every hold, returning the depth. */
static PyObject *
maplock_release_save(MapLock *self, PyObject *unused)
{
    if (!maplock_mine(self)) {
        PyErr_SetString(PyExc_RuntimeError, "cannot release un-acquired lock");
        return NULL;
    }
    PyObject *state = PyLong_FromSsize_t(self->count); /* before the release: it may fail */
    if (state == NULL)
        return NULL;
    self->count = 0;
    STORE_OWNER(self->owner, 0);
    PyThread_release_lock(self->lk);
    return state;
}

static PyObject *
maplock_acquire_restore(MapLock *self, PyObject *state)
{
    Py_ssize_t count = PyLong_AsSsize_t(state);
    if (count == -1 && PyErr_Occurred())
        return NULL;
    if (count < 1) {
        PyErr_SetString(PyExc_ValueError, "_acquire_restore: the depth must be at least 1");
        return NULL;
    }
    if (maplock_acquire_impl(self, 1, -1) < 0)
        return NULL;
    self->count = count;
    Py_RETURN_NONE;
}

/* In a forked child (see _forks.py): a new, free mutex. The old one may be
 * held by a thread that does not exist here; it is left, never freed. */
static PyObject *
maplock_at_fork_reinit(MapLock *self, PyObject *unused)
{
    PyThread_type_lock lk = PyThread_allocate_lock();
    if (lk == NULL)
        return PyErr_NoMemory();
    self->lk = lk;
    self->owner = 0;
    self->count = 0;
    Py_RETURN_NONE;
}

static PyObject *
maplock_repr(MapLock *self)
{
    uintptr_t owner = LOAD_OWNER(self->owner);
    if (owner == 0)
        return PyUnicode_FromFormat("<unlocked mapsafe MapLock at %p>", self);
    return PyUnicode_FromFormat("<locked mapsafe MapLock owner=%zu count=%zd at %p>", (size_t)owner,
                                self->count, self);
}

static PyMemberDef maplock_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(MapLock, weakreflist), READONLY},
    {NULL},
};

static PyMethodDef maplock_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))maplock_acquire, METH_VARARGS | METH_KEYWORDS,
     "acquire($self, /, blocking=True, timeout=-1)\n--\n\nTake the lock (again, if this thread holds it); "
     "False if not blocking, or timed out."},
    {"release", (PyCFunction)maplock_release, METH_NOARGS, "release($self, /)\n--\n\nRelease one hold."},
    {"__enter__", (PyCFunction)maplock_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))maplock_exit, METH_FASTCALL, NULL},
    {"locked", (PyCFunction)maplock_locked, METH_NOARGS, "locked($self, /)\n--\n\nWhether some thread holds it."},
    {"_is_owned", (PyCFunction)maplock_is_owned, METH_NOARGS, NULL},
    {"_recursion_count", (PyCFunction)maplock_recursion_count, METH_NOARGS, NULL},
    {"_release_save", (PyCFunction)maplock_release_save, METH_NOARGS, NULL},
    {"_acquire_restore", (PyCFunction)maplock_acquire_restore, METH_O, NULL},
    {"_at_fork_reinit", (PyCFunction)maplock_at_fork_reinit, METH_NOARGS, NULL},
    {NULL},
};

static PyType_Slot maplock_slots[] = {
    {Py_tp_doc, "MapLock()\n--\n\nThe maps' reentrant write lock: threading.RLock's methods, taken from C "
                "without a Python call. Do not use it outside mapsafe: threading.RLock is the public one."},
    {Py_tp_new, maplock_new},
    {Py_tp_dealloc, maplock_dealloc},
    {Py_tp_repr, maplock_repr},
    {Py_tp_members, maplock_members},
    {Py_tp_methods, maplock_methods},
    {0, NULL},
};

static PyType_Spec maplock_spec = {"mapsafe._speedups.MapLock", sizeof(MapLock), 0, Py_TPFLAGS_DEFAULT,
                                   maplock_slots};

/* -- RWCore: an RWLock's state machine ---------------------------------------------- */

/* rwlock.py documents the semantics; _pycore.RWCore is the same in Python.
 * Every field is guarded by mu (an RLock), which LockedMap's short
 * operations also hold for their whole duration. Waiting uses per-waiter
 * raw locks in two queues (rq for readers, wq for writers), not
 * threading.Condition, whose wait() has an interrupt window between
 * releasing its lock and the try that restores it. */
typedef struct {
    PyObject_HEAD
    PyObject *writer;  /* token of the write-lock holder, or None */
    PyObject *readers; /* token -> read hold count (no zero counts) */
    PyObject *mu;      /* the RLock guarding everything here; set once */
    PyObject *mu_acquire, *mu_release; /* its bound methods; set once */
    PyObject *rq;      /* list of raw locks of blocked readers, each held until notified */
    PyObject *wq;      /* the same for blocked writers */
    PyObject *profile; /* a ProfiledRLock (add_wait) when stats are on, else None; set once */
    Py_ssize_t write_depth;     /* nested holds of writer; 0 iff writer is None */
    Py_ssize_t waiting_writers; /* threads blocked wanting to write (RWLock or short writes) */
    Py_ssize_t waiting_readers; /* threads blocked in acquire_read */
    Py_ssize_t read_passes;     /* readers let in ahead of waiting writers when a write ended; <= waiting_readers */
    Py_ssize_t read_gen;        /* counts hand-offs to readers */
} RWCore;

CORE_GC(rw, offsetof(RWCore, writer), offsetof(RWCore, readers), offsetof(RWCore, mu),
        offsetof(RWCore, mu_acquire), offsetof(RWCore, mu_release), offsetof(RWCore, rq), offsetof(RWCore, wq),
        offsetof(RWCore, profile))

static PyObject *allocate_lock; /* _thread.allocate_lock */
static PyObject *str_is_owned, *str_release_save, *str_acquire_restore, *str_at_fork_reinit;
static PyObject *str_acquire, *str_release, *str_remove;

static PyObject *
rw_core_init(RWCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (check_nargs(nargs, 2) < 0)
        return NULL;
    if (Py_TYPE(args[0]) != (PyTypeObject *)rlock_type) {
        PyErr_Format(PyExc_TypeError, "_mu must be a threading.RLock, not %.100s", Py_TYPE(args[0])->tp_name);
        return NULL;
    }
    int status;
    BEGIN_INIT(self);
    status = check_fresh((PyObject *)self, self->mu);
    if (status == 0) {
        /* XSETREF: a failed earlier call may have left some of them set. */
        Py_XSETREF(self->writer, Py_NewRef(Py_None));
        Py_XSETREF(self->readers, PyDict_New());
        Py_XSETREF(self->rq, PyList_New(0));
        Py_XSETREF(self->wq, PyList_New(0));
        Py_XSETREF(self->mu_acquire, PyObject_GetAttr(args[0], str_acquire));
        Py_XSETREF(self->mu_release, PyObject_GetAttr(args[0], str_release));
        Py_XSETREF(self->profile, Py_NewRef(args[1]));
        if (self->readers == NULL || self->rq == NULL || self->wq == NULL || self->mu_acquire == NULL ||
            self->mu_release == NULL)
            status = -1;
        else
            STORE_READY(self->mu, Py_NewRef(args[0]));
    }
    END_INIT();
    if (status < 0)
        return NULL;
    Py_RETURN_NONE;
}

static int
rw_ready(RWCore *self)
{
    if (LOAD_READY(self->mu) == NULL)
        return not_initialised((PyObject *)self);
    return 0;
}

/* Take mu; -1 if a signal handler raised while it was contended (not taken). */
static int
rw_lock(RWCore *self)
{
    return call_noargs(self->mu_acquire);
}

/* Take mu whatever happens: a release must finish. An exception while
 * waiting for it is saved, to be raised once the release is done. */
static void
rw_lock_surely(RWCore *self, saved_error *saved)
{
    if (FAULT("rw.release.mu") < 0) /* as if a signal landed while waiting for mu */
        save_error(saved);
    /* Each failed try was a signal handler raising while mu was contended;
     * the holder lets mu go after its short operation, so this ends. */
    while (call_noargs(self->mu_acquire) < 0)
        save_error(saved);
}

static void
rw_unlock(RWCore *self, saved_error *saved)
{
    if (call_noargs(self->mu_release) < 0)
        save_error(saved);
}

/* Pop and release up to n waiters of queue. Only C calls: cannot be interrupted. */
static int
notify_locked(PyObject *queue, Py_ssize_t n)
{
    while (n-- > 0 && PyList_GET_SIZE(queue) > 0) {
        PyObject *waiter = Py_NewRef(PyList_GET_ITEM(queue, 0));
        if (PySequence_DelItem(queue, 0) < 0) {
            Py_DECREF(waiter);
            return -1;
        }
        PyObject *r = PyObject_CallMethodNoArgs(waiter, str_release);
        Py_DECREF(waiter);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
    }
    return 0;
}

/* After a write: first the readers that queued behind writers (so they
 * cannot starve), else one waiting writer (and any short reads), else all readers. */
static int
rw_wake_locked(RWCore *self)
{
    if (self->waiting_readers && self->waiting_writers) {
        STORE_SSIZE(self->read_passes, self->waiting_readers);
        STORE_SSIZE(self->read_gen, self->read_gen + 1);
        return notify_locked(self->rq, PY_SSIZE_T_MAX);
    }
    if (self->waiting_writers && notify_locked(self->wq, 1) < 0)
        return -1;
    return notify_locked(self->rq, PY_SSIZE_T_MAX);
}

/* Restore the wake-up invariant: if a waiter could go now, one is woken.
 * Idempotent; called on every way out of a wait and of a release, so a
 * wake-up consumed by a waiter that then failed is never lost. Extra
 * wake-ups are harmless: every waiter re-checks its condition. */
static int
rw_kick_locked(RWCore *self)
{
    if (self->writer != Py_None)
        return 0;
    if (notify_locked(self->rq, PY_SSIZE_T_MAX) < 0)
        return -1;
    if (self->waiting_writers && PyDict_GET_SIZE(self->readers) == 0 && !self->read_passes)
        return notify_locked(self->wq, 1);
    return 0;
}

/* Clean-ups that must finish: retry, saving the first error. */
static void
rw_kick_surely(RWCore *self, saved_error *saved)
{
    for (int tries = 0; rw_kick_locked(self) < 0 && tries < 100; tries++)
        save_error(saved);
}

static void
rw_drop_dead_readers_locked(RWCore *self)
{
    PyObject *key, *value, *dead = NULL;
    Py_ssize_t pos = 0;
    while (PyDict_Next(self->readers, &pos, &key, &value)) {
        if (token_dead(key)) {
            if (dead == NULL && (dead = PyList_New(0)) == NULL)
                break;
            if (PyList_Append(dead, key) < 0)
                break;
        }
    }
    if (dead != NULL) {
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(dead); i++)
            (void)PyDict_DelItem(self->readers, PyList_GET_ITEM(dead, i));
        Py_DECREF(dead);
    }
    PyErr_Clear(); /* a failure here only keeps a dead hold a while longer */
}

typedef int (*blocked_fn)(RWCore *, Py_ssize_t);

static int
read_blocked(RWCore *self, Py_ssize_t gen)
{
    if (self->writer != Py_None)
        return 1;
    int has_pass = self->read_passes && self->read_gen != gen;
    return self->waiting_writers > 0 && !has_pass;
}

static int
writer_blocks(RWCore *self, Py_ssize_t unused)
{
    return self->writer != Py_None;
}

static int
write_blocked(RWCore *self, Py_ssize_t unused)
{
    if (self->writer != Py_None || self->read_passes > 0)
        return 1;
    if (PyDict_GET_SIZE(self->readers))
        rw_drop_dead_readers_locked(self);
    return PyDict_GET_SIZE(self->readers) > 0;
}

/* Wait (mu held, reentrantly or not) until blocked() is false: 1, or 0 on
 * timeout, or -1 with an exception. mu is held again on every return. The
 * only interruptible call is the waiter's acquire; whatever ends it, mu is
 * restored and the waiter taken out of the queue before returning. */
static int
rw_wait_locked(RWCore *self, PyObject *queue, blocked_fn blocked, Py_ssize_t arg, double timeout)
{
    int64_t start = now_ns();
    double deadline = timeout < 0 ? -1 : (double)start / 1e9 + timeout;
    for (;;) {
        if (!blocked(self, arg))
            break;
        double remaining = -1;
        if (deadline >= 0) {
            remaining = deadline - (double)now_ns() / 1e9;
            if (remaining <= 0)
                return 0;
        }
        PyObject *waiter = PyObject_CallNoArgs(allocate_lock);
        if (waiter == NULL)
            return -1;
        PyObject *r = PyObject_CallMethodNoArgs(waiter, str_acquire); /* a new lock: never waits */
        if (r == NULL || PyList_Append(queue, waiter) < 0) {
            Py_XDECREF(r);
            Py_DECREF(waiter);
            return -1;
        }
        Py_DECREF(r);
        saved_error saved = {0};
        PyObject *state = NULL, *got = NULL;
        if (FAULT("rw.wait.before") < 0)
            save_error(&saved);
        else
            state = PyObject_CallMethodNoArgs(self->mu, str_release_save);
        if (state == NULL)
            save_error(&saved); /* mu is still held */
        else {
            PyObject *t = PyFloat_FromDouble(remaining);
            if (t != NULL) {
                got = PyObject_CallMethodObjArgs(waiter, str_acquire, Py_True, t, NULL);
                Py_DECREF(t);
            }
            if (got == NULL)
                save_error(&saved);
            for (;;) { /* must succeed: the caller holds mu again on every return */
                PyObject *back = PyObject_CallMethodOneArg(self->mu, str_acquire_restore, state);
                if (back != NULL) {
                    Py_DECREF(back);
                    break;
                }
                save_error(&saved);
            }
            Py_DECREF(state);
        }
        int notified = got == Py_True;
        Py_XDECREF(got);
        if (!notified) {
            /* Still queued unless a notifier popped it just now; then the
             * caller's clean-up (a kick) passes that wake-up on. */
            r = PyObject_CallMethodOneArg(queue, str_remove, waiter);
            if (r == NULL)
                PyErr_Clear();
            Py_XDECREF(r);
        }
        Py_DECREF(waiter);
        if (restore_error(&saved) < 0)
            return -1;
        if (FAULT("rw.wait.woken") < 0)
            return -1;
    }
    if (self->profile != Py_None) {
        PyObject *r = PyObject_CallMethod(self->profile, "add_wait", "d", (double)(now_ns() - start) / 1e9);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
    }
    return 1;
}

static int
readers_count(RWCore *self, PyObject *me, Py_ssize_t *count)
{
    PyObject *held;
    int found = dict_lookup(self->readers, me, &held);
    if (found < 0)
        return -1;
    *count = found ? PyLong_AsSsize_t(held) : 0;
    Py_XDECREF(held);
    return (*count == -1 && PyErr_Occurred()) ? -1 : 0;
}

static int
readers_set(RWCore *self, PyObject *me, Py_ssize_t count)
{
    if (count == 0)
        return PyDict_DelItem(self->readers, me);
    PyObject *n = PyLong_FromSsize_t(count);
    if (n == NULL)
        return -1;
    int rc = PyDict_SetItem(self->readers, me, n);
    Py_DECREF(n);
    return rc;
}

/* The slow part of acquire_read (mu held): 1, 0 (timed out) or -1. */
static int
rw_read_slow_locked(RWCore *self, PyObject *me, double timeout)
{
    Py_ssize_t gen = self->read_gen;
    STORE_SSIZE(self->waiting_readers, self->waiting_readers + 1);
    int ok = rw_wait_locked(self, self->rq, read_blocked, gen, timeout);
    /* One way out of the wait, whatever ended it: drop the waiter count and
     * any pass, then take the lock or pass the wake-up on. */
    STORE_SSIZE(self->waiting_readers, self->waiting_readers - 1);
    if (self->read_passes && self->read_gen != gen)
        STORE_SSIZE(self->read_passes, self->read_passes - 1);
    if (ok == 1 && readers_set(self, me, 1) < 0)
        ok = -1;
    if (ok != 1) {
        saved_error saved = {0};
        if (ok < 0)
            save_error(&saved);
        rw_kick_surely(self, &saved);
        if (restore_error(&saved) < 0)
            return -1;
    }
    return ok;
}

static int
rw_write_slow_locked(RWCore *self, PyObject *me, double timeout)
{
    STORE_SSIZE(self->waiting_writers, self->waiting_writers + 1);
    int ok = rw_wait_locked(self, self->wq, write_blocked, 0, timeout);
    STORE_SSIZE(self->waiting_writers, self->waiting_writers - 1);
    if (ok == 1) {
        Py_SETREF(self->writer, Py_NewRef(me));
        self->write_depth = 1;
    }
    else {
        saved_error saved = {0};
        if (ok < 0)
            save_error(&saved);
        rw_kick_surely(self, &saved); /* readers held back by this writer may go now */
        if (restore_error(&saved) < 0)
            return -1;
    }
    return ok;
}

/* acquire_read/acquire_write: 1, 0 or -1. */
static int
rw_acquire_read_impl(RWCore *self, int blocking, double timeout)
{
    PyObject *me = get_token();
    if (me == NULL)
        return -1;
    /* A thread already holding mu is inside one of LockedMap's short
     * operations (a compute callback, say): it excludes every writer
     * already, and waiting here would release mu mid-operation. */
    PyObject *owned = PyObject_CallMethodNoArgs(self->mu, str_is_owned);
    if (owned == NULL) {
        Py_DECREF(me);
        return -1;
    }
    int inside = owned == Py_True;
    Py_DECREF(owned);
    if (rw_lock(self) < 0) {
        Py_DECREF(me);
        return -1;
    }
    saved_error saved = {0};
    Py_ssize_t before = 0;
    int ok = -1;
    if (FAULT("rw.acquire_read.locked") == 0 && readers_count(self, me, &before) == 0) {
        if (before || self->writer == me || inside || (self->writer == Py_None && !self->waiting_writers))
            ok = readers_set(self, me, before + 1) < 0 ? -1 : 1;
        else if (!blocking)
            ok = 0;
        else
            ok = rw_read_slow_locked(self, me, timeout);
    }
    if (ok < 0)
        save_error(&saved);
    rw_unlock(self, &saved);
    Py_DECREF(me);
    return restore_error(&saved) < 0 ? -1 : ok;
}

static int
rw_acquire_write_impl(RWCore *self, int blocking, double timeout)
{
    PyObject *me = get_token();
    if (me == NULL)
        return -1;
    if (rw_lock(self) < 0) {
        Py_DECREF(me);
        return -1;
    }
    saved_error saved = {0};
    int ok = -1;
    if (FAULT("rw.acquire_write.locked") == 0) {
        int reading = PyDict_Contains(self->readers, me);
        if (self->writer == me) {
            self->write_depth++;
            ok = 1;
        }
        else if (reading < 0)
            ok = -1;
        else if (reading) {
            PyErr_SetString(PyExc_RuntimeError,
                            "acquire_write(): this thread holds the RWLock for reading; "
                            "upgrading would deadlock, so release the read lock first");
        }
        else if (self->writer == Py_None && PyDict_GET_SIZE(self->readers) == 0 && !self->read_passes) {
            Py_SETREF(self->writer, Py_NewRef(me));
            self->write_depth = 1;
            ok = 1;
        }
        else if (!blocking)
            ok = 0;
        else
            ok = rw_write_slow_locked(self, me, timeout);
    }
    if (ok < 0)
        save_error(&saved);
    rw_unlock(self, &saved);
    Py_DECREF(me);
    return restore_error(&saved) < 0 ? -1 : ok;
}

static int
rw_release_read_impl(RWCore *self)
{
    PyObject *me = get_token();
    if (me == NULL)
        return -1;
    saved_error saved = {0};
    rw_lock_surely(self, &saved);
    Py_ssize_t held = 0;
    if (readers_count(self, me, &held) < 0)
        save_error(&saved);
    else if (!held) {
        PyErr_SetString(PyExc_RuntimeError, "release_read(): this thread does not hold the RWLock for reading");
        save_error(&saved);
    }
    else {
        if (readers_set(self, me, held - 1) < 0)
            save_error(&saved);
        if (held == 1)
            rw_kick_surely(self, &saved);
    }
    rw_unlock(self, &saved);
    Py_DECREF(me);
    return restore_error(&saved);
}

static int
rw_release_write_impl(RWCore *self)
{
    PyObject *me = get_token();
    if (me == NULL)
        return -1;
    saved_error saved = {0};
    rw_lock_surely(self, &saved);
    if (self->writer != me) {
        PyErr_SetString(PyExc_RuntimeError, "release_write(): this thread does not hold the RWLock for writing");
        save_error(&saved);
    }
    else if (--self->write_depth == 0) {
        Py_SETREF(self->writer, Py_NewRef(Py_None));
        for (int tries = 0; rw_wake_locked(self) < 0 && tries < 100; tries++)
            save_error(&saved);
    }
    rw_unlock(self, &saved);
    Py_DECREF(me);
    return restore_error(&saved);
}

/* acquire_read / acquire_write: the argument parsing they share. */
static PyObject *
rw_acquire(RWCore *self, PyObject *args, PyObject *kwds, int write)
{
    int blocking;
    PyObject *timeout;
    if (rw_ready(self) < 0 ||
        parse_acquire_args(args, kwds, write ? "acquire_write" : "acquire_read", &blocking, &timeout) < 0)
        return NULL;
    double t;
    if (timeout_seconds(timeout, &t) < 0)
        return NULL;
    int ok = write ? rw_acquire_write_impl(self, blocking, t) : rw_acquire_read_impl(self, blocking, t);
    return ok < 0 ? NULL : PyBool_FromLong(ok);
}

static PyObject *
rw_acquire_read(RWCore *self, PyObject *args, PyObject *kwds)
{
    return rw_acquire(self, args, kwds, 0);
}

static PyObject *
rw_acquire_write(RWCore *self, PyObject *args, PyObject *kwds)
{
    return rw_acquire(self, args, kwds, 1);
}

static PyObject *
rw_release_read(RWCore *self, PyObject *unused)
{
    if (rw_ready(self) < 0 || rw_release_read_impl(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
rw_release_write(RWCore *self, PyObject *unused)
{
    if (rw_ready(self) < 0 || rw_release_write_impl(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* LockedMap's short operations (caller holds mu): wait until this thread
 * may read (no other thread's write lock) or briefly write (no reader and
 * no other writer). A short write never becomes the owner, so on every way
 * out it passes the wake-up on. */
static int
rw_wait_readable_impl(RWCore *self)
{
    PyObject *me = get_token();
    if (me == NULL)
        return -1;
    int mine = self->writer == me;
    Py_DECREF(me);
    if (mine)
        return 0;
    int ok = rw_wait_locked(self, self->rq, writer_blocks, 0, -1);
    saved_error saved = {0};
    if (ok < 0)
        save_error(&saved);
    rw_kick_surely(self, &saved);
    return restore_error(&saved);
}

static int
rw_wait_writable_impl(RWCore *self)
{
    PyObject *me = get_token();
    if (me == NULL)
        return -1;
    int mine = self->writer == me;
    int reading = mine ? 0 : PyDict_Contains(self->readers, me);
    Py_DECREF(me);
    if (mine)
        return 0;
    if (reading) {
        if (reading > 0)
            PyErr_SetString(PyExc_RuntimeError,
                            "cannot write while this thread holds the read lock (inside `with m.read()`); "
                            "use `with m.write()` instead");
        return -1;
    }
    STORE_SSIZE(self->waiting_writers, self->waiting_writers + 1);
    int ok = rw_wait_locked(self, self->wq, write_blocked, 0, -1);
    STORE_SSIZE(self->waiting_writers, self->waiting_writers - 1);
    saved_error saved = {0};
    if (ok < 0)
        save_error(&saved);
    rw_kick_surely(self, &saved);
    return restore_error(&saved);
}

static PyObject *
rw_wait_readable(RWCore *self, PyObject *unused)
{
    if (rw_ready(self) < 0 || rw_wait_readable_impl(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
rw_wait_writable(RWCore *self, PyObject *unused)
{
    if (rw_ready(self) < 0 || rw_wait_writable_impl(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* In a forked child only this thread survives: forget everyone else. */
static PyObject *
rw_after_fork_child(RWCore *self, PyObject *unused)
{
    if (rw_ready(self) < 0)
        return NULL;
    PyObject *me = get_token();
    if (me == NULL)
        return NULL;
    PyObject *owned = PyObject_CallMethodNoArgs(self->mu, str_is_owned);
    if (owned == NULL) {
        Py_DECREF(me);
        return NULL;
    }
    if (owned != Py_True) {
        PyObject *r = PyObject_CallMethodNoArgs(self->mu, str_at_fork_reinit);
        if (r == NULL) {
            Py_DECREF(owned);
            Py_DECREF(me);
            return NULL;
        }
        Py_DECREF(r);
    }
    Py_DECREF(owned);
    Py_ssize_t mine = 0;
    if (readers_count(self, me, &mine) < 0) {
        Py_DECREF(me);
        return NULL;
    }
    PyDict_Clear(self->readers);
    if (mine && readers_set(self, me, mine) < 0) {
        Py_DECREF(me);
        return NULL;
    }
    if (self->writer != me) {
        Py_SETREF(self->writer, Py_NewRef(Py_None));
        self->write_depth = 0;
    }
    Py_DECREF(me);
    self->waiting_writers = self->waiting_readers = self->read_passes = 0;
    if (PyList_SetSlice(self->rq, 0, PY_SSIZE_T_MAX, NULL) < 0 ||
        PyList_SetSlice(self->wq, 0, PY_SSIZE_T_MAX, NULL) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMemberDef rw_members[] = {
    {"_writer", T_OBJECT, offsetof(RWCore, writer), READONLY, "token of the write-lock holder, or None; guarded by _mu"},
    {"_readers", T_OBJECT_EX, offsetof(RWCore, readers), READONLY, "token -> read hold count; guarded by _mu"},
    {"_mu", T_OBJECT_EX, offsetof(RWCore, mu), READONLY, "the RLock guarding the state"},
    {"_profile", T_OBJECT_EX, offsetof(RWCore, profile), READONLY, "contention counters, or None"},
    {"_write_depth", T_PYSSIZET, offsetof(RWCore, write_depth), READONLY, "nested write holds"},
    {"_waiting_writers", T_PYSSIZET, offsetof(RWCore, waiting_writers), READONLY, "threads blocked wanting to write"},
    {"_waiting_readers", T_PYSSIZET, offsetof(RWCore, waiting_readers), READONLY, "threads blocked in acquire_read"},
    {"_read_passes", T_PYSSIZET, offsetof(RWCore, read_passes), READONLY, "readers let in ahead of waiting writers"},
    {"_read_gen", T_PYSSIZET, offsetof(RWCore, read_gen), READONLY, "hand-offs to readers"},
    {NULL},
};

static PyMethodDef rw_methods[] = {
    {"_core_init", (PyCFunction)(void (*)(void))rw_core_init, METH_FASTCALL,
     "_core_init($self, mu, profile, /)\n--\n\nSet the fields, once."},
    {"acquire_read", (PyCFunction)(void (*)(void))rw_acquire_read, METH_VARARGS | METH_KEYWORDS,
     "acquire_read($self, /, blocking=True, timeout=-1)\n--\n\n"
     "Take the read lock; returns False if it could not within timeout."},
    {"acquire_write", (PyCFunction)(void (*)(void))rw_acquire_write, METH_VARARGS | METH_KEYWORDS,
     "acquire_write($self, /, blocking=True, timeout=-1)\n--\n\n"
     "Take the write lock; returns False if it could not within timeout."},
    {"release_read", (PyCFunction)rw_release_read, METH_NOARGS,
     "release_read($self, /)\n--\n\nRelease one hold of the read lock taken by this thread."},
    {"release_write", (PyCFunction)rw_release_write, METH_NOARGS,
     "release_write($self, /)\n--\n\nRelease one hold of the write lock taken by this thread."},
    {"_wait_readable_locked", (PyCFunction)rw_wait_readable, METH_NOARGS, NULL},
    {"_wait_writable_locked", (PyCFunction)rw_wait_writable, METH_NOARGS, NULL},
    {"_after_fork_child", (PyCFunction)rw_after_fork_child, METH_NOARGS, NULL},
    {NULL},
};

static PyType_Slot rw_slots[] = {
    {Py_tp_doc, "An RWLock's state machine (see rwlock.py)."},
    {Py_tp_traverse, rw_traverse},
    {Py_tp_clear, rw_clear},
    {Py_tp_dealloc, rw_dealloc},
    {Py_tp_members, rw_members},
    {Py_tp_methods, rw_methods},
    {0, NULL},
};

static PyType_Spec rw_spec = {
    "mapsafe._speedups.RWCore", sizeof(RWCore), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC, rw_slots,
};

/* -- RWHold: `with` for an RWLock, entered and left in C ----------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *rw;     /* the RWCore; set once */
    PyObject *result; /* what __enter__ returns; set once */
    int write;        /* 1: the write lock, 0: the read lock; set once */
} RWHold;

CORE_GC(hold, offsetof(RWHold, rw), offsetof(RWHold, result))

/* The module's state: the RWCore type, which LockedCore and RWHold check their RWLock against. */
typedef struct {
    PyTypeObject *rw_type;
} speedups_state;

static struct PyModuleDef speedups_module;

static PyObject *
hold_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *rw, *result = Py_None;
    int write;
    static char *kwlist[] = {"rw", "write", "result", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Op|O:RWHold", kwlist, &rw, &write, &result))
        return NULL;
    PyObject *module = PyType_GetModuleByDef(type, &speedups_module);
    if (module == NULL)
        return NULL;
    speedups_state *state = PyModule_GetState(module);
    if (!PyObject_TypeCheck(rw, state->rw_type)) {
        PyErr_Format(PyExc_TypeError, "rw must be an RWLock, not %.100s", Py_TYPE(rw)->tp_name);
        return NULL;
    }
    RWHold *self = (RWHold *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->rw = Py_NewRef(rw);
    self->result = Py_NewRef(result);
    self->write = write;
    return (PyObject *)self;
}

static PyObject *
hold_enter(RWHold *self, PyObject *unused)
{
    RWCore *rw = (RWCore *)self->rw;
    if (rw_ready(rw) < 0)
        return NULL;
    int ok = self->write ? rw_acquire_write_impl(rw, 1, -1) : rw_acquire_read_impl(rw, 1, -1);
    if (ok < 0)
        return NULL;
    return Py_NewRef(self->result);
}

static PyObject *
hold_exit(RWHold *self, PyObject *const *args, Py_ssize_t nargs)
{
    RWCore *rw = (RWCore *)self->rw;
    if (rw_ready(rw) < 0)
        return NULL;
    if ((self->write ? rw_release_write_impl(rw) : rw_release_read_impl(rw)) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef hold_methods[] = {
    {"__enter__", (PyCFunction)hold_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))hold_exit, METH_FASTCALL, NULL},
    {NULL},
};

static PyType_Slot hold_slots[] = {
    {Py_tp_doc, "RWHold(rw, write, result=None)\n--\n\n"
                "`with` support for an RWLock: the read or the write lock for the block, taken and released in C."},
    {Py_tp_new, hold_new},
    {Py_tp_traverse, hold_traverse},
    {Py_tp_clear, hold_clear},
    {Py_tp_dealloc, hold_dealloc},
    {Py_tp_methods, hold_methods},
    {0, NULL},
};

static PyType_Spec hold_spec = {
    "mapsafe._speedups.RWHold", sizeof(RWHold), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, hold_slots,
};

/* Release one lock of any kind (a MapLock inline, else its release()),
 * saving a failure's exception in *saved. */
static void
give_one(PyObject *lock, saved_error *saved)
{
    if (Py_IS_TYPE(lock, maplock_type)) {
        if (maplock_release_impl((MapLock *)lock) < 0)
            save_error(saved);
        return;
    }
    PyObject *r = PyObject_CallMethodNoArgs(lock, str_release);
    if (r == NULL)
        save_error(saved);
    Py_XDECREF(r);
}

/* Take one lock of any kind: 0, or -1 with nothing taken. */
static int
take_one(PyObject *lock)
{
    if (Py_IS_TYPE(lock, maplock_type))
        return maplock_acquire_impl((MapLock *)lock, 1, -1) == 1 ? 0 : -1;
    PyObject *r = PyObject_CallMethodNoArgs(lock, str_acquire);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

/* Take every lock of the tuple, in order: how many were taken (all of
 * them, or those before the one whose acquire raised, its exception saved). */
static Py_ssize_t
take_all(PyObject *locks, saved_error *saved)
{
    Py_ssize_t n = PyTuple_GET_SIZE(locks), taken = 0;
    for (; taken < n; taken++)
        if (take_one(PyTuple_GET_ITEM(locks, taken)) < 0) {
            save_error(saved);
            break;
        }
    return taken;
}

/* Release the first `taken` locks of the tuple, in reverse order, whatever happens. */
static void
give_all(PyObject *locks, Py_ssize_t taken, saved_error *saved)
{
    while (taken-- > 0)
        give_one(PyTuple_GET_ITEM(locks, taken), saved);
}

/* -- the compound operations' C paths, shared by SyncCore and ShardedCore ----------- */

/* One write section, as the C paths use it: a key's dict and the lock
 * guarding its writes (a MapLock, or a ProfiledRLock with its bound
 * methods). Borrowed references: the core holds them. */
typedef struct {
    PyObject *lock, *acquire, *release, *d;
} csection;

/* The known operators merge applies in C, with no Python frame: the
 * functions of the operator module, imported at exec. */
static PyObject *op_add, *op_sub, *op_mul, *op_or, *op_and, *op_xor;
static PyObject *one; /* the int 1: add()'s default */

static inline int
is_number(PyObject *x)
{
    return PyLong_CheckExact(x) || PyFloat_CheckExact(x);
}

/* fn's C function if fn is a known operator and value a type it takes
 * in C without calling user code (exact int or float; int only for the
 * bitwise ones), else NULL. Arbitrary-precision ints never wrap. */
static binaryfunc
fast_op(PyObject *fn, PyObject *value)
{
    if (!is_number(value))
        return NULL;
    if (fn == op_add)
        return PyNumber_Add;
    if (fn == op_sub)
        return PyNumber_Subtract;
    if (fn == op_mul)
        return PyNumber_Multiply;
    if (!PyLong_CheckExact(value))
        return NULL;
    if (fn == op_or)
        return PyNumber_Or;
    if (fn == op_and)
        return PyNumber_And;
    if (fn == op_xor)
        return PyNumber_Xor;
    return NULL;
}

/* Give the section's lock back after the locked part; status < 0 means
 * that part raised, and the exception stays the one raised (a failing
 * release's own error gets it as __context__). Returns status, or -1. */
static int
give_chaining_error(csection *sec, int status)
{
    if (Py_IS_TYPE(sec->lock, maplock_type)) {
        /* Cannot fail: this thread took it. */
        maplock_release_impl((MapLock *)sec->lock);
        return status;
    }
    if (status >= 0)
        return call_noargs(sec->release) < 0 ? -1 : status;
    return release_chaining_error(sec->release, status);
}

/* Remove key from d, holding its section: tolerates a key a finalizer has
 * removed meanwhile (see mapbase.dropper). */
static int
drop_locked(PyObject *d, PyObject *key)
{
    if (PyDict_DelItem(d, key) == 0)
        return 0;
    if (!PyErr_ExceptionMatches(PyExc_KeyError))
        return -1;
    PyErr_Clear();
    return 0;
}

/* The method the MRO has after the C core that defines the calling one
 * (MapBase's, in Python): where a C path does not apply. */
static PyObject *
call_next(PyTypeObject *core, PyObject *self, const char *name, PyObject *const *args, Py_ssize_t nargs,
          PyObject *kwnames)
{
    PyObject *super = PyObject_CallFunctionObjArgs((PyObject *)&PySuper_Type, (PyObject *)core, self, NULL);
    if (super == NULL)
        return NULL;
    PyObject *method = PyObject_GetAttrString(super, name);
    Py_DECREF(super);
    if (method == NULL)
        return NULL;
    PyObject *result = PyObject_Vectorcall(method, args, nargs, kwnames);
    Py_DECREF(method);
    return result;
}

/* merge(key, value, fn) with a known operator: 1 and *result, 0 when the
 * callback path (compute_c) must run it (another fn, or a stored value of
 * another type), -1 on error. Nothing is held on return. As MapBase.merge: absent, value
 * is stored; present, op(old, value) is; an error leaves the map as it was. */
static int
merge_c(PyObject *self, PyObject *computing, csection *sec, PyObject *key, PyObject *value, PyObject *fn,
        PyObject **result)
{
    binaryfunc op = fast_op(fn, value);
    if (op == NULL)
        return 0;
    PyObject *old = NULL, *new = NULL;
    if (maplock_take(sec->lock, sec->acquire) < 0)
        return -1;
    int status = FAULT("map.compute.locked");
    if (status == 0) {
        int found = dict_lookup(sec->d, key, &old);
        if (found < 0)
            status = -1;
        else if (found && !(is_number(old) && (op == PyNumber_Add || op == PyNumber_Subtract ||
                                                op == PyNumber_Multiply || PyLong_CheckExact(old))))
            status = 1; /* the Python path calls fn on it */
    }
    if (status == 0)
        status = check_computing(self, computing, key);
    if (status == 0) {
        new = old == NULL ? Py_NewRef(value) : op(old, value);
        if (new == NULL || PyDict_SetItem(sec->d, key, new) < 0)
            status = -1;
    }
    status = give_chaining_error(sec, status);
    Py_XDECREF(old); /* after the release, as every replaced value */
    if (status != 0) {
        Py_XDECREF(new);
        return status < 0 ? -1 : 0;
    }
    *result = new;
    return 1;
}

/* pop(key[, default]) and del m[k] (`fault` names which): 1 with *value
 * (a new reference) if key was there, 0 if absent, -1 on error. */
static int
pop_c(PyObject *self, PyObject *computing, csection *sec, PyObject *key, const char *fault, PyObject **value)
{
    *value = NULL;
    if (maplock_take(sec->lock, sec->acquire) < 0)
        return -1;
    int found = FAULT(fault);
    if (found == 0)
        found = dict_lookup(sec->d, key, value);
    if (found == 1 && (check_computing(self, computing, key) < 0 || drop_locked(sec->d, key) < 0))
        found = -1;
    found = give_chaining_error(sec, found);
    if (found < 0)
        Py_CLEAR(*value); /* after the release */
    return found;
}

/* load_or_store(key, value): 1 with *current (new ref) if key was there,
 * 0 if value was stored, -1 on error. The lock-free look first, as
 * MapBase's: a present key costs no lock. */
static int
load_or_store_c(PyObject *self, PyObject *computing, csection *sec, PyObject *key, PyObject *value,
                PyObject **current)
{
    int found = dict_lookup(sec->d, key, current);
    if (found != 0)
        return found;
    if (maplock_take(sec->lock, sec->acquire) < 0)
        return -1;
    found = FAULT("map.load_or_store.locked");
    if (found == 0)
        found = dict_lookup(sec->d, key, current); /* another thread may have stored it meanwhile */
    if (found == 0 && (check_computing(self, computing, key) < 0 || PyDict_SetItem(sec->d, key, value) < 0))
        found = -1;
    found = give_chaining_error(sec, found);
    if (found < 0)
        Py_CLEAR(*current);
    return found;
}

/* swap(key, value): 1 with *previous (new ref) if key was there, 0 if not, -1 on error. */
static int
swap_c(PyObject *self, PyObject *computing, csection *sec, PyObject *key, PyObject *value, PyObject **previous)
{
    *previous = NULL;
    if (maplock_take(sec->lock, sec->acquire) < 0)
        return -1;
    int found = FAULT("map.swap.locked");
    if (found == 0 && check_computing(self, computing, key) < 0)
        found = -1;
    if (found == 0)
        found = dict_lookup(sec->d, key, previous);
    if (found >= 0 && PyDict_SetItem(sec->d, key, value) < 0)
        found = -1;
    found = give_chaining_error(sec, found);
    if (found < 0)
        Py_CLEAR(*previous);
    return found;
}

/* (value, True), or (None, False) for absent; steals value. */
static PyObject *
pair_of(int found, PyObject *value)
{
    if (found < 0)
        return NULL;
    PyObject *pair = found ? PyTuple_Pack(2, value, Py_True) : PyTuple_Pack(2, Py_None, Py_False);
    Py_XDECREF(value);
    return pair;
}

/* The compute family's modes, as mapbase's _COMPUTE, _IF_ABSENT, _IF_PRESENT, _MERGE. */
enum { MODE_COMPUTE, MODE_IF_ABSENT, MODE_IF_PRESENT, MODE_MERGE };

static PyObject *sentinel_missing, *sentinel_delete; /* mapsafe.MISSING and mapsafe.DELETE */

/* The callback, holding key's section, as MapBase._compute_locked: key
 * marked as computed by this thread in `computing` while fn runs (so its
 * writes of key raise RecursiveUpdateError), and unmarked whatever fn
 * does. 0 with *result and *old (to drop after the release), or -1. */
static int
compute_locked(PyObject *self, PyObject *computing, csection *sec, PyObject *key, PyObject *fn, int mode,
               PyObject *value, PyObject **result, PyObject **old)
{
    int found = dict_lookup(sec->d, key, old);
    if (found < 0)
        return -1;
    if (!found && mode == MODE_IF_PRESENT) {
        *result = Py_NewRef(Py_None);
        return 0;
    }
    if (!found && mode == MODE_MERGE) {
        if (check_computing(self, computing, key) < 0 || PyDict_SetItem(sec->d, key, value) < 0)
            return -1;
        *result = Py_NewRef(value);
        return 0;
    }
    if (found && mode == MODE_IF_ABSENT) {
        *result = Py_NewRef(*old); /* another thread computed it while this one waited */
        return 0;
    }
    if (check_computing(self, computing, key) < 0)
        return -1;
    PyObject *token = get_token();
    if (token == NULL)
        return -1;
    int marked = PyDict_SetItem(computing, key, token);
    Py_DECREF(token);
    if (marked < 0)
        return -1;
    PyObject *arg_old = found ? *old : sentinel_missing, *new;
    if (mode == MODE_MERGE)
        new = PyObject_Vectorcall(fn, (PyObject *[]){arg_old, value}, 2, NULL);
    else if (mode == MODE_IF_ABSENT)
        new = PyObject_Vectorcall(fn, (PyObject *[]){key}, 1, NULL);
    else
        new = PyObject_Vectorcall(fn, (PyObject *[]){key, arg_old}, 2, NULL);
    /* Unmarked whatever happened, keeping fn's exception (or Ctrl-C) if it raised. */
    saved_error saved = {0};
    if (new == NULL)
        save_error(&saved);
    if (drop_locked(computing, key) < 0)
        save_error(&saved);
    if (restore_error(&saved) < 0) {
        Py_XDECREF(new);
        return -1;
    }
    if (new == sentinel_delete) {
        Py_DECREF(new);
        if (found && drop_locked(sec->d, key) < 0)
            return -1;
        *result = Py_NewRef(Py_None);
        return 0;
    }
    if (PyDict_SetItem(sec->d, key, new) < 0) {
        Py_DECREF(new);
        return -1;
    }
    *result = new;
    return 0;
}

/* A compute-family call: cb_lock (a ShardedMap's callback lock, or NULL)
 * then key's section, the callback run holding both, both released in
 * reverse order whatever happens; the replaced value dropped after. */
static PyObject *
compute_c(PyObject *self, PyObject *computing, csection *sec, PyObject *cb_lock, PyObject *key, PyObject *fn,
          int mode, PyObject *value)
{
    PyObject *result = NULL, *old = NULL;
    if (cb_lock != NULL && take_one(cb_lock) < 0)
        return NULL;
    int status = maplock_take(sec->lock, sec->acquire);
    if (status == 0) {
        status = FAULT("map.compute.locked");
        if (status == 0)
            status = compute_locked(self, computing, sec, key, fn, mode, value, &result, &old);
        status = give_chaining_error(sec, status);
    }
    if (cb_lock != NULL) {
        saved_error saved = {0};
        if (status < 0)
            save_error(&saved);
        give_one(cb_lock, &saved);
        status = restore_error(&saved);
    }
    Py_XDECREF(old); /* after the release: its __del__ may use the map */
    if (status < 0) {
        Py_XDECREF(result);
        return NULL;
    }
    return result;
}

/* compare_and_swap / compare_and_delete (new NULL), as MapBase._replace_if_equal:
 * the comparison is user code, so it runs with no lock held; the swap then
 * happens only if the value is still the very object that compared equal,
 * else it starts again. 1 swapped, 0 not, -1 on error. */
static int
replace_if_equal_c(PyObject *self, PyObject *computing, csection *sec, PyObject *key, PyObject *old,
                   PyObject *new)
{
    for (;;) {
        PyObject *current;
        int found = dict_lookup(sec->d, key, &current); /* one dict operation: no lock needed to read */
        if (found <= 0)
            return found;
        PyObject *eq = PyObject_RichCompare(current, old, Py_EQ);
        int equal = eq == NULL ? -1 : PyObject_IsTrue(eq);
        Py_XDECREF(eq);
        if (equal <= 0) {
            Py_DECREF(current);
            return equal;
        }
        PyObject *now = NULL;
        int status = maplock_take(sec->lock, sec->acquire);
        if (status < 0) {
            Py_DECREF(current);
            return -1;
        }
        status = FAULT("map.replace_if_equal.locked");
        if (status == 0 && (status = dict_lookup(sec->d, key, &now)) >= 0)
            status = now == current ? 1 : 2; /* 2: changed meanwhile, compare again */
        if (status == 1 && check_computing(self, computing, key) < 0)
            status = -1;
        if (status == 1 && (new == NULL ? drop_locked(sec->d, key) : PyDict_SetItem(sec->d, key, new)) < 0)
            status = -1;
        status = give_chaining_error(sec, status);
        Py_XDECREF(now); /* after the release, as the replaced value */
        Py_DECREF(current);
        if (status != 2)
            return status;
    }
}

/* Whether the C path takes these arguments: positional only, min..max of
 * them. Anything else (keywords, a wrong count) goes to the Python method,
 * so both cores accept the same calls and raise the same errors. */
static inline int
c_args(Py_ssize_t nargs, PyObject *kwnames, Py_ssize_t min, Py_ssize_t max)
{
    return (kwnames == NULL || PyTuple_GET_SIZE(kwnames) == 0) && nargs >= min && nargs <= max;
}

/* The compound methods, for a core that finds a key's section with
 * SECTION(self, key, &sec) (1 found, 0 "use the Python path", -1 error)
 * and whose callbacks run holding CB_LOCK(self) first (or NULL). Each is
 * METH_METHOD, so it knows its defining core for call_next. */
#define CORE_OPS(prefix, CoreType, SECTION, CB_LOCK)                                                         \
    static PyObject *prefix##_merge_like(CoreType *self, PyTypeObject *cls, const char *name,               \
                                         PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,        \
                                         PyObject *key, PyObject *value, PyObject *fn)                      \
    {                                                                                                        \
        csection sec;                                                                                        \
        PyObject *result;                                                                                    \
        int ok = SECTION(self, key, &sec);                                                                   \
        if (ok == 0)                                                                                         \
            return call_next(cls, (PyObject *)self, name, args, nargs, kwnames);                            \
        if (ok < 0 || (ok = merge_c((PyObject *)self, self->computing, &sec, key, value, fn, &result)) < 0) \
            return NULL;                                                                                     \
        if (ok > 0)                                                                                          \
            return result;                                                                                   \
        return compute_c((PyObject *)self, self->computing, &sec, CB_LOCK(self), key, fn, MODE_MERGE, value); \
    }                                                                                                        \
    static PyObject *prefix##_merge(CoreType *self, PyTypeObject *cls, PyObject *const *args,               \
                                    Py_ssize_t nargs, PyObject *kwnames)                                   \
    {                                                                                                        \
        if (!c_args(nargs, kwnames, 3, 3))                                                                   \
            return call_next(cls, (PyObject *)self, "merge", args, nargs, kwnames);                         \
        return prefix##_merge_like(self, cls, "merge", args, nargs, kwnames, args[0], args[1], args[2]);     \
    }                                                                                                        \
    static PyObject *prefix##_add(CoreType *self, PyTypeObject *cls, PyObject *const *args, Py_ssize_t nargs, \
                                  PyObject *kwnames)                                                         \
    {                                                                                                        \
        if (!c_args(nargs, kwnames, 1, 2))                                                                   \
            return call_next(cls, (PyObject *)self, "add", args, nargs, kwnames);                           \
        return prefix##_merge_like(self, cls, "add", args, nargs, kwnames, args[0], nargs == 2 ? args[1] : one, \
                                   op_add);                                                                  \
    }                                                                                                        \
    static PyObject *prefix##_compute_mode(CoreType *self, PyTypeObject *cls, const char *name, int mode,    \
                                           PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)      \
    {                                                                                                        \
        csection sec;                                                                                        \
        PyObject *current;                                                                                   \
        int ok = c_args(nargs, kwnames, 2, 2) ? SECTION(self, args[0], &sec) : 0;                            \
        if (ok == 0)                                                                                         \
            return call_next(cls, (PyObject *)self, name, args, nargs, kwnames);                            \
        if (ok < 0)                                                                                          \
            return NULL;                                                                                     \
        if (mode == MODE_IF_ABSENT && (ok = dict_lookup(sec.d, args[0], &current)) != 0)                    \
            return ok < 0 ? NULL : current; /* present: the lock-free read, as MapBase's */                \
        return compute_c((PyObject *)self, self->computing, &sec, CB_LOCK(self), args[0], args[1], mode, NULL); \
    }                                                                                                        \
    static PyObject *prefix##_compute(CoreType *self, PyTypeObject *cls, PyObject *const *args,             \
                                      Py_ssize_t nargs, PyObject *kwnames)                                 \
    {                                                                                                        \
        return prefix##_compute_mode(self, cls, "compute", MODE_COMPUTE, args, nargs, kwnames);              \
    }                                                                                                        \
    static PyObject *prefix##_compute_if_present(CoreType *self, PyTypeObject *cls, PyObject *const *args,  \
                                                 Py_ssize_t nargs, PyObject *kwnames)                      \
    {                                                                                                        \
        return prefix##_compute_mode(self, cls, "compute_if_present", MODE_IF_PRESENT, args, nargs, kwnames); \
    }                                                                                                        \
    static PyObject *prefix##_compute_if_absent(CoreType *self, PyTypeObject *cls, PyObject *const *args,   \
                                                Py_ssize_t nargs, PyObject *kwnames)                       \
    {                                                                                                        \
        return prefix##_compute_mode(self, cls, "compute_if_absent", MODE_IF_ABSENT, args, nargs, kwnames);  \
    }                                                                                                        \
    static PyObject *prefix##_pop(CoreType *self, PyTypeObject *cls, PyObject *const *args, Py_ssize_t nargs, \
                                  PyObject *kwnames)                                                         \
    {                                                                                                        \
        csection sec;                                                                                        \
        PyObject *value;                                                                                     \
        int ok = c_args(nargs, kwnames, 1, 2) ? SECTION(self, args[0], &sec) : 0;                            \
        if (ok == 0)                                                                                         \
            return call_next(cls, (PyObject *)self, "pop", args, nargs, kwnames);                           \
        if (ok < 0 || (ok = pop_c((PyObject *)self, self->computing, &sec, args[0], "map.pop.locked", &value)) < 0) \
            return NULL;                                                                                     \
        if (ok)                                                                                              \
            return value;                                                                                    \
        if (nargs == 2)                                                                                      \
            return Py_NewRef(args[1]);                                                                       \
        set_key_error(args[0]);                                                                              \
        return NULL;                                                                                         \
    }                                                                                                        \
    static PyObject *prefix##_load_or_store(CoreType *self, PyTypeObject *cls, PyObject *const *args,       \
                                            Py_ssize_t nargs, PyObject *kwnames)                           \
    {                                                                                                        \
        csection sec;                                                                                        \
        PyObject *current;                                                                                   \
        int ok = c_args(nargs, kwnames, 2, 2) ? SECTION(self, args[0], &sec) : 0;                            \
        if (ok == 0)                                                                                         \
            return call_next(cls, (PyObject *)self, "load_or_store", args, nargs, kwnames);                 \
        if (ok < 0 || (ok = load_or_store_c((PyObject *)self, self->computing, &sec, args[0], args[1], &current)) < 0) \
            return NULL;                                                                                     \
        if (!ok)                                                                                             \
            return PyTuple_Pack(2, args[1], Py_False);                                                       \
        return pair_of(1, current);                                                                          \
    }                                                                                                        \
    static PyObject *prefix##_setdefault(CoreType *self, PyTypeObject *cls, PyObject *const *args,          \
                                         Py_ssize_t nargs, PyObject *kwnames)                              \
    {                                                                                                        \
        csection sec;                                                                                        \
        PyObject *current, *dflt = nargs == 2 ? args[1] : Py_None;                                           \
        int ok = c_args(nargs, kwnames, 1, 2) ? SECTION(self, args[0], &sec) : 0;                            \
        if (ok == 0)                                                                                         \
            return call_next(cls, (PyObject *)self, "setdefault", args, nargs, kwnames);                    \
        if (ok < 0 || (ok = load_or_store_c((PyObject *)self, self->computing, &sec, args[0], dflt, &current)) < 0) \
            return NULL;                                                                                     \
        return ok ? current : Py_NewRef(dflt);                                                               \
    }                                                                                                        \
    static PyObject *prefix##_compare_and_swap(CoreType *self, PyTypeObject *cls, PyObject *const *args,    \
                                               Py_ssize_t nargs, PyObject *kwnames)                        \
    {                                                                                                        \
        csection sec;                                                                                        \
        int ok = c_args(nargs, kwnames, 3, 3) ? SECTION(self, args[0], &sec) : 0;                            \
        if (ok == 0)                                                                                         \
            return call_next(cls, (PyObject *)self, "compare_and_swap", args, nargs, kwnames);              \
        if (ok < 0 || (ok = replace_if_equal_c((PyObject *)self, self->computing, &sec, args[0], args[1], args[2])) < 0) \
            return NULL;                                                                                     \
        return PyBool_FromLong(ok);                                                                          \
    }                                                                                                        \
    static PyObject *prefix##_compare_and_delete(CoreType *self, PyTypeObject *cls, PyObject *const *args,  \
                                                 Py_ssize_t nargs, PyObject *kwnames)                      \
    {                                                                                                        \
        csection sec;                                                                                        \
        int ok = c_args(nargs, kwnames, 2, 2) ? SECTION(self, args[0], &sec) : 0;                            \
        if (ok == 0)                                                                                         \
            return call_next(cls, (PyObject *)self, "compare_and_delete", args, nargs, kwnames);            \
        if (ok < 0 || (ok = replace_if_equal_c((PyObject *)self, self->computing, &sec, args[0], args[1], NULL)) < 0) \
            return NULL;                                                                                     \
        return PyBool_FromLong(ok);                                                                          \
    }                                                                                                        \
    static PyObject *prefix##_swap(CoreType *self, PyTypeObject *cls, PyObject *const *args, Py_ssize_t nargs, \
                                   PyObject *kwnames)                                                        \
    {                                                                                                        \
        csection sec;                                                                                        \
        PyObject *previous;                                                                                  \
        int ok = c_args(nargs, kwnames, 2, 2) ? SECTION(self, args[0], &sec) : 0;                            \
        if (ok == 0)                                                                                         \
            return call_next(cls, (PyObject *)self, "swap", args, nargs, kwnames);                          \
        if (ok < 0)                                                                                          \
            return NULL;                                                                                     \
        ok = swap_c((PyObject *)self, self->computing, &sec, args[0], args[1], &previous);                   \
        return pair_of(ok, previous);                                                                        \
    }

#define CORE_METHOD(prefix, name, doc) \
    {#name, (PyCFunction)(void (*)(void))prefix##_##name, METH_METHOD | METH_FASTCALL | METH_KEYWORDS, doc}

#define CORE_OP_METHODS(prefix)                                                                               \
    CORE_METHOD(prefix, merge, "merge($self, key, value, fn)\n--\n\nStore value if absent, else fn(old, value); the new value."), \
    CORE_METHOD(prefix, add, "add($self, key, n=1)\n--\n\nAdd n to key's number (absent counts as 0); the new value."), \
    CORE_METHOD(prefix, compute, "compute($self, key, fn)\n--\n\nAtomically set key to fn(key, old); the new value."), \
    CORE_METHOD(prefix, compute_if_present, "compute_if_present($self, key, fn)\n--\n\nIf key is present, set it to fn(key, old)."), \
    CORE_METHOD(prefix, compute_if_absent, "compute_if_absent($self, key, factory)\n--\n\nThe value of key, computing factory(key) first if absent."), \
    CORE_METHOD(prefix, pop, "pop($self, key, default=<unrepresentable>, /)\n--\n\nRemove key and return its value."), \
    CORE_METHOD(prefix, load_or_store, "load_or_store($self, key, value)\n--\n\n(existing, True) if present, else store value: (value, False)."), \
    CORE_METHOD(prefix, setdefault, "setdefault($self, key, default=None, /)\n--\n\nThe value of key, inserting default if absent."), \
    CORE_METHOD(prefix, swap, "swap($self, key, value)\n--\n\nStore value; (previous, True), or (None, False) if absent."), \
    CORE_METHOD(prefix, compare_and_swap, "compare_and_swap($self, key, old, new)\n--\n\nStore new if the value == old; False when absent."), \
    CORE_METHOD(prefix, compare_and_delete, "compare_and_delete($self, key, old)\n--\n\nDelete key if its value == old; False when absent.")


/* -- SyncCore ------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    PyObject *d;         /* the entries; read lock-free, written holding the write lock */
    PyObject *lock;      /* the write lock: an RLock or a ProfiledRLock (reentrant) */
    PyObject *acquire;   /* its acquire */
    PyObject *release;   /* its release */
    PyObject *computing; /* key -> token of its compute callback's thread; guarded by the write lock */
} SyncCore;

CORE_GC(sync, offsetof(SyncCore, d), offsetof(SyncCore, lock), offsetof(SyncCore, acquire),
        offsetof(SyncCore, release), offsetof(SyncCore, computing))

/* The acquire and release of a lock, as new references; -1 on error. */
static int
lock_methods(PyObject *lock, PyObject **acquire, PyObject **release)
{
    *acquire = PyObject_GetAttr(lock, str_acquire);
    *release = *acquire == NULL ? NULL : PyObject_GetAttr(lock, str_release);
    if (*release == NULL) {
        Py_CLEAR(*acquire);
        return -1;
    }
    return 0;
}

static PyObject *
sync_core_init(SyncCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (check_nargs(nargs, 3) < 0)
        return NULL;
    if (check_dict("_d", args[0]) < 0 || check_dict("_computing", args[2]) < 0)
        return NULL;
    PyObject *acquire, *release;
    if (lock_methods(args[1], &acquire, &release) < 0)
        return NULL;
    int status;
    BEGIN_INIT(self);
    status = check_fresh((PyObject *)self, self->d);
    if (status == 0) {
        self->lock = Py_NewRef(args[1]);
        self->acquire = acquire;
        self->release = release;
        self->computing = Py_NewRef(args[2]);
        STORE_READY(self->d, Py_NewRef(args[0]));
    }
    END_INIT();
    if (status < 0) {
        Py_DECREF(acquire);
        Py_DECREF(release);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* m[k]: one dict lookup, no lock. */
static PyObject *
sync_subscript(SyncCore *self, PyObject *key)
{
    PyObject *value, *d = LOAD_READY(self->d);
    if (d == NULL) {
        not_initialised((PyObject *)self);
        return NULL;
    }
    int found = dict_lookup(d, key, &value);
    if (found == 0)
        set_key_error(key);
    return value;
}

/* m.get(k, default=None): one dict lookup, no lock. Not dict.get, which
 * free-threaded 3.13 runs in the dict's critical section (its per-object
 * mutex, taken by every reading thread); PyDict_GetItemRef reads lock-free. */
static PyObject *
sync_get(SyncCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *key, *dflt, *value, *d = LOAD_READY(self->d);
    if (d == NULL) {
        not_initialised((PyObject *)self);
        return NULL;
    }
    if (get_args(args, nargs, &key, &dflt) < 0)
        return NULL;
    int found = dict_lookup(d, key, &value);
    if (found < 0)
        return NULL;
    return found ? value : Py_NewRef(dflt);
}

/* The map's one section. */
static inline int
sync_section(SyncCore *self, PyObject *key, csection *sec)
{
    PyObject *d = LOAD_READY(self->d);
    if (d == NULL)
        return not_initialised((PyObject *)self);
    sec->lock = self->lock;
    sec->acquire = self->acquire;
    sec->release = self->release;
    sec->d = d;
    return 1;
}

/* del m[k], for a core's section: KeyError if absent. */
static int
delitem_c(PyObject *self, PyObject *computing, csection *sec, PyObject *key)
{
    PyObject *old;
    int found = pop_c(self, computing, sec, key, "map.delitem.locked", &old);
    if (found == 0)
        set_key_error(key);
    Py_XDECREF(old); /* after the release */
    return found > 0 ? 0 : -1;
}

/* m[k] = v: one dict store holding the write lock; del m[k]: one removal. */
static int
sync_ass_subscript(SyncCore *self, PyObject *key, PyObject *value)
{
    csection sec;
    if (sync_section(self, key, &sec) < 0)
        return -1;
    if (value == NULL)
        return delitem_c((PyObject *)self, self->computing, &sec, key);
    PyObject *old = NULL;
    if (maplock_take(sec.lock, sec.acquire) < 0)
        return -1;
    int status = FAULT("sync.setitem.locked");
    if (status == 0)
        status = store_locked((PyObject *)self, self->computing, sec.d, Py_None, key, value, &old);
    status = give_chaining_error(&sec, status);
    Py_XDECREF(old); /* after the release: its __del__ may use the map */
    return status;
}

/* k in m, len(m): one dict operation each, no lock. */
static int
sync_contains(SyncCore *self, PyObject *key)
{
    PyObject *d = LOAD_READY(self->d);
    if (d == NULL)
        return not_initialised((PyObject *)self);
    return PyDict_Contains(d, key);
}

static Py_ssize_t
sync_len(SyncCore *self)
{
    PyObject *d = LOAD_READY(self->d);
    if (d == NULL)
        return not_initialised((PyObject *)self);
    return PyDict_Size(d);
}

#define NO_CB_LOCK(self) NULL
CORE_OPS(sync, SyncCore, sync_section, NO_CB_LOCK)

static PyMemberDef sync_members[] = {
    {"_d", T_OBJECT_EX, offsetof(SyncCore, d), READONLY, "the entries; read lock-free, written holding the write lock"},
    {"_lock", T_OBJECT_EX, offsetof(SyncCore, lock), READONLY, "the write lock"},
    {"_acquire", T_OBJECT_EX, offsetof(SyncCore, acquire), READONLY, "the write lock's acquire"},
    {"_release", T_OBJECT_EX, offsetof(SyncCore, release), READONLY, "the write lock's release"},
    {"_computing", T_OBJECT_EX, offsetof(SyncCore, computing), READONLY,
     "key -> token of the thread computing it; guarded by the write lock"},
    {NULL},
};

static PyMethodDef sync_methods[] = {
    {"_core_init", (PyCFunction)(void (*)(void))sync_core_init, METH_FASTCALL,
     "_core_init($self, d, lock, computing, /)\n--\n\nSet the fields, once."},
    CORE_OP_METHODS(sync),
    {"get", (PyCFunction)(void (*)(void))sync_get, METH_FASTCALL,
     "get($self, key, default=None, /)\n--\n\nThe value for key, else default. Lock-free."},
    {NULL},
};

static PyType_Slot sync_slots[] = {
    {Py_tp_doc, "SyncMap's hot paths: lock-free m[k], and m[k] = v under the write lock."},
    {Py_tp_traverse, sync_traverse},
    {Py_tp_clear, sync_clear},
    {Py_tp_dealloc, sync_dealloc},
    {Py_tp_members, sync_members},
    {Py_tp_methods, sync_methods},
    {Py_mp_subscript, sync_subscript},
    {Py_mp_ass_subscript, sync_ass_subscript},
    {Py_mp_length, sync_len},
    {Py_sq_contains, sync_contains},
    {0, NULL},
};

static PyType_Spec sync_spec = {
    "mapsafe._speedups.SyncCore", sizeof(SyncCore), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC, sync_slots,
};

/* -- CacheCore: mapsafe.Cache's hits ---------------------------------------------- */

/* Entry slots (cache.py's layout) read here. VALUE and EXPIRES never change
 * once an entry is published; FREQ is rewritten by any reading thread, but
 * only ever to the small ints 0..3, which are cached (immortal on
 * free-threaded builds), so a borrowed read of it can never dangle. */
#define CACHE_VALUE 0
#define CACHE_EXPIRES 3
#define CACHE_FREQ 5
#define CACHE_SLOTS 9
#define CACHE_FREQ_MAX 3

typedef struct {
    PyObject_HEAD
    PyObject *d;       /* Cache._data: key -> entry list; read lock-free; set once */
    PyObject *cells;   /* the Cache's Tally._cells: thread ident -> counts (hits first); set once */
    PyObject *clock;   /* the clock when entries expire after write (ttl, negative_ttl), else None */
    PyObject *failure; /* cache._Failure: a cached exception, which the slow path raises */
    PyObject *loader;  /* the default loader, or None */
    int fast;          /* hits need nothing but this (no tti, no refresh_after) */
} CacheCore;

CORE_GC(cache, offsetof(CacheCore, d), offsetof(CacheCore, cells), offsetof(CacheCore, clock),
        offsetof(CacheCore, failure), offsetof(CacheCore, loader))

static PyObject *
cache_core_init(CacheCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (check_nargs(nargs, 6) < 0)
        return NULL;
    if (check_dict("_data", args[0]) < 0 || check_dict("_cells", args[1]) < 0 || check_bool("fast", args[5]) < 0)
        return NULL;
    int status;
    BEGIN_INIT(self);
    status = check_fresh((PyObject *)self, self->d);
    if (status == 0) {
        self->cells = Py_NewRef(args[1]);
        self->clock = Py_NewRef(args[2]);
        self->failure = Py_NewRef(args[3]);
        self->loader = Py_NewRef(args[4]);
        self->fast = args[5] == Py_True;
        STORE_READY(self->d, Py_NewRef(args[0]));
    }
    END_INIT();
    if (status < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* Count a hit in this thread's cell: 1, or 0 when it has none yet (the
 * slow path makes it), -1 on error. Only this thread writes its cell. */
static int
cache_count_hit(CacheCore *self)
{
    PyObject *ident = PyLong_FromUnsignedLong(PyThread_get_thread_ident());
    if (ident == NULL)
        return -1;
    PyObject *cell;
    int found = dict_lookup(self->cells, ident, &cell);
    Py_DECREF(ident);
    if (found <= 0)
        return found;
    int rc = 0;
    if (PyList_CheckExact(cell) && PyList_GET_SIZE(cell) > 0) {
        PyObject *old = PyList_GET_ITEM(cell, 0); /* ours: no other thread replaces it */
        PyObject *new = PyNumber_Add(old, one);
        rc = new == NULL ? -1 : (PyList_SetItem(cell, 0, new) < 0 ? -1 : 1);
    }
    Py_DECREF(cell);
    return rc;
}

/* A hit: 1 and a new reference in *value; 0 when the Python path must
 * decide (absent, expired, a cached failure, idle expiry or refresh
 * configured, no stats cell yet); -1 on error. */
static int
cache_hit_c(CacheCore *self, PyObject *key, PyObject **value)
{
    PyObject *d = LOAD_READY(self->d);
    if (d == NULL)
        return not_initialised((PyObject *)self);
    if (!self->fast)
        return 0;
    PyObject *entry;
    int found = dict_lookup(d, key, &entry);
    if (found <= 0)
        return found;
    int rc = 0;
    if (!PyList_CheckExact(entry) || PyList_GET_SIZE(entry) != CACHE_SLOTS)
        goto done;
    PyObject *v = PyList_GET_ITEM(entry, CACHE_VALUE);
    if ((PyObject *)Py_TYPE(v) == self->failure)
        goto done;
    if (self->clock != Py_None) {
        PyObject *now_obj = PyObject_CallNoArgs(self->clock);
        if (now_obj == NULL) {
            rc = -1;
            goto done;
        }
        double now = PyFloat_AsDouble(now_obj);
        Py_DECREF(now_obj);
        PyObject *expires = PyList_GET_ITEM(entry, CACHE_EXPIRES);
        if ((now == -1.0 && PyErr_Occurred()) || !PyFloat_CheckExact(expires)) {
            rc = now == -1.0 && PyErr_Occurred() ? -1 : 0;
            goto done;
        }
        if (PyFloat_AS_DOUBLE(expires) <= now)
            goto done; /* expired: the slow path removes it and counts the miss */
    }
    PyObject *freq = PyList_GET_ITEM(entry, CACHE_FREQ);
    long f = PyLong_CheckExact(freq) ? PyLong_AsLong(freq) : CACHE_FREQ_MAX;
    if (f >= 0 && f < CACHE_FREQ_MAX) {
        /* Lossy, as in Cache._use: two readers may both store f + 1. */
        if (PyList_SetItem(entry, CACHE_FREQ, PyLong_FromLong(f + 1)) < 0) {
            rc = -1;
            goto done;
        }
    }
    rc = cache_count_hit(self);
    if (rc == 1)
        *value = Py_NewRef(v);
done:
    Py_DECREF(entry);
    return rc;
}

/* get(key, loader=None, *, timeout=None): a hit in C; everything else is Cache._get_slow. */
static PyObject *
cache_get(CacheCore *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (kwnames == NULL && (nargs == 2 ? args[1] != Py_None : nargs == 1 && self->loader != Py_None)) {
        PyObject *value = NULL;
        int rc = cache_hit_c(self, args[0], &value);
        if (rc != 0)
            return rc > 0 ? value : NULL;
    }
    PyObject *stack[3] = {(PyObject *)self, nargs > 0 ? args[0] : NULL, nargs > 1 ? args[1] : NULL};
    if (nargs > 2 || kwnames != NULL) {
        /* Unusual calls: let Python parse (and reject) them. */
        PyObject *method = PyObject_GetAttr((PyObject *)self, str_get_slow);
        if (method == NULL)
            return NULL;
        PyObject *result = PyObject_Vectorcall(method, args, nargsf, kwnames);
        Py_DECREF(method);
        return result;
    }
    return PyObject_VectorcallMethod(str_get_slow, stack, (size_t)(nargs + 1), NULL);
}

/* _hit(key): the value of a hit, or Cache._hit_slow(key). */
static PyObject *
cache_hit(CacheCore *self, PyObject *key)
{
    PyObject *value = NULL;
    int rc = cache_hit_c(self, key, &value);
    if (rc != 0)
        return rc > 0 ? value : NULL;
    PyObject *stack[2] = {(PyObject *)self, key};
    return PyObject_VectorcallMethod(str_hit_slow, stack, 2, NULL);
}

static PyMethodDef cache_methods[] = {
    {"_core_init", (PyCFunction)(void (*)(void))cache_core_init, METH_FASTCALL,
     "_core_init($self, data, cells, clock, failure, loader, fast, /)\n--\n\nSet the fields, once."},
    {"get", (PyCFunction)(void (*)(void))cache_get, METH_FASTCALL | METH_KEYWORDS,
     "get($self, key, loader=None, /, *, timeout=None)\n--\n\n"
     "The value of key, running loader(key) (or the cache's loader) once if absent.\n\n"
     "timeout bounds only the wait for another thread's load (TimeoutError)."},
    {"_hit", (PyCFunction)cache_hit, METH_O, "_hit($self, key, /)\n--\n\nA hit's value (counted), or MISSING."},
    {NULL},
};

static PyType_Slot cache_slots[] = {
    {Py_tp_doc, "Cache's hits: one dict lookup, the entry's counter and this thread's stats cell, in C."},
    {Py_tp_traverse, cache_traverse},
    {Py_tp_clear, cache_clear},
    {Py_tp_dealloc, cache_dealloc},
    {Py_tp_methods, cache_methods},
    {0, NULL},
};

static PyType_Spec cache_spec = {
    "mapsafe._speedups.CacheCore", sizeof(CacheCore), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC, cache_slots,
};

/* -- CachedCore: a @cached function's calls --------------------------------------- */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *cache;     /* the Cache the calls use (a CacheCore); set once */
    PyObject *key;       /* the key= function, or None for lru_cache's keys */
    PyObject *instances; /* a method's id(instance) -> (weakref, bound function) dict, or None */
    int typed;
} CachedCore;

CORE_GC(cached, offsetof(CachedCore, cache), offsetof(CachedCore, key), offsetof(CachedCore, instances))

/* Whether obj is a CacheCore (of any exec of this module: their types
 * differ, their layout and dealloc do not). */
static int
is_cache_core(PyObject *obj)
{
    for (PyTypeObject *t = Py_TYPE(obj); t != NULL; t = t->tp_base)
        if (t->tp_dealloc == cache_dealloc)
            return 1;
    return 0;
}

static PyObject *
cached_core_init(CachedCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (check_nargs(nargs, 4) < 0 || check_bool("typed", args[3]) < 0)
        return NULL;
    if (!is_cache_core(args[0])) {
        PyErr_Format(PyExc_TypeError, "_core_init needs a mapsafe.Cache, got %.100s", Py_TYPE(args[0])->tp_name);
        return NULL;
    }
    if (args[2] != Py_None && check_dict("instances", args[2]) < 0)
        return NULL;
    int status;
    BEGIN_INIT(self);
    status = check_fresh((PyObject *)self, self->cache);
    if (status == 0) {
        self->key = Py_NewRef(args[1]);
        self->instances = Py_NewRef(args[2]);
        self->typed = args[3] == Py_True;
        STORE_READY(self->cache, Py_NewRef(args[0]));
    }
    END_INIT();
    if (status < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* f(*args, **kwargs): the key (key=, or for positional calls the key
 * cached.make_key makes), a hit in C, else the Python method: _miss(key,
 * *args, **kwargs) after a key, _call_slow(*args, **kwargs) before one. */
static PyObject *
cached_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    CachedCore *self = (CachedCore *)op;
    PyObject *cache = LOAD_READY(self->cache);
    if (cache == NULL) {
        not_initialised(op);
        return NULL;
    }
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *key;
    if (self->key != Py_None) {
        key = PyObject_Vectorcall(self->key, args, (size_t)nargs, kwnames);
        if (key == NULL)
            return NULL;
    }
    else if (kwnames == NULL && !self->typed) {
        /* cached.make_key's positional keys: a lone int or str, else the tuple. */
        if (nargs == 1 && (PyLong_CheckExact(args[0]) || PyUnicode_CheckExact(args[0]))) {
            key = Py_NewRef(args[0]);
        }
        else {
            if ((key = PyTuple_New(nargs)) == NULL)
                return NULL;
            for (Py_ssize_t i = 0; i < nargs; i++)
                PyTuple_SET_ITEM(key, i, Py_NewRef(args[i]));
        }
    }
    else {
        PyObject *method = PyObject_GetAttr(op, str_call_slow);
        if (method == NULL)
            return NULL;
        PyObject *result = PyObject_Vectorcall(method, args, (size_t)nargs, kwnames);
        Py_DECREF(method);
        return result;
    }
    PyObject *value = NULL;
    int rc = cache_hit_c((CacheCore *)cache, key, &value);
    if (rc != 0) {
        Py_DECREF(key);
        return rc > 0 ? value : NULL;
    }
    /* _miss(key, *args, **kwargs): self and key in front of the caller's arguments. */
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    PyObject *small[8], **stack = small;
    if (nargs + nkw + 2 > 8 && (stack = PyMem_Malloc((size_t)(nargs + nkw + 2) * sizeof(PyObject *))) == NULL) {
        Py_DECREF(key);
        return PyErr_NoMemory();
    }
    stack[0] = op;
    stack[1] = key;
    for (Py_ssize_t i = 0; i < nargs + nkw; i++)
        stack[i + 2] = args[i];
    PyObject *result = PyObject_VectorcallMethod(str_miss, stack, (size_t)(nargs + 2), kwnames);
    if (stack != small)
        PyMem_Free(stack);
    Py_DECREF(key);
    return result;
}

/* The weakly referenced object, as a new reference, or NULL (no error) if it is gone. */
static PyObject *
weak_target(PyObject *ref)
{
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *obj;
    if (PyWeakref_GetRef(ref, &obj) < 0) {
        PyErr_Clear();
        return NULL;
    }
    return obj;
#else
    PyObject *obj = PyWeakref_GetObject(ref);
    return obj == Py_None ? NULL : Py_NewRef(obj);
#endif
}

/* A method's __get__: the instance's bound function, from the instances
 * table (one dict lookup and a weak-reference check), else _bind(instance). */
static PyObject *
cached_descr_get(PyObject *op, PyObject *instance, PyObject *owner)
{
    CachedCore *self = (CachedCore *)op;
    if (instance == NULL || instance == Py_None)
        return Py_NewRef(op);
    PyObject *instances = LOAD_READY(self->cache) == NULL ? NULL : self->instances;
    if (instances != NULL && instances != Py_None) {
        PyObject *id = PyLong_FromVoidPtr(instance), *pair;
        if (id == NULL)
            return NULL;
        int found = dict_lookup(instances, id, &pair);
        Py_DECREF(id);
        if (found < 0)
            return NULL;
        if (found) {
            PyObject *result = NULL;
            if (PyTuple_CheckExact(pair) && PyTuple_GET_SIZE(pair) == 2) {
                PyObject *target = weak_target(PyTuple_GET_ITEM(pair, 0));
                if (target == instance)
                    result = Py_NewRef(PyTuple_GET_ITEM(pair, 1));
                Py_XDECREF(target);
            }
            Py_DECREF(pair);
            if (result != NULL)
                return result;
        }
    }
    PyObject *stack[2] = {op, instance};
    return PyObject_VectorcallMethod(str_bind, stack, 2, NULL);
}

static PyMemberDef cached_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(CachedCore, vectorcall), READONLY},
    {NULL},
};

static PyObject *
cached_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    CachedCore *self = (CachedCore *)type->tp_alloc(type, 0);
    if (self != NULL)
        self->vectorcall = cached_vectorcall;
    return (PyObject *)self;
}

static PyMethodDef cached_methods[] = {
    {"_core_init", (PyCFunction)(void (*)(void))cached_core_init, METH_FASTCALL,
     "_core_init($self, cache, key, instances, typed, /)\n--\n\nSet the fields, once."},
    {NULL},
};

static PyType_Slot cached_slots[] = {
    {Py_tp_doc, "A @cached function's calls: the key, a hit in C; misses and the rest in Python."},
    {Py_tp_new, cached_new},
    {Py_tp_traverse, cached_traverse},
    {Py_tp_clear, cached_clear},
    {Py_tp_dealloc, cached_dealloc},
    {Py_tp_members, cached_members},
    {Py_tp_methods, cached_methods},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_descr_get, cached_descr_get},
    {0, NULL},
};

static PyType_Spec cached_spec = {
    "mapsafe._speedups.CachedCore", sizeof(CachedCore), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL, cached_slots,
};

/* -- SyncReader: a per-thread read handle of a SyncMap ------------------------- */

/* On free-threaded CPython every use of an object from Python code changes
 * its reference count, and an object owned by another thread has a shared,
 * atomically updated count: threads reading one SyncMap all hit the cache
 * line of the map's count. A reader made in (and kept by) one thread is
 * owned by that thread, so using it is a local, non-atomic count; its reads
 * go to the map's dict through this strong reference, with no count change
 * on the dict. Values still get a strong reference (PyDict_GetItemRef). */
typedef struct {
    PyObject_HEAD
    PyObject *d; /* the SyncMap's dict; set once, at creation */
} SyncReader;

CORE_GC(reader, offsetof(SyncReader, d))

static PyObject *
reader_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *d;
    if (!PyArg_ParseTuple(args, "O!:SyncReader", &PyDict_Type, &d))
        return NULL;
    if (!PyDict_CheckExact(d)) {
        PyErr_SetString(PyExc_TypeError, "SyncReader needs exactly a dict");
        return NULL;
    }
    SyncReader *self = (SyncReader *)type->tp_alloc(type, 0);
    if (self != NULL)
        self->d = Py_NewRef(d);
    return (PyObject *)self;
}

static PyObject *
reader_subscript(SyncReader *self, PyObject *key)
{
    PyObject *value;
    int found = dict_lookup(self->d, key, &value);
    if (found == 0)
        set_key_error(key);
    return value;
}

static PyObject *
reader_get(SyncReader *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *key, *dflt, *value;
    if (get_args(args, nargs, &key, &dflt) < 0)
        return NULL;
    int found = dict_lookup(self->d, key, &value);
    if (found < 0)
        return NULL;
    return found ? value : Py_NewRef(dflt);
}

static int
reader_contains(SyncReader *self, PyObject *key)
{
    return PyDict_Contains(self->d, key);
}

static Py_ssize_t
reader_len(SyncReader *self)
{
    return PyDict_Size(self->d);
}

static PyMethodDef reader_methods[] = {
    {"get", (PyCFunction)(void (*)(void))reader_get, METH_FASTCALL,
     "get($self, key, default=None, /)\n--\n\nThe value for key, else default. Lock-free."},
    {NULL},
};

static PyType_Slot reader_slots[] = {
    {Py_tp_doc, "SyncReader(d)\n--\n\nA per-thread read handle of a SyncMap (see SyncMap.reader)."},
    {Py_tp_new, reader_new},
    {Py_tp_traverse, reader_traverse},
    {Py_tp_clear, reader_clear},
    {Py_tp_dealloc, reader_dealloc},
    {Py_tp_methods, reader_methods},
    {Py_mp_subscript, reader_subscript},
    {Py_mp_length, reader_len},
    {Py_sq_contains, reader_contains},
    {0, NULL},
};

static PyType_Spec reader_spec = {
    "mapsafe._speedups.SyncReader", sizeof(SyncReader), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, reader_slots,
};

/* -- LockedCore ---------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *d;         /* the entries; read and written holding rw (its mutex, or read/write lock) */
    PyObject *rw;        /* the RWLock guarding d; an RWCore */
    PyObject *lock;      /* rw's mutex, or a ProfiledRLock around it */
    PyObject *acquire;   /* lock.acquire */
    PyObject *release;   /* lock.release */
    PyObject *computing; /* key -> token of its compute callback's thread; guarded by rw's mutex */
    int counting;        /* 1 when stats are on: get counts hits and misses in Python */
} LockedCore;

CORE_GC(locked, offsetof(LockedCore, d), offsetof(LockedCore, rw), offsetof(LockedCore, lock),
        offsetof(LockedCore, acquire), offsetof(LockedCore, release), offsetof(LockedCore, computing))

static PyObject *
locked_core_init(LockedCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (check_nargs(nargs, 5) < 0)
        return NULL;
    if (check_dict("_d", args[0]) < 0 || check_dict("_computing", args[3]) < 0)
        return NULL;
    PyObject *module = PyType_GetModuleByDef(Py_TYPE(self), &speedups_module);
    if (module == NULL)
        return NULL;
    speedups_state *state = PyModule_GetState(module);
    if (!PyObject_TypeCheck(args[1], state->rw_type)) {
        PyErr_Format(PyExc_TypeError, "_rw must be an RWLock, not %.100s", Py_TYPE(args[1])->tp_name);
        return NULL;
    }
    if (check_bool("counting", args[4]) < 0)
        return NULL;
    PyObject *acquire, *release;
    if (lock_methods(args[2], &acquire, &release) < 0)
        return NULL;
    int status;
    BEGIN_INIT(self);
    status = check_fresh((PyObject *)self, self->d);
    if (status == 0) {
        self->rw = Py_NewRef(args[1]);
        self->lock = Py_NewRef(args[2]);
        self->acquire = acquire;
        self->release = release;
        self->computing = Py_NewRef(args[3]);
        self->counting = args[4] == Py_True;
        STORE_READY(self->d, Py_NewRef(args[0]));
    }
    END_INIT();
    if (status < 0) {
        Py_DECREF(acquire);
        Py_DECREF(release);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* Wait, holding rw's mutex, until no other thread writes (for reads) or
 * until no thread reads or writes (for writes). */
static int
wait_rw_locked(LockedCore *self, int for_write)
{
    RWCore *rw = (RWCore *)self->rw;
    int busy = rw->writer != Py_None || (for_write && PyDict_GET_SIZE(rw->readers) > 0);
    if (!busy)
        return 0;
    return for_write ? rw_wait_writable_impl(rw) : rw_wait_readable_impl(rw);
}

static PyObject *
locked_get(LockedCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *key, *dflt, *value = NULL, *d = LOAD_READY(self->d);
    if (get_args(args, nargs, &key, &dflt) < 0)
        return NULL;
    if (d == NULL) {
        not_initialised((PyObject *)self);
        return NULL;
    }
    if (self->counting)
        return PyObject_VectorcallMethod(str_get_slow, (PyObject *[]){(PyObject *)self, key, dflt},
                                         3, NULL);
    if (call_noargs(self->acquire) < 0)
        return NULL;
    int status = FAULT("locked.get.locked");
    if (status == 0)
        status = wait_rw_locked(self, 0);
    if (status == 0) {
        status = dict_lookup(d, key, &value);
        if (status == 0)
            value = Py_NewRef(dflt);
        status = status < 0 ? -1 : 0;
    }
    if (release_chaining_error(self->release, status) < 0) {
        Py_XDECREF(value);
        return NULL;
    }
    return value;
}

static int
locked_ass_subscript(LockedCore *self, PyObject *key, PyObject *value)
{
    if (value == NULL)
        return call_method_onearg((PyObject *)self, str_delitem, key);
    PyObject *old = NULL, *d = LOAD_READY(self->d);
    if (d == NULL)
        return not_initialised((PyObject *)self);
    if (call_noargs(self->acquire) < 0)
        return -1;
    int status = FAULT("locked.setitem.locked");
    if (status == 0)
        status = wait_rw_locked(self, 1);
    if (status == 0)
        status = store_locked((PyObject *)self, self->computing, d, Py_None, key, value, &old);
    status = release_chaining_error(self->release, status);
    Py_XDECREF(old); /* after the release */
    return status;
}

static PyMemberDef locked_members[] = {
    {"_d", T_OBJECT_EX, offsetof(LockedCore, d), READONLY, "the entries; guarded by _rw"},
    {"_rw", T_OBJECT_EX, offsetof(LockedCore, rw), READONLY, "the RWLock guarding _d"},
    {"_lock", T_OBJECT_EX, offsetof(LockedCore, lock), READONLY, "_rw's mutex, or a ProfiledRLock around it"},
    {"_acquire", T_OBJECT_EX, offsetof(LockedCore, acquire), READONLY, "_lock.acquire"},
    {"_release", T_OBJECT_EX, offsetof(LockedCore, release), READONLY, "_lock.release"},
    {"_computing", T_OBJECT_EX, offsetof(LockedCore, computing), READONLY,
     "key -> token of the thread computing it; guarded by _rw's mutex"},
    {NULL},
};

static PyMethodDef locked_methods[] = {
    {"_core_init", (PyCFunction)(void (*)(void))locked_core_init, METH_FASTCALL,
     "_core_init($self, d, rw, lock, computing, counting, /)\n--\n\nSet the fields, once."},
    {"get", (PyCFunction)(void (*)(void))locked_get, METH_FASTCALL,
     "get($self, key, default=None, /)\n--\n\nThe value for key, else default."},
    {NULL},
};

static PyType_Slot locked_slots[] = {
    {Py_tp_doc, "LockedMap's hot paths: get and m[k] = v holding the RWLock's mutex."},
    {Py_tp_traverse, locked_traverse},
    {Py_tp_clear, locked_clear},
    {Py_tp_dealloc, locked_dealloc},
    {Py_tp_members, locked_members},
    {Py_tp_methods, locked_methods},
    {Py_mp_ass_subscript, locked_ass_subscript},
    {0, NULL},
};

static PyType_Spec locked_spec = {
    "mapsafe._speedups.LockedCore", sizeof(LockedCore), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC, locked_slots,
};

/* -- ShardedCore --------------------------------------------------------------- */

/* Each stripe is (lock, acquire, release, dict, put_locked or None). */
#define STRIPE_ACQUIRE 1
#define STRIPE_RELEASE 2
#define STRIPE_DICT 3
#define STRIPE_PUT 4

typedef struct {
    PyObject_HEAD
    PyObject *maps;      /* tuple: each shard's dict, read lock-free */
    PyObject *stripes;   /* tuple: per shard (lock, acquire, release, dict, put_locked or None) */
    PyObject *computing; /* key -> token of its compute callback's thread; changed holding the key's shard */
    PyObject *all_locks; /* tuple: the callback lock, then each shard's, in the lock order */
    Py_ssize_t n;        /* number of shards, > 0 */
    int plain_get;       /* 1: get is one dict lookup, and the C paths apply (no maxsize, ttl or stats) */
} ShardedCore;

CORE_GC(sharded, offsetof(ShardedCore, maps), offsetof(ShardedCore, stripes), offsetof(ShardedCore, computing),
        offsetof(ShardedCore, all_locks))

static PyObject *
sharded_core_init(ShardedCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (check_nargs(nargs, 5) < 0)
        return NULL;
    if (check_dict("_computing", args[2]) < 0)
        return NULL;
    PyObject *maps = args[0], *stripes = args[1], *all_locks = args[3];
    if (!PyTuple_CheckExact(all_locks) || PyTuple_GET_SIZE(all_locks) != PyTuple_GET_SIZE(maps) + 1) {
        PyErr_SetString(PyExc_TypeError, "all_locks must be a tuple: the callback lock, then each shard's");
        return NULL;
    }
    if (!PyTuple_CheckExact(maps) || !PyTuple_CheckExact(stripes) || PyTuple_GET_SIZE(maps) == 0 ||
        PyTuple_GET_SIZE(maps) != PyTuple_GET_SIZE(stripes)) {
        PyErr_SetString(PyExc_TypeError, "_maps and _stripes must be tuples of the same, non-zero length");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(maps); i++) {
        PyObject *stripe = PyTuple_GET_ITEM(stripes, i);
        if (check_dict("each of _maps", PyTuple_GET_ITEM(maps, i)) < 0)
            return NULL;
        if (!PyTuple_CheckExact(stripe) || PyTuple_GET_SIZE(stripe) != 5 ||
            PyTuple_GET_ITEM(stripe, STRIPE_DICT) != PyTuple_GET_ITEM(maps, i) ||
            !PyCallable_Check(PyTuple_GET_ITEM(stripe, STRIPE_ACQUIRE)) ||
            !PyCallable_Check(PyTuple_GET_ITEM(stripe, STRIPE_RELEASE))) {
            PyErr_SetString(PyExc_TypeError,
                            "each of _stripes must be (lock, acquire, release, its shard's dict, put)");
            return NULL;
        }
    }
    if (check_bool("plain_get", args[4]) < 0)
        return NULL;
    int status;
    BEGIN_INIT(self);
    status = check_fresh((PyObject *)self, self->maps);
    if (status == 0) {
        self->stripes = Py_NewRef(stripes);
        self->computing = Py_NewRef(args[2]);
        self->all_locks = Py_NewRef(all_locks);
        self->n = PyTuple_GET_SIZE(maps);
        self->plain_get = args[4] == Py_True;
        STORE_READY(self->maps, Py_NewRef(maps));
    }
    END_INIT();
    if (status < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* hash(key) % n, as Python computes it (never negative); -1 on error. */
static inline Py_ssize_t
shard_of(ShardedCore *self, PyObject *key)
{
    Py_hash_t h = PyObject_Hash(key);
    if (h == -1)
        return -1;
    Py_ssize_t i = (Py_ssize_t)(h % (Py_hash_t)self->n);
    return i < 0 ? i + self->n : i;
}

static PyObject *
sharded_get(ShardedCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *key, *dflt, *value, *maps = LOAD_READY(self->maps);
    if (get_args(args, nargs, &key, &dflt) < 0)
        return NULL;
    if (maps == NULL) {
        not_initialised((PyObject *)self);
        return NULL;
    }
    if (!self->plain_get)
        return PyObject_VectorcallMethod(str_get_slow, (PyObject *[]){(PyObject *)self, key, dflt},
                                         3, NULL);
    Py_ssize_t i = shard_of(self, key);
    if (i < 0)
        return NULL;
    int found = dict_lookup(PyTuple_GET_ITEM(maps, i), key, &value);
    if (found < 0)
        return NULL;
    return found ? value : Py_NewRef(dflt);
}

/* Key's shard, for the C paths: 1; 0 when they do not apply (a cache shard,
 * or stats on: the Python path runs); -1 on error. */
static inline int
sharded_section(ShardedCore *self, PyObject *key, csection *sec)
{
    if (LOAD_READY(self->maps) == NULL)
        return not_initialised((PyObject *)self);
    if (!self->plain_get)
        return 0;
    Py_ssize_t i = shard_of(self, key);
    if (i < 0)
        return -1;
    PyObject *stripe = PyTuple_GET_ITEM(self->stripes, i);
    sec->lock = PyTuple_GET_ITEM(stripe, 0);
    sec->acquire = PyTuple_GET_ITEM(stripe, STRIPE_ACQUIRE);
    sec->release = PyTuple_GET_ITEM(stripe, STRIPE_RELEASE);
    sec->d = PyTuple_GET_ITEM(stripe, STRIPE_DICT);
    return 1;
}

static int
sharded_ass_subscript(ShardedCore *self, PyObject *key, PyObject *value)
{
    if (LOAD_READY(self->maps) == NULL)
        return not_initialised((PyObject *)self);
    if (value == NULL) {
        csection sec;
        int ok = sharded_section(self, key, &sec);
        if (ok == 0)
            return call_method_onearg((PyObject *)self, str_delitem, key);
        return ok < 0 ? -1 : delitem_c((PyObject *)self, self->computing, &sec, key);
    }
    Py_ssize_t i = shard_of(self, key);
    if (i < 0)
        return -1;
    PyObject *old = NULL, *stripe = PyTuple_GET_ITEM(self->stripes, i);
    csection sec = {PyTuple_GET_ITEM(stripe, 0), PyTuple_GET_ITEM(stripe, STRIPE_ACQUIRE),
                    PyTuple_GET_ITEM(stripe, STRIPE_RELEASE), PyTuple_GET_ITEM(stripe, STRIPE_DICT)};
    if (maplock_take(sec.lock, sec.acquire) < 0)
        return -1;
    int status = FAULT("sharded.setitem.locked");
    if (status == 0)
        status = store_locked((PyObject *)self, self->computing, sec.d, PyTuple_GET_ITEM(stripe, STRIPE_PUT), key,
                              value, &old);
    status = give_chaining_error(&sec, status);
    Py_XDECREF(old); /* after the release: another shard's lock may be taken by its __del__ */
    return status;
}

/* k in m: one dict operation on key's shard, no lock (caches: _contains_slow). */
static int
sharded_contains(ShardedCore *self, PyObject *key)
{
    PyObject *maps = LOAD_READY(self->maps);
    if (maps == NULL)
        return not_initialised((PyObject *)self);
    if (!self->plain_get) {
        PyObject *r = PyObject_CallMethodOneArg((PyObject *)self, str_contains_slow, key);
        if (r == NULL)
            return -1;
        int truth = PyObject_IsTrue(r);
        Py_DECREF(r);
        return truth;
    }
    Py_ssize_t i = shard_of(self, key);
    return i < 0 ? -1 : PyDict_Contains(PyTuple_GET_ITEM(maps, i), key);
}

/* len(m): exact, counted holding every lock in the lock order (caches: _len_slow). */
static Py_ssize_t
sharded_len(ShardedCore *self)
{
    PyObject *maps = LOAD_READY(self->maps);
    if (maps == NULL)
        return not_initialised((PyObject *)self);
    if (!self->plain_get) {
        PyObject *r = PyObject_CallMethodNoArgs((PyObject *)self, str_len_slow);
        if (r == NULL)
            return -1;
        Py_ssize_t n = PyLong_AsSsize_t(r);
        Py_DECREF(r);
        return n;
    }
    saved_error saved = {0};
    Py_ssize_t taken = take_all(self->all_locks, &saved), total = 0;
    if (taken == PyTuple_GET_SIZE(self->all_locks))
        for (Py_ssize_t i = 0; i < self->n; i++)
            total += PyDict_Size(PyTuple_GET_ITEM(maps, i));
    give_all(self->all_locks, taken, &saved);
    return restore_error(&saved) < 0 ? -1 : total;
}

#define SHARDED_CB_LOCK(self) PyTuple_GET_ITEM((self)->all_locks, 0)
CORE_OPS(sharded, ShardedCore, sharded_section, SHARDED_CB_LOCK)

static PyMemberDef sharded_members[] = {
    {"_maps", T_OBJECT_EX, offsetof(ShardedCore, maps), READONLY, "each shard's dict, for lock-free reads"},
    {"_stripes", T_OBJECT_EX, offsetof(ShardedCore, stripes), READONLY,
     "per shard (lock, acquire, release, dict, put_locked or None)"},
    {"_computing", T_OBJECT_EX, offsetof(ShardedCore, computing), READONLY,
     "key -> token of the thread computing it; changed holding the key's shard"},
    {"_n", T_PYSSIZET, offsetof(ShardedCore, n), READONLY, "number of shards"},
    {NULL},
};

static PyMethodDef sharded_methods[] = {
    {"_core_init", (PyCFunction)(void (*)(void))sharded_core_init, METH_FASTCALL,
     "_core_init($self, maps, stripes, computing, all_locks, plain_get, /)\n--\n\nSet the fields, once."},
    CORE_OP_METHODS(sharded),
    {"get", (PyCFunction)(void (*)(void))sharded_get, METH_FASTCALL,
     "get($self, key, default=None, /)\n--\n\nThe value for key, else default. Lock-free."},
    {NULL},
};

static PyType_Slot sharded_slots[] = {
    {Py_tp_doc, "ShardedMap's hot paths: lock-free get, and m[k] = v under one shard's lock."},
    {Py_tp_traverse, sharded_traverse},
    {Py_tp_clear, sharded_clear},
    {Py_tp_dealloc, sharded_dealloc},
    {Py_tp_members, sharded_members},
    {Py_tp_methods, sharded_methods},
    {Py_mp_ass_subscript, sharded_ass_subscript},
    {Py_mp_length, sharded_len},
    {Py_sq_contains, sharded_contains},
    {0, NULL},
};

static PyType_Spec sharded_spec = {
    "mapsafe._speedups.ShardedCore", sizeof(ShardedCore), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC, sharded_slots,
};

/* -- the module ------------------------------------------------------------------ */

static int
add_type(PyObject *module, PyType_Spec *spec, PyObject *base, PyTypeObject **out)
{
    PyObject *type = PyType_FromModuleAndSpec(module, spec, base);
    if (type == NULL)
        return -1;
    if (out != NULL)
        *out = (PyTypeObject *)type;
    int rc = PyModule_AddObjectRef(module, strrchr(spec->name, '.') + 1, type);
    if (out == NULL)
        Py_DECREF(type);
    return rc;
}

/* hold_all(locks, fn): fn() holding every lock of the tuple, taken in
 * order and released in reverse, whatever happens. Only the acquires can
 * be interrupted (while contended), and then the ones taken are released. */
static PyObject *
hold_all(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyTuple_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "hold_all(locks, fn) takes a tuple of locks and a callable");
        return NULL;
    }
    PyObject *locks = args[0], *result = NULL;
    saved_error saved = {0};
    Py_ssize_t taken = take_all(locks, &saved);
    if (taken == PyTuple_GET_SIZE(locks)) {
        result = PyObject_CallNoArgs(args[1]);
        if (result == NULL)
            save_error(&saved);
    }
    give_all(locks, taken, &saved);
    if (restore_error(&saved) < 0) {
        Py_XDECREF(result);
        return NULL;
    }
    return result;
}

/* call_if_free(lock, fn, default): fn() holding lock if it can be taken
 * without waiting, else default. The lock is released whatever fn does. */
static PyObject *
call_if_free(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "call_if_free(lock, fn, default) takes 3 arguments");
        return NULL;
    }
    int got;
    if (Py_IS_TYPE(args[0], maplock_type))
        got = maplock_acquire_impl((MapLock *)args[0], 0, 0);
    else {
        PyObject *r = PyObject_CallMethodOneArg(args[0], str_acquire, Py_False);
        if (r == NULL)
            return NULL;
        got = r == Py_True;
        Py_DECREF(r);
    }
    if (got <= 0)
        return got < 0 ? NULL : Py_NewRef(args[2]);
    PyObject *result = PyObject_CallNoArgs(args[1]);
    saved_error saved = {0};
    if (result == NULL)
        save_error(&saved);
    give_one(args[0], &saved);
    if (restore_error(&saved) < 0) {
        Py_XDECREF(result);
        return NULL;
    }
    return result;
}

static PyObject *
prof_recursion_count(ProfiledRLock *self, PyObject *unused)
{
    return PyObject_CallMethodNoArgs(self->raw, str_recursion_count);
}

static PyMethodDef speedups_functions[] = {
    {"thread_token", thread_token, METH_NOARGS,
     "thread_token()\n--\n\nThis thread's token: a weak reference that dies when the thread ends, never reused."},
    {"call_if_free", (PyCFunction)(void (*)(void))call_if_free, METH_FASTCALL,
     "call_if_free(lock, fn, default, /)\n--\n\nfn() holding lock if it is free now, else default."},
    {"hold_all", (PyCFunction)(void (*)(void))hold_all, METH_FASTCALL,
     "hold_all(locks, fn, /)\n--\n\nfn() holding every lock of the tuple; all are released whatever happens."},
    {NULL},
};

/* An attribute of an imported module, as a new reference. */
static PyObject *
import_attr(const char *module, const char *name)
{
    PyObject *m = PyImport_ImportModule(module);
    if (m == NULL)
        return NULL;
    PyObject *attr = PyObject_GetAttrString(m, name);
    Py_DECREF(m);
    return attr;
}

static int
speedups_exec(PyObject *module)
{
/* Interned once per process: a second exec (a fresh import after the
 * module left sys.modules) reuses them. */
#define INTERN(var, text)                                                   \
    if (var == NULL && (var = PyUnicode_InternFromString(text)) == NULL) \
        return -1;
    INTERN(str_check_not_computing, "_check_not_computing");
    INTERN(str_delitem, "_delitem");
    INTERN(str_get_slow, "_get_slow");
    INTERN(str_contains_slow, "_contains_slow");
    INTERN(str_len_slow, "_len_slow");
    INTERN(str_hit_slow, "_hit_slow");
    INTERN(str_miss, "_miss");
    INTERN(str_call_slow, "_call_slow");
    INTERN(str_bind, "_bind");
    INTERN(str_wait_readable, "_wait_readable_locked");
    INTERN(str_wait_writable, "_wait_writable_locked");
    INTERN(str_is_owned, "_is_owned");
    INTERN(str_release_save, "_release_save");
    INTERN(str_acquire_restore, "_acquire_restore");
    INTERN(str_recursion_count, "_recursion_count");
    INTERN(str_at_fork_reinit, "_at_fork_reinit");
    INTERN(str_acquire, "acquire");
    INTERN(str_release, "release");
    INTERN(str_remove, "remove");
    INTERN(str_token_key, "mapsafe._speedups.token");
#undef INTERN
    /* Process-wide objects, made by the first exec and kept for the process. */
    if (allocate_lock == NULL && (allocate_lock = import_attr("_thread", "allocate_lock")) == NULL)
        return -1;
    if (rlock_type == NULL && (rlock_type = import_attr("_thread", "RLock")) == NULL)
        return -1;
    if (minus_one == NULL && (minus_one = PyFloat_FromDouble(-1)) == NULL)
        return -1;
    if (one == NULL && (one = PyLong_FromLong(1)) == NULL)
        return -1;
#define OPERATOR(var, name)                                                  \
    if (var == NULL && (var = import_attr("operator", name)) == NULL) \
        return -1;
    OPERATOR(op_add, "add");
    OPERATOR(op_sub, "sub");
    OPERATOR(op_mul, "mul");
    OPERATOR(op_or, "or_");
    OPERATOR(op_and, "and_");
    OPERATOR(op_xor, "xor");
#undef OPERATOR
    if (sentinel_missing == NULL && (sentinel_missing = import_attr("mapsafe.sentinels", "MISSING")) == NULL)
        return -1;
    if (sentinel_delete == NULL && (sentinel_delete = import_attr("mapsafe.sentinels", "DELETE")) == NULL)
        return -1;
    if (maplock_type == NULL && (maplock_type = (PyTypeObject *)PyType_FromSpec(&maplock_spec)) == NULL)
        return -1;
    if (PyModule_AddObjectRef(module, "MapLock", (PyObject *)maplock_type) < 0)
        return -1;
    if (token_type == NULL && (token_type = PyType_FromSpec(&token_spec)) == NULL)
        return -1;
    if (faults_point == NULL) {
        const char *flag = Py_GETENV("MAPSAFE_FAULTS");
        faults_enabled = flag != NULL && strcmp(flag, "1") == 0;
        if (faults_enabled && (faults_point = import_attr("mapsafe._faults", "point")) == NULL)
            return -1;
    }
    speedups_state *state = PyModule_GetState(module);
    if (add_type(module, &rw_spec, NULL, &state->rw_type) < 0 || add_type(module, &sync_spec, NULL, NULL) < 0 ||
        add_type(module, &locked_spec, NULL, NULL) < 0 || add_type(module, &sharded_spec, NULL, NULL) < 0 ||
        add_type(module, &prof_spec, NULL, NULL) < 0 || add_type(module, &hold_spec, NULL, NULL) < 0 ||
        add_type(module, &reader_spec, NULL, NULL) < 0 ||
        add_type(module, &cache_spec, NULL, NULL) < 0 ||
        add_type(module, &cached_spec, NULL, NULL) < 0)
        return -1;
    return PyModule_AddIntConstant(module, "FAULTS", faults_enabled);
}

static PyModuleDef_Slot speedups_slots[] = {
    {Py_mod_exec, speedups_exec},
#ifdef Py_mod_multiple_interpreters
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#endif
#ifdef Py_mod_gil
    /* Safe without the GIL: see the comment at the top of this file. */
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static int
speedups_traverse(PyObject *module, visitproc visit, void *arg)
{
    speedups_state *state = PyModule_GetState(module);
    Py_VISIT(state->rw_type);
    return 0;
}

static int
speedups_clear(PyObject *module)
{
    speedups_state *state = PyModule_GetState(module);
    Py_CLEAR(state->rw_type);
    return 0;
}

static void
speedups_free(void *module)
{
    speedups_clear((PyObject *)module);
}

/* With a non-zero m_size, importlib.reload does not run speedups_exec
 * again. A fresh import (after the module left sys.modules) does, and makes
 * new types; classes built on the old ones keep working, because
 * locked_core_init finds the state of the module its own type came from
 * (PyType_GetModuleByDef). */
static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "mapsafe._speedups",
    .m_doc = "The C core: the maps' hot paths (see _pycore.py).",
    .m_size = sizeof(speedups_state),
    .m_slots = speedups_slots,
    .m_methods = speedups_functions,
    .m_traverse = speedups_traverse,
    .m_clear = speedups_clear,
    .m_free = speedups_free,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&speedups_module);
}
