//! The wire format of the flag server's SDK endpoints, shared by the server and the relay
//! provider that follows it:
//!
//! - `GET /sdk/v1/flags`: an [`SdkDocument`], with the revision as `ETag`;
//! - `GET /sdk/v1/stream`: server-sent events — `put` (an [`SdkDocument`], first on every
//!   connection), then `patch` ([`SdkPatch`]) and `delete` ([`SdkDelete`]) per changed item,
//!   and comment lines as heartbeats.
//!
//! An [`SdkDocument`] is a flag document as the flag file format writes it (`flags`,
//! `segments`, each item with its `version`), plus the server's `revision`. Item versions are
//! the store's: a receiver applies a `patch` or `delete` only when its version is newer than
//! the one it holds, so a late, older event never wins.
//!
//! ```
//! use feature_store::stream::SdkDocument;
//! use feature_store::{ItemKind, Row};
//! use serde_json::json;
//!
//! let rows = vec![Row {
//!     kind: ItemKind::Flag,
//!     key: "dark-mode".into(),
//!     definition: json!({"type": "bool", "default": true}),
//!     version: 4,
//!     updated_at: None,
//!     updated_by: Some("alice".into()),
//! }];
//! let doc = SdkDocument::from_rows(7, &rows);
//! let text = serde_json::to_value(&doc).unwrap();
//! assert_eq!(text, json!({
//!     "revision": 7,
//!     "flags": {"dark-mode": {"type": "bool", "default": true, "version": 4}},
//!     "segments": {}
//! }));
//! let back = doc.into_rows();
//! assert_eq!((back[0].version, &back[0].definition), (4, &rows[0].definition));
//! assert_eq!(back[0].updated_by, None, "who changed an item is not sent");
//! ```

use crate::rows::{ItemKind, Row};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Every flag and segment with its version: the body of `GET /sdk/v1/flags` and the data of a
/// `put` event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SdkDocument {
    /// The server's revision of this state (increases with every change it sends).
    pub revision: u64,
    /// Flag key → definition in the flag file format, with `version`.
    #[serde(default)]
    pub flags: BTreeMap<String, Value>,
    /// Segment key → definition, with `version`.
    #[serde(default)]
    pub segments: BTreeMap<String, Value>,
}

/// One item changed: the data of a `patch` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SdkPatch {
    /// The server's revision after this change.
    pub revision: u64,
    /// Flag or segment.
    pub kind: ItemKind,
    /// The key.
    pub key: String,
    /// The item's version after the change.
    pub version: u64,
    /// The definition, in the flag file format (without `version`).
    pub definition: Value,
}

/// One item was deleted: the data of a `delete` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SdkDelete {
    /// The server's revision after this change.
    pub revision: u64,
    /// Flag or segment.
    pub kind: ItemKind,
    /// The key.
    pub key: String,
    /// The version the deletion was recorded with (one more than the item's last).
    pub version: u64,
}

impl SdkDocument {
    /// The document of these rows at `revision`. Rows whose definition is not a JSON object
    /// (unusable anyway) are left out.
    pub fn from_rows<'a>(revision: u64, rows: impl IntoIterator<Item = &'a Row>) -> SdkDocument {
        let mut doc = SdkDocument {
            revision,
            ..SdkDocument::default()
        };
        for row in rows {
            let Value::Object(map) = &row.definition else {
                continue;
            };
            let mut item = map.clone();
            item.insert("version".into(), Value::from(row.version));
            let target = match row.kind {
                ItemKind::Flag => &mut doc.flags,
                ItemKind::Segment => &mut doc.segments,
            };
            target.insert(row.key.clone(), Value::Object(item));
        }
        doc
    }

    /// The rows of this document (each item's `version` taken out of its definition; an item
    /// without one gets version 0).
    pub fn into_rows(self) -> Vec<Row> {
        let items = self
            .flags
            .into_iter()
            .map(|(k, v)| (ItemKind::Flag, k, v))
            .chain(
                self.segments
                    .into_iter()
                    .map(|(k, v)| (ItemKind::Segment, k, v)),
            );
        items
            .map(|(kind, key, definition)| {
                let (definition, version) = split_version(definition);
                Row {
                    kind,
                    key,
                    definition,
                    version,
                    updated_at: None,
                    updated_by: None,
                }
            })
            .collect()
    }
}

impl SdkPatch {
    /// The row this patch sets.
    pub fn into_row(self) -> Row {
        Row {
            kind: self.kind,
            key: self.key,
            definition: self.definition,
            version: self.version,
            updated_at: None,
            updated_by: None,
        }
    }
}

/// A definition without its `version`, and the version.
fn split_version(definition: Value) -> (Value, u64) {
    match definition {
        Value::Object(mut map) => {
            let version = map.remove("version").and_then(|v| v.as_u64()).unwrap_or(0);
            (Value::Object(map), version)
        }
        other => (other, 0),
    }
}
