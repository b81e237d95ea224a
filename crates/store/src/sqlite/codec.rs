//! Conversions between store types and SQLite column values.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::StoreError;

/// Timestamps are stored as microseconds since the Unix epoch (sortable, range-queryable).
pub(crate) fn ts(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// Decodes a stored timestamp.
pub(crate) fn from_ts(micros: i64, what: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(micros).ok_or_else(|| StoreError::Corrupt {
        what: format!("{what}: timestamp {micros} out of range"),
    })
}

/// Decodes an optional stored timestamp.
pub(crate) fn from_opt_ts(
    micros: Option<i64>,
    what: &str,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    micros.map(|m| from_ts(m, what)).transpose()
}

/// Encodes a value as JSON text.
pub(crate) fn to_json<T: Serialize>(value: &T, what: &'static str) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|source| StoreError::Encode { what, source })
}

/// Decodes stored JSON text.
pub(crate) fn from_json<T: DeserializeOwned>(text: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        what: format!("{what}: {e}"),
    })
}

/// Decodes a stored enum name.
pub(crate) fn parse_enum<T: FromStr<Err = String>>(
    text: &str,
    what: &str,
) -> Result<T, StoreError> {
    text.parse().map_err(|e: String| StoreError::Corrupt {
        what: format!("{what}: {e}"),
    })
}

/// Builds the error for a failed SQLite call.
pub(crate) fn sql(op: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sqlite { op, source }
}

/// Encodes a counter (revision, generation) as SQLite's signed integer.
pub(crate) fn to_i64(value: u64, what: &'static str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::InvalidInput {
        what,
        reason: format!("{value} exceeds the storable range"),
    })
}

/// Decodes a stored counter.
pub(crate) fn to_u64(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt {
        what: format!("{what}: negative counter {value}"),
    })
}
