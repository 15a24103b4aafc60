"""The Lua scripts behind RedisMap's atomic single-key operations, one set per layout.

Each script touches one key (KEYS[1]), so it is atomic on the server and
runs on Redis Cluster. redis-py's ``Script`` sends it with EVALSHA and
reloads it on NOSCRIPT (after a restart, a failover or SCRIPT FLUSH).
The ttl argument is in milliseconds, "0" meaning "no expiry"; the write
that sets a value sets its expiry too, in the same script.
"""

from __future__ import annotations

__all__ = ["HASH", "KEYS", "META"]

# One hash per map; ARGV[1] is the field. HSET clears a field's TTL
# (checked on Redis 8.0), so only a ttl needs HPEXPIRE after it.
_HASH_EXPIRE = """
local function expire(ttl, cap)
  if ttl > 0 then
    redis.call('HPEXPIRE', KEYS[1], ttl, 'FIELDS', 1, ARGV[1])
  elseif cap then
    redis.call('HPERSIST', KEYS[1], 'FIELDS', 1, ARGV[1])
  end
end
"""

HASH = {
    # ARGV: field, value, ttl
    "set": _HASH_EXPIRE + """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
expire(tonumber(ARGV[3]), false)
return 1
""",
    # ARGV: field, value, ttl -> {1, existing} or {0}
    "load_or_store": _HASH_EXPIRE + """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current then return {1, current} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
expire(tonumber(ARGV[3]), false)
return {0}
""",
    # ARGV: field, value, ttl -> previous or nil
    "swap": _HASH_EXPIRE + """
local current = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
expire(tonumber(ARGV[3]), false)
return current
""",
    # ARGV: field, old, new, ttl -> 1 if swapped
    "cas": _HASH_EXPIRE + """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
expire(tonumber(ARGV[4]), false)
return 1
""",
    # ARGV: field, old -> 1 if deleted
    "cad": """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
""",
    # ARGV: field -> the value removed, or nil
    "getdel": """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current then redis.call('HDEL', KEYS[1], ARGV[1]) end
return current
""",
    # ARGV: field, n, ttl, cap ("1" if the server has field TTLs) -> the new integer.
    # HINCRBY keeps a field's TTL, so without a ttl it is cleared explicitly.
    "incr": _HASH_EXPIRE + """
local value = redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
expire(tonumber(ARGV[3]), ARGV[4] == '1')
return value
""",
}

# One string key per entry; KEYS[1] is the entry's key.
_KEYS_SET = """
local function set(value, ttl)
  if ttl > 0 then
    redis.call('SET', KEYS[1], value, 'PX', ttl)
  else
    redis.call('SET', KEYS[1], value)
  end
end
"""

KEYS = {
    # ARGV: value, ttl -> {1, existing} or {0}
    "load_or_store": _KEYS_SET + """
local current = redis.call('GET', KEYS[1])
if current then return {1, current} end
set(ARGV[1], tonumber(ARGV[2]))
return {0}
""",
    # ARGV: value, ttl -> previous or nil
    "swap": _KEYS_SET + """
local current = redis.call('GET', KEYS[1])
set(ARGV[1], tonumber(ARGV[2]))
return current
""",
    # ARGV: old, new, ttl -> 1 if swapped
    "cas": _KEYS_SET + """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
set(ARGV[2], tonumber(ARGV[3]))
return 1
""",
    # ARGV: old -> 1 if deleted
    "cad": """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
""",
    # ARGV: n, ttl -> the new integer (INCRBY keeps a key's TTL: clear it without a ttl)
    "incr": """
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
local ttl = tonumber(ARGV[2])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) else redis.call('PERSIST', KEYS[1]) end
return value
""",
}

# The map's metadata (a small hash beside the data): written once by the
# first opener, compared by every later one. ARGV: serializer, layout,
# format -> {} if this call created it, else the stored {field, value, ...}.
META = """
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('HGETALL', KEYS[1]) end
redis.call('HSET', KEYS[1], 'serializer', ARGV[1], 'layout', ARGV[2], 'format', ARGV[3])
return {}
"""
