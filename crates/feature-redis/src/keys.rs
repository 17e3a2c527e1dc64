//! Key layout, stored envelopes and the Lua scripts that change them atomically.

use crate::RedisError;
use feature_store::{ItemKind, Row};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The Redis keys of one flag set, all under one prefix (default `feature`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// The prefix.
    pub prefix: String,
    /// `{prefix}:flags`: hash, flag key → stored envelope (JSON).
    pub flags: String,
    /// `{prefix}:segments`: hash, segment key → stored envelope.
    pub segments: String,
    /// `{prefix}:revs`: hash, `flag:KEY` / `segment:KEY` → last version (kept after a delete).
    pub revs: String,
    /// `{prefix}:version`: counter, +1 on every change; its existence marks a filled cache.
    pub version: String,
    /// `{prefix}:fill`: counter of changes made while a cache was empty (guards cache fills).
    pub fill: String,
    /// `{prefix}:audit`: stream of changes (store mode).
    pub audit: String,
    /// `{prefix}:changes`: pub/sub channel of change notices.
    pub channel: String,
    /// `{prefix}:tokens`: hash, token id → the flag server's token record (JSON; the SHA-256
    /// of the secret, never the secret).
    pub tokens: String,
    /// `{prefix}:tokens:seq`: counter ordering tokens by creation.
    pub tokens_seq: String,
}

impl Keys {
    /// The keys under `prefix`: 1 to 100 bytes without whitespace or control characters.
    pub fn new(prefix: &str) -> Result<Keys, RedisError> {
        if prefix.is_empty()
            || prefix.len() > 100
            || prefix.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(RedisError::InvalidPrefix(
                prefix.chars().take(120).collect(),
            ));
        }
        let k = |s: &str| format!("{prefix}:{s}");
        Ok(Keys {
            prefix: prefix.to_owned(),
            flags: k("flags"),
            segments: k("segments"),
            revs: k("revs"),
            version: k("version"),
            fill: k("fill"),
            audit: k("audit"),
            channel: k("changes"),
            tokens: k("tokens"),
            tokens_seq: k("tokens:seq"),
        })
    }

    /// The hash of one kind of item.
    pub fn hash(&self, kind: ItemKind) -> &str {
        match kind {
            ItemKind::Flag => &self.flags,
            ItemKind::Segment => &self.segments,
        }
    }
}

/// What a hash field holds: the definition with the store-managed fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Envelope {
    pub(crate) version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) updated_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) updated_by: Option<String>,
    pub(crate) definition: Value,
}

impl Envelope {
    pub(crate) fn of_row(row: &Row) -> Envelope {
        Envelope {
            version: row.version,
            updated_at: row.updated_at.clone(),
            updated_by: row.updated_by.clone(),
            definition: row.definition.clone(),
        }
    }

    pub(crate) fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Reads a hash field. A field that is not an envelope becomes a row whose definition is the
/// raw text, which then fails to read as a flag and is reported with its key.
pub(crate) fn decode(kind: ItemKind, key: &str, raw: &str) -> Row {
    match serde_json::from_str::<Envelope>(raw) {
        Ok(e) => Row {
            kind,
            key: key.to_owned(),
            definition: e.definition,
            version: e.version,
            updated_at: e.updated_at,
            updated_by: e.updated_by,
        },
        Err(e) => Row {
            kind,
            key: key.to_owned(),
            definition: Value::String(format!("not a stored flag ({e}): {raw:.80}")),
            version: 0,
            updated_at: None,
            updated_by: None,
        },
    }
}

/// Compare-and-set of one item (store mode), with audit entry, version bump and notice.
/// KEYS: hash, revs, version, audit. ARGV: key, expected raw ('' = absent), new raw
/// ('' = delete), item version, kind, action, actor, time, channel, audit max length, key as
/// JSON. Returns `{1, revision}` or `{0, current raw}`.
pub(crate) const CAS: &str = r#"
local cur = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if cur ~= ARGV[2] then return {0, cur} end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
end
redis.call('HSET', KEYS[2], ARGV[5] .. ':' .. ARGV[1], ARGV[4])
local v = redis.call('INCR', KEYS[3])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[10], '*',
  'kind', ARGV[5], 'key', ARGV[1], 'action', ARGV[6], 'actor', ARGV[7], 'at', ARGV[8],
  'version', ARGV[4], 'before', cur, 'after', ARGV[3])
redis.call('PUBLISH', ARGV[9], '{"kind":"' .. ARGV[5] .. '","key":' .. ARGV[11] .. ',"revision":' .. v .. '}')
return {1, tostring(v)}
"#;

/// A batch of changes applied all or nothing (store mode): every check is made before the
/// first write (key types, the revision counter, each item's presence and version), so a batch
/// that is refused, and a store that would fail half-way, leaves everything as it was. Each
/// change then gets its version bump, audit entry and notice, as a single write does.
/// KEYS: flags, segments, revs, version, audit. ARGV: channel, actor, actor as JSON, time,
/// audit max length, then for every change: kind, key, op (`create`/`update`/`delete`),
/// expected version ('' = any), definition JSON ('' for a delete), key as JSON.
/// Returns `{'1', version...}`, or `{'0', position (from 1; 0: the whole batch), reason,
/// detail}` with reason `type` (detail: the key), `counter`, `exists`, `missing` or
/// `conflict` (detail: the stored version).
pub(crate) const PUSH: &str = r#"
local kinds = {'hash', 'hash', 'hash', 'string', 'stream'}
for i = 1, 5 do
  local t = redis.call('TYPE', KEYS[i])['ok']
  if t ~= 'none' and t ~= kinds[i] then return {'0', '0', 'type', KEYS[i]} end
end
local counter = redis.call('GET', KEYS[4])
if counter and not string.match(counter, '^%d+$') then return {'0', '0', 'counter', ''} end
local n = (#ARGV - 5) / 6
local before, stored = {}, {}
for i = 1, n do
  local b = 5 + (i - 1) * 6
  local kind, key, op, expected = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4]
  local h = KEYS[2]
  if kind == 'flag' then h = KEYS[1] end
  local raw = redis.call('HGET', h, key)
  local version = 0
  if raw then
    local ok, env = pcall(cjson.decode, raw)
    if ok and type(env) == 'table' and tonumber(env['version']) then
      version = tonumber(env['version'])
    end
  end
  if op == 'create' then
    if raw then return {'0', tostring(i), 'exists', string.format('%d', version)} end
  else
    if not raw then return {'0', tostring(i), 'missing', '0'} end
    if expected ~= '' and tonumber(expected) ~= version then
      return {'0', tostring(i), 'conflict', string.format('%d', version)}
    end
  end
  before[i] = raw or ''
  stored[i] = version
end
local out = {'1'}
for i = 1, n do
  local b = 5 + (i - 1) * 6
  local kind, key, op, def, keyjson = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 5], ARGV[b + 6]
  local h = KEYS[2]
  if kind == 'flag' then h = KEYS[1] end
  local revf = kind .. ':' .. key
  local last = tonumber(redis.call('HGET', KEYS[3], revf) or '0') or 0
  local version = string.format('%d', math.max(last, stored[i]) + 1)
  local new = ''
  if op == 'delete' then
    redis.call('HDEL', h, key)
  else
    new = '{"version":' .. version .. ',"updatedAt":"' .. ARGV[4] .. '","updatedBy":' .. ARGV[3]
      .. ',"definition":' .. def .. '}'
    redis.call('HSET', h, key, new)
  end
  redis.call('HSET', KEYS[3], revf, version)
  local v = redis.call('INCR', KEYS[4])
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[5], '*',
    'kind', kind, 'key', key, 'action', op, 'actor', ARGV[2], 'at', ARGV[4],
    'version', version, 'before', before[i], 'after', new)
  redis.call('PUBLISH', ARGV[1], '{"kind":"' .. kind .. '","key":' .. keyjson .. ',"revision":' .. v .. '}')
  out[#out + 1] = version
end
return out
"#;

/// Write-through of one item into a cache (cache mode). Applied only to a filled cache and only
/// if newer than what the cache has; an empty cache just bumps the fill counter (so that a fill
/// racing with this write is abandoned) and announces the change.
/// KEYS: hash, revs, version, fill. ARGV: kind, key, new raw ('' = delete), item version,
/// channel, key as JSON. Returns the revision, 0 (cache empty) or -1 (stale).
pub(crate) const APPLY: &str = r#"
local head = '{"kind":"' .. ARGV[1] .. '","key":' .. ARGV[6]
if redis.call('EXISTS', KEYS[3]) == 0 then
  redis.call('INCR', KEYS[4])
  redis.call('PUBLISH', ARGV[5], head .. '}')
  return 0
end
local revf = ARGV[1] .. ':' .. ARGV[2]
local cur = tonumber(redis.call('HGET', KEYS[2], revf) or '0')
if tonumber(ARGV[4]) <= cur then return -1 end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], ARGV[2])
else
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
end
redis.call('HSET', KEYS[2], revf, ARGV[4])
local v = redis.call('INCR', KEYS[3])
redis.call('PUBLISH', ARGV[5], head .. ',"revision":' .. v .. '}')
return v
"#;

/// Fills an empty cache with every item read from the origin, unless it was filled meanwhile
/// or a change happened since the fill counter was read.
/// KEYS: flags, segments, revs, version, fill. ARGV: fill counter read, TTL in ms (0: none),
/// then (kind, key, raw, version) for every item. Returns the revision, or 0 if not filled.
pub(crate) const FILL: &str = r#"
if redis.call('EXISTS', KEYS[4]) == 1 then return 0 end
if (redis.call('GET', KEYS[5]) or '0') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
local i = 3
while i + 3 <= #ARGV do
  if ARGV[i] == 'flag' then
    redis.call('HSET', KEYS[1], ARGV[i + 1], ARGV[i + 2])
  else
    redis.call('HSET', KEYS[2], ARGV[i + 1], ARGV[i + 2])
  end
  redis.call('HSET', KEYS[3], ARGV[i] .. ':' .. ARGV[i + 1], ARGV[i + 3])
  i = i + 4
end
local v = redis.call('INCR', KEYS[4])
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  -- The data outlives the marker: a cache that looks filled always has its data.
  redis.call('PEXPIRE', KEYS[4], ttl)
  for j = 1, 3 do
    if redis.call('EXISTS', KEYS[j]) == 1 then redis.call('PEXPIRE', KEYS[j], ttl + 1000) end
  end
end
return v
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_prefix_checks() {
        let k = Keys::new("app:prod").unwrap();
        assert_eq!(k.flags, "app:prod:flags");
        assert_eq!(k.channel, "app:prod:changes");
        for bad in ["", "a b", "x\n", &"p".repeat(101)] {
            assert!(Keys::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn foreign_values_become_bad_rows_with_their_key() {
        let r = decode(ItemKind::Flag, "k", "true");
        assert_eq!(r.key, "k");
        assert!(feature_store::flag_from_row(&r).is_err());
        let e = Envelope {
            version: 2,
            updated_at: None,
            updated_by: Some("a".into()),
            definition: serde_json::json!({"default": 1}),
        };
        let r = decode(ItemKind::Flag, "k", &e.to_json());
        assert_eq!((r.version, r.updated_by.as_deref()), (2, Some("a")));
    }
}
