//! `grpc.health.v1` as the agent's condition: SERVING while the desired
//! state is applied, NOT_SERVING while the agent cannot apply it (an apply
//! or a repair failed, or it runs without a state after an unreadable state
//! file), for the whole server ("") and for the router service.

use tokio::sync::watch;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// The router service's name as health checks ask for it.
pub const ROUTER_SERVICE: &str = "vpc.agent.v1.VirtualRouter";

/// Keeps `reporter` in step with `serving` (from [`crate::agent::Agent::serving`])
/// until the agent is gone.
pub async fn follow(reporter: HealthReporter, mut serving: watch::Receiver<bool>) {
    loop {
        let status = if *serving.borrow_and_update() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        reporter.set_service_status("", status).await;
        reporter.set_service_status(ROUTER_SERVICE, status).await;
        if serving.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_health::pb::health_server::Health;
    use tonic_health::pb::{HealthCheckRequest, health_check_response};
    use tonic_health::server::HealthService;

    async fn check(service: &HealthService, name: &str) -> health_check_response::ServingStatus {
        let reply = service
            .check(tonic::Request::new(HealthCheckRequest {
                service: name.into(),
            }))
            .await
            .unwrap()
            .into_inner();
        reply.status()
    }

    #[tokio::test]
    async fn health_follows_the_agents_condition() {
        use health_check_response::ServingStatus::*;
        let reporter = HealthReporter::new();
        let service = HealthService::from_health_reporter(reporter.clone());
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(follow(reporter, rx));
        let settle = || tokio::time::sleep(std::time::Duration::from_millis(20));
        settle().await;
        assert_eq!(check(&service, "").await, NotServing);
        assert_eq!(check(&service, ROUTER_SERVICE).await, NotServing);
        tx.send_replace(true);
        settle().await;
        assert_eq!(check(&service, "").await, Serving);
        assert_eq!(check(&service, ROUTER_SERVICE).await, Serving);
        drop(tx);
        task.await.unwrap();
    }
}
