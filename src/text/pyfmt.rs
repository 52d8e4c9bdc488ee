//! The two Python helpers transformers installs in its chat-template environment, reproduced
//! so templates render byte-identically: `tojson` (Python's `json.dumps`, not Jinja's
//! HTML-escaping filter) and `strftime_now`.

use std::time::{SystemTime, UNIX_EPOCH};

use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Error, ErrorKind, Value};

/// HF's filter: `json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)`.
/// `indent` may also be given positionally, as with Jinja's own `tojson`.
pub fn tojson(value: &Value, indent: Option<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let indent = match kwargs.get::<Option<Value>>("indent")? {
        Some(v) => Some(v),
        None => indent,
    };
    let indent = match indent {
        None => None,
        Some(v) if v.is_none() => None,
        // Python: an int n means n spaces (a negative n means none), a string is used as is
        Some(v) if v.is_integer() => Some(" ".repeat(v.as_i64().unwrap_or(0).max(0) as usize)),
        Some(v) => match v.as_str() {
            Some(s) => Some(s.to_string()),
            None => return Err(bad_arg(format!("tojson: indent must be an int or a string, got {v}"))),
        },
    };
    let (item_sep, key_sep) = match kwargs.get::<Option<Value>>("separators")? {
        Some(v) if !v.is_none() => {
            let parts: Vec<String> = v
                .try_iter()?
                .map(|p| p.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| bad_arg("tojson: separators must be two strings".into()))?;
            match <[String; 2]>::try_from(parts) {
                Ok([item, key]) => (item, key),
                Err(_) => return Err(bad_arg("tojson: separators must be two strings".into())),
            }
        }
        // json.dumps drops the space after ',' when indenting
        _ => ((if indent.is_some() { "," } else { ", " }).to_string(), ": ".to_string()),
    };
    let fmt = JsonFmt {
        indent,
        item_sep,
        key_sep,
        sort_keys: kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false),
        ensure_ascii: kwargs.get::<Option<bool>>("ensure_ascii")?.unwrap_or(false),
    };
    kwargs.assert_all_used()?;
    let mut out = String::new();
    fmt.write(value, 0, &mut out)?;
    Ok(Value::from(out))
}

fn bad_arg(msg: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg)
}

struct JsonFmt {
    indent: Option<String>,
    item_sep: String,
    key_sep: String,
    sort_keys: bool,
    ensure_ascii: bool,
}

impl JsonFmt {
    fn write(&self, v: &Value, level: usize, out: &mut String) -> Result<(), Error> {
        match v.kind() {
            ValueKind::None => out.push_str("null"),
            ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
            ValueKind::Number if v.is_integer() => out.push_str(&v.to_string()),
            ValueKind::Number => out.push_str(&py_float_repr(f64::try_from(v.clone())?)),
            ValueKind::String => self.quote(v.as_str().unwrap_or_default(), out),
            ValueKind::Seq | ValueKind::Iterable => {
                let items: Vec<Value> = v.try_iter()?.collect();
                self.container(out, level, ['[', ']'], &items, |f, item, lvl, out| f.write(item, lvl, out))?;
            }
            ValueKind::Map => {
                let mut entries = Vec::new();
                for key in v.try_iter()? {
                    entries.push((json_key(&key)?, v.get_item(&key)?));
                }
                if self.sort_keys {
                    entries.sort_by(|a, b| a.0.cmp(&b.0));
                }
                self.container(out, level, ['{', '}'], &entries, |f, (k, val), lvl, out| {
                    f.quote(k, out);
                    out.push_str(&f.key_sep);
                    f.write(val, lvl, out)
                })?;
            }
            kind => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("tojson: a value of type {kind} is not JSON serializable"),
                ))
            }
        }
        Ok(())
    }

    fn container<T>(
        &self,
        out: &mut String,
        level: usize,
        brackets: [char; 2],
        items: &[T],
        write_item: impl Fn(&Self, &T, usize, &mut String) -> Result<(), Error>,
    ) -> Result<(), Error> {
        out.push(brackets[0]);
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push_str(&self.item_sep);
            }
            self.newline(out, level + 1);
            write_item(self, item, level + 1, out)?;
        }
        if !items.is_empty() {
            self.newline(out, level);
        }
        out.push(brackets[1]);
        Ok(())
    }

    fn newline(&self, out: &mut String, level: usize) {
        if let Some(ind) = &self.indent {
            out.push('\n');
            out.push_str(&ind.repeat(level));
        }
    }

    fn quote(&self, s: &str, out: &mut String) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 || (self.ensure_ascii && c > '~') => {
                    let mut units = [0u16; 2];
                    for u in c.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{u:04x}"));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }
}

/// Python converts non-string dict keys to strings the way it writes them as values.
fn json_key(key: &Value) -> Result<String, Error> {
    match key.kind() {
        ValueKind::String => Ok(key.as_str().unwrap_or_default().to_string()),
        ValueKind::None => Ok("null".into()),
        ValueKind::Bool => Ok((if key.is_true() { "true" } else { "false" }).into()),
        ValueKind::Number if key.is_integer() => Ok(key.to_string()),
        ValueKind::Number => Ok(py_float_repr(f64::try_from(key.clone())?)),
        kind => Err(Error::new(ErrorKind::InvalidOperation, format!("tojson: keys must be str, not {kind}"))),
    }
}

/// Python's `repr(float)`: shortest round-trip digits, positional for exponents -4..16,
/// otherwise `1.5e-05` / `1e+16` style.
pub(crate) fn py_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return (if x > 0.0 { "Infinity" } else { "-Infinity" }).into();
    }
    let sci = format!("{:e}", x.abs()); // shortest digits, e.g. "1.5e-7"
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let sign = if x.is_sign_negative() { "-" } else { "" };
    let body = if (-4..16).contains(&exp) {
        if exp < 0 {
            format!("0.{}{}", "0".repeat((-exp - 1) as usize), digits)
        } else {
            let int_len = exp as usize + 1;
            let padded = format!("{digits:0<int_len$}");
            let (int_part, frac) = padded.split_at(int_len);
            format!("{int_part}.{}", if frac.is_empty() { "0" } else { frac })
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() { String::new() } else { format!(".{rest}") };
        format!("{first}{dot}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    };
    format!("{sign}{body}")
}

/// `datetime.now().strftime(format)`, in UTC (no time-zone database here). Covers the codes
/// chat templates use; any other `%x` is copied through.
pub fn strftime_now(format: &str) -> Result<String, Error> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("strftime_now: clock error: {e}")))?
        .as_secs();
    Ok(strftime(format, secs as i64))
}

pub(crate) fn strftime(format: &str, unix_secs: i64) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let (hour, minute, second) = (secs / 3600, secs / 60 % 60, secs % 60);
    let weekday = DAYS[(days + 4).rem_euclid(7) as usize]; // 1970-01-01 was a Thursday
    let month_name = MONTHS[(month - 1) as usize];

    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(mut code) = chars.next() else {
            out.push('%');
            break;
        };
        // glibc's "%-d": no zero padding
        let pad = code != '-';
        if !pad {
            match chars.next() {
                Some(next) => code = next,
                None => {
                    out.push_str("%-");
                    break;
                }
            }
        }
        let num = |n: i64| {
            if pad {
                format!("{n:02}")
            } else {
                n.to_string()
            }
        };
        let piece = match code {
            'Y' => year.to_string(),
            'y' => num(year.rem_euclid(100)),
            'm' => num(month),
            'd' => num(day),
            'H' => num(hour),
            'I' => num((hour + 11) % 12 + 1),
            'M' => num(minute),
            'S' => num(second),
            'p' => (if hour < 12 { "AM" } else { "PM" }).to_string(),
            'B' => month_name.to_string(),
            'b' => month_name[..3].to_string(),
            'A' => weekday.to_string(),
            'a' => weekday[..3].to_string(),
            '%' => "%".to_string(),
            other => format!("%{}{other}", if pad { "" } else { "-" }),
        };
        out.push_str(&piece);
    }
    out
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_matches_python() {
        let cases = [
            (1.0, "1.0"),
            (0.5, "0.5"),
            (-2.25, "-2.25"),
            (123.0, "123.0"),
            (1e-5, "1e-05"),
            (1.5e-5, "1.5e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (1234567890123456.0, "1234567890123456.0"),
            (0.1, "0.1"),
            (-0.0, "-0.0"),
            (2.75, "2.75"),
            (1e22, "1e+22"),
        ];
        for (x, want) in cases {
            assert_eq!(py_float_repr(x), want, "{x}");
        }
    }

    #[test]
    fn strftime_known_instants() {
        assert_eq!(strftime("%Y-%m-%d %H:%M:%S %A %a %B %b", 0), "1970-01-01 00:00:00 Thursday Thu January Jan");
        assert_eq!(
            strftime("%d %b %Y, %-d %B, %I:%M %p, 100%%", 1_700_000_000),
            "14 Nov 2023, 14 November, 10:13 PM, 100%"
        );
        assert_eq!(strftime("%Y-%m-%d %q", 951_782_400), "2000-02-29 %q");
    }
}
