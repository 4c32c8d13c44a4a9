//! A VPN connection's live state: what the router's charon reports
//! (GetState), in CloudStack's words, kept as the last known state for when
//! the router does not answer.

use super::connection::vpc_of;
use crate::error::Error;
use crate::server::App;
use crate::store::vpn;
use crate::store::vpn::ConnectionState;

/// How long a list waits for one router's answer.
const LIVE_STATE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// A connection's state as the router's charon reports it, in CloudStack's
/// words: up is Connected, a failed negotiation Error (with charon's
/// reason), anything else Disconnected.
fn from_router(s: &vpc_proto::v1::VpnConnectionStatus) -> (ConnectionState, String) {
    use vpc_proto::v1::VpnConnectionState as Live;
    match Live::try_from(s.state) {
        Ok(Live::Up) => (ConnectionState::Connected, String::new()),
        Ok(Live::Error) => (ConnectionState::Error, s.reason.clone()),
        _ => (ConnectionState::Disconnected, s.reason.clone()),
    }
}

/// Replaces the stored state of `rows` by what their routers report now,
/// and stores it as the last known state. A router that does not answer, or
/// does not have the connection yet (Pending), leaves the last known state.
pub(super) async fn live_states(app: &App, rows: &mut [vpn::Connection]) -> Result<(), Error> {
    let db = &app.db;
    let mut by_vpc: std::collections::BTreeMap<i64, Vec<usize>> = Default::default();
    for (i, c) in rows.iter().enumerate() {
        by_vpc.entry(vpc_of(db, c).await?).or_default().push(i);
    }
    for (vpc_id, indexes) in by_vpc {
        let Some(r) = crate::provision::running_router(db, vpc_id).await? else {
            continue;
        };
        let view = crate::provision::vpc::router_view(db, &r).await?;
        // A list must not wait for the agent client's retries of a router
        // that is down: past the bound the last known state is shown.
        let asked = tokio::time::timeout(LIVE_STATE_WAIT, app.network.element.vpn_status(&view));
        let live = match asked.await {
            Ok(Ok(live)) => live,
            Ok(Err(e)) => {
                tracing::debug!(router = %view.name, error = %e, "VPN state not read; showing the last known");
                continue;
            }
            Err(_) => {
                tracing::debug!(router = %view.name, "VPN state not read in time; showing the last known");
                continue;
            }
        };
        for i in indexes {
            let c = &mut rows[i];
            let id = c.uuid.to_string();
            let Some(status) = live.iter().find(|s| s.id == id) else {
                continue;
            };
            let (state, reason) = from_router(status);
            if (state, reason.as_str()) != (c.state, c.error.as_str()) {
                vpn::set_connection_state(db, c.id, state, &reason).await?;
                c.state = state;
                c.error = reason;
            }
        }
    }
    Ok(())
}
