//! Parsing a record for its mapping: only the members some rule reads are built.
//!
//! A first sync parses every record into a `serde_json::Value`, and building those trees (a
//! string and a map entry for every member) was about half of the mapping thread's time. A
//! mapping reads a few dozen members; an HRIS record often has many more (the bench's 26
//! fields of which the mapping reads 20, Personio's attributes by the dozen). So the record
//! is parsed along [`Needs`], the tree of what the mapping's paths reach: a member no path
//! names is skipped without being built, and below a path's last plain step the value is
//! built whole. Mapping the pruned record gives what mapping the whole one does: every path
//! finds the same values (checked on every mapping the unit tests run, see `Mapper::map`).

use std::borrow::Cow;
use std::collections::HashMap;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use super::path::{Path, Step};

/// What a mapping reads of a record: the members (and array items) its paths pass through,
/// and where it reads a value whole.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Needs {
    /// The value is read whole (a path ends here, or goes on in a way not followed).
    whole: bool,
    /// The members read below an object.
    members: HashMap<String, Needs>,
    /// What is read below an array's items (whichever index a path names).
    items: Option<Box<Needs>>,
}

impl Needs {
    /// Adds what `path` reads: the value at the end of its plain steps, whole.
    pub(crate) fn add(&mut self, path: &Path) {
        let mut at = self;
        for step in path.reach() {
            if at.whole {
                return;
            }
            at = match step {
                Step::Key(k) => at.members.entry(k).or_default(),
                Step::Index(_) => at.items.get_or_insert_with(Default::default),
            };
        }
        *at = Needs {
            whole: true,
            ..Needs::default()
        };
    }

    /// `raw` (one JSON value) with only what the mapping reads. Errors as
    /// `serde_json::from_slice` gives them, except that a value nested deeper than a tree may
    /// be (128 levels) fails only where it is read: skipping it builds nothing.
    pub(crate) fn parse(&self, raw: &[u8]) -> serde_json::Result<Value> {
        let mut de = serde_json::Deserializer::from_slice(raw);
        let value = self.deserialize(&mut de)?;
        de.end()?;
        Ok(value)
    }
}

impl<'de> DeserializeSeed<'de> for &Needs {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        if self.whole {
            Value::deserialize(d)
        } else {
            d.deserialize_any(self)
        }
    }
}

/// A value on the way to what is read: objects keep the members a path names, arrays the
/// items when a path names an index (else they are empty: no path reads through them), and
/// scalars are kept as they are (no path goes on through them either).
impl<'de> Visitor<'de> for &Needs {
    type Value = Value;

    crate::provider::page::value_scalars!();

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        match &self.items {
            Some(needs) => {
                while let Some(v) = seq.next_element_seed(needs.as_ref())? {
                    items.push(v);
                }
            }
            None => while seq.next_element::<IgnoredAny>()?.is_some() {},
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(Key(key)) = map.next_key()? {
            match self.members.get(key.as_ref()) {
                // A repeated member replaces the one before, as in `Value`.
                Some(needs) => {
                    out.insert(key.into_owned(), map.next_value_seed(needs)?);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(out))
    }
}

/// A member name, borrowed from the record when it has no escapes: most are skipped.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a member name")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v.to_string())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::value::JsonPath;
    use serde_json::json;

    fn needs(paths: &[&str]) -> Needs {
        let mut n = Needs::default();
        for p in paths {
            n.add(&Path::new(&JsonPath::parse(p).unwrap()));
        }
        n
    }

    fn parse(paths: &[&str], doc: &Value) -> Value {
        needs(paths)
            .parse(&serde_json::to_vec(doc).unwrap())
            .unwrap()
    }

    #[test]
    fn keeps_what_the_paths_reach_and_skips_the_rest() {
        let doc = json!({
            "id": 7, "skip": {"deep": [1, 2, {"x": "y"}]}, "name": {"first": "Ada", "last": "L"},
            "emails": [{"type": "work", "address": "a@x.io"}, {"type": "home", "address": "a@y.io"}],
            "teams": [{"name": "Core", "id": 1}, {"name": "Ops", "id": 2}],
            "flag": true, "n": 1.5, "nothing": null
        });
        assert_eq!(
            parse(
                &[
                    "$.id",
                    "$.name.first",
                    "$.emails[?@.type == 'work'].address",
                    "$.teams[1].name",
                    "$.flag"
                ],
                &doc
            ),
            json!({
                "id": 7, "name": {"first": "Ada"},
                "emails": [{"type": "work", "address": "a@x.io"}, {"type": "home", "address": "a@y.io"}],
                "teams": [{"name": "Core"}, {"name": "Ops"}],
                "flag": true
            })
        );
    }

    #[test]
    fn reads_the_whole_record_when_a_path_may_reach_anywhere() {
        let doc = json!({"a": {"b": 1}, "c": [1, {"d": "e"}], "f": "g"});
        for paths in [
            &["$"][..],
            &["$..d"],
            &["$.*"],
            &["$[*]"],
            &["$.a.b", "$.c[?@ == $.f]"],
            &["$['it\\'s']"],
        ] {
            assert_eq!(parse(paths, &doc), doc, "{paths:?}");
        }
    }

    #[test]
    fn a_path_through_a_whole_value_keeps_it_whole() {
        let doc = json!({"a": {"b": {"c": 1, "d": 2}, "e": 3}});
        assert_eq!(
            parse(&["$.a", "$.a.b.c"], &doc),
            json!({"a": {"b": {"c": 1, "d": 2}, "e": 3}})
        );
        assert_eq!(
            parse(&["$.a.b.c", "$.a"], &doc),
            json!({"a": {"b": {"c": 1, "d": 2}, "e": 3}})
        );
        assert_eq!(parse(&["$.a.b.c"], &doc), json!({"a": {"b": {"c": 1}}}));
    }

    #[test]
    fn values_not_shaped_as_the_path_expects_read_as_before() {
        // A member where an array is read, an array where a member is: the path finds
        // nothing in either version of the record.
        for (doc, path) in [
            (json!({"a": [{"b": 1}]}), "$.a.b"),
            (json!({"a": {"0": 1}}), "$.a[0]"),
            (json!({"a": "text"}), "$.a.b"),
            (json!([{"a": 1}]), "$[0].a"),
            (json!({"a": [{"b": [1, 2]}]}), "$.a.b[?@ == 1]"),
            (json!({"a": [{"b": [1, 2]}]}), "$.a.b[*]"),
        ] {
            let p = Path::new(&JsonPath::parse(path).unwrap());
            let pruned = parse(&[path], &doc);
            assert_eq!(p.first(&pruned), p.first(&doc), "{path} on {doc}");
            assert_eq!(p.all(&pruned), p.all(&doc), "{path} on {doc}");
        }
    }

    #[test]
    fn repeated_members_and_escaped_names_read_as_serde_json_reads_them() {
        let raw = br#"{"a": 1, "a": 2, "b\u0020c": {"d": 3}, "skip": "\u00e9"}"#;
        let full: Value = serde_json::from_slice(raw).unwrap();
        let pruned = needs(&["$.a", "$['b c'].d"]).parse(raw).unwrap();
        assert_eq!(pruned, json!({"a": 2, "b c": {"d": 3}}));
        assert_eq!(pruned["a"], full["a"]);
    }

    #[test]
    fn bad_json_fails_as_serde_json_fails() {
        let n = needs(&["$.a"]);
        for raw in [&b"{\"a\": 1"[..], b"{\"skip\": [1, }", b"{\"a\": 1} x", b""] {
            let ours = n.parse(raw).unwrap_err();
            let theirs = serde_json::from_slice::<Value>(raw).unwrap_err();
            assert_eq!(
                ours.classify(),
                theirs.classify(),
                "{}",
                String::from_utf8_lossy(raw)
            );
            assert_eq!(ours.is_eof(), theirs.is_eof());
        }
        // Too deep to build where the mapping reads; skipped (never built) elsewhere.
        let deep = |member: &str| {
            format!("{{\"{member}\": {}{}}}", "[".repeat(200), "]".repeat(200)).into_bytes()
        };
        assert!(serde_json::from_slice::<Value>(&deep("a")).is_err());
        let err = n.parse(&deep("a")).unwrap_err();
        assert!(err.to_string().contains("recursion limit"), "{err}");
        assert_eq!(n.parse(&deep("skip")).unwrap(), json!({}));
    }

    /// The built-in catalog's fixtures map the same from the pruned record (`Mapper::map`
    /// checks it in unit tests): real provider records, with `latest`, coalesce and filters.
    #[test]
    fn the_catalog_fixtures_map_the_same_parsed_for_mapping() {
        let mut records = 0;
        for (name, yaml) in crate::config::builtin_mappings() {
            let spec: crate::config::mapping::MappingSpec =
                serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{name}: {e}"));
            let mapper = crate::mapping::Mapper::from_spec(&spec);
            for test in &spec.tests {
                crate::mapping::fixture::check(&mapper, test);
                let raw = serde_json::to_vec(&test.record).unwrap();
                assert!(mapper.parse(&raw).is_ok(), "{name}");
                records += 1;
            }
        }
        assert!(records >= 8, "{records} fixture records");
    }
}
