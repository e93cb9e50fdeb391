//! JSON Schema (draft-07) for each file kind, generated with schemars from the config types.
//!
//! The same schema serves editors (`# yaml-language-server: $schema=...`) and `validate`
//! (through `config::check`), so what an editor underlines is what `validate` reports.

use std::sync::OnceLock;

use schemars::generate::SchemaSettings;
use serde_json::Value;

use super::deployment::Deployment;
use super::mapping::MappingSpec;
use super::provider::ProviderSpec;

/// The three kinds of config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum FileKind {
    /// `roster.yaml`.
    Deployment,
    /// `providers/*.yaml`.
    Provider,
    /// `mappings/*.yaml`.
    Mapping,
}

impl FileKind {
    /// All kinds.
    pub const ALL: [FileKind; 3] = [FileKind::Deployment, FileKind::Provider, FileKind::Mapping];

    /// Lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            FileKind::Deployment => "deployment",
            FileKind::Provider => "provider",
            FileKind::Mapping => "mapping",
        }
    }
}

/// The draft-07 schema for a file kind (generated once per process).
pub fn schema(kind: FileKind) -> &'static Value {
    static SCHEMAS: OnceLock<[Value; 3]> = OnceLock::new();
    let all = SCHEMAS.get_or_init(|| {
        [
            generate::<Deployment>("Roster deployment (roster.yaml)"),
            generate::<ProviderSpec>("Roster provider spec (providers/*.yaml)"),
            generate::<MappingSpec>("Roster field mapping (mappings/*.yaml)"),
        ]
    });
    &all[kind as usize]
}

/// The draft-07 schema of a type, titled, with tag descriptions filled in.
pub fn generate<T: schemars::JsonSchema>(title: &str) -> Value {
    let schema = SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<T>();
    let mut v = schema.to_value();
    describe_tags(&mut v);
    if let Some(obj) = v.as_object_mut() {
        obj.insert("title".into(), Value::String(title.into()));
    }
    v
}

/// schemars leaves the tag property of an internally tagged enum (`kind: bearer`) without a
/// description; editors show descriptions on hover, so each gets its variant's.
fn describe_tags(v: &mut Value) {
    match v {
        Value::Object(map) => {
            let branch_desc = map
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_string);
            if let (Some(desc), Some(Value::Object(props))) =
                (branch_desc, map.get_mut("properties"))
            {
                // An externally tagged variant (`body: {json: ...}`): its one property is the variant.
                if props.len() == 1
                    && let Some(only) = props.values_mut().next()
                {
                    if *only == Value::Bool(true) {
                        // `true` (any value) and `{}` mean the same; only the object can say why.
                        *only = Value::Object(serde_json::Map::new());
                    }
                    if let Some(obj) = only.as_object_mut()
                        && !obj.contains_key("description")
                    {
                        obj.insert("description".into(), Value::String(desc.clone()));
                    }
                }
                for prop in props.values_mut() {
                    if let Some(obj) = prop.as_object_mut()
                        && !obj.contains_key("description")
                        && let Some(c) = obj.get("const").and_then(Value::as_str)
                    {
                        let text = format!("`{c}`: {desc}");
                        obj.insert("description".into(), Value::String(text));
                    }
                }
            }
            for child in map.values_mut() {
                describe_tags(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(describe_tags),
        _ => {}
    }
}

/// The schema as pretty JSON with a trailing newline, as `roster schema` prints it.
pub fn to_pretty(kind: FileKind) -> String {
    let mut s = serde_json::to_string_pretty(schema(kind)).expect("a schema serialises");
    s.push('\n');
    s
}

/// Every property (by JSON pointer) that has no `description`; the schema test requires none.
pub fn undescribed_properties(kind: FileKind) -> Vec<String> {
    fn walk(v: &Value, ptr: &str, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                if let Some(Value::Object(props)) = map.get("properties") {
                    for (name, prop) in props {
                        let has = prop
                            .get("description")
                            .is_some_and(|d| d.as_str().is_some_and(|s| !s.trim().is_empty()));
                        if !has {
                            out.push(format!("{ptr}/properties/{name}"));
                        }
                    }
                }
                for (k, child) in map {
                    walk(child, &format!("{ptr}/{k}"), out);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(child, &format!("{ptr}/{i}"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(schema(kind), "", &mut out);
    out
}
