//! GetState with `summary`, the managers' health check: the applied
//! generation and condition only, no desired state and no live table, so a
//! check does not run `nft list` or copy a large configuration. The sizes
//! and times of both answers are printed for a list of 2,000 ACL items
//! (measured, not asserted: the assertions are about what is left out).

use std::time::Instant;

use prost::Message;
use vpc_proto::v1 as pb;
use vr_agent::testing::acls::Generator;

use crate::fixture::RouterLab;

#[test]
fn a_summary_carries_the_generation_and_condition_without_the_state_or_live_table() {
    let mut r = RouterLab::start("health_summary");
    let config = r.base_config();
    r.apply_config(config);
    r.set_acl(2, Generator::Realistic.items(2000, 7));
    let ask = |summary: bool| {
        let started = Instant::now();
        let state = r
            .call(move |mut c| async move {
                c.get_state(pb::GetStateRequest {
                    summary,
                    ..Default::default()
                })
                .await
            })
            .expect("GetState");
        (state, started.elapsed())
    };
    let (full, full_took) = ask(false);
    let (brief, brief_took) = ask(true);
    assert_eq!(brief.generation, full.generation);
    assert!(brief.generation > 0);
    assert_eq!(brief.serving, full.serving);
    assert!(brief.serving, "{}", brief.last_error);
    assert!(brief.config.is_none(), "no desired state in a summary");
    assert!(brief.live_ruleset.is_empty(), "no nft list in a summary");
    assert!(brief.dnsmasq.is_empty());
    assert!(full.config.is_some() && !full.live_ruleset.is_empty());
    let (full_bytes, brief_bytes) = (full.encoded_len(), brief.encoded_len());
    assert!(
        brief_bytes * 100 < full_bytes,
        "{brief_bytes} vs {full_bytes}"
    );
    eprintln!(
        "GetState at 2000 ACL items: full {full_bytes} bytes in {full_took:?}, summary \
         {brief_bytes} bytes in {brief_took:?}"
    );
}
