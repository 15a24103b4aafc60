"""MS301 on mapsafe's caches: a bounded Cache or @cached is never flagged; Cache(maxsize=None) is, as a dict is."""

from __future__ import annotations

import pytest

from _lint_harness import codes, lines
from _lint_harness import lint as _lint


def lint(source: str):
    """MS301 is opt-in: these tests name it (with every other rule, as --select MS does)."""
    return _lint(source, select=["MS"])
from test_lint_program import lint_tree, where

# Every way a module can name mapsafe.Cache: (imports, the constructor's name).
CACHE_IMPORTS = {
    "import mapsafe": ("import mapsafe", "mapsafe.Cache"),
    "from mapsafe import Cache": ("from mapsafe import Cache", "Cache"),
    "import mapsafe as ms": ("import mapsafe as ms", "ms.Cache"),
    "from mapsafe.cache import Cache": ("from mapsafe.cache import Cache", "Cache"),
}

# A memo function over a module-level cache: flagged when the cache only grows.
MEMO = """
    {imports}

    def _load(item):
        return item * 2

    _prices = {make}

    def price(item):
        return _prices.get(item, _load)
"""


def memo(form: str, arguments: str) -> str:
    imports, name = CACHE_IMPORTS[form]
    return MEMO.format(imports=imports, make=f"{name}({arguments})")


@pytest.mark.parametrize("form", sorted(CACHE_IMPORTS))
@pytest.mark.parametrize("arguments", [
    "",
    "maxsize=64",
    "256",
    "maxsize=None, max_weight=10_000, weigher=lambda k, v: len(v)",
    "ttl=60",
    "maxsize=None, ttl=60",  # expired entries are swept as it is written
    "maxsize=None, tti=5",
    "maxsize=limit",  # cannot tell: left alone
    "**options",  # cannot tell: left alone
])
def test_ms301_not_for_a_bounded_cache(form, arguments):
    assert lint(memo(form, arguments)) == []


@pytest.mark.parametrize("form", sorted(CACHE_IMPORTS))
@pytest.mark.parametrize("arguments", ["maxsize=None", "None", "maxsize=None, ttl=None", "maxsize=None, max_weight=None"])
def test_ms301_cache_with_maxsize_none_grows_like_a_dict(form, arguments):
    findings = lint(memo(form, arguments))
    assert lines(findings) == [(10, "MS301")]
    assert "module-level mapsafe.Cache(maxsize=None) '_prices' memoizes price()" in findings[0].message


def test_ms301_unbounded_cache_through_each_of_its_memo_methods():
    # The shapes a dict is flagged for, in Cache's own vocabulary: a loader at construction,
    # get_if_present then put, and a subscript store.
    assert codes(lint("""
        from mapsafe import Cache

        def _fetch(url):
            return url.upper()

        _pages = Cache(maxsize=None, loader=_fetch)
        _rows = Cache(maxsize=None)
        _users = Cache(None)

        def page(url):
            return _pages.get(url)

        def row(key):
            print(_rows.stats(), _rows.cache_info())  # reading its counters does not bound it
            value = _rows.get_if_present(key)
            if value is None:
                value = key * 2
                _rows.put(key, value)
            return value

        def user(uid):
            if uid in _users:
                return _users[uid]
            _users[uid] = found = str(uid)
            return found
    """)) == ["MS301", "MS301", "MS301"]


def test_ms301_unbounded_cache_that_is_invalidated_read_or_set_is_not_a_leak():
    # As for a dict: evicted (invalidate, invalidate_all, cache_clear), only read (get with no
    # loader anywhere), or storing what the caller gave it (a setter, not a memo).
    assert lint("""
        from mapsafe import Cache

        _a = Cache(maxsize=None)
        _b = Cache(maxsize=None)
        _c = Cache(maxsize=None)
        _read = Cache(maxsize=None)
        _given = Cache(maxsize=None)

        def fa(x):
            return _a.get(x, str)
        def forget(x):
            _a.invalidate(x)

        def fb(x):
            return _b.get(x, str)
        def reset():
            _b.invalidate_all()

        def fc(x):
            return _c.get(x, str)
        def clear():
            _c.cache_clear()

        def lookup(x):
            return _read.get(x)

        def remember(key, value):
            if _given.get_if_present(key) is None:
                _given.put(key, value)
            return _given.get_if_present(key)
    """) == []


def test_ms301_attribute_caches_are_left_alone_as_attribute_dicts_are():
    # MS301 only looks at module-level names: an attribute is the owner's to bound.
    for make in ("{}", "Cache(maxsize=None)"):
        assert lint(f"""
            from mapsafe import Cache

            class Prices:
                def __init__(self):
                    self._seen = {make}

                def price(self, item):
                    if item in self._seen:
                        return self._seen[item]
                    self._seen[item] = value = item * 2
                    return value
        """) == []


# Each way to spell the decorator, and the lru_cache spelling with the same bound.
DECORATORS = [
    ("import mapsafe", "@mapsafe.cached", "@functools.lru_cache"),
    ("import mapsafe", "@mapsafe.cached()", "@functools.lru_cache()"),
    ("from mapsafe import cached", "@cached(maxsize=256)", "@functools.lru_cache(maxsize=256)"),
    ("import mapsafe as ms", "@ms.cached(maxsize=64, ttl=5)", "@functools.lru_cache(maxsize=64)"),
    ("from mapsafe.cache import cached", "@cached(maxsize=None)", "@functools.lru_cache(maxsize=None)"),
    ("import mapsafe as ms", "@ms.cached(maxsize=None)", "@functools.cache"),
]

DECORATED = """
    import functools
    {imports}

    _labels = {{}}

    {decorator}
    def label(code):
        return code.upper()

    {decorator}
    def slow_label(code):
        if code in _labels:
            return _labels[code]
        _labels[code] = text = code.upper()
        return text
"""


@pytest.mark.parametrize("imports, decorator, lru", DECORATORS)
def test_ms301_cached_decorator_is_judged_as_lru_cache_is(imports, decorator, lru):
    # A decorated function is never flagged itself, whatever its maxsize (MS301 leaves
    # lru_cache(maxsize=None) alone too), but it does not bound a dict its body fills.
    findings = lint(DECORATED.format(imports=imports, decorator=decorator))
    assert lines(findings) == [(15, "MS301")]
    assert "'_labels' memoizes slow_label()" in findings[0].message
    assert findings == lint(DECORATED.format(imports=imports, decorator=lru))


VENDORED_MAPSAFE = {
    "mapsafe/__init__.py": "from .cache import Cache\n",
    "mapsafe/cache.py": """
        class Cache:
            def __init__(self, maxsize=128, **options):
                self._data = {}

            def __contains__(self, key):
                return key in self._data

            def __getitem__(self, key):
                return self._data[key]

            def __setitem__(self, key, value):
                self._data[key] = value
    """,
}


def test_ms301_judges_a_cache_by_its_bound_when_mapsafe_is_linted_with_the_program(tmp_path):
    # With mapsafe's source in the tree, Cache resolves to a class of the program rather than
    # to a name outside it; its bound still decides.
    result = lint_tree(tmp_path, {**VENDORED_MAPSAFE, "app.py": """
        from mapsafe import Cache

        _bounded = Cache(maxsize=64)
        _unbounded = Cache(maxsize=None)

        def f(x):
            if x in _bounded:
                return _bounded[x]
            _bounded[x] = v = x * 2
            return v

        def g(x):
            if x in _unbounded:
                return _unbounded[x]
            _unbounded[x] = v = x * 2
            return v
    """})
    assert where(result) == [("app.py", 16, "MS301")]
    assert "'_unbounded' memoizes g()" in result.findings[0].message
