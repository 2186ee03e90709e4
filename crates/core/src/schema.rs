//! JSON Schemas attached to key patterns, compiled once per settings version.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::ids::KeyPattern;

/// The compiled schemas of one context.
#[derive(Default)]
pub struct CompiledSchemas {
    schemas: Vec<(KeyPattern, jsonschema::Validator)>,
}

impl std::fmt::Debug for CompiledSchemas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.schemas.iter().map(|(p, _)| p.as_str())).finish()
    }
}

impl CompiledSchemas {
    /// Compiles every schema; fails on a bad pattern or an invalid schema.
    pub fn compile(schemas: &BTreeMap<String, Value>) -> Result<Self> {
        let mut compiled = Vec::with_capacity(schemas.len());
        for (pattern, schema) in schemas {
            let parsed = KeyPattern::parse(pattern)?;
            let validator = jsonschema::validator_for(schema)
                .map_err(|e| Error::InvalidSchema { pattern: pattern.clone(), reason: e.to_string() })?;
            compiled.push((parsed, validator));
        }
        Ok(CompiledSchemas { schemas: compiled })
    }

    /// Whether no schema is attached.
    pub fn is_empty(&self) -> bool {
        self.schemas.is_empty()
    }

    /// Checks `value` against every schema whose pattern matches `key`.
    pub fn validate(&self, key: &str, value: &Value) -> Result<()> {
        for (pattern, validator) in &self.schemas {
            if !pattern.matches(key) {
                continue;
            }
            if let Err(e) = validator.validate(value) {
                return Err(Error::SchemaViolation {
                    key: key.to_owned(),
                    pattern: pattern.as_str().to_owned(),
                    pointer: e.instance_path().as_str().to_owned(),
                    schema_path: e.schema_path().as_str().to_owned(),
                    message: e.to_string(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn violation_carries_pointer() {
        let schemas = BTreeMap::from([(
            "order".to_owned(),
            json!({"type": "object", "properties": {"qty": {"type": "integer", "minimum": 1}}, "required": ["qty"]}),
        )]);
        let compiled = CompiledSchemas::compile(&schemas).unwrap();
        assert!(compiled.validate("order", &json!({"qty": 2})).is_ok());
        assert!(compiled.validate("other", &json!("anything")).is_ok());
        match compiled.validate("order", &json!({"qty": 0})).unwrap_err() {
            Error::SchemaViolation { pointer, .. } => assert_eq!(pointer, "/qty"),
            e => panic!("unexpected {e:?}"),
        }
    }

    #[test]
    fn bad_schema_is_rejected() {
        let schemas = BTreeMap::from([("a".to_owned(), json!({"type": 12}))]);
        assert_eq!(CompiledSchemas::compile(&schemas).unwrap_err().code(), "invalid_schema");
        let schemas = BTreeMap::from([("a//b".to_owned(), json!({}))]);
        assert_eq!(CompiledSchemas::compile(&schemas).unwrap_err().code(), "invalid_key");
    }
}
