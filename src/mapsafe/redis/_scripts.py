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


# Float sums, for merge(k, x, operator.add) where x or the stored number is a
# float, on the json serializer. Redis's HINCRBYFLOAT writes its own float
# format (3 for 3.0, 17 significant digits), not the canonical JSON of the
# float, so a value read back would change type and a compare-and-swap
# against it would fail; this adds in Lua (IEEE doubles, as Python) and
# writes the sum as Python's float repr, which json.dumps uses:
#   - the fewest significant digits (1..17) that read back as the same
#     double, which is the correctly rounded digit string Python picks;
#   - in exponent form exactly when the decimal exponent is < -4 or >= 16,
#     as "1e-05", "1.5e+16" (C's %e writes at least two exponent digits, as
#     Python does); otherwise positional: where %g chose an exponent anyway
#     (an exponent >= the digits), the value is an integer below 1e16,
#     which %.0f writes exactly;
#   - ".0" after an integral positional value ("3.0", "-0.0").
# One side must be a float (JSON of a float has '.' or 'e'; of an int, neither).
# The stored value must be a JSON number (it starts with '-' or a digit);
# anything else (true, a string, a list) returns {0} and the client takes
# the optimistic path, which applies Python's own + (True + 0.5, a str's
# TypeError). A sum that is not finite returns {0} too: the client's path
# then raises the serializer's error, and nothing is written.
_FLOAT_ADD = """
local function number(raw)
  local c = string.sub(raw, 1, 1)
  if c ~= '-' and not string.find(c, '%d') then return nil end
  return tonumber(raw)
end
local function repr(v)
  if v ~= v or v == math.huge or v == -math.huge then return nil end
  local p, s = 17, nil
  for q = 1, 17 do
    s = string.format('%.' .. q .. 'g', v)
    if tonumber(s) == v then p = q break end
  end
  local es = string.format('%.' .. (p - 1) .. 'e', v)  -- the same p digits, and the exponent
  local e = tonumber(string.match(es, 'e([-+]%d+)$'))
  if e < -4 or e >= 16 then return es end
  if string.find(s, 'e') then s = string.format('%.0f', v) end
  if not string.find(s, '%.') then s = s .. '.0' end
  return s
end
local function is_float(raw) return string.find(raw, '[%.eE]') ~= nil end
local function sum(current, addend, absent)
  if not current then return absent end
  local x = number(current)
  if not x then return nil end
  -- int + int stays Python's exact int: that is HINCRBY's, or the client's past 64 bits
  if not is_float(current) and not is_float(addend) then return nil end
  return repr(x + tonumber(addend))
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
    # ARGV: field, addend, value if absent (its JSON), ttl -> {1, new JSON} or {0}
    "fadd": _HASH_EXPIRE + _FLOAT_ADD + """
local new = sum(redis.call('HGET', KEYS[1], ARGV[1]), ARGV[2], ARGV[3])
if not new then return {0} end
redis.call('HSET', KEYS[1], ARGV[1], new)
expire(tonumber(ARGV[4]), false)
return {1, new}
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
    # ARGV: addend, value if absent (its JSON), ttl -> {1, new JSON} or {0}
    "fadd": _KEYS_SET + _FLOAT_ADD + """
local new = sum(redis.call('GET', KEYS[1]), ARGV[1], ARGV[2])
if not new then return {0} end
set(new, tonumber(ARGV[3]))
return {1, new}
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
