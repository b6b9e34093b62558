//! Cluster operations with the real etcdctl 3.4: endpoints written with their scheme (etcdctl
//! then sends `:authority: http://host:port`), `--cluster` forms, and membership changes.

mod common;

use common::*;

/// `endpoint status`, `endpoint health` and `--cluster` forms work with `http://` endpoints,
/// as they do against etcd (etcdctl sends the scheme in `:authority`).
#[test]
fn endpoints_with_scheme_work_for_every_endpoint_command() {
    let c = Cluster::start(3);
    let with_scheme: Vec<String> = (0..3)
        .map(|i| format!("http://{}", c.endpoint(i)))
        .collect();
    let eps = with_scheme.join(",");
    let status = ok(&eps, &["endpoint", "status", "-w", "table"]);
    for ep in &with_scheme {
        assert!(status.contains(ep), "{status}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&ok(&eps, &["endpoint", "status", "-w", "json"])).expect("json");
    let leaders = json
        .as_array()
        .expect("one status per endpoint")
        .iter()
        .filter(|s| s["Status"]["leader"] == s["Status"]["header"]["member_id"])
        .count();
    assert_eq!(leaders, 1, "{json}");
    let health = stdout(&etcdctl(&eps, &["endpoint", "health"]))
        + &stderr(&etcdctl(&eps, &["endpoint", "health"]));
    assert_eq!(health.matches("is healthy").count(), 3, "{health}");
    let one = &with_scheme[0];
    let cluster_status = ok(one, &["endpoint", "status", "--cluster", "-w", "json"]);
    let parsed: serde_json::Value = serde_json::from_str(&cluster_status).expect("json");
    assert_eq!(parsed.as_array().map(Vec::len), Some(3), "{cluster_status}");
    let cluster_health = etcdctl(one, &["endpoint", "health", "--cluster"]);
    assert!(
        cluster_health.status.success(),
        "{}",
        stderr(&cluster_health)
    );
    assert_eq!(ok(one, &["put", "k", "v"]).trim(), "OK");
    assert_eq!(ok(one, &["get", "k", "--print-value-only"]).trim(), "v");
}
