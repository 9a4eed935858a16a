//! `now()`, a small Python `datetime` look-alike, and the `strftime` filter.

use chrono::{DateTime, Datelike, FixedOffset, Local, Timelike, Utc};
use minijinja::value::{Kwargs, Object, ObjectRepr, Value};
use minijinja::{Environment, Error, ErrorKind, State};
use std::fmt::Write as _;
use std::sync::Arc;

pub fn register(env: &mut Environment<'static>) {
    env.add_function("now", now);
    env.add_filter("strftime", strftime_filter);
    env.add_filter("to_datetime", to_datetime);
}

/// `'2016-08-14 20:00:12' | to_datetime(format='%Y-%m-%d %H:%M:%S')`: a datetime that compares,
/// formats (`.strftime()`) and shows its parts (`.year`...). Subtracting two of them (Python's
/// timedelta) is not supported: compare `.timestamp()` values instead.
fn to_datetime(v: &Value, format: Option<String>, kwargs: Kwargs) -> Result<Value, Error> {
    let format = match format {
        Some(f) => f,
        None => kwargs.get::<Option<String>>("format")?.unwrap_or_else(|| "%Y-%m-%d %H:%M:%S".into()),
    };
    kwargs.assert_all_used()?;
    let s = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
    let bad =
        || Error::new(ErrorKind::InvalidOperation, format!("to_datetime: '{s}' does not match format '{format}'"));
    let t = match chrono::NaiveDateTime::parse_from_str(&s, &format) {
        Ok(t) => t,
        // a format with a date only
        Err(_) => chrono::NaiveDate::parse_from_str(&s, &format).map_err(|_| bad())?.and_time(chrono::NaiveTime::MIN),
    };
    Ok(Value::from_object(PyDateTime(t.and_utc().fixed_offset())))
}

/// A point in time as templates see it (`str()` like Python's `datetime`).
#[derive(Debug)]
pub struct PyDateTime(pub DateTime<FixedOffset>);

fn fmt_err(fmt: &str) -> Error {
    Error::new(ErrorKind::InvalidOperation, format!("invalid time format '{fmt}'"))
}

fn format_time(t: &DateTime<FixedOffset>, fmt: &str) -> Result<String, Error> {
    let mut out = String::new();
    write!(out, "{}", t.format(fmt)).map_err(|_| fmt_err(fmt))?;
    Ok(out)
}

impl Object for PyDateTime {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let t = &self.0;
        Some(Value::from(match key.as_str()? {
            "year" => i64::from(t.year()),
            "month" => i64::from(t.month()),
            "day" => i64::from(t.day()),
            "hour" => i64::from(t.hour()),
            "minute" => i64::from(t.minute()),
            "second" => i64::from(t.second()),
            "microsecond" => i64::from(t.nanosecond() / 1000),
            _ => return None,
        }))
    }

    fn call_method(self: &Arc<Self>, _state: &mut State<'_, '_>, method: &str, args: &[Value]) -> Result<Value, Error> {
        match method {
            "strftime" => {
                let fmt = args.first().and_then(|a| a.as_str()).ok_or_else(|| fmt_err(""))?;
                Ok(Value::from(format_time(&self.0, fmt)?))
            }
            "isoformat" => Ok(Value::from(self.0.format("%Y-%m-%dT%H:%M:%S%.6f").to_string())),
            "timestamp" => Ok(Value::from(self.0.timestamp_micros() as f64 / 1e6)),
            "date" => Ok(Value::from(self.0.format("%Y-%m-%d").to_string())),
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }

    fn custom_cmp(self: &Arc<Self>, other: &minijinja::value::DynObject) -> Option<std::cmp::Ordering> {
        other.downcast_ref::<PyDateTime>().map(|o| self.0.cmp(&o.0))
    }

    /// Python's `str(datetime)`: microseconds only when there are some.
    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.nanosecond() / 1000 == 0 {
            write!(f, "{}", self.0.format("%Y-%m-%d %H:%M:%S"))
        } else {
            write!(f, "{}", self.0.format("%Y-%m-%d %H:%M:%S%.6f"))
        }
    }
}

/// `now(utc=False, fmt=None)`.
fn now(kwargs: Kwargs) -> Result<Value, Error> {
    let utc = kwargs.get::<Option<bool>>("utc")?.unwrap_or(false);
    let fmt = kwargs.get::<Option<String>>("fmt")?;
    kwargs.assert_all_used()?;
    let t: DateTime<FixedOffset> = if utc { Utc::now().fixed_offset() } else { Local::now().fixed_offset() };
    match fmt {
        Some(f) => Ok(Value::from(format_time(&t, &f)?)),
        None => Ok(Value::from_object(PyDateTime(t))),
    }
}

/// `'%Y-%m-%d' | strftime(second=None, utc=False)`.
fn strftime_filter(fmt: &str, second: Option<Value>, kwargs: Kwargs) -> Result<String, Error> {
    let utc = kwargs.get::<Option<bool>>("utc")?.unwrap_or(false);
    let second = match second {
        Some(s) => Some(s),
        None => kwargs.get::<Option<Value>>("second")?,
    };
    kwargs.assert_all_used()?;
    let t: DateTime<Utc> = match second {
        Some(s) => {
            let secs = match s.as_str() {
                Some(x) => x.trim().parse::<f64>().ok(),
                None => f64::try_from(s.clone()).ok(),
            }
            .ok_or_else(|| {
                Error::new(ErrorKind::InvalidOperation, format!("strftime: Invalid value for epoch value ({s})"))
            })?;
            DateTime::from_timestamp(secs.trunc() as i64, (secs.fract() * 1e9) as u32)
                .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "strftime: epoch out of range"))?
        }
        None => Utc::now(),
    };
    let t = if utc { t.fixed_offset() } else { t.with_timezone(&Local).fixed_offset() };
    format_time(&t, fmt)
}
