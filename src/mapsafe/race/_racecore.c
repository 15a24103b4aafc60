/* _racecore: the race detector's per-operation dispatch in C (helpers.py is the same in Python).
 *
 * Rewritten code calls a helper for every subscript, `in`, `.get()`,
 * builtin call, call argument and formatted value (helpers.getitem,
 * setitem, get, contains, wcall1, arg, fmt). Most of those operations are
 * on objects that are not maps
 * (a list index, len(a_list)), and most map operations are a plain dict
 * with a str or int key. This module does exactly those two cases without
 * running Python code of the detector's:
 *
 *   - an object whose kind (kinds._KINDS, type -> int) says it is not a map,
 *     or no detector running: the operation itself;
 *   - a plain dict with an exact str or int key (hashing and comparing them
 *     runs no program code): FastTrack's same-epoch checks on the key's
 *     state, or, while one thread owns the map, that thread's record of the
 *     access (shadow.Shadow's "one thread's map"), done here (fast_check,
 *     own_record); when they do not settle it, Detector.read_key /
 *     write_key, called directly with the program's own frame. Then the
 *     operation.
 *
 * fast_check reads the detector's own objects (ThreadState, _DictShadow,
 * _KeyState, Access: classes with __slots__) by their slots' offsets, under
 * the same discipline as shadow.py: a thread's own ThreadState fields are
 * its own; a _DictShadow's lock and keys are set once; a key state's w and r
 * are read holding the dict shadow's lock on free-threaded builds (with the
 * GIL, nothing here lets another thread run in between: no Python code
 * runs, as the probe key is an exact str or int and the stored keys are
 * those or shadow._ById objects, which compare by identity in C); an Access
 * is never changed once made.
 *
 * capture() is shadow.capture in C: the (code, line) stack of an access,
 * interned in shadow._STACKS, skipping and stopping at the same files.
 *
 * Everything else goes to the Python helper of the same name, which makes
 * the whole decision again. A C function adds no Python frame, so the
 * Python helper's sys._getframe(1) is still the program's frame.
 *
 * The active detector is set by helpers.start()/stop(). A detector once set
 * is never freed (kept in `retired`): a thread that loaded the pointer just
 * before stop() may still use it. Detectors are one per run (and per forked
 * child), so this is bounded.
 *
 * Free-threaded CPython: the module declares Py_MOD_GIL_NOT_USED. The
 * detector pointer is stored with release and loaded with acquire ordering;
 * the kinds and deep-reader tables are read with single dict operations
 * (PyDict_GetItemRef: a strong reference), as the Python helpers read them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#ifdef Py_GIL_DISABLED
#define LOAD_PTR(field) ((PyObject *)_Py_atomic_load_ptr_acquire(&(field)))
#define STORE_PTR(field, value) _Py_atomic_store_ptr_release(&(field), (value))
#else
#define LOAD_PTR(field) (field)
#define STORE_PTR(field, value) ((field) = (value))
#endif

/* Set once by init(); read-only afterwards. */
static PyObject *kinds;      /* kinds._KINDS: type -> int kind */
static PyObject *deep_by_id; /* calls.DEEP_BY_ID: id(f) -> True for deep readers */
static PyObject *retired;    /* every detector ever set: never freed (see above) */
static PyObject *py_getitem, *py_setitem, *py_get, *py_contains, *py_wcall1, *py_arg, *py_fmt;
static PyObject *str_read_key, *str_write_key, *op_getitem, *op_setitem, *op_get, *op_in;

/* One per detector ever set, never freed: the detector and its tables. */
typedef struct {
    PyObject *D;           /* the Detector */
    PyObject *by_ident;    /* D.by_ident: get_ident() -> ThreadState */
    PyObject *dicts;       /* D.shadow.dicts: id(dict) -> _DictShadow */
    PyObject *last_access; /* D.shadow.last_access: tid -> epoch of its latest remembered access */
    Py_ssize_t history;    /* D.shadow.history: the bound on key records per map */
} Active;

static Active *active; /* the active detector, or NULL; see LOAD_PTR */

/* The detector's classes, and their slots' offsets; set once by init(). */
static PyTypeObject *ThreadState_type, *DictShadow_type, *KeyState_type, *Access_type;
static Py_ssize_t off_ts_tid, off_ts_vc, off_ts_busy, off_ds_lock, off_ds_keys, off_ks_w, off_ks_r, off_acc_tid,
    off_acc_clk, off_ds_owner, off_ds_ow, off_ds_orr, off_ds_okw, off_ds_ovw;

/* The owner phase's tables, set once by init_owner(): shadow.FINALIZING
 * (threads in a finalizer now), packed.OP_INDEX (op -> index),
 * packed.STACK_INDEX (id(stack) -> index) and the widths of the fields of a
 * packed record (see race/packed.py). */
static PyObject *finalizing, *op_index, *stack_index;
static int op_bits, stack_bits;

static PyObject *capture_impl(PyObject *frame, Py_ssize_t depth, int stop);
static PyObject *str_acquire, *str_release;

#define SLOT(obj, off) (*(PyObject **)((char *)(obj) + (off)))

#define KIND_NONE 0
#define KIND_CONTAINER (-1)
#define KIND_UNKNOWN 1 /* not in the table yet: the Python helper classifies it */

/* The kind of type t, as _KINDS.get(t, 1); -2 with an exception set. */
static long
kind_of(PyTypeObject *t)
{
    PyObject *value;
#if PY_VERSION_HEX >= 0x030D0000
    int found = PyDict_GetItemRef(kinds, (PyObject *)t, &value);
    if (found < 0)
        return -2;
    if (found == 0)
        return KIND_UNKNOWN;
    long k = PyLong_AsLong(value);
    Py_DECREF(value);
#else
    value = PyDict_GetItemWithError(kinds, (PyObject *)t);
    if (value == NULL)
        return PyErr_Occurred() ? -2 : KIND_UNKNOWN;
    long k = PyLong_AsLong(value);
#endif
    if (k == -1 && PyErr_Occurred())
        return -2;
    return k;
}

/* Whether f is a deep reader (looks inside lists and tuples); -1 on error. */
static int
is_deep(PyObject *f)
{
    PyObject *id = PyLong_FromVoidPtr(f);
    if (id == NULL)
        return -1;
    int r = PyDict_Contains(deep_by_id, id);
    Py_DECREF(id);
    return r;
}

/* Keys whose hash and == run no program code. */
static inline int
plain_key(PyObject *key)
{
    return PyUnicode_CheckExact(key) || PyLong_CheckExact(key);
}

/* D.read_key(d, key, op, frame) or D.write_key(d, key, op, keyset, frame). */
static int
record(PyObject *D, PyObject *name, PyObject *d, PyObject *key, PyObject *op, PyObject *keyset)
{
    PyObject *frame = (PyObject *)PyEval_GetFrame(); /* borrowed: the program's frame */
    if (frame == NULL)
        frame = Py_None;
    PyObject *args[6] = {D, d, key, op, keyset, frame};
    Py_ssize_t n = 5;
    if (keyset == NULL) {
        args[4] = frame;
        n = 4;
    }
    PyObject *r = PyObject_VectorcallMethod(name, args, n + 1, NULL);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

static PyObject *
fallback(PyObject *fn, PyObject *const *args, Py_ssize_t nargs)
{
    return PyObject_Vectorcall(fn, args, nargs, NULL);
}

static int
check_init(void)
{
    if (kinds == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "mapsafe.race._racecore: init() was not called");
        return -1;
    }
    return 0;
}

/* A dict lookup giving a strong reference (NULL: missing, or an error set). */
static PyObject *
dict_get(PyObject *d, PyObject *key)
{
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *value;
    if (PyDict_GetItemRef(d, key, &value) <= 0)
        return NULL;
    return value;
#else
    PyObject *value = PyDict_GetItemWithError(d, key);
    return value != NULL ? Py_NewRef(value) : NULL;
#endif
}

/* Whether Access `acc` is this thread's, in epoch `clk`. */
static inline int
same_epoch(PyObject *acc, PyObject *tid, long clk)
{
    if (Py_TYPE(acc) != Access_type)
        return 0;
    PyObject *atid = SLOT(acc, off_acc_tid), *aclk = SLOT(acc, off_acc_clk);
    if (atid == NULL || aclk == NULL)
        return 0;
    if (atid != tid && PyLong_AsLong(atid) != PyLong_AsLong(tid))
        return 0;
    return PyLong_AsLong(aclk) == clk;
}

/* The clock of an owner record (see packed.pack); -1 on an error. */
static inline long long
packed_clock(PyObject *packed)
{
    long long v = PyLong_AsLongLong(packed);
    return v < 0 ? -1 : v >> (op_bits + stack_bits);
}

/* index[key] as a C long in [0, 2**bits): 1 when found, 0 when missing, -1 on an error. */
static int
table_index(PyObject *index, PyObject *key, int bits, long *out)
{
    PyObject *v = dict_get(index, key);
    if (v == NULL)
        return PyErr_Occurred() ? -1 : 0;
    *out = PyLong_AsLong(v);
    Py_DECREF(v);
    if (*out == -1 && PyErr_Occurred())
        return -1;
    return *out >= 0 && *out < (1L << bits);
}

/* Set slot `off` of `obj` to a new reference to `value`. The old value is
 * an owner record (a tuple of an int and keys of the program's, or their
 * _ById, which the map's own tables hold too), so dropping it runs no
 * program code. */
static inline void
set_slot(PyObject *obj, Py_ssize_t off, PyObject *value)
{
    PyObject *old = SLOT(obj, off);
    SLOT(obj, off) = Py_NewRef(value);
    Py_XDECREF(old);
}

/* Shadow._own_locked for the owner's access to plain key `key` of the map
 * whose shadow is `ds` (the caller holds its lock on free-threaded builds):
 * 1 when done, 0 when Python must do it (a thread in a finalizer, a new op,
 * the history bound reached), -1 on an error. `write`: see fast_check. */
static int own_record_inner(Active *A, PyObject *ds, PyObject *key, int write, PyObject *op, long clk,
                            PyObject *clk_obj, PyObject *tid);

/* own_record_inner with the thread's `busy` set, as Detector.read_key sets
 * it: making a stack or a record may run the cyclic GC, and a finalizer's
 * map access then must not come back in here (on free-threaded builds this
 * thread holds the map's lock). `ts` is the calling thread's own state. */
static int
own_record(Active *A, PyObject *ts, PyObject *ds, PyObject *key, int write, PyObject *op, long clk,
           PyObject *clk_obj, PyObject *tid)
{
    PyObject *was = SLOT(ts, off_ts_busy); /* ours: only this thread writes it */
    SLOT(ts, off_ts_busy) = Py_NewRef(Py_True);
    int rc = own_record_inner(A, ds, key, write, op, clk, clk_obj, tid);
    SLOT(ts, off_ts_busy) = was; /* the reference moves back */
    Py_DECREF(Py_True);
    return rc;
}

static int
own_record_inner(Active *A, PyObject *ds, PyObject *key, int write, PyObject *op, long clk, PyObject *clk_obj,
                 PyObject *tid)
{
    PyObject *ow = SLOT(ds, off_ds_ow), *orr = SLOT(ds, off_ds_orr); /* set once */
    if (ow == NULL || orr == NULL || !PyDict_CheckExact(ow) || !PyDict_CheckExact(orr))
        return 0;
    /* Racy as Python's `if FINALIZING` is, and as harmless: this thread's own
     * entry was set by this thread, so it is always seen; another thread's
     * entry only sends this access to Python. */
    if (finalizing == NULL || PyDict_GET_SIZE(finalizing) > 0)
        return 0;
    /* FastTrack's same epoch, one thread's part (as in _own_locked). */
    PyObject *w = NULL, *r = NULL;
    int same = 0;
    if (write == 1) {
        w = dict_get(ow, key);
        if (w != NULL && packed_clock(w) == clk) {
            r = dict_get(orr, key);
            same = r == NULL ? !PyErr_Occurred() : packed_clock(r) == clk;
        }
    }
    else if (write == 0) {
        r = dict_get(orr, key);
        if (r != NULL)
            same = packed_clock(r) == clk;
        else if (!PyErr_Occurred()) {
            w = dict_get(ow, key);
            same = w != NULL && packed_clock(w) == clk;
        }
    }
    Py_XDECREF(w);
    Py_XDECREF(r);
    if (PyErr_Occurred())
        return -1;
    if (same)
        return 1;
    if (PyDict_GET_SIZE(ow) + PyDict_GET_SIZE(orr) >= A->history) /* Python records it and evicts */
        return 0;
    if (clk < 0 || (long long)clk > (LLONG_MAX >> (op_bits + stack_bits))) /* Python packs it in a big int */
        return 0;
    long op_i, stack_i;
    int found = table_index(op_index, op, op_bits, &op_i);
    if (found <= 0)
        return found; /* a new op: Python gives it an index */
    PyObject *frame = (PyObject *)PyEval_GetFrame(); /* borrowed: the program's frame */
    PyObject *stack = capture_impl(frame != NULL ? frame : Py_None, -1, 1), *packed = NULL, *sid = NULL;
    int rc = -1;
    if (stack == NULL || (sid = PyLong_FromVoidPtr(stack)) == NULL)
        goto out;
    found = table_index(stack_index, sid, stack_bits, &stack_i);
    if (found <= 0) { /* a new stack: Python gives it an index */
        rc = found;
        goto out;
    }
    packed = PyLong_FromLongLong((long long)clk << (op_bits + stack_bits) | (long long)stack_i << op_bits | op_i);
    if (packed == NULL)
        goto out;
    if (write) {
        if (PyDict_SetItem(ow, key, packed) < 0)
            goto out;
        if (PyDict_GET_SIZE(orr) > 0 && PyDict_DelItem(orr, key) < 0) {
            if (!PyErr_ExceptionMatches(PyExc_KeyError))
                goto out;
            PyErr_Clear();
        }
        PyObject *rec = PyTuple_Pack(3, packed, key, key); /* a plain key is its own shadow key */
        if (rec == NULL)
            goto out;
        set_slot(ds, off_ds_ovw, rec);
        if (write == 2)
            set_slot(ds, off_ds_okw, rec);
        Py_DECREF(rec);
    }
    else if (PyDict_SetItem(orr, key, packed) < 0)
        goto out;
    if (PyDict_SetItem(A->last_access, tid, clk_obj) < 0)
        goto out;
    rc = 1;
out:
    Py_XDECREF(packed);
    Py_XDECREF(sid);
    Py_XDECREF(stack);
    return rc;
}

/* FastTrack's same-epoch cases of Shadow.key_read / key_write (see there),
 * and the owner phase's records, for a plain dict `d` and an exact str or
 * int `key`: 1 when they settle the access, 0 when Python must look, -1 on
 * an error. `write` is 0 for a read, 1 for a write that keeps the key set,
 * 2 for one that changes it (those settle here only in the owner phase:
 * otherwise whole-map reads must be checked). `op` names the access. */
static int
fast_check(Active *A, PyObject *d, PyObject *key, int write, PyObject *op)
{
    int done = 0;
    PyObject *ident = NULL, *ts = NULL, *id = NULL, *ds = NULL, *ks = NULL, *clk_obj = NULL;
    ident = PyLong_FromUnsignedLong(PyThread_get_thread_ident());
    if (ident == NULL)
        return -1;
    ts = dict_get(A->by_ident, ident);
    if (ts == NULL || Py_TYPE(ts) != ThreadState_type)
        goto out;
    if (SLOT(ts, off_ts_busy) == Py_True) { /* inside the detector: accesses are not checked */
        done = 1;
        goto out;
    }
    PyObject *tid = SLOT(ts, off_ts_tid), *vc = SLOT(ts, off_ts_vc); /* ours: nobody else writes them */
    if (tid == NULL || vc == NULL || !PyDict_CheckExact(vc))
        goto out;
    id = PyLong_FromVoidPtr(d);
    if (id == NULL)
        goto error;
    ds = dict_get(A->dicts, id);
    if (ds == NULL || Py_TYPE(ds) != DictShadow_type)
        goto out;
    PyObject *keys = SLOT(ds, off_ds_keys), *lock = SLOT(ds, off_ds_lock); /* set once */
    if (keys == NULL || lock == NULL)
        goto out;
    clk_obj = dict_get(vc, tid);
    if (clk_obj == NULL)
        goto out;
    long clk = PyLong_AsLong(clk_obj);
    if (clk == -1 && PyErr_Occurred())
        goto error;
#ifdef Py_GIL_DISABLED
    PyObject *r0 = PyObject_CallMethodNoArgs(lock, str_acquire);
    if (r0 == NULL)
        goto error;
    Py_DECREF(r0);
#endif
    ks = dict_get(keys, key);
    PyObject *owner = ks == NULL && !PyErr_Occurred() ? SLOT(ds, off_ds_owner) : NULL;
    if (owner != NULL && owner != Py_None) {
        /* The owner phase (shadow.Shadow._owns): the owner's access is
         * recorded here; another thread's ends the phase, in Python. */
        long o = PyLong_AsLong(owner), t = PyLong_AsLong(tid);
        if (o == -1 || t == -1) {
            if (PyErr_Occurred())
                PyErr_Clear();
        }
        else if (o == t) {
            done = own_record(A, ts, ds, key, write, op, clk, clk_obj, tid);
        }
    }
    else if (ks != NULL && Py_TYPE(ks) == KeyState_type && write < 2) {
        PyObject *w = SLOT(ks, off_ks_w), *r = SLOT(ks, off_ks_r);
        if (w != NULL && r != NULL) {
            if (!write) {
                /* Our read in this epoch, or our write in it with no read since. */
                done = same_epoch(r, tid, clk) || (r == Py_None && same_epoch(w, tid, clk));
            }
            else {
                /* Our write in this epoch, and only we read since. */
                done = same_epoch(w, tid, clk) && (r == Py_None || same_epoch(r, tid, clk));
            }
        }
    }
#ifdef Py_GIL_DISABLED
    {
        PyObject *saved_type, *saved_value, *saved_tb;
        PyErr_Fetch(&saved_type, &saved_value, &saved_tb); /* release even with an error set */
        PyObject *r1 = PyObject_CallMethodNoArgs(lock, str_release);
        if (saved_type != NULL) /* the earlier error wins; a release error would be lost anyway */
            PyErr_Restore(saved_type, saved_value, saved_tb);
        if (r1 == NULL)
            goto error;
        Py_DECREF(r1);
    }
#endif
    if (PyErr_Occurred())
        goto error;
out:
    Py_XDECREF(ident);
    Py_XDECREF(ts);
    Py_XDECREF(id);
    Py_XDECREF(ds);
    Py_XDECREF(ks);
    Py_XDECREF(clk_obj);
    if (PyErr_Occurred()) /* a lookup failed: let Python do it (and see the error) */
        PyErr_Clear();
    return done;
error:
    Py_XDECREF(ident);
    Py_XDECREF(ts);
    Py_XDECREF(id);
    Py_XDECREF(ds);
    Py_XDECREF(ks);
    Py_XDECREF(clk_obj);
    return -1;
}

/* -- the helpers ------------------------------------------------------------- */

/* What a helper does next: the operation itself, or hand it all to Python. */
#define GO_ON 0
#define TO_PYTHON 1

/* For an object that is not a plain dict: GO_ON if its kind says it is no
 * map, TO_PYTHON if it is one (or not classified yet); -1 on an error. */
static int
not_a_map(PyObject *obj)
{
    long k = kind_of(Py_TYPE(obj));
    if (k == -2)
        return -1;
    return k > 0 ? TO_PYTHON : GO_ON;
}

/* A read of `key` in `obj` while detector A runs: recorded here for a plain
 * dict with a plain key (GO_ON), else as not_a_map decides; -1 on an error. */
static int
read_step(Active *A, PyObject *obj, PyObject *key, PyObject *op)
{
    if (!PyDict_CheckExact(obj))
        return not_a_map(obj);
    if (!plain_key(key))
        return TO_PYTHON;
    int done = fast_check(A, obj, key, 0, op);
    if (done < 0 || (!done && record(A->D, str_read_key, obj, key, op, NULL) < 0))
        return -1;
    return GO_ON;
}

static PyObject *
rc_getitem(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (check_init() < 0)
        return NULL;
    if (nargs != 2)
        return fallback(py_getitem, args, nargs);
    Active *A = (Active *)LOAD_PTR(active);
    int step = A != NULL ? read_step(A, args[0], args[1], op_getitem) : GO_ON;
    if (step < 0)
        return NULL;
    if (step == TO_PYTHON)
        return fallback(py_getitem, args, nargs);
    return PyObject_GetItem(args[0], args[1]);
}

static PyObject *
rc_setitem(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (check_init() < 0)
        return NULL;
    if (nargs != 3 && nargs != 4)
        return fallback(py_setitem, args, nargs);
    PyObject *value = args[0], *obj = args[1], *key = args[2];
    Active *A = (Active *)LOAD_PTR(active);
    if (A != NULL) {
        if (PyDict_CheckExact(obj)) {
            if (!plain_key(key))
                return fallback(py_setitem, args, nargs);
            int present = PyDict_Contains(obj, key);
            if (present < 0)
                return NULL;
            PyObject *op = nargs == 4 ? args[3] : op_setitem;
            int done = fast_check(A, obj, key, present ? 1 : 2, op);
            if (done < 0 ||
                (!done && record(A->D, str_write_key, obj, key, op, present ? Py_False : Py_True) < 0))
                return NULL;
        }
        else {
            int step = not_a_map(obj);
            if (step < 0)
                return NULL;
            if (step == TO_PYTHON)
                return fallback(py_setitem, args, nargs);
        }
    }
    if (PyObject_SetItem(obj, key, value) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
rc_get(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    /* Only a plain dict with a plain key is done here: `.get` is also a
     * queue's, and the Python helper models that. */
    if (check_init() < 0)
        return NULL;
    if ((nargs != 2 && nargs != 3) || !PyDict_CheckExact(args[0]))
        return fallback(py_get, args, nargs);
    PyObject *obj = args[0], *key = args[1];
    Active *A = (Active *)LOAD_PTR(active);
    int step = A != NULL ? read_step(A, obj, key, op_get) : GO_ON;
    if (step < 0)
        return NULL;
    if (step == TO_PYTHON)
        return fallback(py_get, args, nargs);
    PyObject *value;
#if PY_VERSION_HEX >= 0x030D0000
    int found = PyDict_GetItemRef(obj, key, &value);
    if (found < 0)
        return NULL;
    if (found)
        return value;
#else
    value = PyDict_GetItemWithError(obj, key);
    if (value != NULL)
        return Py_NewRef(value);
    if (PyErr_Occurred())
        return NULL;
#endif
    return Py_NewRef(nargs == 3 ? args[2] : Py_None);
}

static PyObject *
rc_contains(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (check_init() < 0)
        return NULL;
    if (nargs != 2)
        return fallback(py_contains, args, nargs);
    PyObject *key = args[0], *obj = args[1];
    Active *A = (Active *)LOAD_PTR(active);
    int step = A != NULL ? read_step(A, obj, key, op_in) : GO_ON;
    if (step < 0)
        return NULL;
    if (step == TO_PYTHON)
        return fallback(py_contains, args, nargs);
    int r = PySequence_Contains(obj, key);
    if (r < 0)
        return NULL;
    return PyBool_FromLong(r);
}

/* 1: the detector has nothing to do with argument a of f; 0: ask Python; -1: error. */
static int
arg_is_plain(PyObject *f, PyObject *a)
{
    long k = kind_of(Py_TYPE(a));
    if (k == -2)
        return -1;
    if (k == KIND_NONE)
        return 1;
    if (k == KIND_CONTAINER) {
        int deep = is_deep(f);
        return deep < 0 ? -1 : !deep;
    }
    return 0;
}

static PyObject *
rc_wcall1(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (check_init() < 0)
        return NULL;
    if (nargs != 2)
        return fallback(py_wcall1, args, nargs);
    if (LOAD_PTR(active) != NULL) {
        int plain = arg_is_plain(args[0], args[1]);
        if (plain < 0)
            return NULL;
        if (!plain)
            return fallback(py_wcall1, args, nargs);
    }
    return PyObject_CallOneArg(args[0], args[1]);
}

static PyObject *
rc_arg(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (check_init() < 0)
        return NULL;
    if (nargs != 2)
        return fallback(py_arg, args, nargs);
    if (LOAD_PTR(active) != NULL) {
        int plain = arg_is_plain(args[0], args[1]);
        if (plain < 0)
            return NULL;
        if (!plain)
            return fallback(py_arg, args, nargs);
    }
    return Py_NewRef(args[1]);
}

static PyObject *
rc_fmt(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    /* A value an f-string or `%` formats: Python looks inside maps and
     * containers; anything else is only passed on. */
    if (check_init() < 0)
        return NULL;
    if (nargs != 1)
        return fallback(py_fmt, args, nargs);
    if (LOAD_PTR(active) != NULL) {
        long k = kind_of(Py_TYPE(args[0]));
        if (k == -2)
            return NULL;
        if (k != KIND_NONE)
            return fallback(py_fmt, args, nargs);
    }
    return Py_NewRef(args[0]);
}

/* -- stacks ------------------------------------------------------------------ */

/* Set once by init_capture(): shadow's SKIP_FILES, STOP_FILES (sets, filled in
 * at start-up) and _STACKS (the interning dict), its bound and STACK_DEPTH. */
static PyObject *skip_files, *stop_files, *stacks;
static Py_ssize_t stacks_max, stack_depth;

#define MAX_DEPTH 64

/* capture(frame, depth=STACK_DEPTH, stop=True): see shadow.capture. */
static PyObject *
rc_capture(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (stacks == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "mapsafe.race._racecore: init_capture() was not called");
        return NULL;
    }
    if (nargs < 1 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "capture(frame, depth=8, stop=True)");
        return NULL;
    }
    Py_ssize_t depth = stack_depth;
    if (nargs > 1 && (depth = PyLong_AsSsize_t(args[1])) == -1 && PyErr_Occurred())
        return NULL;
    int stop = 1;
    if (nargs > 2 && (stop = PyObject_IsTrue(args[2])) < 0)
        return NULL;
    if (args[0] != Py_None && !PyFrame_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "capture: frame must be a frame or None");
        return NULL;
    }
    return capture_impl(args[0], depth, stop);
}

/* The walk of capture(): `frame` is a frame or None; depth -1 is STACK_DEPTH. */
static PyObject *
capture_impl(PyObject *frame, Py_ssize_t depth, int stop)
{
    if (depth == -1)
        depth = stack_depth;
    if (depth > MAX_DEPTH)
        depth = MAX_DEPTH;
    PyCodeObject *codes[MAX_DEPTH];
    PyFrameObject *frames[MAX_DEPTH];
    int lastis[MAX_DEPTH];
    Py_ssize_t n = 0;
    PyObject *result = NULL, *key = NULL;
    PyFrameObject *f = frame == Py_None ? NULL : (PyFrameObject *)Py_NewRef(frame);
    while (f != NULL && depth > 0) {
        PyCodeObject *code = PyFrame_GetCode(f);
        PyObject *filename = code->co_filename;
        int skip = PySet_Contains(skip_files, filename);
        int plumbing = skip ? 0 : PySet_Contains(stop_files, filename);
        if (skip < 0 || plumbing < 0) {
            Py_DECREF(code);
            goto done;
        }
        if (skip || (plumbing && !stop && n == 0)) {
            Py_DECREF(code);
            PyFrameObject *back = PyFrame_GetBack(f);
            Py_SETREF(f, back);
            continue;
        }
        if (plumbing) {
            Py_DECREF(code);
            break;
        }
        codes[n] = code; /* the reference is kept until done */
        frames[n] = (PyFrameObject *)Py_NewRef(f);
        lastis[n] = PyFrame_GetLasti(f);
        n++;
        depth--;
        PyFrameObject *back = PyFrame_GetBack(f);
        Py_SETREF(f, back);
    }
    /* Keyed by code ids and instruction offsets (cheap to get and to hash:
     * a line number is found by decoding the code's line table, done here
     * only for a stack not seen before); the stored stack holds the code
     * objects, so those ids cannot be reused. Python's capture keys by line:
     * the stacks it returns are equal, only this cache's keys differ. */
    key = PyTuple_New(2 * n);
    if (key == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *id = PyLong_FromVoidPtr(codes[i]), *line = PyLong_FromLong(lastis[i]);
        if (id == NULL || line == NULL) {
            Py_XDECREF(id);
            Py_XDECREF(line);
            goto done;
        }
        PyTuple_SET_ITEM(key, 2 * i, id);
        PyTuple_SET_ITEM(key, 2 * i + 1, line);
    }
    result = dict_get(stacks, key);
    if (result != NULL || PyErr_Occurred())
        goto done;
    PyObject *stack = PyTuple_New(n);
    if (stack == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        int line = PyFrame_GetLineNumber(frames[i]);
        /* As frame.f_lineno: None for a frame with no line. */
        PyObject *pair = line < 0 ? Py_BuildValue("(OO)", (PyObject *)codes[i], Py_None)
                                  : Py_BuildValue("(Oi)", (PyObject *)codes[i], line);
        if (pair == NULL) {
            Py_DECREF(stack);
            goto done;
        }
        PyTuple_SET_ITEM(stack, i, pair);
    }
    if (PyDict_Size(stacks) >= stacks_max)
        PyDict_Clear(stacks);
#if PY_VERSION_HEX >= 0x030D0000
    if (PyDict_SetDefaultRef(stacks, key, stack, &result) < 0)
        result = NULL;
#else
    result = PyDict_SetDefault(stacks, key, stack);
    Py_XINCREF(result);
#endif
    Py_DECREF(stack);
done:
    Py_XDECREF(f);
    Py_XDECREF(key);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_DECREF(codes[i]);
        Py_DECREF(frames[i]);
    }
    return result;
}

static PyObject *
rc_init_capture(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5 || !PyAnySet_Check(args[0]) || !PyAnySet_Check(args[1]) || !PyDict_CheckExact(args[2])) {
        PyErr_SetString(PyExc_TypeError, "init_capture(skip_files, stop_files, stacks, stacks_max, depth)");
        return NULL;
    }
    if (stacks != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "mapsafe.race._racecore: init_capture() was already called");
        return NULL;
    }
    Py_ssize_t max = PyLong_AsSsize_t(args[3]), depth = PyLong_AsSsize_t(args[4]);
    if ((max == -1 || depth == -1) && PyErr_Occurred())
        return NULL;
    stacks_max = max;
    stack_depth = depth;
    skip_files = Py_NewRef(args[0]);
    stop_files = Py_NewRef(args[1]);
    stacks = Py_NewRef(args[2]); /* last: rc_capture tests it */
    Py_RETURN_NONE;
}

/* -- set-up ------------------------------------------------------------------ */

static PyObject *
rc_init_owner(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5 || !PyDict_CheckExact(args[0]) || !PyDict_CheckExact(args[1]) || !PyDict_CheckExact(args[2])) {
        PyErr_SetString(PyExc_TypeError, "init_owner(finalizing, op_index, stack_index, op_bits, stack_bits)");
        return NULL;
    }
    if (finalizing != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "mapsafe.race._racecore: init_owner() was already called");
        return NULL;
    }
    long ob = PyLong_AsLong(args[3]), sb = PyLong_AsLong(args[4]);
    if (ob < 1 || sb < 1 || ob + sb > 30) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "init_owner: the field widths must be 1 to 30 bits in all");
        return NULL;
    }
    op_bits = (int)ob;
    stack_bits = (int)sb;
    op_index = Py_NewRef(args[1]);
    stack_index = Py_NewRef(args[2]);
    finalizing = Py_NewRef(args[0]);
    Py_RETURN_NONE;
}

static PyObject *
rc_set_detector(PyObject *module, PyObject *D)
{
    if (check_init() < 0)
        return NULL;
    if (D == Py_None) {
        STORE_PTR(active, NULL);
        Py_RETURN_NONE;
    }
    Active *A = PyMem_RawMalloc(sizeof(Active)); /* never freed: see the top of this file */
    if (A == NULL)
        return PyErr_NoMemory();
    PyObject *shadow = PyObject_GetAttrString(D, "shadow");
    A->D = D;
    A->by_ident = shadow != NULL ? PyObject_GetAttrString(D, "by_ident") : NULL;
    A->dicts = A->by_ident != NULL ? PyObject_GetAttrString(shadow, "dicts") : NULL;
    A->last_access = A->dicts != NULL ? PyObject_GetAttrString(shadow, "last_access") : NULL;
    PyObject *history = A->last_access != NULL ? PyObject_GetAttrString(shadow, "history") : NULL;
    A->history = history != NULL ? PyLong_AsSsize_t(history) : -1;
    Py_XDECREF(history);
    Py_XDECREF(shadow);
    if (A->by_ident == NULL || A->dicts == NULL || A->last_access == NULL || A->history < 1 ||
        !PyDict_CheckExact(A->by_ident) || !PyDict_CheckExact(A->dicts) || !PyDict_CheckExact(A->last_access)) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "set_detector: not a Detector");
        Py_XDECREF(A->by_ident);
        Py_XDECREF(A->dicts);
        Py_XDECREF(A->last_access);
        PyMem_RawFree(A);
        return NULL;
    }
    if (PyList_Append(retired, D) < 0) { /* the list keeps it alive for good; A holds the tables */
        Py_DECREF(A->by_ident);
        Py_DECREF(A->dicts);
        Py_DECREF(A->last_access);
        PyMem_RawFree(A);
        return NULL;
    }
    STORE_PTR(active, A);
    Py_RETURN_NONE;
}

/* The offset of slot `name` of class `cls`; -1 with an exception set. */
static Py_ssize_t
slot_offset(PyObject *cls, const char *name)
{
    PyObject *descr = PyObject_GetAttrString(cls, name);
    if (descr == NULL)
        return -1;
    Py_ssize_t off = -1;
    if (Py_TYPE(descr) == &PyMemberDescr_Type) {
        PyMemberDef *m = ((PyMemberDescrObject *)descr)->d_member;
        if (m->type == T_OBJECT_EX || m->type == T_OBJECT)
            off = m->offset;
    }
    Py_DECREF(descr);
    if (off < 0)
        PyErr_Format(PyExc_TypeError, "%R.%s is not a __slots__ member", cls, name);
    return off;
}

static PyObject *
rc_init(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 13) {
        PyErr_SetString(PyExc_TypeError, "init(kinds, deep_by_id, getitem, setitem, get, contains, wcall1, arg, fmt, "
                                         "ThreadState, _DictShadow, _KeyState, Access)");
        return NULL;
    }
    if (kinds != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "mapsafe.race._racecore: init() was already called");
        return NULL;
    }
    if (!PyDict_Check(args[0]) || !PyDict_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "kinds and deep_by_id must be dicts");
        return NULL;
    }
    for (int i = 9; i < 13; i++) {
        if (!PyType_Check(args[i])) {
            PyErr_SetString(PyExc_TypeError, "init: the detector's classes must be classes");
            return NULL;
        }
    }
    if ((off_ts_tid = slot_offset(args[9], "tid")) < 0 || (off_ts_vc = slot_offset(args[9], "vc")) < 0 ||
        (off_ts_busy = slot_offset(args[9], "busy")) < 0 || (off_ds_lock = slot_offset(args[10], "lock")) < 0 ||
        (off_ds_keys = slot_offset(args[10], "keys")) < 0 || (off_ks_w = slot_offset(args[11], "w")) < 0 ||
        (off_ks_r = slot_offset(args[11], "r")) < 0 || (off_acc_tid = slot_offset(args[12], "tid")) < 0 ||
        (off_acc_clk = slot_offset(args[12], "clk")) < 0 || (off_ds_owner = slot_offset(args[10], "owner")) < 0 ||
        (off_ds_ow = slot_offset(args[10], "ow")) < 0 || (off_ds_orr = slot_offset(args[10], "orr")) < 0 ||
        (off_ds_okw = slot_offset(args[10], "okw")) < 0 || (off_ds_ovw = slot_offset(args[10], "ovw")) < 0)
        return NULL;
    ThreadState_type = (PyTypeObject *)Py_NewRef(args[9]);
    DictShadow_type = (PyTypeObject *)Py_NewRef(args[10]);
    KeyState_type = (PyTypeObject *)Py_NewRef(args[11]);
    Access_type = (PyTypeObject *)Py_NewRef(args[12]);
    retired = PyList_New(0);
    if (retired == NULL)
        return NULL;
    py_getitem = Py_NewRef(args[2]);
    py_setitem = Py_NewRef(args[3]);
    py_get = Py_NewRef(args[4]);
    py_contains = Py_NewRef(args[5]);
    py_wcall1 = Py_NewRef(args[6]);
    py_arg = Py_NewRef(args[7]);
    py_fmt = Py_NewRef(args[8]);
    deep_by_id = Py_NewRef(args[1]);
    kinds = Py_NewRef(args[0]); /* last: check_init() tests it */
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"getitem", (PyCFunction)(void (*)(void))rc_getitem, METH_FASTCALL, "obj[key], recorded."},
    {"setitem", (PyCFunction)(void (*)(void))rc_setitem, METH_FASTCALL, "obj[key] = value, recorded."},
    {"get", (PyCFunction)(void (*)(void))rc_get, METH_FASTCALL, "obj.get(key[, default]), recorded."},
    {"contains", (PyCFunction)(void (*)(void))rc_contains, METH_FASTCALL, "key in obj, recorded."},
    {"wcall1", (PyCFunction)(void (*)(void))rc_wcall1, METH_FASTCALL, "f(a) for a frameless builtin."},
    {"arg", (PyCFunction)(void (*)(void))rc_arg, METH_FASTCALL, "an argument on its way into a call."},
    {"fmt", (PyCFunction)(void (*)(void))rc_fmt, METH_FASTCALL, "a value on its way into formatting."},
    {"set_detector", (PyCFunction)rc_set_detector, METH_O, "the active detector, or None."},
    {"init", (PyCFunction)(void (*)(void))rc_init, METH_FASTCALL, "the tables and the Python fallbacks."},
    {"capture", (PyCFunction)(void (*)(void))rc_capture, METH_FASTCALL, "the interned stack of an access."},
    {"init_capture", (PyCFunction)(void (*)(void))rc_init_capture, METH_FASTCALL, "capture()'s tables."},
    {"init_owner", (PyCFunction)(void (*)(void))rc_init_owner, METH_FASTCALL, "the owner phase's tables."},
    {NULL, NULL, 0, NULL},
};

static int
rc_exec(PyObject *module)
{
    str_read_key = PyUnicode_InternFromString("read_key");
    str_write_key = PyUnicode_InternFromString("write_key");
    op_getitem = PyUnicode_InternFromString("d[k]");
    op_setitem = PyUnicode_InternFromString("d[k] = v");
    op_get = PyUnicode_InternFromString("d.get");
    op_in = PyUnicode_InternFromString("in");
    str_acquire = PyUnicode_InternFromString("acquire");
    str_release = PyUnicode_InternFromString("release");
    if (!str_read_key || !str_write_key || !op_getitem || !op_setitem || !op_get || !op_in || !str_acquire ||
        !str_release)
        return -1;
    return 0;
}

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, rc_exec},
#ifdef Py_GIL_DISABLED
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "mapsafe.race._racecore",
    "The race detector's per-operation dispatch in C (helpers.py is the same in Python).", 0, methods, slots,
};

PyMODINIT_FUNC
PyInit__racecore(void)
{
    return PyModuleDef_Init(&module_def);
}
