-- Ask a trial to stop. A running one gets a stop request (its attempt's runner wakes on its wake
-- list and signals the program); a queued one ends at once without ever starting.
-- KEYS: prelude's seven.
-- ARGV: kind (prune|kill|cancel), reason, now
-- Returns: reply('signalled') | reply('already') | reply('pruned'|'cancelled') | 'missing' |
--          reply(current state)
local kind, reason, now = ARGV[1], ARGV[2], ARGV[3]
local st = redis.call('HGET', trial, 'state')
if not st then return {'missing'} end
if st == 'running' then
  if redis.call('HGET', trial, 'stop') then return reply('already') end
  redis.call('HSET', trial, 'stop', kind, 'stop_reason', reason)
  local list = wake .. ':' .. redis.call('HGET', trial, 'attempt')
  redis.call('RPUSH', list, kind)
  redis.call('EXPIRE', list, 86400)
  return reply('signalled')
elseif st == 'queued' then
  local final = 'cancelled'
  if kind == 'prune' then final = 'pruned' end
  redis.call('HSET', trial, 'reason', reason, 'ended_at', now)
  move('queued', final, now)
  return reply(final)
end
return reply(st)
