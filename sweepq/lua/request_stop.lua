-- Ask a trial to stop. A running one gets a stop request (its runner wakes on KEYS[6] and
-- signals the program); a queued one ends at once without ever starting.
-- KEYS: prelude's five, KEYS[6] the trial's stop wake-up list.
-- ARGV: kind (prune|kill|cancel), reason, now
-- Returns: 'signalled' | 'already' | 'pruned' | 'cancelled' | current state
local kind, reason, now = ARGV[1], ARGV[2], ARGV[3]
local st = redis.call('HGET', trial, 'state')
if st == 'running' then
  if redis.call('HGET', trial, 'stop') then return 'already' end
  redis.call('HSET', trial, 'stop', kind, 'stop_reason', reason)
  redis.call('RPUSH', KEYS[6], kind)
  redis.call('EXPIRE', KEYS[6], 86400)
  return 'signalled'
elseif st == 'queued' then
  local final = 'cancelled'
  if kind == 'prune' then final = 'pruned' end
  redis.call('HSET', trial, 'reason', reason, 'ended_at', now)
  move('queued', final, now)
  return final
end
return st or 'missing'
