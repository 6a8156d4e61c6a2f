//! The sim world's data and on-disk formats, without any IO: the world file
//! users write by hand (and compaction rewrites canonically), the change-log
//! lines, and the in-memory world indexed by id and by (type, name).
//!
//! In memory each object is kept in the form reads return (a [`LiveObject`]
//! with `id` and `arn` among its attributes) behind an [`Arc`], so listing a
//! type hands out the world's own objects: a plan of a 100,000-object world
//! holds one copy of it, not one in the provider and one in the plan.

use std::sync::Arc;

use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Deserialize, Serialize, Serializer};

use crate::hash::FastMap;
use crate::model::{Attrs, Tags, Value};
use crate::provider::LiveObject;

/// One object of the simulated cloud, as stored in the world file and in
/// log lines. `attributes` are the input attributes (with `name`); `id` and
/// `arn` are not stored there but added when the object is read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorldObject {
    #[serde(rename = "type")]
    pub type_name: String,
    /// Optional in hand-written files: defaults to `<type>-<name>`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(default)]
    pub attributes: Attrs,
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    pub tags: Tags,
}

/// `arn:sim:<type>:<name>`.
fn arn(type_name: &str, name: &str) -> String {
    format!("arn:sim:{type_name}:{name}")
}

/// The identity: the `name` attribute.
fn name_of(attributes: &Attrs) -> Option<&str> {
    attributes.get("name").and_then(|v| v.as_str())
}

/// The computed attributes reads add to the stored ones.
const COMPUTED: [&str; 2] = ["arn", "id"];

/// An object of the world in memory: its live form, shared with readers.
#[derive(Debug, Clone)]
pub struct Stored {
    pub type_name: String,
    /// What reads return: the stored attributes plus `id` and `arn`.
    pub live: Arc<LiveObject>,
    /// Stored attributes named `id` or `arn` (a hand-written world may
    /// have them), which the live form overrides: kept so that compaction
    /// writes the object back as it was. Empty, hence unallocated, almost
    /// always.
    shadowed: Vec<(String, Value)>,
}

impl Stored {
    fn new(object: WorldObject) -> Stored {
        let WorldObject {
            type_name,
            id,
            mut attributes,
            tags,
        } = object;
        let mut shadowed = Vec::new();
        for key in COMPUTED {
            if let Some(v) = attributes.remove(key) {
                shadowed.push((key.to_string(), v));
            }
        }
        let arn = arn(&type_name, name_of(&attributes).unwrap_or(""));
        attributes.insert("id".into(), Value::String(id.clone()));
        attributes.insert("arn".into(), Value::String(arn));
        Stored {
            type_name,
            live: Arc::new(LiveObject {
                id,
                attributes,
                tags,
            }),
            shadowed,
        }
    }

    pub fn id(&self) -> &str {
        &self.live.id
    }

    /// The identity: the `name` attribute.
    pub fn name(&self) -> Option<&str> {
        name_of(&self.live.attributes)
    }

    /// The input attributes as stored (without the computed `id` and `arn`
    /// reads add), in key order.
    fn stored_attributes(&self) -> Vec<(&str, &Value)> {
        let mut out: Vec<(&str, &Value)> = self
            .live
            .attributes
            .iter()
            .filter(|(k, _)| !COMPUTED.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v))
            .collect();
        if !self.shadowed.is_empty() {
            out.extend(self.shadowed.iter().map(|(k, v)| (k.as_str(), v)));
            out.sort_by(|a, b| a.0.cmp(b.0));
        }
        out
    }
}

/// Serializes a [`Stored`] exactly as its [`WorldObject`] would be.
impl Serialize for Stored {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Attributes<'a>(Vec<(&'a str, &'a Value)>);
        impl Serialize for Attributes<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut map = s.serialize_map(Some(self.0.len()))?;
                for (k, v) in &self.0 {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
        let tags = !self.live.tags.is_empty();
        let mut st = s.serialize_struct("WorldObject", 3 + usize::from(tags))?;
        st.serialize_field("type", &self.type_name)?;
        st.serialize_field("id", &self.live.id)?;
        st.serialize_field("attributes", &Attributes(self.stored_attributes()))?;
        if tags {
            st.serialize_field("tags", &self.live.tags)?;
        }
        st.end()
    }
}

/// The world file: `{"resources": [...]}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorldFile {
    #[serde(default)]
    resources: Vec<WorldObject>,
}

/// One line of the change log (`world.json.log`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum LogEntry {
    /// The object now has exactly this content (create or update).
    Put { object: WorldObject },
    /// The object with this id is gone.
    Remove { id: String },
}

/// The whole world in memory.
#[derive(Debug, Default)]
pub struct World {
    objects: FastMap<String, Stored>,
    /// type → name → id.
    index: FastMap<String, FastMap<String, String>>,
}

impl World {
    /// Parses a world file. Errors say what is wrong, without the path.
    pub fn parse(bytes: &[u8]) -> Result<World, String> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(World::default());
        }
        let file: WorldFile = serde_json::from_slice(bytes).map_err(|e| {
            format!(
                "not a sim world ({e}); expected {{\"resources\": [{{\"type\": \"sim_…\", \"id\": \"…\", \"attributes\": {{\"name\": \"…\"}}, \"tags\": {{}}}}]}}"
            )
        })?;
        let mut world = World::default();
        world.objects.reserve(file.resources.len());
        for (i, mut object) in file.resources.into_iter().enumerate() {
            let what = || format!("resource #{} (type `{}`)", i + 1, object.type_name);
            if super::schema(&object.type_name).is_none() {
                return Err(format!("{}: the type must start with `sim_`", what()));
            }
            let Some(name) = name_of(&object.attributes) else {
                return Err(format!("{}: needs a string attribute `name`", what()));
            };
            if object.id.is_empty() {
                object.id = format!("{}-{name}", object.type_name);
            }
            if world.objects.contains_key(&object.id) {
                return Err(format!("{}: the id `{}` is used twice", what(), object.id));
            }
            if world.find(&object.type_name, name).is_some() {
                return Err(format!("{}: the name `{name}` is used twice", what()));
            }
            world.put(Stored::new(object));
        }
        Ok(world)
    }

    /// The canonical world file: `{"resources": [` and one object per line
    /// in compact JSON, sorted by type then name, ending with a newline.
    /// `size_hint`: the bytes expected (the previous file's length), so the
    /// buffer is sized once. One line per object rather than pretty JSON:
    /// half the bytes, written in half the time (at the end of a run, beside
    /// the state commit), and still a file to read and edit by hand.
    pub fn to_bytes(&self, size_hint: usize) -> Result<Vec<u8>, serde_json::Error> {
        // The keys are looked up once, not in every comparison; ids are
        // unique, so the order is total and an unstable sort is exact.
        let mut resources: Vec<(&str, Option<&str>, &str, &Stored)> = self
            .objects
            .values()
            .map(|o| (o.type_name.as_str(), o.name(), o.id(), o))
            .collect();
        resources.sort_unstable_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
        let mut bytes = Vec::with_capacity(size_hint.max(64 + 128 * resources.len()));
        bytes.extend_from_slice(b"{\"resources\": [");
        for (i, (.., object)) in resources.iter().enumerate() {
            bytes.extend_from_slice(if i == 0 { b"\n" } else { b",\n" });
            serde_json::to_writer(&mut bytes, object)?;
        }
        bytes.extend_from_slice(if resources.is_empty() {
            b"]}\n"
        } else {
            b"\n]}\n"
        });
        Ok(bytes)
    }

    /// The object with this id, if it is of type `type_name`.
    pub fn get_typed(&self, type_name: &str, id: &str) -> Option<&Stored> {
        self.objects.get(id).filter(|o| o.type_name == type_name)
    }

    /// The object with this id, whatever its type.
    pub fn get_by_id(&self, id: &str) -> Option<&Stored> {
        self.objects.get(id)
    }

    pub fn contains_id(&self, id: &str) -> bool {
        self.objects.contains_key(id)
    }

    pub fn find(&self, type_name: &str, name: &str) -> Option<&Stored> {
        let id = self.index.get(type_name)?.get(name)?;
        self.objects.get(id)
    }

    /// The objects of a type, shared.
    pub fn list(&self, type_name: &str) -> Vec<Arc<LiveObject>> {
        self.index
            .get(type_name)
            .map(|names| {
                names
                    .values()
                    .filter_map(|id| self.objects.get(id))
                    .map(|o| o.live.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.objects.len()
    }

    /// Applies one log entry. Idempotent, so replaying a log over a world
    /// that already contains its effects gives the same world.
    pub fn apply(&mut self, entry: LogEntry) {
        match entry {
            LogEntry::Put { object } => self.put(Stored::new(object)),
            LogEntry::Remove { id } => self.remove(&id),
        }
    }

    /// Inserts or replaces an object. Another object holding the same
    /// (type, name) is dropped: names are unique per type.
    fn put(&mut self, object: Stored) {
        let id = object.id().to_string();
        self.remove(&id);
        let name = object.name().unwrap_or("").to_string();
        let names = match self.index.get_mut(&object.type_name) {
            Some(names) => names,
            None => self.index.entry(object.type_name.clone()).or_default(),
        };
        if let Some(old) = names.insert(name, id.clone()) {
            self.objects.remove(&old);
        }
        self.objects.insert(id, object);
    }

    fn remove(&mut self, id: &str) {
        let Some(old) = self.objects.remove(id) else {
            return;
        };
        if let Some(names) = self.index.get_mut(&old.type_name) {
            let name = old.name().unwrap_or("");
            if names.get(name).is_some_and(|i| i == id) {
                names.remove(name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(t: &str, id: &str, name: &str) -> WorldObject {
        WorldObject {
            type_name: t.into(),
            id: id.into(),
            attributes: Attrs::from([("name".into(), json!(name))]),
            tags: Tags::new(),
        }
    }

    #[test]
    fn replay_is_idempotent_across_recreation() {
        let mut w = World::default();
        w.apply(LogEntry::Put {
            object: obj("sim_role", "r2", "a"),
        });
        // Replaying an older history on top of the compacted world.
        for e in [
            LogEntry::Put {
                object: obj("sim_role", "r1", "a"),
            },
            LogEntry::Remove { id: "r1".into() },
            LogEntry::Put {
                object: obj("sim_role", "r2", "a"),
            },
        ] {
            w.apply(e);
        }
        assert_eq!(w.len(), 1);
        assert_eq!(w.find("sim_role", "a").unwrap().id(), "r2");
        assert!(w.get_typed("sim_role", "r1").is_none());
    }

    #[test]
    fn parse_rejects_bad_worlds_with_reasons() {
        assert_eq!(World::parse(b"").unwrap().len(), 0);
        let e = World::parse(b"{\"resources\": 3}").unwrap_err();
        assert!(e.contains("not a sim world"), "{e}");
        let e = World::parse(br#"{"resources":[{"type":"sim_x","attributes":{}}]}"#).unwrap_err();
        assert!(e.contains("`name`"), "{e}");
        let e = World::parse(br#"{"resources":[{"type":"aws_x","attributes":{"name":"a"}}]}"#)
            .unwrap_err();
        assert!(e.contains("sim_"), "{e}");
        let two = br#"{"resources":[{"type":"sim_x","attributes":{"name":"a"}},
                                     {"type":"sim_x","id":"other","attributes":{"name":"a"}}]}"#;
        assert!(World::parse(two).unwrap_err().contains("used twice"));
    }

    #[test]
    fn canonical_output_is_sorted() {
        let mut w = World::default();
        w.apply(LogEntry::Put {
            object: obj("sim_z", "z1", "a"),
        });
        w.apply(LogEntry::Put {
            object: obj("sim_a", "a2", "b"),
        });
        w.apply(LogEntry::Put {
            object: obj("sim_a", "a1", "a"),
        });
        let text = String::from_utf8(w.to_bytes(0).unwrap()).unwrap();
        let ids: Vec<usize> = ["\"a1\"", "\"a2\"", "\"z1\""]
            .iter()
            .map(|id| text.find(id).unwrap())
            .collect();
        assert!(ids.windows(2).all(|p| p[0] < p[1]), "{text}");
        // One object per line between the brackets.
        assert_eq!(text.lines().count(), 5, "{text}");
        assert!(
            text.starts_with("{\"resources\": [\n{\"type\":\"sim_a\""),
            "{text}"
        );
        assert!(text.ends_with("\n]}\n"), "{text}");
        let again = World::parse(text.as_bytes()).unwrap();
        assert_eq!(again.to_bytes(0).unwrap(), w.to_bytes(0).unwrap());
    }

    #[test]
    fn reads_share_objects_and_compaction_keeps_what_was_stored() {
        let text = br#"{"resources":[{"type":"sim_x","id":"x1","attributes":{"arn":"mine","name":"a","zeta":1},"tags":{"k":"v"}}]}"#;
        let w = World::parse(text).unwrap();
        let stored = w.find("sim_x", "a").unwrap();
        assert_eq!(stored.live.attributes["arn"], json!("arn:sim:sim_x:a"));
        assert_eq!(stored.live.attributes["id"], json!("x1"));
        let listed = w.list("sim_x");
        assert!(Arc::ptr_eq(&listed[0], &stored.live));
        let out: serde_json::Value = serde_json::from_slice(&w.to_bytes(0).unwrap()).unwrap();
        let expected: serde_json::Value = serde_json::from_slice(text).unwrap();
        assert_eq!(out, expected);
    }
}
