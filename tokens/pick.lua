-- The pool's pick-and-lease, one atomic step (`tokens.state.RedisState.acquire`).
-- KEYS: the cursor, then (cooldowns hash, leases sorted set, ejection hash, quota hash) per candidate.
-- ARGV: now, model, lease id, lease expiry, random point ('' = round-robin), headroom ('1' or ''), then
-- (id, limit) per candidate, where a limit of -1 marks a candidate already tried by this request.
local now, model, lease, expiry, point = tonumber(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local ready, ejected, busy, wait = {}, {}, false, nil
for i = 1, (#KEYS - 1) / 4 do
  local limit = tonumber(ARGV[6 + 2 * i])
  local all, one = unpack(redis.call('HMGET', KEYS[4 * i - 2], '*', model))
  local left = math.max(tonumber(all) or 0, tonumber(one) or 0) - now
  if wait == nil or left < wait then wait = left end
  if limit >= 0 and left <= 0 then
    local leases = KEYS[4 * i - 1]
    if limit > 0 then redis.call('ZREMRANGEBYSCORE', leases, '-inf', now) end
    if limit > 0 and redis.call('ZCARD', leases) >= limit then
      busy = true
    elseif (tonumber(redis.call('HGET', KEYS[4 * i], 'until')) or 0) > now then
      ejected[#ejected + 1] = i
    else
      ready[#ready + 1] = i
    end
  end
end
if #ready == 0 and not busy then ready = ejected end
if #ready == 0 then
  if busy then return {'busy'} end
  if wait ~= nil and wait > 0 then return {'cooling', tostring(wait)} end
  return {'none'}
end
if ARGV[6] == '1' then
  -- tokens.quota.least_used: the fullest live window's used percent, a window past its reset counting 0
  local least, fewest = {}, nil
  for _, i in ipairs(ready) do
    local pu, pr, su, sr = unpack(redis.call('HMGET', KEYS[4 * i + 1], 'p_used', 'p_resets', 's_used', 's_resets'))
    local used = 0
    if pu and (not pr or tonumber(pr) > now) then used = math.max(used, tonumber(pu)) end
    if su and (not sr or tonumber(sr) > now) then used = math.max(used, tonumber(su)) end
    if fewest == nil or used < fewest then
      least, fewest = {i}, used
    elseif used == fewest then
      least[#least + 1] = i
    end
  end
  ready = least
end
local n = math.floor((tonumber(point) or 0) * #ready) + 1
if point == '' then n = (redis.call('INCR', KEYS[1]) - 1) % #ready + 1 end
local i = ready[n]
local leases = KEYS[4 * i - 1]
redis.call('ZREMRANGEBYSCORE', leases, '-inf', now)
redis.call('ZADD', leases, expiry, lease)
local last = redis.call('ZRANGE', leases, -1, -1, 'WITHSCORES')
redis.call('EXPIREAT', leases, math.ceil(tonumber(last[2])))
return {'ok', ARGV[5 + 2 * i]}
