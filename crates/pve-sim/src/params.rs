//! Request parameters: parsing (query, form, JSON), merging, schema checks, and API errors.

use std::collections::BTreeMap;

use crate::vmconf::{self, KeyType};

/// An error answer. How it is rendered depends on the stage it comes from.
#[derive(Debug, Clone)]
pub(crate) enum ApiError {
    /// 400 `Parameter verification failed.` with an `errors` map.
    Params(BTreeMap<String, String>),
    /// Dispatcher/handler error: JSON envelope, reason phrase = first line of `message`.
    Status { code: u16, message: String },
    /// Auth-stage 401: empty body, delayed.
    AuthStage(&'static str),
    /// HTTP-layer error with a plain-text body (or none).
    Plain {
        code: u16,
        reason: String,
        body: String,
    },
}

impl ApiError {
    pub fn internal(msg: impl Into<String>) -> Self {
        ApiError::Status {
            code: 500,
            message: msg.into(),
        }
    }

    pub fn param(key: &str, msg: impl Into<String>) -> Self {
        let mut m = BTreeMap::new();
        m.insert(key.to_string(), msg.into());
        ApiError::Params(m)
    }

    pub fn forbidden(path: &str, privs: &str) -> Self {
        ApiError::Status {
            code: 403,
            message: format!("Permission check failed ({path}, {privs})"),
        }
    }
}

/// Parameters as received: every key with all its values (repeated keys), plus whether
/// they came from a JSON body (which also accepts JSON booleans).
#[derive(Debug, Default, Clone)]
pub(crate) struct RawParams {
    pub values: BTreeMap<String, Vec<String>>,
}

impl RawParams {
    /// Parse `application/x-www-form-urlencoded` text (query strings too).
    pub fn parse_form(&mut self, text: &[u8]) {
        for (k, v) in form_urlencoded::parse(text) {
            self.values
                .entry(k.into_owned())
                .or_default()
                .push(v.into_owned());
        }
    }

    /// Parse a JSON object body. Booleans become `1`/`0`, numbers their text.
    pub fn parse_json(&mut self, text: &[u8]) -> Result<(), ApiError> {
        if text.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let v: serde_json::Value = serde_json::from_slice(text).map_err(|e| ApiError::Plain {
            code: 400,
            reason: "Bad Request".into(),
            body: format!("unable to parse JSON body - {e}"),
        })?;
        let serde_json::Value::Object(map) = v else {
            return Err(ApiError::Plain {
                code: 400,
                reason: "Bad Request".into(),
                body: "JSON body must be an object".into(),
            });
        };
        for (k, v) in map {
            let vals = match v {
                serde_json::Value::Array(items) => items.iter().map(scalar).collect(),
                other => vec![scalar(&other)],
            };
            self.values.insert(k, vals);
        }
        Ok(())
    }

    /// Merge `other` over `self` (query over body).
    pub fn merge_over(&mut self, other: RawParams) {
        for (k, v) in other.values {
            self.values.insert(k, v);
        }
    }
}

fn scalar(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Bool(b) => if *b { "1" } else { "0" }.to_string(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Declared type of an endpoint parameter.
#[derive(Clone, Copy, Debug)]
pub(crate) enum PType {
    Bool,
    Int {
        min: i64,
        max: i64,
    },
    Str,
    VmId,
    Node,
    /// PVE format `dns-name` (VM names).
    DnsName,
    Enum(&'static [&'static str]),
}

/// One declared parameter.
#[derive(Clone, Copy, Debug)]
pub(crate) struct P {
    pub name: &'static str,
    pub ty: PType,
    pub required: bool,
}

pub(crate) const fn opt(name: &'static str, ty: PType) -> P {
    P {
        name,
        ty,
        required: false,
    }
}

pub(crate) const fn req(name: &'static str, ty: PType) -> P {
    P {
        name,
        ty,
        required: true,
    }
}

pub(crate) const INT0: PType = PType::Int {
    min: 0,
    max: i64::MAX,
};

/// Validated parameters: key → stored string form.
pub(crate) type Params = BTreeMap<String, String>;

fn check_ptype(ty: PType, v: &str) -> Result<String, String> {
    match ty {
        PType::Bool => vmconf::check_type(KeyType::Bool, v),
        PType::Int { min, max } => vmconf::check_type(KeyType::Int { min, max }, v),
        PType::Str => Ok(v.to_string()),
        PType::VmId => {
            let n = vmconf::parse_int(v)
                .ok_or_else(|| format!("type check ('integer') failed - got '{v}'"))?;
            if !(100..=999_999_999).contains(&n) || v.starts_with(['+', '-', '0']) {
                return Err("invalid format - value does not look like a valid VM ID\n".into());
            }
            Ok(n.to_string())
        }
        PType::Node => {
            if vmconf::is_node_name(v) {
                Ok(v.to_string())
            } else {
                Err("invalid format - value does not look like a valid node name\n".into())
            }
        }
        PType::DnsName => {
            if vmconf::is_dns_name(v) {
                Ok(v.to_string())
            } else {
                Err("invalid format - value does not look like a valid DNS name\n".into())
            }
        }
        PType::Enum(values) => {
            if values.contains(&v) {
                Ok(v.to_string())
            } else {
                Err(format!(
                    "value '{v}' does not have a value in the enumeration '{}'",
                    values.join(", ")
                ))
            }
        }
    }
}

fn type_name(ty: Option<PType>) -> &'static str {
    match ty {
        Some(PType::Bool) => "boolean",
        Some(PType::Int { .. }) | Some(PType::VmId) => "integer",
        _ => "string",
    }
}

/// Validate `raw` against `spec`; with `config_keys`, any VM config key is accepted too.
pub(crate) fn validate(raw: &RawParams, spec: &[P], config_keys: bool) -> Result<Params, ApiError> {
    let mut errors = BTreeMap::new();
    let mut out = Params::new();
    for (k, vals) in &raw.values {
        let declared = spec.iter().find(|p| p.name == k);
        let cfg_type = if declared.is_none() && config_keys {
            vmconf::key_type(k)
        } else {
            None
        };
        if declared.is_none() && cfg_type.is_none() {
            errors.insert(
                k.clone(),
                "property is not defined in schema and the schema does not allow additional properties".to_string(),
            );
            continue;
        }
        if vals.len() != 1 {
            let tn = match cfg_type {
                Some(KeyType::Bool) => "boolean",
                Some(KeyType::Int { .. }) => "integer",
                Some(_) => "string",
                None => type_name(declared.map(|p| p.ty)),
            };
            errors.insert(k.clone(), format!("type check ('{tn}') failed - got ARRAY"));
            continue;
        }
        let v = &vals[0];
        let res = match (declared, cfg_type) {
            (Some(p), _) => check_ptype(p.ty, v),
            (None, Some(t)) => vmconf::check_type(t, v),
            (None, None) => continue,
        };
        match res {
            Ok(s) => {
                out.insert(k.clone(), s);
            }
            Err(e) => {
                errors.insert(k.clone(), e);
            }
        }
    }
    for p in spec.iter().filter(|p| p.required) {
        if !raw.values.contains_key(p.name) {
            errors.insert(
                p.name.to_string(),
                "property is missing and it is not optional".to_string(),
            );
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ApiError::Params(errors))
    }
}

pub(crate) fn flag(p: &Params, key: &str) -> bool {
    p.get(key).map(String::as_str) == Some("1")
}
