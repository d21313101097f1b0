-- pairgate: settle or release one admission atomically. See limits/redis_backend.rs.
-- KEYS[1] concurrency zset, KEYS[2] reservations zset, KEYS[3] tokens-per-minute GCRA key,
-- KEYS[4 .. 3+nb] budget hashes.
-- ARGV: now_ms, id, release_permit (0/1), tpm_emission_interval_us (0: none), tpm_extra_tokens,
-- nb, nb x (reserved_amount, actual, key_expires_at or 0).
-- The reservations are subtracted only if the admission's member is still in the reservations
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
-- the admission's member, as admit.lua wrote it
local member = id
for i = 1, nb do
  local key = KEYS[3 + i]
  member = member .. '|' .. ARGV[4 + 3 * i] .. '|' .. #key .. '|' .. key
end
local held = nb > 0 and redis.call('ZREM', KEYS[2], member) == 1
local a = 7
for i = 1, nb do
  local amount, actual, exp = ARGV[a], ARGV[a + 1], ARGV[a + 2]
  a = a + 3
  local key = KEYS[3 + i]
  -- an admission made before one member held every line: a member per line
  local release = held or redis.call('ZREM', KEYS[2], id .. '|' .. amount .. '|' .. key) == 1
  if release then
    if redis.call('HINCRBY', key, 'reserved', '-' .. amount) < 0 then
      redis.call('HSET', key, 'reserved', '0')
    end
  end
  if actual ~= '0' then redis.call('HINCRBY', key, 'spent', actual) end
  -- a hash whose reservation was still held has its expiry (admit.lua set it); one released by
  -- the janitor may have expired since, and HINCRBY made it again
  if exp ~= '0' and not release then redis.call('PEXPIREAT', key, exp) end
end
return 1
