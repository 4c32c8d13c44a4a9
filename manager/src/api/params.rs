//! Request parameters, read the way CloudStack's dispatcher reads them
//! (reference §1.1, §1.5): names are case-insensitive, the first value of a
//! repeated name wins, values with ASCII control characters are refused, and
//! typed accessors fail with CloudStack's codes and wording.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use uuid::Uuid;

use super::error::ApiError;
use super::signature::parse_expires;

/// Longest value a string parameter takes unless its command says otherwise.
pub const DEFAULT_MAX_LENGTH: usize = 255;

/// Parameter names whose values are never shown by `Debug` (`ipsecpsk`: a
/// VPN customer gateway's pre-shared key).
const SECRET_NAMES: [&str; 5] = [
    "password",
    "signature",
    "sessionkey",
    "secretkey",
    "ipsecpsk",
];

/// The parameters of one request.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Params {
    /// Every pair as received (after URL decoding), for signature checking.
    raw: Vec<(String, String)>,
    /// Lower-cased name → first value received under any spelling of it.
    by_name: BTreeMap<String, String>,
}

impl Params {
    /// Builds the parameters from decoded (name, value) pairs, in the order
    /// received (query string first, then form body).
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut by_name = BTreeMap::new();
        for (name, value) in &pairs {
            by_name
                .entry(name.to_lowercase())
                .or_insert_with(|| value.clone());
        }
        Self {
            raw: pairs,
            by_name,
        }
    }

    /// Parses an `application/x-www-form-urlencoded` string: a query string
    /// (without `?`) or a POST body. `+` decodes to a space as in a servlet.
    pub fn parse_query(query: &str) -> Self {
        Self::from_pairs(decode(query))
    }

    /// Parses a request's query string and form body together; values in the
    /// query string come first, as the servlet merges them.
    pub fn parse_request(query: &str, body: &str) -> Self {
        let mut pairs = decode(query);
        pairs.extend(decode(body));
        Self::from_pairs(pairs)
    }

    /// Every pair exactly as received, duplicates included.
    pub fn raw_pairs(&self) -> &[(String, String)] {
        &self.raw
    }

    /// The distinct lower-cased names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// The first value of `name` (any case), unchecked.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.by_name.get(&name.to_lowercase()).map(String::as_str)
    }

    /// Whether `name` (any case) was sent at all, even empty.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Request-wide checks done before dispatch: no value may hold an ASCII
    /// control character (431), and every name with `[` must be a well-formed
    /// map entry `name[index].key` (430).
    pub fn validate(&self) -> Result<(), ApiError> {
        for (name, value) in &self.raw {
            check_control(name, value)?;
            if name.contains('[') {
                split_map_name(name).ok_or_else(|| malformed_map_name(name))?;
            }
        }
        Ok(())
    }

    /// The value of `name`, refused if it holds control characters.
    fn value(&self, name: &str) -> Result<Option<&str>, ApiError> {
        match self.get(name) {
            Some(v) => check_control(name, v).map(|()| Some(v)),
            None => Ok(None),
        }
    }

    /// A typed value: `None` when absent or empty.
    fn nonempty(&self, name: &str) -> Result<Option<&str>, ApiError> {
        Ok(self.value(name)?.filter(|v| !v.is_empty()))
    }

    /// A string parameter of at most [`DEFAULT_MAX_LENGTH`] characters. An
    /// empty value is returned as `Some("")`: some updates use it to clear.
    pub fn string(&self, name: &str) -> Result<Option<String>, ApiError> {
        self.string_max(name, DEFAULT_MAX_LENGTH)
    }

    /// A string parameter of at most `max` characters (counted in UTF-16
    /// units, as Java's `String.length` does) → 431 when longer.
    pub fn string_max(&self, name: &str, max: usize) -> Result<Option<String>, ApiError> {
        match self.value(name)? {
            Some(v) if v.encode_utf16().count() > max => Err(ApiError::too_long(name, max)),
            Some(v) => Ok(Some(v.to_string())),
            None => Ok(None),
        }
    }

    /// A required string parameter of `command`: absent or empty → 431
    /// "missing parameter".
    pub fn required_string(&self, command: &str, name: &str) -> Result<String, ApiError> {
        self.required_string_max(command, name, DEFAULT_MAX_LENGTH)
    }

    /// As [`Params::required_string`] with an explicit maximum length.
    pub fn required_string_max(
        &self,
        command: &str,
        name: &str,
        max: usize,
    ) -> Result<String, ApiError> {
        match self.string_max(name, max)? {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(ApiError::missing_param(command, name)),
        }
    }

    /// A boolean parameter. Like Java's `Boolean.valueOf`, only `true` (any
    /// case) is true and every other value is false; never an error.
    pub fn boolean(&self, name: &str) -> Result<Option<bool>, ApiError> {
        Ok(self.nonempty(name)?.map(|v| v.eq_ignore_ascii_case("true")))
    }

    /// A 32-bit integer parameter.
    pub fn integer(&self, name: &str) -> Result<Option<i32>, ApiError> {
        self.number(name, "an integer")
    }

    /// A 64-bit integer parameter.
    pub fn long(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.number(name, "a long integer")
    }

    fn number<T: std::str::FromStr>(&self, name: &str, kind: &str) -> Result<Option<T>, ApiError> {
        let Some(v) = self.nonempty(name)? else {
            return Ok(None);
        };
        v.parse().map(Some).map_err(|_| {
            ApiError::param(format!(
                "Unable to translate the value {v} of parameter {name} into {kind}"
            ))
        })
    }

    /// Checks the value of `name` (if given and not empty) against its
    /// declared type (`integer`, `long`, `uuid`, `date`, as listApis names
    /// them; other types take any text) and `range`: 431 naming the
    /// parameter and the values it takes otherwise. `command` is the API's
    /// name, for the error text.
    pub fn check_typed(
        &self,
        command: &str,
        name: &str,
        ty: &str,
        range: Option<(i64, i64)>,
    ) -> Result<(), ApiError> {
        let Some(v) = self.nonempty(name)? else {
            return Ok(());
        };
        let number: Option<i64> = match ty {
            "integer" => Some(v.parse::<i32>().map(i64::from).map_err(|_| {
                invalid_value(command, name, v, i64::from(i32::MIN), i64::from(i32::MAX))
            })?),
            "long" => Some(
                v.parse::<i64>()
                    .map_err(|_| invalid_value(command, name, v, i64::MIN, i64::MAX))?,
            ),
            "uuid" => {
                parse_uuid(name, v)?;
                None
            }
            "date" => {
                self.date(name)?;
                None
            }
            _ => None,
        };
        match (number, range) {
            (Some(n), Some((min, max))) if !(min..=max).contains(&n) => {
                Err(invalid_value(command, name, v, min, max))
            }
            _ => Ok(()),
        }
    }

    /// A UUID parameter in the canonical 8-4-4-4-12 form (any hex case);
    /// anything else → 431 with the "Invalid parameter … value=…" text that
    /// clients match on, as for an id that names no entity.
    pub fn uuid(&self, name: &str) -> Result<Option<Uuid>, ApiError> {
        self.nonempty(name)?
            .map(|v| parse_uuid(name, v))
            .transpose()
    }

    /// A required UUID parameter of `command`.
    pub fn required_uuid(&self, command: &str, name: &str) -> Result<Uuid, ApiError> {
        self.uuid(name)?
            .ok_or_else(|| ApiError::missing_param(command, name))
    }

    /// A comma-separated list: items trimmed, empty items dropped.
    pub fn list(&self, name: &str) -> Result<Option<Vec<String>>, ApiError> {
        Ok(self.nonempty(name)?.map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_string)
                .collect()
        }))
    }

    /// A comma-separated list of UUIDs (e.g. `ids`).
    pub fn uuid_list(&self, name: &str) -> Result<Option<Vec<Uuid>>, ApiError> {
        self.list(name)?
            .map(|items| items.iter().map(|v| parse_uuid(name, v)).collect())
            .transpose()
    }

    /// A map parameter sent as `name[i].key=value`: one map per index, in
    /// index order (indexes may be sparse), keys lower-cased. A malformed
    /// entry such as `name[x` or `name[0]` → 430.
    pub fn map(&self, name: &str) -> Result<Vec<BTreeMap<String, String>>, ApiError> {
        let prefix = format!("{}[", name.to_lowercase());
        let mut entries: BTreeMap<u32, BTreeMap<String, String>> = BTreeMap::new();
        for (full, value) in self.by_name.range(prefix.clone()..) {
            if !full.starts_with(&prefix) {
                break;
            }
            let (_, index, key) = split_map_name(full).ok_or_else(|| malformed_map_name(full))?;
            check_control(full, value)?;
            entries
                .entry(index)
                .or_default()
                .insert(key.to_string(), value.clone());
        }
        Ok(entries.into_values().collect())
    }

    /// A date parameter: `yyyy-MM-dd` (midnight UTC), `yyyy-MM-dd HH:mm:ss`
    /// (UTC), or any timestamp form accepted for `expires`.
    pub fn date(&self, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        let Some(v) = self.nonempty(name)? else {
            return Ok(None);
        };
        let parsed = NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc())
            .or_else(|| {
                NaiveDateTime::parse_from_str(v, "%Y-%m-%d %H:%M:%S")
                    .ok()
                    .map(|t| t.and_utc())
            })
            .or_else(|| parse_expires(v));
        parsed.map(Some).ok_or_else(|| {
            ApiError::param(format!(
                "Unable to parse the date {v} of parameter {name}; expected yyyy-MM-dd \
                 or yyyy-MM-ddTHH:mm:ss with a time zone offset"
            ))
        })
    }
}

impl fmt::Debug for Params {
    /// Lists the parameters with secret values (password, signature, session
    /// key) hidden, so requests can be logged.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (name, value) in &self.raw {
            let secret = SECRET_NAMES.iter().any(|s| name.eq_ignore_ascii_case(s));
            map.entry(name, &if secret { "<hidden>" } else { value.as_str() });
        }
        map.finish()
    }
}

/// 431 for a number parameter whose value is not a number from `min` to
/// `max`: CloudStack's text for a value its type cannot take, with the range.
pub fn invalid_value(command: &str, name: &str, value: &str, min: i64, max: i64) -> ApiError {
    let response = super::response::response_name(command);
    let word = response
        .strip_suffix("response")
        .or_else(|| response.strip_suffix("Response"))
        .unwrap_or(&response);
    ApiError::param(format!(
        "Unable to execute API command {word} due to invalid value {value} for parameter \
         {name}: it takes a whole number from {min} to {max}"
    ))
}

fn decode(input: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(input.as_bytes())
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect()
}

/// 431 when `value` holds an ASCII control character (0x00–0x1f, 0x7f).
fn check_control(name: &str, value: &str) -> Result<(), ApiError> {
    if value.chars().any(|c| c.is_ascii_control()) {
        return Err(ApiError::param(format!(
            "The value of parameter {name} contains control characters, which are not allowed"
        )));
    }
    Ok(())
}

/// Splits `prefix[index].key` into its parts; `None` unless there is exactly
/// one bracketed decimal index, a non-empty prefix and a non-empty key.
fn split_map_name(name: &str) -> Option<(&str, u32, &str)> {
    let (prefix, rest) = name.split_once('[')?;
    let (index, key) = rest.split_once(']')?;
    let key = key.strip_prefix('.')?;
    let well_formed = !prefix.is_empty()
        && !key.is_empty()
        && !key.contains(['[', ']'])
        && !index.is_empty()
        && index.bytes().all(|b| b.is_ascii_digit());
    if !well_formed {
        return None;
    }
    Some((prefix, index.parse().ok()?, key))
}

fn malformed_map_name(name: &str) -> ApiError {
    ApiError::malformed(format!(
        "Parameter {name} is malformed: a map entry must be written name[index].key"
    ))
}

fn parse_uuid(name: &str, value: &str) -> Result<Uuid, ApiError> {
    // `Uuid::try_parse` also takes the braced, URN and 32-digit forms, which
    // CloudStack would not find in its database; insist on the hyphenated one.
    let hyphenated = value.len() == 36
        && value
            .bytes()
            .enumerate()
            .all(|(i, b)| matches!(i, 8 | 13 | 18 | 23) == (b == b'-'));
    match Uuid::try_parse(value) {
        Ok(u) if hyphenated => Ok(u),
        _ => Err(ApiError::invalid_id(name, value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "5f0e6a0c-9d2b-4f4e-8a55-3c1d2e7b9a10";

    #[test]
    fn names_are_case_insensitive_and_the_first_value_wins() {
        let p = Params::parse_query("ZoneId=a&zoneid=b&command=createVPC&name=my+vpc%21");
        assert_eq!(p.get("zoneid"), Some("a"));
        assert_eq!(p.get("ZONEID"), Some("a"));
        assert_eq!(p.string("name").unwrap().as_deref(), Some("my vpc!"));
        assert_eq!(p.names().collect::<Vec<_>>(), ["command", "name", "zoneid"]);
        assert_eq!(p.raw_pairs().len(), 4);
        assert_eq!(p.raw_pairs()[0], ("ZoneId".to_string(), "a".to_string()));
    }

    #[test]
    fn query_values_come_before_body_values() {
        let p = Params::parse_request("command=listVPCs&name=q", "name=b&page=1");
        assert_eq!(p.get("name"), Some("q"));
        assert_eq!(p.integer("page").unwrap(), Some(1));
    }

    #[test]
    fn control_characters_are_refused() {
        let p = Params::parse_query("name=a%0Ab&other=ok");
        let e = p.validate().unwrap_err();
        assert_eq!(e.code, 431);
        assert_eq!(p.string("name").unwrap_err().code, 431);
        assert_eq!(p.string("other").unwrap().as_deref(), Some("ok"));
        assert!(Params::parse_query("name=a%7Fb").validate().is_err());
        assert!(Params::parse_query("name=tab%20%C3%A9").validate().is_ok());
    }

    #[test]
    fn required_string_missing_or_empty() {
        let p = Params::parse_query("name=&displaytext=x");
        let e = p.required_string("createVPC", "name").unwrap_err();
        assert_eq!(
            e.text,
            "Unable to execute API command createvpc due to missing parameter name"
        );
        assert_eq!(
            p.required_string("createVPC", "zoneid").unwrap_err().code,
            431
        );
        assert_eq!(p.required_string("createVPC", "displaytext").unwrap(), "x");
        assert_eq!(p.string("name").unwrap().as_deref(), Some(""));
    }

    #[test]
    fn length_limit_counts_like_java() {
        let long = "a".repeat(256);
        let p = Params::from_pairs(vec![
            ("name".into(), long),
            ("euro".into(), "€".repeat(255)),
        ]);
        let e = p.string("name").unwrap_err();
        assert_eq!(e.code, 431);
        assert!(e.text.contains("name") && e.text.contains("255"));
        assert!(p.string_max("name", 1024).unwrap().is_some());
        assert!(p.string("euro").unwrap().is_some());
    }

    #[test]
    fn booleans_follow_java_valueof() {
        let p = Params::parse_query("a=TRUE&b=yes&c=1&d=false&e=");
        assert_eq!(p.boolean("a").unwrap(), Some(true));
        assert_eq!(p.boolean("b").unwrap(), Some(false));
        assert_eq!(p.boolean("c").unwrap(), Some(false));
        assert_eq!(p.boolean("d").unwrap(), Some(false));
        assert_eq!(p.boolean("e").unwrap(), None);
        assert_eq!(p.boolean("missing").unwrap(), None);
    }

    #[test]
    fn numbers() {
        let p = Params::parse_query("page=2&pagesize=-1&big=3000000000&bad=12a");
        assert_eq!(p.integer("page").unwrap(), Some(2));
        assert_eq!(p.integer("pagesize").unwrap(), Some(-1));
        assert_eq!(p.long("big").unwrap(), Some(3_000_000_000));
        assert_eq!(p.integer("big").unwrap_err().code, 431);
        let e = p.long("bad").unwrap_err();
        assert_eq!(e.code, 431);
        assert!(e.text.contains("bad") && e.text.contains("12a"));
        assert_eq!(p.integer("absent").unwrap(), None);
    }

    #[test]
    fn uuids() {
        let p = Params::parse_query(&format!(
            "id={ID}&upper={}&simple=5f0e6a0c9d2b4f4e8a553c1d2e7b9a10&num=42",
            ID.to_uppercase()
        ));
        assert_eq!(p.uuid("id").unwrap().unwrap().to_string(), ID);
        assert_eq!(p.uuid("upper").unwrap().unwrap().to_string(), ID);
        let e = p.uuid("num").unwrap_err();
        assert_eq!(e.code, 431);
        assert!(
            e.text
                .starts_with("Invalid parameter num value=42 due to incorrect long value format")
        );
        assert!(p.uuid("simple").is_err());
        assert_eq!(
            p.required_uuid("deleteVPC", "vpcid").unwrap_err().text,
            "Unable to execute API command deletevpc due to missing parameter vpcid"
        );
    }

    #[test]
    fn lists_are_trimmed_and_drop_empty_items() {
        let p = Params::parse_query(&format!(
            "cidrlist=10.0.0.0/8,+,+192.168.0.0/16+,&ids={ID},x"
        ));
        assert_eq!(
            p.list("cidrlist").unwrap().unwrap(),
            ["10.0.0.0/8", "192.168.0.0/16"]
        );
        assert!(p.uuid_list("ids").is_err());
        assert_eq!(p.list("none").unwrap(), None);
    }

    #[test]
    fn maps_are_ordered_by_index_with_lower_case_keys() {
        let p = Params::parse_query(
            "tags[10].key=b&Tags[10].Value=2&tags[2].key=a&tags[2].value=1&other=x",
        );
        let m = p.map("tags").unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0]["key"], "a");
        assert_eq!(m[0]["value"], "1");
        assert_eq!(m[1]["key"], "b");
        assert_eq!(m[1]["value"], "2");
        assert!(p.map("details").unwrap().is_empty());
        assert!(p.validate().is_ok());
    }

    #[test]
    fn malformed_map_entries_are_430() {
        for bad in [
            "tags[x",
            "tags[0]",
            "tags[a].key",
            "tags[0].",
            "tags[0][1].key",
            "[0].k",
        ] {
            let p = Params::from_pairs(vec![(bad.to_string(), "v".to_string())]);
            assert_eq!(p.validate().unwrap_err().code, 430, "{bad}");
        }
        let p = Params::parse_query("tags[x=1");
        assert_eq!(p.map("tags").unwrap_err().code, 430);
    }

    #[test]
    fn dates() {
        let p = Params::parse_query(
            "d=2025-10-30&dt=2025-10-30+19:21:39&iso=2025-10-30T19:21:39%2B0000&bad=30/10/2025",
        );
        let day = p.date("d").unwrap().unwrap();
        assert_eq!(day.to_rfc3339(), "2025-10-30T00:00:00+00:00");
        let dt = p.date("dt").unwrap().unwrap();
        assert_eq!(dt, p.date("iso").unwrap().unwrap());
        assert_eq!(p.date("bad").unwrap_err().code, 431);
    }

    #[test]
    fn debug_hides_secrets() {
        let p = Params::parse_query("command=login&username=u&password=hunter2&signature=abc");
        let shown = format!("{p:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("abc"),
            "{shown}"
        );
        assert!(shown.contains("username"));
        let p = Params::parse_query("command=createVpnCustomerGateway&ipsecpsk=open%20sesame");
        assert!(!format!("{p:?}").contains("sesame"));
    }
}
