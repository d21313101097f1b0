-- pairgate: admit one request (concurrency, budgets, rates) all-or-nothing. See limits/redis_backend.rs.
-- KEYS[1] concurrency zset, KEYS[2] reservations zset, KEYS[3 .. 2+nb] budget hashes,
-- KEYS[3+nb .. 2+nb+nr] GCRA keys, KEYS[3+nb+nr] the proof's replay claim (when claim_ms > 0).
-- ARGV: now_ms, id, max_concurrent (0: none), lease_ms, reservation_expires_at, nb, nr,
-- claim_ms (0: no claim), nb x (amount, limit, key_expires_at or 0),
-- nr x (emission_interval_us, burst, cost).
-- Returns strings: {'1', new_tat_1, ..} or {'0', 'replay' | 'conc' | 'budget' | 'rate', index, a, b}.
-- The claim is made first and kept whatever follows: a proof is used once, admitted or not.
local function int(x) return string.format('%d', x) end
local now = tonumber(ARGV[1])
local id = ARGV[2]
local max_conc = tonumber(ARGV[3])
local lease = tonumber(ARGV[4])
local res_exp = ARGV[5]
local nb, nr = tonumber(ARGV[6]), tonumber(ARGV[7])
local claim_ms = tonumber(ARGV[8])
local a = 9

if claim_ms > 0 then
  if not redis.call('SET', KEYS[3 + nb + nr], '1', 'NX', 'PX', ARGV[8]) then
    return {'0', 'replay', '0', '0', '0'}
  end
end

if max_conc > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
  local n = redis.call('ZCARD', KEYS[1])
  if n >= max_conc then return {'0', 'conc', '1', int(n), '0'} end
end

local budgets = {}
for i = 1, nb do
  local amount, limit, exp = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), ARGV[a + 2]
  a = a + 3
  local key = KEYS[2 + i]
  local v = redis.call('HMGET', key, 'spent', 'reserved')
  local spent, reserved = tonumber(v[1] or 0), tonumber(v[2] or 0)
  if spent + reserved + amount > limit then return {'0', 'budget', int(i), int(spent), int(reserved)} end
  -- a hash keeps the expiry it was created with (HINCRBY and HSET leave it), so only a new one
  -- needs PEXPIREAT
  budgets[i] = {key, ARGV[a - 3], exp, not v[1] and not v[2]}
end

local now_us = now * 1000
local tats = {}
local stored = {}
if nr > 0 then stored = redis.call('MGET', unpack(KEYS, 3 + nb, 2 + nb + nr)) end
for i = 1, nr do
  local t, burst, cost = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  a = a + 3
  local key = KEYS[2 + nb + i]
  local tat = tonumber(stored[i] or now_us)
  if tat < now_us then tat = now_us end
  local new_tat = tat + t * cost
  if new_tat - now_us > t * burst then
    if cost > burst then return {'0', 'rate', int(i), '-1', '0'} end
    return {'0', 'rate', int(i), int(math.ceil((new_tat - t * burst - now_us) / 1000)), '0'}
  end
  tats[i] = {key, new_tat, cost}
end

if max_conc > 0 then
  redis.call('ZADD', KEYS[1], int(now + lease), id)
  redis.call('PEXPIRE', KEYS[1], int(lease))
end
-- one member holds every budget line of the admission: id, then per line |amount|#key|key
local member = id
for i = 1, nb do
  local b = budgets[i]
  redis.call('HINCRBY', b[1], 'reserved', b[2])
  if b[4] and b[3] ~= '0' then redis.call('PEXPIREAT', b[1], b[3]) end
  member = member .. '|' .. b[2] .. '|' .. #b[1] .. '|' .. b[1]
end
if nb > 0 then redis.call('ZADD', KEYS[2], res_exp, member) end
local out = {'1'}
for i = 1, nr do
  local r = tats[i]
  if r[3] > 0 then
    redis.call('SET', r[1], int(r[2]), 'PX', int(math.max(1, math.ceil((r[2] - now_us) / 1000))))
  end
  out[i + 1] = int(r[2])
end
return out
