-- pairgate: release reservations past their expiry (requests that never settled). See limits/redis.rs.
-- KEYS[1] reservations zset. ARGV: now_ms, max. Members are "id|amount|budget_key".
-- Returns how many reservations were released.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(due) do
  local _, amount, key = string.match(m, '^([^|]*)|(%d+)|(.*)$')
  if key and redis.call('EXISTS', key) == 1 then
    local r = tonumber(redis.call('HGET', key, 'reserved') or 0) - tonumber(amount)
    if r < 0 then r = 0 end
    redis.call('HSET', key, 'reserved', string.format('%d', r))
  end
  redis.call('ZREM', KEYS[1], m)
end
return #due
