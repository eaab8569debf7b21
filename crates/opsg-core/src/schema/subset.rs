//! A JSON Schema 2020-12 evaluator for the keywords our schemas use, interpreted straight from
//! the schema documents: nothing to compile, so a stage pays microseconds, not the milliseconds
//! `jsonschema` spends building a validator in every process of the pipe.
//!
//! It gives a verdict only (valid or not). A schema document using a keyword, `type`, `$ref` or
//! pattern outside what this file implements is not [`Prepared`], and the caller validates with
//! `jsonschema` instead: a schema change can make validation slower, never weaker. When a record
//! is invalid the caller asks `jsonschema` for the error, so messages are the same as ever.
//! `subset_agrees_with_jsonschema` (in `schema.rs`) checks the two verdicts agree on every
//! example record and config and on many mutations of them.

use super::pattern::Pattern;
use serde_json::{Map, Number, Value};
use std::cmp::Ordering;
use std::collections::HashMap;

/// Keywords that only annotate: no effect on the verdict. `format` is one: `jsonschema` treats
/// 2020-12 `format` as an annotation unless told to assert it, and our validators do not tell it.
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$id",
    "$defs",
    "$comment",
    "title",
    "description",
    "default",
    "examples",
    "format",
];

/// One schema document, checked to use only what this evaluator implements.
#[derive(Debug)]
pub(crate) struct Prepared {
    /// The document.
    root: Value,
    /// Its `pattern`s, parsed once.
    patterns: HashMap<String, Pattern>,
    /// The file names of the other documents its `$ref`s point into.
    pub(crate) references: Vec<String>,
}

impl Prepared {
    /// Check `root` (the schema file `name`); `None` when it needs more than this evaluator has.
    pub(crate) fn new(name: &str, root: Value) -> Option<Prepared> {
        let mut prepared =
            Prepared { root: Value::Null, patterns: HashMap::new(), references: Vec::new() };
        prepared.check(name, &root, &root)?;
        prepared.root = root;
        Some(prepared)
    }

    /// Walk a schema node, refusing what is not implemented and collecting patterns and references.
    fn check(&mut self, name: &str, root: &Value, node: &Value) -> Option<()> {
        let object = match node {
            Value::Bool(_) => return Some(()),
            Value::Object(object) => object,
            _ => return None,
        };
        for (keyword, value) in object {
            match keyword.as_str() {
                "$defs" => {
                    for sub in value.as_object()?.values() {
                        self.check(name, root, sub)?;
                    }
                }
                "format" => {
                    value.as_str()?;
                }
                k if ANNOTATIONS.contains(&k) => {}
                "$ref" => match split_ref(value.as_str()?)? {
                    (Some(file), _) if file != name => {
                        if !self.references.iter().any(|r| r == file) {
                            self.references.push(file.to_string());
                        }
                    }
                    // Within this document: the target is a node checked on its own walk.
                    (_, pointer) => {
                        root.pointer(pointer)?;
                    }
                },
                "type" => match value {
                    Value::Array(names) => {
                        for n in names {
                            type_name(n.as_str()?)?;
                        }
                    }
                    n => {
                        type_name(n.as_str()?)?;
                    }
                },
                "enum" => {
                    value.as_array()?;
                }
                "const" => {}
                "properties" => {
                    for sub in value.as_object()?.values() {
                        self.check(name, root, sub)?;
                    }
                }
                "required" => {
                    for key in value.as_array()? {
                        key.as_str()?;
                    }
                }
                "additionalProperties" | "propertyNames" | "items" => {
                    self.check(name, root, value)?
                }
                "oneOf" => {
                    for sub in value.as_array()? {
                        self.check(name, root, sub)?;
                    }
                }
                "minItems" | "maxItems" | "minLength" | "maxLength" => {
                    value.as_u64()?;
                }
                "uniqueItems" => {
                    value.as_bool()?;
                }
                "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum" => {
                    value.as_number()?;
                }
                "pattern" => {
                    let source = value.as_str()?;
                    self.patterns.insert(source.to_string(), Pattern::parse(source)?);
                }
                _ => return None,
            }
        }
        Some(())
    }
}

/// `envelope.schema.json#/$defs/hash` → (`Some("envelope.schema.json")`, `"/$defs/hash"`).
fn split_ref(reference: &str) -> Option<(Option<&str>, &str)> {
    let (file, pointer) = reference.split_once('#').unwrap_or((reference, ""));
    // Anchors, escaped pointers and URIs with paths are not used by our schemas.
    let plain_pointer = pointer.is_empty() || pointer.starts_with('/');
    if !plain_pointer || pointer.contains(['~', '%']) || file.contains(['/', ':']) {
        return None;
    }
    Some(((!file.is_empty()).then_some(file), pointer))
}

#[derive(Clone, Copy)]
enum Type {
    Null,
    Boolean,
    Object,
    Array,
    Number,
    String,
    Integer,
}

fn type_name(name: &str) -> Option<Type> {
    Some(match name {
        "null" => Type::Null,
        "boolean" => Type::Boolean,
        "object" => Type::Object,
        "array" => Type::Array,
        "number" => Type::Number,
        "string" => Type::String,
        "integer" => Type::Integer,
        _ => return None,
    })
}

fn has_type(instance: &Value, t: Type) -> bool {
    match (t, instance) {
        (Type::Null, Value::Null)
        | (Type::Boolean, Value::Bool(_))
        | (Type::Object, Value::Object(_))
        | (Type::Array, Value::Array(_))
        | (Type::Number, Value::Number(_))
        | (Type::String, Value::String(_)) => true,
        // 2020-12: a number with a zero fractional part is an integer (`1.0`).
        (Type::Integer, Value::Number(n)) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

/// JSON equality, as `enum`, `const` and `uniqueItems` use it: numbers by value (`1` = `1.0`),
/// objects regardless of member order.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare(x, y) == Some(Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

/// Order two JSON numbers, exactly when both are integers.
fn compare(x: &Number, y: &Number) -> Option<Ordering> {
    match (x.as_i64(), y.as_i64(), x.as_u64(), y.as_u64()) {
        (Some(a), Some(b), _, _) => Some(a.cmp(&b)),
        (_, _, Some(a), Some(b)) => Some(a.cmp(&b)),
        (Some(_), None, _, Some(_)) => Some(Ordering::Less), // y is a u64 past i64::MAX
        (None, Some(_), Some(_), _) => Some(Ordering::Greater),
        _ => x.as_f64()?.partial_cmp(&y.as_f64()?),
    }
}

/// Evaluates instances against prepared documents.
pub(crate) struct Evaluator {
    /// The prepared document of a schema file (for `$ref`s into other files).
    pub(crate) documents: fn(&str) -> Option<&'static Prepared>,
}

impl Evaluator {
    /// Whether `instance` is valid against the whole document `name`.
    pub(crate) fn is_valid(&self, name: &str, instance: &Value) -> bool {
        (self.documents)(name).is_some_and(|doc| self.node(name, doc, &doc.root, instance))
    }

    fn node(&self, name: &str, doc: &Prepared, node: &Value, instance: &Value) -> bool {
        match node {
            Value::Bool(b) => *b,
            Value::Object(schema) => schema
                .iter()
                .all(|(keyword, value)| self.keyword(name, doc, schema, keyword, value, instance)),
            _ => false,
        }
    }

    fn keyword(
        &self,
        name: &str,
        doc: &Prepared,
        schema: &Map<String, Value>,
        keyword: &str,
        value: &Value,
        instance: &Value,
    ) -> bool {
        match (keyword, instance) {
            ("$ref", _) => {
                let Some((file, pointer)) = value.as_str().and_then(split_ref) else {
                    return false;
                };
                let (name, doc) = match file {
                    Some(file) if file != name => match (self.documents)(file) {
                        Some(other) => (file, other),
                        None => return false,
                    },
                    _ => (name, doc),
                };
                doc.root
                    .pointer(pointer)
                    .is_some_and(|target| self.node(name, doc, target, instance))
            }
            ("type", _) => match value {
                Value::Array(names) => names
                    .iter()
                    .filter_map(|n| n.as_str().and_then(type_name))
                    .any(|t| has_type(instance, t)),
                n => n.as_str().and_then(type_name).is_some_and(|t| has_type(instance, t)),
            },
            ("enum", _) => value
                .as_array()
                .is_some_and(|options| options.iter().any(|o| json_equal(o, instance))),
            ("const", _) => json_equal(value, instance),
            ("properties", Value::Object(members)) => value.as_object().is_some_and(|properties| {
                properties
                    .iter()
                    .all(|(key, sub)| members.get(key).is_none_or(|m| self.node(name, doc, sub, m)))
            }),
            ("required", Value::Object(members)) => value.as_array().is_some_and(|keys| {
                keys.iter().all(|k| k.as_str().is_some_and(|k| members.contains_key(k)))
            }),
            ("additionalProperties", Value::Object(members)) => {
                let declared = schema.get("properties").and_then(Value::as_object);
                members
                    .iter()
                    .filter(|(key, _)| declared.is_none_or(|d| !d.contains_key(*key)))
                    .all(|(_, m)| self.node(name, doc, value, m))
            }
            ("propertyNames", Value::Object(members)) => {
                members.keys().all(|k| self.node(name, doc, value, &Value::String(k.clone())))
            }
            ("items", Value::Array(items)) => {
                items.iter().all(|item| self.node(name, doc, value, item))
            }
            ("minItems", Value::Array(items)) => bound(value, items.len(), Ordering::Less),
            ("maxItems", Value::Array(items)) => bound(value, items.len(), Ordering::Greater),
            ("uniqueItems", Value::Array(items)) => {
                value != &Value::Bool(true)
                    || items
                        .iter()
                        .enumerate()
                        .all(|(i, a)| items[i + 1..].iter().all(|b| !json_equal(a, b)))
            }
            ("minLength", Value::String(s)) => bound(value, s.chars().count(), Ordering::Less),
            ("maxLength", Value::String(s)) => bound(value, s.chars().count(), Ordering::Greater),
            ("pattern", Value::String(s)) => value
                .as_str()
                .and_then(|source| doc.patterns.get(source))
                .is_some_and(|p| p.is_match(s)),
            ("minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum", Value::Number(n)) => {
                let order = value.as_number().and_then(|limit| compare(n, limit));
                order.is_some_and(|o| match keyword {
                    "minimum" => o != Ordering::Less,
                    "maximum" => o != Ordering::Greater,
                    "exclusiveMinimum" => o == Ordering::Greater,
                    _ => o == Ordering::Less,
                })
            }
            ("oneOf", _) => value.as_array().is_some_and(|subs| {
                subs.iter().filter(|sub| self.node(name, doc, sub, instance)).take(2).count() == 1
            }),
            // Annotations, and assertions about another type than the instance's.
            _ => true,
        }
    }
}

/// A `minX` / `maxX` keyword: `count` must not be `beyond` the limit.
fn bound(limit: &Value, count: usize, beyond: Ordering) -> bool {
    limit.as_u64().is_some_and(|limit| (count as u64).cmp(&limit) != beyond)
}
