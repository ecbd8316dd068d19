"""Key layout and Lua scripts of the Redis registry and history, and the topics of the bus.

Every registry update is one Lua script, so it is atomic: a presence join, for
instance, records the connection, bumps the user's connection count and adds
the member in one step, and two nodes can never both see "first connection".
In the same way a subscription's add and remove say whether the channel got
its first subscriber or lost its last one, cluster-wide, and a held vacancy
is cancelled by the add that ends it.

Key layout (``P`` is the prefix, ``A`` an app uuid, ``N`` a node id, ``C`` a
channel name; app uuids and node ids never contain ``:``, so apps cannot reach
each other's keys whatever their channel names are)::

    P:nodes                      set   node ids that have registered
    P:node:N                     str   liveness, expires after the presence TTL
    P:node:N:apps                set   apps in which N has registry entries
    P:apps                       set   apps with at least one connection
    P:app:A:conns                hash  client id -> owner node id
    P:app:A:users                hash  client id -> the user it is authenticated as
    P:app:A:user:U               set   client ids authenticated as user U
    P:app:A:chans                set   channels with at least one subscriber
    P:app:A:ch:C:subs            hash  client id -> "N <subscriber info JSON>"
    P:app:A:vac:C                str   the node holding C's vacancy (no subscriber left)
    P:app:A:pr:C:conns           hash  client id -> "N <user id>"
    P:app:A:pr:C:users           hash  user id -> live connection count
    P:app:A:pr:C:members         hash  user id -> member JSON
    P:app:A:pr:C:order           zset  user id -> join sequence number
    P:app:A:prseq                str   join sequence counter
    P:app:A:node:N:conns         set   N's client ids (for the sweeper)
    P:app:A:node:N:subs          set   N's subscriptions, as index entries
    P:app:A:node:N:pres          set   N's presence connections, as index entries
    P:app:A:node:N:vac           set   channels whose vacancy N holds
    P:app:A:history:C            stream  channel C's publications: fields o (offset), p (JSON)
    P:app:A:history-meta:C       hash  top (latest offset), epoch

Pub/sub topics::

    P:app:A:ch:C                 messages of channel C, ``<node>\\n<message>``; a numbered
                                 publication: ``<node> <offset> <epoch> <exclude>\\n<message>``
    P:app:A:all                  broadcastAll of app A
    P:app:A:kick:N               kicks for N's clients of app A
    P:node:N:ctl                 keeps N's subscriber connection open (no traffic)

A history stream's metadata and its publications expire ``ttlSeconds`` after
the last publication (the metadata also after the last read). Each publication
is one script, ``HISTORY_PUBLISH``: it assigns the offset, appends, trims and
PUBLISHes, so every node receives a channel's publications in offset order.
When the metadata is missing (first use, expiry, a flush, a restart without
persistence) a script starts a new epoch with the candidate it was given.

An index entry is ``<byte length of client id>:<client id><channel>``: it is
unambiguous whatever the two strings contain and is built the same way in
Python and Lua. Scripts compute key names, so they need a single Redis server
(or a primary with replicas), not Redis Cluster.
"""

from __future__ import annotations

# Helpers shared by the scripts: ARGV[1] is always the prefix.
_PRELUDE = r"""
local p = ARGV[1]
local function akey(app) return p .. ':app:' .. app end
local function idx(client, channel) return #client .. ':' .. client .. channel end
local function unidx(entry)
  local i = string.find(entry, ':', 1, true)
  if not i then return nil, nil end
  local n = tonumber(string.sub(entry, 1, i - 1))
  if not n then return nil, nil end
  return string.sub(entry, i + 1, i + n), string.sub(entry, i + n + 1)
end
local function split(value)
  local i = string.find(value, ' ', 1, true)
  if not i then return nil, nil end
  return string.sub(value, 1, i - 1), string.sub(value, i + 1)
end
local function note_app(node, app)
  redis.call('SADD', p .. ':node:' .. node .. ':apps', app)
end

local function drop_user(a, client)
  local user = redis.call('HGET', a .. ':users', client)
  if user then
    redis.call('HDEL', a .. ':users', client)
    redis.call('SREM', a .. ':user:' .. user, client)
  end
end

local function drop_connection(app, node, client)
  local a = akey(app)
  if redis.call('HGET', a .. ':conns', client) == node then
    redis.call('HDEL', a .. ':conns', client)
    drop_user(a, client)
    if redis.call('HLEN', a .. ':conns') == 0 then redis.call('SREM', p .. ':apps', app) end
  end
  redis.call('SREM', a .. ':node:' .. node .. ':conns', client)
end

-- Returns true when this removed the channel's last subscriber.
local function drop_subscription(app, node, channel, client)
  local a = akey(app)
  local k = a .. ':ch:' .. channel .. ':subs'
  local value = redis.call('HGET', k, client)
  local emptied = false
  if value and split(value) == node then
    redis.call('HDEL', k, client)
    if redis.call('HLEN', k) == 0 then
      redis.call('SREM', a .. ':chans', channel)
      emptied = true
    end
  end
  redis.call('SREM', a .. ':node:' .. node .. ':subs', idx(client, channel))
  return emptied
end

-- Removes the channel's held vacancy; returns the node that held it, or false.
local function drop_vacancy(app, channel)
  local a = akey(app)
  local holder = redis.call('GET', a .. ':vac:' .. channel)
  if not holder then return false end
  redis.call('DEL', a .. ':vac:' .. channel)
  redis.call('SREM', a .. ':node:' .. holder .. ':vac', channel)
  return holder
end

-- Ends node's held vacancy: true when node held it and the channel is still empty.
local function settle_vacancy(app, node, channel)
  local a = akey(app)
  if redis.call('GET', a .. ':vac:' .. channel) ~= node then
    redis.call('SREM', a .. ':node:' .. node .. ':vac', channel)
    return false
  end
  drop_vacancy(app, channel)
  return redis.call('HLEN', a .. ':ch:' .. channel .. ':subs') == 0
end

-- Returns the member JSON when this was the user's last connection, else false.
local function drop_presence(app, node, channel, client)
  local a = akey(app)
  local k = a .. ':pr:' .. channel
  redis.call('SREM', a .. ':node:' .. node .. ':pres', idx(client, channel))
  local value = redis.call('HGET', k .. ':conns', client)
  if not value then return false end
  local owner, user = split(value)
  if owner ~= node or not user then return false end
  redis.call('HDEL', k .. ':conns', client)
  local left = redis.call('HINCRBY', k .. ':users', user, -1)
  if left > 0 then return false end
  local member = redis.call('HGET', k .. ':members', user) or cjson.encode({id = user})
  redis.call('HDEL', k .. ':users', user)
  redis.call('HDEL', k .. ':members', user)
  redis.call('ZREM', k .. ':order', user)
  return member
end

-- Removes everything node registered. Returns two lists: {app, channel, member,
-- ...} for every presence member whose last connection was on that node, and
-- {app, channel, ...} for every channel it leaves without subscribers (its last
-- subscriptions, or a vacancy it held).
local function purge(node)
  local out = {}
  local vacated = {}
  local apps_key = p .. ':node:' .. node .. ':apps'
  for _, app in ipairs(redis.call('SMEMBERS', apps_key)) do
    local a = akey(app)
    local nk = a .. ':node:' .. node
    for _, client in ipairs(redis.call('SMEMBERS', nk .. ':conns')) do
      drop_connection(app, node, client)
    end
    for _, entry in ipairs(redis.call('SMEMBERS', nk .. ':subs')) do
      local client, channel = unidx(entry)
      if client and drop_subscription(app, node, channel, client) then
        vacated[#vacated + 1] = app
        vacated[#vacated + 1] = channel
      end
    end
    for _, channel in ipairs(redis.call('SMEMBERS', nk .. ':vac')) do
      if settle_vacancy(app, node, channel) then
        vacated[#vacated + 1] = app
        vacated[#vacated + 1] = channel
      end
    end
    for _, entry in ipairs(redis.call('SMEMBERS', nk .. ':pres')) do
      local client, channel = unidx(entry)
      if client then
        local member = drop_presence(app, node, channel, client)
        if member then
          out[#out + 1] = app
          out[#out + 1] = channel
          out[#out + 1] = member
        end
      end
    end
    redis.call('DEL', nk .. ':conns', nk .. ':subs', nk .. ':pres', nk .. ':vac')
  end
  redis.call('DEL', apps_key)
  return out, vacated
end
"""

#: ARGV: prefix, node, ttl ms. Returns 1 when the node was not registered
#: (first start, Redis lost its data, or survivors swept it as dead).
REFRESH = (
    _PRELUDE
    + r"""
redis.call('SET', p .. ':node:' .. ARGV[2], '1', 'PX', ARGV[3])
return redis.call('SADD', p .. ':nodes', ARGV[2])
"""
)

#: ARGV: prefix, calling node. Claims and purges every registered node whose
#: liveness key expired. Atomic, so each dead node is reported exactly once.
#: Returns {{app, channel, member, ...}, {app, channel, ...}}: the presence
#: members that left and the channels left without subscribers.
SWEEP = (
    _PRELUDE
    + r"""
local out, vacated = {}, {}
for _, node in ipairs(redis.call('SMEMBERS', p .. ':nodes')) do
  if node ~= ARGV[2] and redis.call('EXISTS', p .. ':node:' .. node) == 0 then
    redis.call('SREM', p .. ':nodes', node)
    local left, emptied = purge(node)
    for _, item in ipairs(left) do out[#out + 1] = item end
    for _, item in ipairs(emptied) do vacated[#vacated + 1] = item end
  end
end
return {out, vacated}
"""
)

#: ARGV: prefix, node. Graceful stop: remove the node and all its entries.
LEAVE_CLUSTER = (
    _PRELUDE
    + r"""
redis.call('SREM', p .. ':nodes', ARGV[2])
redis.call('DEL', p .. ':node:' .. ARGV[2])
purge(ARGV[2])
return 1
"""
)

#: ARGV: prefix, node. Removes the node's entries but keeps it registered: the
#: first step of re-registering after an outage, so that entries of clients
#: that left while Redis was unreachable do not linger.
RESET_NODE = (
    _PRELUDE
    + r"""
purge(ARGV[2])
return 1
"""
)

#: ARGV: prefix, app, node, client.
ADD_CONNECTION = (
    _PRELUDE
    + r"""
local a = akey(ARGV[2])
redis.call('HSET', a .. ':conns', ARGV[4], ARGV[3])
redis.call('SADD', a .. ':node:' .. ARGV[3] .. ':conns', ARGV[4])
redis.call('SADD', p .. ':apps', ARGV[2])
note_app(ARGV[3], ARGV[2])
return 1
"""
)

#: ARGV: prefix, app, node, client.
REMOVE_CONNECTION = (
    _PRELUDE
    + r"""
drop_connection(ARGV[2], ARGV[3], ARGV[4])
return 1
"""
)

#: ARGV: prefix, app, node, client, user ('' for none). Only for a connection the
#: node holds.
SET_CONNECTION_USER = (
    _PRELUDE
    + r"""
local a = akey(ARGV[2])
if redis.call('HGET', a .. ':conns', ARGV[4]) ~= ARGV[3] then return 0 end
drop_user(a, ARGV[4])
if ARGV[5] ~= '' then
  redis.call('HSET', a .. ':users', ARGV[4], ARGV[5])
  redis.call('SADD', a .. ':user:' .. ARGV[5], ARGV[4])
end
return 1
"""
)

#: ARGV: prefix, app, user. {client, node, ...} of the user's connections on live nodes.
USER_CONNECTIONS = (
    _PRELUDE
    + r"""
local a = akey(ARGV[2])
local out = {}
for _, client in ipairs(redis.call('SMEMBERS', a .. ':user:' .. ARGV[3])) do
  local owner = redis.call('HGET', a .. ':conns', client)
  if owner and redis.call('EXISTS', p .. ':node:' .. owner) == 1 then
    out[#out + 1] = client
    out[#out + 1] = owner
  end
end
return out
"""
)

#: ARGV: prefix, app. {channel, subscriber count, ...} of the app's channels.
CHANNEL_COUNTS = (
    _PRELUDE
    + r"""
local a = akey(ARGV[2])
local out = {}
for _, channel in ipairs(redis.call('SMEMBERS', a .. ':chans')) do
  out[#out + 1] = channel
  out[#out + 1] = redis.call('HLEN', a .. ':ch:' .. channel .. ':subs')
end
return out
"""
)

#: ARGV: prefix. Connections of every app.
COUNT_ALL_CONNECTIONS = (
    _PRELUDE
    + r"""
local total = 0
for _, app in ipairs(redis.call('SMEMBERS', p .. ':apps')) do
  total = total + redis.call('HLEN', akey(app) .. ':conns')
end
return total
"""
)

#: ARGV: prefix, app, node, channel, client, info JSON. Returns 1 when this is
#: the channel's first subscriber and no vacancy of it was held (else 0; a held
#: vacancy is cancelled).
ADD_SUBSCRIPTION = (
    _PRELUDE
    + r"""
local a = akey(ARGV[2])
local k = a .. ':ch:' .. ARGV[4] .. ':subs'
local was_empty = redis.call('HLEN', k) == 0
redis.call('HSET', k, ARGV[5], ARGV[3] .. ' ' .. ARGV[6])
redis.call('SADD', a .. ':chans', ARGV[4])
redis.call('SADD', a .. ':node:' .. ARGV[3] .. ':subs', idx(ARGV[5], ARGV[4]))
note_app(ARGV[3], ARGV[2])
if was_empty and not drop_vacancy(ARGV[2], ARGV[4]) then return 1 end
return 0
"""
)

#: ARGV: prefix, app, node, channel, client, hold ("1": node holds the vacancy).
#: Returns 1 when this removed the channel's last subscriber.
REMOVE_SUBSCRIPTION = (
    _PRELUDE
    + r"""
if not drop_subscription(ARGV[2], ARGV[3], ARGV[4], ARGV[5]) then return 0 end
if ARGV[6] == '1' then
  local a = akey(ARGV[2])
  redis.call('SET', a .. ':vac:' .. ARGV[4], ARGV[3])
  redis.call('SADD', a .. ':node:' .. ARGV[3] .. ':vac', ARGV[4])
  note_app(ARGV[3], ARGV[2])
end
return 1
"""
)

#: ARGV: prefix, app, node, channel. Returns 1 when node held the channel's
#: vacancy and the channel is still without subscribers.
SETTLE_VACANCY = (
    _PRELUDE
    + r"""
if settle_vacancy(ARGV[2], ARGV[3], ARGV[4]) then return 1 end
return 0
"""
)

#: ARGV: prefix, app, node, channel, client, user, member JSON.
#: Returns 1 when this is the user's first connection on the channel.
PRESENCE_JOIN = (
    _PRELUDE
    + r"""
local a = akey(ARGV[2])
local k = a .. ':pr:' .. ARGV[4]
if redis.call('HSETNX', k .. ':conns', ARGV[5], ARGV[3] .. ' ' .. ARGV[6]) == 0 then
  return 0
end
redis.call('SADD', a .. ':node:' .. ARGV[3] .. ':pres', idx(ARGV[5], ARGV[4]))
note_app(ARGV[3], ARGV[2])
if redis.call('HINCRBY', k .. ':users', ARGV[6], 1) == 1 then
  redis.call('HSET', k .. ':members', ARGV[6], ARGV[7])
  redis.call('ZADD', k .. ':order', redis.call('INCR', a .. ':prseq'), ARGV[6])
  return 1
end
return 0
"""
)

#: ARGV: prefix, app, node, channel, client. Returns 1 on the user's last leave.
PRESENCE_LEAVE = (
    _PRELUDE
    + r"""
if drop_presence(ARGV[2], ARGV[3], ARGV[4], ARGV[5]) then return 1 end
return 0
"""
)

#: ARGV: prefix, app, channel. Member JSON texts in join order.
PRESENCE_MEMBERS = (
    _PRELUDE
    + r"""
local k = akey(ARGV[2]) .. ':pr:' .. ARGV[3]
local out = {}
-- One HGET per user rather than HMGET with unpack(), which fails past ~8000 users.
for _, user in ipairs(redis.call('ZRANGE', k .. ':order', 0, -1)) do
  local member = redis.call('HGET', k .. ':members', user)
  if member then out[#out + 1] = member end
end
return out
"""
)

#: ARGV: prefix, app, client. The node holding the client when that node's
#: liveness key exists, else nil (kicks are then sent to that node's topic).
CONNECTION_NODE = (
    _PRELUDE
    + r"""
local owner = redis.call('HGET', akey(ARGV[2]) .. ':conns', ARGV[3])
if not owner or redis.call('EXISTS', p .. ':node:' .. owner) == 0 then return false end
return owner
"""
)


# -- history streams ----------------------------------------------------------------
# Shared by both history scripts. KEYS[1] the metadata hash, KEYS[2] the stream;
# ARGV[1] a fresh epoch candidate, ARGV[2] the TTL in ms.
_HISTORY_PRELUDE = r"""
local meta, stream = KEYS[1], KEYS[2]
local ttl = tonumber(ARGV[2])
local state = redis.call('HMGET', meta, 'top', 'epoch')
local top, epoch = tonumber(state[1]), state[2]
if not top or not epoch then
  -- No metadata: whatever the stream holds belongs to a lost epoch.
  top, epoch = 0, ARGV[1]
  redis.call('DEL', stream)
  redis.call('HSET', meta, 'top', 0, 'epoch', epoch)
end
redis.call('PEXPIRE', meta, ttl)
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
-- Entries stored at or before now - ttl are gone (their ids are their times).
local oldest_kept = (now - ttl + 1) .. '-0'
"""

# ARGV[3] size, ARGV[4] publication head, ARGV[5] message prefix, ARGV[6] channel topic,
# ARGV[7] node id, ARGV[8] client to exclude ('-' for none). Returns {offset, epoch}.
HISTORY_PUBLISH = (
    _HISTORY_PRELUDE
    + r"""
top = top + 1
redis.call('HSET', meta, 'top', top)
local publication = ARGV[4] .. string.format('%d', top) .. '}'
redis.call('XADD', stream, 'MAXLEN', tonumber(ARGV[3]), '*', 'o', top, 'p', publication)
redis.call('XTRIM', stream, 'MINID', oldest_kept)
redis.call('PEXPIRE', stream, ttl)
redis.call('PUBLISH', ARGV[6], ARGV[7] .. ' ' .. string.format('%d', top) .. ' ' .. epoch .. ' '
  .. ARGV[8] .. '\n' .. ARGV[5] .. string.sub(publication, 2))
return {top, epoch}
"""
)

# ARGV[3] size, ARGV[4] 'since' or 'limit', ARGV[5] the since offset or the limit,
# ARGV[6] the since epoch. Returns {offset, epoch, complete (0/1), publications...}
# with the publications oldest first.
HISTORY_READ = (
    _HISTORY_PRELUDE
    + r"""
local size, n = tonumber(ARGV[3]), tonumber(ARGV[5])
local count = n
if ARGV[4] == 'since' then
  if ARGV[6] ~= epoch or n > top or n < 0 then return {top, epoch, 0} end
  count = top - n
  if count == 0 then return {top, epoch, 1} end
  if count > size then return {top, epoch, 0} end
else
  count = math.min(n, size)
  if count <= 0 then return {top, epoch, 1} end
end
local entries = redis.call('XREVRANGE', stream, '+', oldest_kept, 'COUNT', count)
if ARGV[4] == 'since' then
  -- Offsets are contiguous: the oldest entry read must follow the since offset.
  if #entries < count or tonumber(entries[#entries][2][2]) ~= n + 1 then
    return {top, epoch, 0}
  end
end
local result = {top, epoch, 1}
for i = #entries, 1, -1 do result[#result + 1] = entries[i][2][4] end
return result
"""
)
