-- pairgate: settle or release one admission atomically. See limits/redis.rs.
-- KEYS[1] concurrency zset, KEYS[2] reservations zset, KEYS[3] tokens-per-minute GCRA key,
-- KEYS[4 .. 3+nb] budget hashes.
-- ARGV: now_ms, id, release_permit (0/1), tpm_emission_interval_us (0: none), tpm_extra_tokens,
-- nb, nb x (reserved_amount, actual, key_expires_at or 0).
-- A budget line's reservation is subtracted only if its member is still in the reservations
-- set (the janitor may have released it); the actual usage is always added to `spent`.
local function int(x) return string.format('%d', x) end
local now = tonumber(ARGV[1])
local id = ARGV[2]
if ARGV[3] == '1' then redis.call('ZREM', KEYS[1], id) end

local t, extra = tonumber(ARGV[4]), tonumber(ARGV[5])
if t > 0 and extra > 0 then
  local now_us = now * 1000
  local tat = tonumber(redis.call('GET', KEYS[3]) or now_us)
  if tat < now_us then tat = now_us end
  tat = tat + t * extra
  redis.call('SET', KEYS[3], int(tat), 'PX', int(math.max(1, math.ceil((tat - now_us) / 1000))))
end

local nb = tonumber(ARGV[6])
local a = 7
for i = 1, nb do
  local amount, actual, exp = ARGV[a], ARGV[a + 1], ARGV[a + 2]
  a = a + 3
  local key = KEYS[3 + i]
  if redis.call('ZREM', KEYS[2], id .. '|' .. amount .. '|' .. key) == 1 then
    local r = tonumber(redis.call('HGET', key, 'reserved') or 0) - tonumber(amount)
    if r < 0 then r = 0 end
    redis.call('HSET', key, 'reserved', int(r))
  end
  if actual ~= '0' then redis.call('HINCRBY', key, 'spent', actual) end
  if exp ~= '0' then redis.call('PEXPIREAT', key, exp) end
end
return 1
