//! The sim world's data and on-disk formats, without any IO: the world file
//! users write by hand (and compaction rewrites canonically), the change-log
//! lines, and the in-memory world indexed by id and by (type, name).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::model::Attrs;
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
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

impl WorldObject {
    /// The identity: the `name` attribute.
    pub fn name(&self) -> Option<&str> {
        self.attributes.get("name").and_then(|v| v.as_str())
    }

    /// `arn:sim:<type>:<name>`.
    pub fn arn(&self) -> String {
        format!("arn:sim:{}:{}", self.type_name, self.name().unwrap_or(""))
    }

    /// The object as the engine sees it: stored attributes plus `id` and `arn`.
    pub fn to_live(&self) -> LiveObject {
        let mut attributes = self.attributes.clone();
        attributes.insert("id".into(), self.id.clone().into());
        attributes.insert("arn".into(), self.arn().into());
        LiveObject {
            id: self.id.clone(),
            attributes,
            tags: self.tags.clone(),
        }
    }
}

/// The world file: `{"resources": [...]}`.
#[derive(Debug, Default, Serialize, Deserialize)]
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
    objects: HashMap<String, WorldObject>,
    /// type → name → id.
    index: HashMap<String, HashMap<String, String>>,
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
        for (i, mut object) in file.resources.into_iter().enumerate() {
            let what = format!("resource #{} (type `{}`)", i + 1, object.type_name);
            if super::schema(&object.type_name).is_none() {
                return Err(format!("{what}: the type must start with `sim_`"));
            }
            let Some(name) = object.name().map(str::to_string) else {
                return Err(format!("{what}: needs a string attribute `name`"));
            };
            if object.id.is_empty() {
                object.id = format!("{}-{name}", object.type_name);
            }
            if world.objects.contains_key(&object.id) {
                return Err(format!("{what}: the id `{}` is used twice", object.id));
            }
            if world.find(&object.type_name, &name).is_some() {
                return Err(format!("{what}: the name `{name}` is used twice"));
            }
            world.put(object);
        }
        Ok(world)
    }

    /// The canonical world file: pretty JSON, sorted by type then name,
    /// ending with a newline.
    pub fn to_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut resources: Vec<&WorldObject> = self.objects.values().collect();
        resources.sort_by(|a, b| {
            (a.type_name.as_str(), a.name(), a.id.as_str()).cmp(&(
                b.type_name.as_str(),
                b.name(),
                b.id.as_str(),
            ))
        });
        #[derive(Serialize)]
        struct Out<'a> {
            resources: Vec<&'a WorldObject>,
        }
        let mut bytes = serde_json::to_vec_pretty(&Out { resources })?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    /// The object with this id, if it is of type `type_name`.
    pub fn get_typed(&self, type_name: &str, id: &str) -> Option<&WorldObject> {
        self.objects.get(id).filter(|o| o.type_name == type_name)
    }

    pub fn contains_id(&self, id: &str) -> bool {
        self.objects.contains_key(id)
    }

    pub fn find(&self, type_name: &str, name: &str) -> Option<&WorldObject> {
        let id = self.index.get(type_name)?.get(name)?;
        self.objects.get(id)
    }

    pub fn list(&self, type_name: &str) -> Vec<&WorldObject> {
        self.index
            .get(type_name)
            .map(|names| {
                names
                    .values()
                    .filter_map(|id| self.objects.get(id))
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
            LogEntry::Put { object } => self.put(object),
            LogEntry::Remove { id } => self.remove(&id),
        }
    }

    /// Inserts or replaces an object. Another object holding the same
    /// (type, name) is dropped: names are unique per type.
    fn put(&mut self, object: WorldObject) {
        self.remove(&object.id);
        let name = object.name().unwrap_or("").to_string();
        let names = self.index.entry(object.type_name.clone()).or_default();
        if let Some(old) = names.insert(name, object.id.clone()) {
            self.objects.remove(&old);
        }
        self.objects.insert(object.id.clone(), object);
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
            tags: BTreeMap::new(),
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
        assert_eq!(w.find("sim_role", "a").unwrap().id, "r2");
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
        let text = String::from_utf8(w.to_bytes().unwrap()).unwrap();
        let ids: Vec<usize> = ["\"a1\"", "\"a2\"", "\"z1\""]
            .iter()
            .map(|id| text.find(id).unwrap())
            .collect();
        assert!(ids.windows(2).all(|p| p[0] < p[1]), "{text}");
        let again = World::parse(text.as_bytes()).unwrap();
        assert_eq!(again.to_bytes().unwrap(), w.to_bytes().unwrap());
    }
}
