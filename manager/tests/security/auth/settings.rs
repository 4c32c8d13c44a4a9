//! The configuration keys listed are the ones that act.

use super::*;

on_both_backends!(listed_configuration_keys_are_the_ones_that_act, |m| {
    let admin = m.admin();
    let listed = admin.ok("listConfigurations", &[("pagesize", "-1")]).await;
    let names: Vec<&str> = listed["configuration"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for retired in vpc_manager::store::config::RETIRED {
        assert!(
            !names.contains(retired),
            "{retired} is listed but nothing reads it"
        );
    }
    for acting in [
        "incorrect.login.attempts.allowed",
        "job.expire.minutes",
        "api.sessionkey.check.locations",
        "enforce.post.requests.and.timestamps",
    ] {
        assert!(names.contains(&acting), "{acting} is not listed");
    }
});

/// Calls listZones with a session key in the cookie and/or the parameter.
async fn with_session(m: &TestManager, key: &str, in_cookie: bool, in_param: bool) -> u16 {
    let mut pairs = vec![
        ("command".to_string(), "listZones".to_string()),
        ("response".to_string(), "json".to_string()),
    ];
    if in_param {
        pairs.push(("sessionkey".into(), key.into()));
    }
    let target = format!("/client/api?{}", crate::support::api::query(&pairs));
    let cookie = format!("sessionkey={key}");
    let headers: Vec<(&str, &str)> = if in_cookie {
        vec![("Cookie", cookie.as_str())]
    } else {
        vec![]
    };
    crate::support::api::http(m.addr, "GET", &target, "", &headers)
        .await
        .status
}

on_both_backends!(session_key_locations_are_enforced_as_configured, |m| {
    let admin = m.admin();
    let (_, _) = keyed_user(&admin, "located").await;
    let r = login(m, "located", "pw", "/").await;
    let key = r.json()["loginresponse"]["sessionkey"]
        .as_str()
        .unwrap()
        .to_string();
    let cases = [
        (
            "CookieAndParameter",
            [(true, true, 200), (true, false, 401), (false, true, 401)],
        ),
        (
            "CookieOrParameter",
            [(true, true, 200), (true, false, 200), (false, true, 200)],
        ),
        (
            "ParameterOnly",
            [(true, true, 200), (true, false, 401), (false, true, 200)],
        ),
    ];
    for (locations, expected) in cases {
        admin
            .ok(
                "updateConfiguration",
                &[
                    ("name", "api.sessionkey.check.locations"),
                    ("value", locations),
                ],
            )
            .await;
        for (cookie, param, status) in expected {
            assert_eq!(
                with_session(m, &key, cookie, param).await,
                status,
                "{locations}: cookie {cookie}, parameter {param}"
            );
        }
    }
});

on_both_backends!(
    enforced_post_and_timestamps_refuse_get_changes_and_long_urls,
    |m| {
        let admin = m.admin();
        let expires = |minutes: i64| {
            (chrono::Utc::now() + chrono::TimeDelta::minutes(minutes))
                .format("%Y-%m-%dT%H:%M:%S+0000")
                .to_string()
        };
        // Off (the default): a GET change and a version 1 signature pass.
        assert_eq!(
            admin.call("createDomain", &[("name", "by-get")]).await.0,
            200
        );
        admin
            .ok(
                "updateConfiguration",
                &[
                    ("name", "enforce.post.requests.and.timestamps"),
                    ("value", "true"),
                ],
            )
            .await;
        let v3 = |e: String| vec![("signatureversion", "3".to_string()), ("expires", e)];
        let call = |command: &'static str, extra: Vec<(&'static str, String)>| {
            let admin = admin.clone();
            async move {
                let params: Vec<(&str, &str)> =
                    extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
                admin.call(command, &params).await.0
            }
        };
        assert_eq!(call("listZones", vec![]).await, 401, "version 1");
        assert_eq!(call("listZones", v3(expires(5))).await, 200);
        assert_eq!(
            call("listZones", v3(expires(24 * 60))).await,
            401,
            "a day ahead"
        );
        let mut get_change = v3(expires(5));
        get_change.push(("name", "by-get-2".into()));
        assert_eq!(
            call("createDomain", get_change).await,
            405,
            "a change by GET"
        );
        // The same change by POST passes.
        let mut pairs: Vec<(String, String)> = Vec::new();
        let e = expires(5);
        for (k, v) in admin.signed(
            "createDomain",
            &[
                ("name", "by-post"),
                ("signatureversion", "3"),
                ("expires", &e),
            ],
        ) {
            pairs.push((k, v));
        }
        let body = crate::support::api::query(&pairs);
        let r = crate::support::api::http(m.addr, "POST", "/client/api", &body, &[]).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
);
