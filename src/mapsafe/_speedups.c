/* _speedups: the C core, the maps' hot paths in C (_pycore.py is the same in Python).
 *
 * Each type here is the base of one map (SyncCore of SyncMap, LockedCore of
 * LockedMap, ShardedCore of ShardedMap) or of RWLock (RWCore). It holds the
 * fields its hot paths read, and implements only those paths: reads, stores
 * and the dispatch of `del m[k]`. Everything else, including every slow
 * path (contention, stats, caches, recursive-update errors), is Python in
 * the subclass, which these functions call back into by name.
 *
 * Fields are set once, by _core_init, and a second _core_init raises, so
 * reading a field needs no lock. Each core's "ready" field (the one its hot
 * paths test against NULL) is stored last with release ordering and loaded
 * with acquire ordering (LOAD_READY/STORE_READY), so even a thread that gets
 * hold of an object before its __init__ returns sees all fields or none.
 *
 * Free-threaded CPython: the module declares Py_MOD_GIL_NOT_USED. The only
 * operations treated as atomic are single dict operations (PyDict_*), which
 * lock the dict internally on free-threaded builds. Dict reads use
 * PyDict_GetItemRef there (a strong reference: a borrowed one could be
 * freed by a concurrent store). Everything else runs holding the map's
 * lock, exactly as the Python core does.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <structmember.h>

/* Names of the Python methods the fast paths fall back on; interned once. */
static PyObject *str_check_not_computing; /* MapBase._check_not_computing(key) */
static PyObject *str_delitem;             /* MapBase._delitem(key) */
static PyObject *str_get_slow;            /* the map's get when the fast one does not apply */
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

/* m[k] = v, called holding the lock that guards writes of key: first
 * RecursiveUpdateError if this thread's compute callback is computing key,
 * then the store, into d, or through put(key, value) when put is not None
 * (a cache shard's put_locked). `computing` may change meanwhile for keys
 * of other shards, so each look at it is one atomic dict operation
 * (PyDict_Size, PyDict_Contains). */
static int
store_locked(PyObject *self, PyObject *computing, PyObject *d, PyObject *put, PyObject *key, PyObject *value)
{
    if (PyDict_Size(computing) != 0) {
        int busy = PyDict_Contains(computing, key);
        if (busy < 0 || (busy && call_method_onearg(self, str_check_not_computing, key) < 0))
            return -1;
    }
    if (put == Py_None)
        return PyDict_SetItem(d, key, value);
    PyObject *r = PyObject_CallFunctionObjArgs(put, key, value, NULL);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
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

/* -- RWCore: the state of an RWLock that LockedMap's fast paths read ------------ */

typedef struct {
    PyObject_HEAD
    /* ident of the thread holding the write lock, or None; guarded by the
     * RWLock's _mu (see rwlock.py for the invariants). */
    PyObject *writer;
    /* thread ident -> read hold count; guarded by _mu. */
    PyObject *readers;
} RWCore;

CORE_GC(rw, offsetof(RWCore, writer), offsetof(RWCore, readers))

static PyMemberDef rw_members[] = {
    {"_writer", T_OBJECT, offsetof(RWCore, writer), 0, "ident of the write-lock holder, or None; guarded by _mu"},
    {"_readers", T_OBJECT_EX, offsetof(RWCore, readers), 0, "ident -> read hold count; guarded by _mu"},
    {NULL},
};

static PyType_Slot rw_slots[] = {
    {Py_tp_doc, "The fields of an RWLock that LockedMap's C fast paths read."},
    {Py_tp_traverse, rw_traverse},
    {Py_tp_clear, rw_clear},
    {Py_tp_dealloc, rw_dealloc},
    {Py_tp_members, rw_members},
    {0, NULL},
};

static PyType_Spec rw_spec = {
    "mapsafe._speedups.RWCore", sizeof(RWCore), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC, rw_slots,
};

/* The module's state: the RWCore type, which LockedCore checks its RWLock against. */
typedef struct {
    PyTypeObject *rw_type;
} speedups_state;

static struct PyModuleDef speedups_module;

/* -- SyncCore ------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    PyObject *d;         /* the entries; read lock-free, written holding the write lock */
    PyObject *acquire;   /* the write lock's acquire (reentrant) */
    PyObject *release;   /* its release */
    PyObject *computing; /* key -> ident of its compute callback's thread; guarded by the write lock */
} SyncCore;

CORE_GC(sync, offsetof(SyncCore, d), offsetof(SyncCore, acquire), offsetof(SyncCore, release),
        offsetof(SyncCore, computing))

static PyObject *
sync_core_init(SyncCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (check_nargs(nargs, 4) < 0)
        return NULL;
    if (check_dict("_d", args[0]) < 0 || check_callable("_acquire", args[1]) < 0 ||
        check_callable("_release", args[2]) < 0 || check_dict("_computing", args[3]) < 0)
        return NULL;
    int status;
    BEGIN_INIT(self);
    status = check_fresh((PyObject *)self, self->d);
    if (status == 0) {
        self->acquire = Py_NewRef(args[1]);
        self->release = Py_NewRef(args[2]);
        self->computing = Py_NewRef(args[3]);
        STORE_READY(self->d, Py_NewRef(args[0]));
    }
    END_INIT();
    if (status < 0)
        return NULL;
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

/* m[k] = v: one dict store holding the write lock; del m[k]: MapBase._delitem. */
static int
sync_ass_subscript(SyncCore *self, PyObject *key, PyObject *value)
{
    if (value == NULL)
        return call_method_onearg((PyObject *)self, str_delitem, key);
    PyObject *d = LOAD_READY(self->d);
    if (d == NULL)
        return not_initialised((PyObject *)self);
    if (call_noargs(self->acquire) < 0)
        return -1;
    int status = store_locked((PyObject *)self, self->computing, d, Py_None, key, value);
    return release_chaining_error(self->release, status);
}

static PyMemberDef sync_members[] = {
    {"_d", T_OBJECT_EX, offsetof(SyncCore, d), READONLY, "the entries; read lock-free, written holding the write lock"},
    {"_acquire", T_OBJECT_EX, offsetof(SyncCore, acquire), READONLY, "the write lock's acquire"},
    {"_release", T_OBJECT_EX, offsetof(SyncCore, release), READONLY, "the write lock's release"},
    {"_computing", T_OBJECT_EX, offsetof(SyncCore, computing), READONLY,
     "key -> ident of the thread computing it; guarded by the write lock"},
    {NULL},
};

static PyMethodDef sync_methods[] = {
    {"_core_init", (PyCFunction)(void (*)(void))sync_core_init, METH_FASTCALL,
     "_core_init($self, d, acquire, release, computing, /)\n--\n\nSet the fields, once."},
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
    {0, NULL},
};

static PyType_Spec sync_spec = {
    "mapsafe._speedups.SyncCore", sizeof(SyncCore), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC, sync_slots,
};

/* -- LockedCore ---------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *d;         /* the entries; read and written holding rw (its mutex, or read/write lock) */
    PyObject *rw;        /* the RWLock guarding d; an RWCore */
    PyObject *acquire;   /* rw._mu.acquire (or the profiled one) */
    PyObject *release;   /* rw._mu.release */
    PyObject *computing; /* key -> ident of its compute callback's thread; guarded by rw._mu */
    int counting;        /* 1 when stats are on: get counts hits and misses in Python */
} LockedCore;

CORE_GC(locked, offsetof(LockedCore, d), offsetof(LockedCore, rw), offsetof(LockedCore, acquire),
        offsetof(LockedCore, release), offsetof(LockedCore, computing))

static PyObject *
locked_core_init(LockedCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (check_nargs(nargs, 6) < 0)
        return NULL;
    if (check_dict("_d", args[0]) < 0 || check_callable("_acquire", args[2]) < 0 ||
        check_callable("_release", args[3]) < 0 || check_dict("_computing", args[4]) < 0)
        return NULL;
    PyObject *module = PyType_GetModuleByDef(Py_TYPE(self), &speedups_module);
    if (module == NULL)
        return NULL;
    speedups_state *state = PyModule_GetState(module);
    if (!PyObject_TypeCheck(args[1], state->rw_type)) {
        PyErr_Format(PyExc_TypeError, "_rw must be an RWLock, not %.100s", Py_TYPE(args[1])->tp_name);
        return NULL;
    }
    if (check_bool("counting", args[5]) < 0)
        return NULL;
    int status;
    BEGIN_INIT(self);
    status = check_fresh((PyObject *)self, self->d);
    if (status == 0) {
        self->rw = Py_NewRef(args[1]);
        self->acquire = Py_NewRef(args[2]);
        self->release = Py_NewRef(args[3]);
        self->computing = Py_NewRef(args[4]);
        self->counting = args[5] == Py_True;
        STORE_READY(self->d, Py_NewRef(args[0]));
    }
    END_INIT();
    if (status < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* Wait, holding rw._mu, until no thread writes (for reads) or until no
 * thread reads or writes (for writes); rw's fields are guarded by _mu,
 * which the caller holds. Waiting is rare and stays in Python. */
static int
wait_rw_locked(LockedCore *self, int for_write)
{
    RWCore *rw = (RWCore *)self->rw;
    int busy = rw->writer != NULL && rw->writer != Py_None;
    if (!busy && for_write) {
        Py_ssize_t readers = rw->readers == NULL ? 0 : PyDict_Size(rw->readers);
        if (readers < 0)
            return -1;
        busy = readers > 0;
    }
    if (!busy)
        return 0;
    PyObject *r = PyObject_CallMethodNoArgs(self->rw, for_write ? str_wait_writable : str_wait_readable);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
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
    int status = wait_rw_locked(self, 0);
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
    PyObject *d = LOAD_READY(self->d);
    if (d == NULL)
        return not_initialised((PyObject *)self);
    if (call_noargs(self->acquire) < 0)
        return -1;
    int status = wait_rw_locked(self, 1);
    if (status == 0)
        status = store_locked((PyObject *)self, self->computing, d, Py_None, key, value);
    return release_chaining_error(self->release, status);
}

static PyMemberDef locked_members[] = {
    {"_d", T_OBJECT_EX, offsetof(LockedCore, d), READONLY, "the entries; guarded by _rw"},
    {"_rw", T_OBJECT_EX, offsetof(LockedCore, rw), READONLY, "the RWLock guarding _d"},
    {"_acquire", T_OBJECT_EX, offsetof(LockedCore, acquire), READONLY, "_rw._mu.acquire (or the profiled one)"},
    {"_release", T_OBJECT_EX, offsetof(LockedCore, release), READONLY, "_rw._mu.release"},
    {"_computing", T_OBJECT_EX, offsetof(LockedCore, computing), READONLY,
     "key -> ident of the thread computing it; guarded by _rw._mu"},
    {NULL},
};

static PyMethodDef locked_methods[] = {
    {"_core_init", (PyCFunction)(void (*)(void))locked_core_init, METH_FASTCALL,
     "_core_init($self, d, rw, acquire, release, computing, counting, /)\n--\n\nSet the fields, once."},
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

typedef struct {
    PyObject_HEAD
    PyObject *maps;      /* tuple: each shard's dict, read lock-free */
    PyObject *stripes;   /* tuple: per shard (acquire, release, dict, put_locked or None) */
    PyObject *computing; /* key -> ident of its compute callback's thread; changed holding the key's shard */
    Py_ssize_t n;        /* number of shards, > 0 */
    int plain_get;       /* 1: get is one dict lookup (no maxsize, ttl or stats) */
} ShardedCore;

CORE_GC(sharded, offsetof(ShardedCore, maps), offsetof(ShardedCore, stripes), offsetof(ShardedCore, computing))

static PyObject *
sharded_core_init(ShardedCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (check_nargs(nargs, 4) < 0)
        return NULL;
    if (check_dict("_computing", args[2]) < 0)
        return NULL;
    PyObject *maps = args[0], *stripes = args[1];
    if (!PyTuple_CheckExact(maps) || !PyTuple_CheckExact(stripes) || PyTuple_GET_SIZE(maps) == 0 ||
        PyTuple_GET_SIZE(maps) != PyTuple_GET_SIZE(stripes)) {
        PyErr_SetString(PyExc_TypeError, "_maps and _stripes must be tuples of the same, non-zero length");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(maps); i++) {
        PyObject *stripe = PyTuple_GET_ITEM(stripes, i);
        if (check_dict("each of _maps", PyTuple_GET_ITEM(maps, i)) < 0)
            return NULL;
        if (!PyTuple_CheckExact(stripe) || PyTuple_GET_SIZE(stripe) != 4 ||
            PyTuple_GET_ITEM(stripe, 2) != PyTuple_GET_ITEM(maps, i)) {
            PyErr_SetString(PyExc_TypeError, "each of _stripes must be (acquire, release, its shard's dict, put)");
            return NULL;
        }
    }
    if (check_bool("plain_get", args[3]) < 0)
        return NULL;
    int status;
    BEGIN_INIT(self);
    status = check_fresh((PyObject *)self, self->maps);
    if (status == 0) {
        self->stripes = Py_NewRef(stripes);
        self->computing = Py_NewRef(args[2]);
        self->n = PyTuple_GET_SIZE(maps);
        self->plain_get = args[3] == Py_True;
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

static int
sharded_ass_subscript(ShardedCore *self, PyObject *key, PyObject *value)
{
    if (value == NULL)
        return call_method_onearg((PyObject *)self, str_delitem, key);
    if (LOAD_READY(self->maps) == NULL)
        return not_initialised((PyObject *)self);
    Py_ssize_t i = shard_of(self, key);
    if (i < 0)
        return -1;
    PyObject *stripe = PyTuple_GET_ITEM(self->stripes, i);
    if (call_noargs(PyTuple_GET_ITEM(stripe, 0)) < 0)
        return -1;
    int status = store_locked((PyObject *)self, self->computing, PyTuple_GET_ITEM(stripe, 2),
                              PyTuple_GET_ITEM(stripe, 3), key, value);
    return release_chaining_error(PyTuple_GET_ITEM(stripe, 1), status);
}

static PyMemberDef sharded_members[] = {
    {"_maps", T_OBJECT_EX, offsetof(ShardedCore, maps), READONLY, "each shard's dict, for lock-free reads"},
    {"_stripes", T_OBJECT_EX, offsetof(ShardedCore, stripes), READONLY,
     "per shard (acquire, release, dict, put_locked or None)"},
    {"_computing", T_OBJECT_EX, offsetof(ShardedCore, computing), READONLY,
     "key -> ident of the thread computing it; changed holding the key's shard"},
    {"_n", T_PYSSIZET, offsetof(ShardedCore, n), READONLY, "number of shards"},
    {NULL},
};

static PyMethodDef sharded_methods[] = {
    {"_core_init", (PyCFunction)(void (*)(void))sharded_core_init, METH_FASTCALL,
     "_core_init($self, maps, stripes, computing, plain_get, /)\n--\n\nSet the fields, once."},
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
    INTERN(str_wait_readable, "_wait_readable_locked");
    INTERN(str_wait_writable, "_wait_writable_locked");
#undef INTERN
    speedups_state *state = PyModule_GetState(module);
    if (add_type(module, &rw_spec, NULL, &state->rw_type) < 0 || add_type(module, &sync_spec, NULL, NULL) < 0 ||
        add_type(module, &locked_spec, NULL, NULL) < 0 || add_type(module, &sharded_spec, NULL, NULL) < 0)
        return -1;
    return 0;
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
    .m_traverse = speedups_traverse,
    .m_clear = speedups_clear,
    .m_free = speedups_free,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&speedups_module);
}
