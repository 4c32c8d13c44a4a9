//! A bounded fuzz run of the API parameter parser: arbitrary query strings
//! and parameter maps shaped after every command's spec go through the
//! signed-request parsing (decode, validate, canonicalise, verify) and the
//! typed parsing (`check_params`, the typed accessors). Nothing may panic,
//! and every refusal of a value is a CloudStack 431 (430 for a malformed map
//! name).
//!
//! It runs for `VPC_FUZZ_SECONDS` (default 30) in the normal suite; set it
//! higher to fuzz longer, e.g. `VPC_FUZZ_SECONDS=600 cargo test -p
//! vpc-manager --test security fuzz`.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use vpc_manager::api::{Params, canonical_query, sign, verify};
use vpc_manager::server::registry::{CommandSpec, ParamType};

/// Values that probe the edges of every parameter type.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[-+]?[0-9]{1,25}",
        any::<i64>().prop_map(|n| n.to_string()),
        any::<i32>().prop_map(|n| n.to_string()),
        Just("2147483648".to_string()),
        Just("-2147483649".to_string()),
        Just("9223372036854775808".to_string()),
        "[0-9a-fA-F-]{30,40}",
        "[a-z0-9.,/:%-]{0,40}",
        Just(String::new()),
        "[\\x00-\\x1f\\x7f]{1,3}",
        "[0-9]{4}-[0-9]{2}-[0-9]{2}( [0-9:]{8})?",
    ]
}

/// A command of the registry and parameters for it: some of its own (any
/// case), some unknown, some map-like names.
fn request(commands: usize) -> impl Strategy<Value = (usize, Vec<(usize, String, String)>)> {
    (
        0..commands,
        prop::collection::vec(
            (
                any::<usize>(),
                prop_oneof![
                    3 => Just(String::new()),
                    1 => "[a-zA-Z\\[\\]0-9.]{1,12}",
                ],
                value(),
            ),
            0..10,
        ),
    )
}

/// The pairs of a request for `spec`: a parameter of the spec where `name`
/// is empty (its index chosen by `pick`, its case varied), else `name`.
fn pairs_for(spec: &CommandSpec, wanted: &[(usize, String, String)]) -> Vec<(String, String)> {
    let mut pairs = vec![("command".to_string(), spec.name.to_string())];
    for (pick, name, value) in wanted {
        let name = match (name.is_empty(), spec.params.len()) {
            (true, n) if n > 0 => {
                let p = spec.params[pick % n].name;
                if pick % 3 == 0 {
                    p.to_uppercase()
                } else {
                    p.to_string()
                }
            }
            (true, _) => "x".to_string(),
            (false, _) => name.clone(),
        };
        pairs.push((name, value.clone()));
    }
    pairs
}

/// One request through the parser: refusals must be 430/431, never panics.
fn parse_one(spec: &CommandSpec, pairs: Vec<(String, String)>) -> Result<(), TestCaseError> {
    // The signed-request path: the query string as sent, decoded again.
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter())
        .finish();
    let signature = sign("secret", &pairs);
    let params = Params::parse_query(&query);
    prop_assert!(verify("secret", params.raw_pairs(), &signature));
    let _ = canonical_query(params.raw_pairs());
    if let Err(e) = params.validate() {
        prop_assert!(e.code == 430 || e.code == 431, "validate: {e}");
        return Ok(());
    }
    // The typed path every handler relies on.
    if let Err(e) = spec.check_params(&params) {
        prop_assert_eq!(e.code, 431, "{}: {}", spec.name, e);
        prop_assert!(!e.text.is_empty());
    }
    for p in &spec.params {
        let code = match p.ty {
            ParamType::Integer => params.integer(p.name).err(),
            ParamType::Long => params.long(p.name).err(),
            ParamType::Uuid => params.uuid(p.name).err(),
            ParamType::Boolean => params.boolean(p.name).err(),
            ParamType::Date => params.date(p.name).err(),
            ParamType::List => params.list(p.name).err(),
            ParamType::Map => params.map(p.name).err(),
            ParamType::String => params.string_max(p.name, p.length as usize).err(),
        }
        .map(|e| e.code);
        prop_assert!(
            code.is_none_or(|c| c == 430 || c == 431),
            "{}.{}: {:?}",
            spec.name,
            p.name,
            code
        );
    }
    Ok(())
}

#[test]
fn the_parameter_parser_refuses_every_hostile_request_with_a_431_and_never_panics() {
    let budget = std::env::var("VPC_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let deadline = Instant::now() + Duration::from_secs(budget);
    let registry = vpc_manager::services::registry();
    let specs: Vec<&CommandSpec> = registry.all().collect();
    let mut cases = 0u64;
    while Instant::now() < deadline {
        let mut runner = TestRunner::new(Config {
            cases: 256,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&request(specs.len()), |(i, wanted)| {
                let spec = specs[i];
                parse_one(spec, pairs_for(spec, &wanted))
            })
            .unwrap_or_else(|e| panic!("{e}"));
        cases += 256;
    }
    eprintln!("fuzzed the parameter parser with {cases} requests in {budget} s");
    assert!(cases >= 256);
}
