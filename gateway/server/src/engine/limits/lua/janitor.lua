-- pairgate: release reservations past their expiry (requests that never settled). See limits/redis_backend.rs.
-- KEYS[1] reservations zset. ARGV: now_ms, max. A member is an admission's id followed by
-- "|amount|#key|key" per budget line (admit.lua), or "id|amount|key" (one line, the older form).
-- Returns how many admissions' reservations were released.
local function release(key, amount)
  if redis.call('EXISTS', key) == 1 then
    if redis.call('HINCRBY', key, 'reserved', '-' .. amount) < 0 then
      redis.call('HSET', key, 'reserved', '0')
    end
  end
end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(due) do
  local bar = string.find(m, '|', 1, true)
  local pos = bar and bar + 1 or #m + 1
  while pos <= #m do
    local _, last, amount, len = string.find(m, '^(%d+)|(%d+)|', pos)
    if not last then
      local old_amount, key = string.match(m, '^(%d+)|(.*)$', pos)
      if key then release(key, old_amount) end
      break
    end
    local stop = last + tonumber(len)
    release(string.sub(m, last + 1, stop), amount)
    pos = stop + 2
  end
  redis.call('ZREM', KEYS[1], m)
end
return #due
