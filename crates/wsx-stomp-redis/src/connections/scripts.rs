//! The Lua scripts the tasks run in Redis, each atomic on the server.
//!
//! A queue has two keys: its stream `PREFIXq:NAME` (one consumer group, each node a
//! consumer) and a companion hash `PREFIXqm:NAME` ([`crate::Config::meta_key`]) with:
//!
//! - `bytes`: the size of the stored messages in the stream (added by [`XADD`], taken off by [`ACK`]);
//! - `w:INCARNATION` and `r:INCARNATION`: the last SEND of one writer to this stream, and
//!   its refusals in its last pipeline, so that a pipeline written again after a timeout answers what was done
//!   instead of doing it twice;
//! - `c:NODE`: when node `NODE` last said it consumes the queue (Redis time, ms), refreshed
//!   by its reader; [`REMOVE`] keeps a queue that a node consumed within the grace period.

/// A queue SEND. `KEYS`: stream, meta. `ARGV`: payload, max entries, max bytes, writer field
/// (`w:INCARNATION`), refusals field (`r:INCARNATION`), the SEND's sequence number, the
/// writer's batch number. Returns the new length; -1 refused (length), -2 refused (bytes),
/// -3 stored by an earlier try of the same batch. The writer field holds the sequence number
/// of the writer's last SEND to this stream (they grow in the order written, and a pipeline
/// is carried out in order), so a SEND numbered no higher was carried out before: a retried
/// pipeline never adds twice. The refusals field, written only on a refusal, holds those of
/// the writer's last batch (`BATCH:,SEQ` + `l` or `b`…), so a replay is refused again.
pub(crate) const XADD: &str = "\
local meta = redis.call('HMGET', KEYS[2], ARGV[4], 'bytes')
local seq = tonumber(ARGV[6])
local function refusals()
  local r = redis.call('HGET', KEYS[2], ARGV[5])
  if r then
    local b, list = string.match(r, '^([^:]*):(.*)$')
    if b == ARGV[7] then return list end
  end
  return ''
end
if seq <= tonumber(meta[1] or '0') then
  local c = string.match(refusals(), ',' .. seq .. '([lb])')
  if c == 'l' then return -1 elseif c == 'b' then return -2 end
  return -3
end
local len = redis.call('XLEN', KEYS[1])
local size = string.len(ARGV[1])
local bytes = tonumber(meta[2] or '0')
local code = nil
if len >= tonumber(ARGV[2]) then
  code = 'l'
elseif bytes + size > tonumber(ARGV[3]) then
  code = 'b'
end
if code then
  redis.call('HSET', KEYS[2], ARGV[4], seq, ARGV[5], ARGV[7] .. ':' .. refusals() .. ',' .. seq .. code)
  if code == 'l' then return -1 else return -2 end
end
redis.call('XADD', KEYS[1], '*', 'm', ARGV[1])
redis.call('HSET', KEYS[2], ARGV[4], seq, 'bytes', bytes + size)
return len + 1";

/// Acknowledge entries. `KEYS`: stream, meta. `ARGV`: group, then pairs of entry id and payload
/// size. Each is `XACK`ed, and `XDEL`ed (its size taken off `bytes`) only if it was pending:
/// an acknowledgement that comes late (after Redis lost the stream and ids started over) or
/// twice (a retried pipeline) deletes nothing.
pub(crate) const ACK: &str = "\
local n = 0
local freed = 0
for i = 2, #ARGV, 2 do
  if redis.call('XACK', KEYS[1], ARGV[1], ARGV[i]) == 1 then
    redis.call('XDEL', KEYS[1], ARGV[i])
    n = n + 1
    freed = freed + tonumber(ARGV[i + 1])
  end
end
if freed > 0 and redis.call('HINCRBY', KEYS[2], 'bytes', -freed) < 0 then
  redis.call('HSET', KEYS[2], 'bytes', 0)
end
return n";

/// Give entries back. `KEYS`: stream, meta. `ARGV`: group, then pairs of entry id and payload.
/// For an entry still pending: a copy is added, the original acknowledged and deleted (the
/// bytes held do not change). For one not pending (given back by an earlier try of the same
/// pipeline, acknowledged, or taken over), nothing — unless Redis lost the stream or the
/// group, then the copy is added (at least once).
pub(crate) const REQUEUE: &str = "\
local exists = redis.call('EXISTS', KEYS[1]) == 1
for i = 2, #ARGV, 2 do
  local acked = redis.pcall('XACK', KEYS[1], ARGV[1], ARGV[i])
  if acked == 1 then
    redis.call('XADD', KEYS[1], '*', 'm', ARGV[i + 1])
    redis.call('XDEL', KEYS[1], ARGV[i])
  elseif (not exists) or type(acked) == 'table' then
    redis.call('XADD', KEYS[1], '*', 'm', ARGV[i + 1])
    redis.call('HINCRBY', KEYS[2], 'bytes', string.len(ARGV[i + 1]))
  end
end
return 1";

/// A node starts (or keeps) consuming a queue. `KEYS`: stream, meta. `ARGV`: group, node
/// field (`c:NODE`), `1` to create the group (and the stream) if missing. Records the time
/// (Redis's) in the node field.
pub(crate) const CONSUME: &str = "\
if ARGV[3] == '1' then
  local r = redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
  if type(r) == 'table' and r.err and not string.find(r.err, 'BUSYGROUP') then
    return redis.error_reply(r.err)
  end
end
local t = redis.call('TIME')
redis.call('HSET', KEYS[2], ARGV[2], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
return 1";

/// Remove a queue nobody uses. `KEYS`: stream, meta. `ARGV`: group, grace (ms). Deletes both
/// keys only if the stream is empty, nothing is pending in the group, and no node recorded
/// consuming it ([`CONSUME`]) within the grace period. Atomic: a SEND is either before (the
/// stream is not empty: kept) or after (it creates the stream again; a consumer's group,
/// created at `0`, reads it). Returns 1 when removed.
pub(crate) const REMOVE: &str = "\
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local fields = redis.call('HGETALL', KEYS[2])
for i = 1, #fields, 2 do
  if string.sub(fields[i], 1, 2) == 'c:' and now - tonumber(fields[i + 1]) < tonumber(ARGV[2]) then
    return 0
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('XLEN', KEYS[1]) > 0 then return 0 end
  local p = redis.pcall('XPENDING', KEYS[1], ARGV[1])
  if type(p) == 'table' and not p.err and tonumber(p[1]) > 0 then return 0 end
end
redis.call('DEL', KEYS[1], KEYS[2])
return 1";

/// A topic SEND. `KEYS`: history stream, topic meta. `ARGV`: payload, channel, max messages,
/// max bytes, writer field (`w:INCARNATION`), the SEND's sequence number, the publish command
/// (`PUBLISH`, or in cluster mode `SPUBLISH`: the channel is in the slot of the keys, so the
/// message goes to that shard's subscribers only). Gives the message
/// the next offset (`n` + 1), adds it to the history as entry `0-OFFSET` and trims the oldest
/// entries past the bounds (a message larger than the byte bound, or history off, empties
/// the history: it is contiguous), then publishes `oOFFSET:` + payload on the channel — all
/// at once, so that history and live messages agree. Returns the offset; for a SEND of the
/// writer already carried out (a pipeline written again) nothing is done, and it returns
/// the offset recorded for it, or 0 when it was not the writer's last one.
pub(crate) const TOPIC_PUBLISH: &str = "\
local w = redis.call('HGET', KEYS[2], ARGV[5])
local seq = tonumber(ARGV[6])
if w then
  local last, off = string.match(w, '^(%d+):(%d+)$')
  if last and seq <= tonumber(last) then
    if seq == tonumber(last) then return tonumber(off) end
    return 0
  end
end
local offset = redis.call('HINCRBY', KEYS[2], 'n', 1)
local size = string.len(ARGV[1])
local max_n = tonumber(ARGV[3])
local max_b = tonumber(ARGV[4])
if max_n > 0 and size <= max_b then
  redis.call('XADD', KEYS[1], '0-' .. offset, 'm', ARGV[1])
  local bytes = redis.call('HINCRBY', KEYS[2], 'bytes', size)
  local len = redis.call('XLEN', KEYS[1])
  while len > max_n or bytes > max_b do
    local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
    if #first == 0 then break end
    redis.call('XDEL', KEYS[1], first[1][1])
    bytes = redis.call('HINCRBY', KEYS[2], 'bytes', -string.len(first[1][2][2] or ''))
    len = len - 1
  end
else
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'bytes', 0)
end
redis.call('HSET', KEYS[2], ARGV[5], seq .. ':' .. offset)
redis.call(ARGV[7] or 'PUBLISH', ARGV[2], 'o' .. offset .. ':' .. ARGV[1])
return offset";

/// Read a topic's history. `KEYS`: history stream, topic meta. `ARGV`: the first offset
/// wanted (`-K`: the K-th last one given out, so `-1` is the last), how many entries at most. Returns the last offset
/// given out, the oldest retained (last + 1 when none is) and the entries from the first
/// offset wanted (or the oldest retained, if later) on.
pub(crate) const TOPIC_READ: &str = "\
local last = tonumber(redis.call('HGET', KEYS[2], 'n') or '0')
local oldest = last + 1
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
if #first > 0 then oldest = tonumber(string.sub(first[1][1], 3)) end
local from = tonumber(ARGV[1])
if from < 0 then from = last + 1 + from end
if from < oldest then from = oldest end
if from < 1 then from = 1 end
local entries = redis.call('XRANGE', KEYS[1], '0-' .. from, '+', 'COUNT', ARGV[2])
return {last, oldest, entries}";
