-- A client key's limits, one atomic step per call (`tokens.limits.RedisLimits`); the same rules as `LocalLimits`.
-- KEYS: live admissions (sorted set: id → lease expiry), their reservations (hash: id → "tokens minute day month"),
-- the minute window (hash: req, tok), the day's tokens, the month's tokens.
-- ARGV[1] names the operation; a limit of 0 is unlimited and its counter is neither read nor written.
local live, held, minute, day, month = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]

if ARGV[1] == 'settle' then
  -- ARGV: 'settle', admission id, used - reserved, tpm, daily, monthly (the limits when it was admitted)
  if redis.call('ZREM', live, ARGV[2]) == 0 then return 0 end -- settled already, or expired and given back
  redis.call('HDEL', held, ARGV[2])
  local delta = tonumber(ARGV[3])
  if tonumber(ARGV[4]) > 0 and redis.call('EXISTS', minute) == 1 then redis.call('HINCRBY', minute, 'tok', delta) end
  if tonumber(ARGV[5]) > 0 and redis.call('EXISTS', day) == 1 then redis.call('INCRBY', day, delta) end
  if tonumber(ARGV[6]) > 0 and redis.call('EXISTS', month) == 1 then redis.call('INCRBY', month, delta) end
  return 1
end

-- ARGV: 'admit', now, admission id, lease expiry, tokens to reserve, rpm, tpm, max concurrency, daily, monthly,
-- this minute, today, this month (labels), the minute window's end
local now, id, expiry, reserve = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local rpm, tpm, most = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local daily, monthly = tonumber(ARGV[9]), tonumber(ARGV[10])
local this_minute, today, this_month = ARGV[11], ARGV[12], ARGV[13]

-- Admissions never settled (their process died) give back their slot and what they reserved.
for _, gone in ipairs(redis.call('ZRANGEBYSCORE', live, '-inf', now)) do
  local found = redis.call('HGET', held, gone)
  if found then
    local tokens, m, d, mo = string.match(found, '^(%d+) (%S+) (%S+) (%S+)$')
    if m == this_minute and redis.call('EXISTS', minute) == 1 then redis.call('HINCRBY', minute, 'tok', -tokens) end
    if d == today and redis.call('EXISTS', day) == 1 then redis.call('DECRBY', day, tokens) end
    if mo == this_month and redis.call('EXISTS', month) == 1 then redis.call('DECRBY', month, tokens) end
    redis.call('HDEL', held, gone)
  end
end
redis.call('ZREMRANGEBYSCORE', live, '-inf', now)

-- A budget whose counter is missing (Redis restarted, or a new key) is seeded from the database by the caller.
local missing = {}
if daily > 0 and redis.call('EXISTS', day) == 0 then missing[#missing + 1] = 'daily' end
if monthly > 0 and redis.call('EXISTS', month) == 0 then missing[#missing + 1] = 'monthly' end
if #missing > 0 then return {'seed', unpack(missing)} end

local req, tok = unpack(redis.call('HMGET', minute, 'req', 'tok'))
req, tok = tonumber(req) or 0, tonumber(tok) or 0
local reason = nil
if monthly > 0 and tonumber(redis.call('GET', month)) >= monthly then
  reason = 'monthly'
elseif daily > 0 and tonumber(redis.call('GET', day)) >= daily then
  reason = 'daily'
elseif rpm > 0 and req >= rpm then
  reason = 'requests'
elseif tpm > 0 and tok >= tpm then
  reason = 'tokens'
elseif most > 0 and redis.call('ZCARD', live) >= most then
  reason = 'concurrency'
end
if reason then return {'refused', reason, req, tok} end

if rpm > 0 or tpm > 0 then
  req = redis.call('HINCRBY', minute, 'req', 1)
  if tpm > 0 then tok = redis.call('HINCRBY', minute, 'tok', reserve) end
  redis.call('EXPIREAT', minute, math.ceil(tonumber(ARGV[14])))
end
if daily > 0 then redis.call('INCRBY', day, reserve) else today = '-' end
if monthly > 0 then redis.call('INCRBY', month, reserve) else this_month = '-' end
if tpm == 0 then this_minute = '-' end
redis.call('ZADD', live, expiry, id)
redis.call('HSET', held, id, reserve .. ' ' .. this_minute .. ' ' .. today .. ' ' .. this_month)
local last = math.ceil(tonumber(redis.call('ZRANGE', live, -1, -1, 'WITHSCORES')[2]))
redis.call('EXPIREAT', live, last)
redis.call('EXPIREAT', held, last)
return {'ok', '', req, tok}
